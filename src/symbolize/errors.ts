import { RtevError } from '../errors';

/** SymbolizeErrorCode lists why a file or process could not be read for symbols. */
export type SymbolizeErrorCode =
  | 'NOT_ELF' // the file is not an ELF object (bad magic, class or encoding)
  | 'ELF_MALFORMED' // an offset, size or count points outside the file or past a cap
  | 'TOO_LARGE' // a section, file or table is larger than the configured cap
  | 'IO' // open/read/stat failed
  | 'NO_PROCESS' // /proc/PID vanished while we were reading it
  | 'XZ' // MiniDebugInfo decompression failed
  | 'USAGE';

/** SymbolizeError is raised by parsers on hostile or unreadable input; callers count it. */
export class SymbolizeError extends RtevError<SymbolizeErrorCode> {}

/** malformed throws the ELF_MALFORMED error used by every bounds check. */
export function malformed(what: string): never {
  throw new SymbolizeError('ELF_MALFORMED', what);
}
