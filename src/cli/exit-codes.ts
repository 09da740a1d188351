/** Exit codes of every rtev command (docs/cli.md); defined with the error table in src/errors.ts. */
export { ExitCode } from '../errors';
