/**
 * RtevError is the base of every error rtev raises on purpose. `code` is stable and
 * documented (docs/errors.md); `hint` is the one-line fix the CLI prints.
 */
export class RtevError<C extends string = string> extends Error {
  readonly code: C;
  readonly hint: string | undefined;

  constructor(code: C, message: string, options: { cause?: unknown; hint?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.hint = options.hint;
    this.name = new.target.name;
  }
}

/** UsageError is a mistake on the command line or in a config file (exit code 2). */
export class UsageError extends RtevError<'USAGE'> {
  constructor(message: string, hint?: string) {
    super('USAGE', message, hint === undefined ? {} : { hint });
  }
}

/** errorMessage renders an error and its cause chain as one line. */
export function errorMessage(err: unknown): string {
  const parts: string[] = [];
  let current: unknown = err;
  for (let depth = 0; current !== undefined && current !== null && depth < 8; depth++) {
    if (current instanceof Error) {
      parts.push(current.message);
      current = (current as Error & { cause?: unknown }).cause;
    } else {
      parts.push(String(current));
      break;
    }
  }
  // causes may quote hostile input (a config file's bytes, a path): control characters would break the line
  return parts.filter((p, i) => p.length > 0 && parts.indexOf(p) === i).join(': ')
    .replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
