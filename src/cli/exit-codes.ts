/** Exit codes of every rtev command, documented in docs/cli.md. */
export const ExitCode = {
  OK: 0,
  /** an unexpected failure (a bug or an unhandled environment problem) */
  FAILURE: 1,
  /** bad command line or configuration */
  USAGE: 2,
  /** the host cannot run the collector: privileges, BTF, tracefs, kernel */
  ENVIRONMENT: 3,
  /** the output cannot be written: permissions, full disk, removed directory */
  OUTPUT: 4,
  /** verify: evidence is authentic but records gaps or drops */
  VERIFY_INCOMPLETE: 10,
  /** verify/validate: evidence is invalid, tampered with, or fails the schema */
  VERIFY_INVALID: 11,
} as const;
