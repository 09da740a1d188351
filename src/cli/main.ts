import { RtevError, errorMessage } from '../errors';
import { ExitCode } from './exit-codes';
import { processIO, type CliIO, type Command } from './io';
import { packageVersion } from '../platform/paths';

/**
 * The command table. Each entry loads its module lazily so `rtev validate` does not pay
 * for loading the BPF addon.
 */
const COMMANDS: Record<string, () => Command> = {
  collect: () => require('./commands/collect').collectCommand,
  validate: () => require('./commands/validate').validateCommand,
  query: () => require('./commands/query').queryCommand,
  verify: () => require('./commands/verify').verifyCommand,
  keygen: () => require('./commands/keygen').keygenCommand,
  'node-hash': () => require('./commands/node-hash').nodeHashCommand,
};

function usage(): string {
  const names = Object.keys(COMMANDS).sort();
  return [
    'usage: rtev <command> [options]',
    '',
    'commands:',
    ...names.map((n) => `  ${n.padEnd(10)} ${COMMANDS[n]!().summary}`),
    '',
    "run 'rtev <command> --help' for a command's options; exit codes are listed in docs/cli.md",
  ].join('\n');
}

/** main runs one rtev invocation and returns its exit code; it never throws. */
export async function main(argv: string[], io: CliIO = processIO()): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(usage() + '\n');
    return name === undefined ? ExitCode.USAGE : ExitCode.OK;
  }
  if (name === '--version') {
    io.stdout.write(packageVersion() + '\n');
    return ExitCode.OK;
  }
  const load = COMMANDS[name];
  if (load === undefined) {
    io.stderr.write(`rtev: unknown command '${name}'; commands: ${Object.keys(COMMANDS).sort().join(', ')}\n`);
    return ExitCode.USAGE;
  }
  const command = load();
  if (rest.includes('--help') || rest.includes('-h')) {
    const dashDash = rest.indexOf('--');
    const helpAt = Math.max(rest.indexOf('--help'), rest.indexOf('-h'));
    if (dashDash < 0 || helpAt < dashDash) {
      io.stdout.write(command.usage + '\n');
      return ExitCode.OK;
    }
  }
  try {
    return await command.run(rest, io);
  } catch (err) {
    return reportError(err, io);
  }
}

/** reportError prints one line (plus the fix) for expected errors, a stack only for bugs. */
export function reportError(err: unknown, io: CliIO): number {
  if (err instanceof RtevError) {
    io.stderr.write(`rtev: ${errorMessage(err)}\n`);
    const hint = err.hint ?? DEFAULT_HINTS[err.code];
    if (hint !== undefined) io.stderr.write(`  fix: ${hint}\n`);
    return exitCodeFor(err.code);
  }
  io.stderr.write(`rtev: internal error: ${errorMessage(err)}\n`);
  if (process.env['RTEV_DEBUG'] !== undefined && err instanceof Error) io.stderr.write(`${err.stack}\n`);
  else io.stderr.write('  (set RTEV_DEBUG=1 for a stack trace, and please report it)\n');
  return ExitCode.FAILURE;
}

const DEFAULT_HINTS: Record<string, string> = {
  OUTPUT: 'choose a directory you can write with --out DIR',
  DISK_FULL: 'free space on the output device, or choose another --out directory',
  CONFIG: "fix the config file; options are the long names of 'rtev collect --help'",
};

const ENVIRONMENT_CODES = new Set(['PRIVILEGES', 'NO_BTF', 'NO_TRACEFS', 'KERNEL', 'ADDON_LOAD', 'BPF_LOAD', 'BPF_ATTACH']);
const OUTPUT_CODES = new Set(['OUTPUT', 'DISK_FULL']);

function exitCodeFor(code: string): number {
  if (code === 'USAGE' || code === 'CONFIG') return ExitCode.USAGE;
  if (ENVIRONMENT_CODES.has(code)) return ExitCode.ENVIRONMENT;
  if (OUTPUT_CODES.has(code)) return ExitCode.OUTPUT;
  if (code === 'VERIFY_INVALID') return ExitCode.VERIFY_INVALID;
  return ExitCode.FAILURE;
}
