import { RtevError } from '../errors';

/**
 * InputError is unusable input (an SBOM or OSV file that cannot be read or parsed at all):
 * one line naming the file; exit code 2 like other bad arguments.
 */
export class InputError extends RtevError<'USAGE'> {
  constructor(message: string, hint?: string) {
    super('USAGE', message, hint === undefined ? {} : { hint });
  }
}

/** Skip is one input element that was not used, with the element named and the reason. */
export interface Skip {
  what: string;
  reason: string;
}
