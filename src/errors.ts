/**
 * rtev's errors: one closed table of codes, each with its exit code and its one-line fix
 * (docs/cli.md, "Errors"). A new kind of error is one line in ERRORS, never a string matched
 * elsewhere. An error may carry a more precise fix of its own (`hint`); the table's fix is the
 * default.
 */

/** Exit codes of every rtev command, documented in docs/cli.md. */
export const ExitCode = {
  OK: 0,
  /** an unexpected failure (a bug or an unhandled environment problem) */
  FAILURE: 1,
  /** bad command line, value or configuration */
  USAGE: 2,
  /** the host cannot run the collector: privileges, BTF, tracefs, kernel */
  ENVIRONMENT: 3,
  /** the output cannot be written: permissions, full disk, removed directory */
  OUTPUT: 4,
  /** collect --fail-on-loss: records were lost (the observed command, if any, succeeded) */
  LOSS: 5,
  /** verify: evidence is authentic but records gaps or drops */
  VERIFY_INCOMPLETE: 10,
  /** verify/validate: evidence is invalid, tampered with, or fails the schema */
  VERIFY_INVALID: 11,
  /** collect -- CMD: CMD exists but cannot be executed (the shell's convention) */
  COMMAND_NOT_EXECUTABLE: 126,
  /** collect -- CMD: CMD was not found (the shell's convention) */
  COMMAND_NOT_FOUND: 127,
  /** the reader of standard output went away (`| head`): 128 + SIGPIPE, as a process killed by SIGPIPE */
  PIPE_CLOSED: 141,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export interface ErrorSpec {
  exit: ExitCodeValue;
  /** the default one-line fix; undefined when only the raising site can say what to do */
  fix: string | undefined;
}

const usage = (fix?: string): ErrorSpec => ({ exit: ExitCode.USAGE, fix });
const environment = (fix?: string): ErrorSpec => ({ exit: ExitCode.ENVIRONMENT, fix });
const output = (fix?: string): ErrorSpec => ({ exit: ExitCode.OUTPUT, fix });
const failure = (fix?: string): ErrorSpec => ({ exit: ExitCode.FAILURE, fix });

/** The error table. */
export const ERRORS = {
  // the command line and its inputs (exit 2)
  USAGE: usage("run 'rtev help' for the commands, 'rtev help CMD' for a command's options"),
  CONFIG: usage("fix the config file; options are the long names of 'rtev collect --help'"),
  KEY: usage("create a key with 'rtev keygen --out FILE' and pass it with --key FILE"),
  NOT_EVIDENCE: usage("give a directory written by 'rtev collect --out DIR'"),
  SELECT_CONFLICT: usage("see 'rtev help collect' for the container filters"),
  SELECT_AMBIGUOUS: usage('give more of the container id, or its full name'),
  SELECT_INVALID: usage("see 'rtev help collect' for the container filters"),
  // collect -- CMD (the shell's exit codes)
  COMMAND_NOT_FOUND: { exit: ExitCode.COMMAND_NOT_FOUND, fix: 'check the spelling, or give its path' },
  COMMAND_NOT_EXECUTABLE: { exit: ExitCode.COMMAND_NOT_EXECUTABLE, fix: 'make it executable, or run it through its interpreter' },
  // the host cannot run the collector (exit 3)
  PRIVILEGES: environment('run with sudo'),
  NO_BTF: environment('rtev needs a kernel >= 5.11 built with CONFIG_DEBUG_INFO_BTF=y'),
  NO_TRACEFS: environment('mount -t tracefs nodev /sys/kernel/tracing'),
  KERNEL: environment('rtev needs Linux >= 5.11 with BTF'),
  ADDON_LOAD: environment("build it with 'make build' (needs libbpf-dev, libelf-dev and a C compiler)"),
  INDEX_LOAD: environment("run 'npm ci' (or 'make build'): the evidence index needs @duckdb/node-api"),
  ADDON_LAYOUT: environment("rebuild with 'make build': the addon and the BPF object disagree"),
  BPF_LOAD: environment('run with --verbose for the whole verifier log; rtev needs Linux >= 5.11 with BTF'),
  BPF_ATTACH: environment('check the warnings above; run with --verbose for the libbpf messages'),
  BPF_MAP: environment('run with --verbose for the libbpf messages'),
  RINGBUF: environment('run with --verbose for the libbpf messages'),
  // the output (exit 4)
  OUTPUT: output('choose a directory you can write with --out DIR'),
  DISK_FULL: output('free space on the output device, or choose another --out directory'),
  OUTPUT_CLOSED: output(undefined),
  INDEX: output('choose a writable place for the index with --index PATH, or wait for the other rtev using it'),
  // verify and validate (exit 11)
  VERIFY_INVALID: { exit: ExitCode.VERIFY_INVALID, fix: undefined },
  // raised by the symbolizer on unreadable or hostile files; counted where they are expected
  NOT_ELF: usage('give an ELF executable or shared library'),
  ELF_MALFORMED: usage('give an intact ELF file'),
  TOO_LARGE: usage(undefined),
  IO: usage(undefined),
  NO_PROCESS: usage('the process exited; give a running process'),
  XZ: usage(undefined),
  // a bug in rtev (exit 1): the addon was called wrongly or ran out of memory
  ADDON_BUG: failure('please report it, with RTEV_DEBUG=1 output'),
} as const satisfies Record<string, ErrorSpec>;

/** ErrorCode is the closed union of rtev's error codes. */
export type ErrorCode = keyof typeof ERRORS;

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.prototype.hasOwnProperty.call(ERRORS, code);
}

/**
 * RtevError is the base of every error rtev raises on purpose. `code` is one of ERRORS;
 * `hint` is the one-line fix the CLI prints when it is more precise than the table's.
 */
export class RtevError<C extends ErrorCode = ErrorCode> extends Error {
  readonly code: C;
  readonly hint: string | undefined;

  constructor(code: C, message: string, options: { cause?: unknown; hint?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.hint = options.hint;
    this.name = new.target.name;
  }

  /** fix is the line printed after `fix:`: the error's own hint, or the table's. */
  get fix(): string | undefined {
    return this.hint ?? ERRORS[this.code].fix;
  }

  get exitCode(): ExitCodeValue {
    return ERRORS[this.code].exit;
  }
}

/** UsageError is a mistake on the command line or in a config file (exit code 2). */
export class UsageError extends RtevError<'USAGE'> {
  constructor(message: string, hint?: string) {
    super('USAGE', message, hint === undefined ? {} : { hint });
  }
}

/**
 * The addon throws Errors with a string `code` and a numeric `errno` (native/log.c,
 * throw_error). ADDON_CODES maps them into the table; codes the addon may add later fall
 * to ADDON_BUG.
 */
const ADDON_CODES: Record<string, ErrorCode> = {
  BPF_OPEN: 'BPF_LOAD',
  BPF_LOAD: 'BPF_LOAD',
  BPF_ATTACH: 'BPF_ATTACH',
  BPF_ITER: 'BPF_ATTACH',
  BPF_MAP: 'BPF_MAP',
  RINGBUF: 'RINGBUF',
  RTEV_LAYOUT: 'ADDON_LAYOUT',
  RTEV_ARG: 'ADDON_BUG',
  RTEV_NOMEM: 'ADDON_BUG',
};

/** isAddonError tells an error thrown by the native addon. */
export function isAddonError(err: unknown): err is Error & { code: string; errno: number } {
  return err instanceof Error && !(err instanceof RtevError) && typeof (err as { code?: unknown }).code === 'string' &&
    typeof (err as { errno?: unknown }).errno === 'number' && 'libbpfLog' in err;
}

/**
 * addonError wraps what the addon threw into the table (the session boundary calls it);
 * anything else is returned as it is.
 */
export function addonError(err: unknown, what: string): unknown {
  if (!isAddonError(err)) return err;
  const code = ADDON_CODES[err.code] ?? 'ADDON_BUG';
  const errno = err.errno > 0 ? ` (errno ${err.errno})` : '';
  return new RtevError(code, `${what}${errno}`, { cause: err });
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
