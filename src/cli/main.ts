import { addonError, RtevError, errorMessage } from '../errors';
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
  summary: () => require('./commands/summary').summaryCommand,
  verify: () => require('./commands/verify').verifyCommand,
  keygen: () => require('./commands/keygen').keygenCommand,
  'node-hash': () => require('./commands/node-hash').nodeHashCommand,
  plan: () => require('./commands/plan').planCommand,
  report: () => require('./commands/report').reportCommand,
  ship: () => require('./commands/ship').shipCommand,
  ingest: () => require('./commands/ingest').ingestCommand,
  fleet: () => require('./commands/fleet').fleetCommand,
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
  const e = addonError(err, 'the BPF addon failed');
  if (e instanceof RtevError) {
    io.stderr.write(`rtev: ${errorMessage(e)}\n`);
    const fix = e.fix;
    if (fix !== undefined) io.stderr.write(`  fix: ${fix}\n`);
    return e.exitCode;
  }
  io.stderr.write(`rtev: internal error: ${errorMessage(e)}\n`);
  if (process.env['RTEV_DEBUG'] !== undefined && e instanceof Error) io.stderr.write(`${e.stack}\n`);
  else io.stderr.write('  (set RTEV_DEBUG=1 for a stack trace, and please report it)\n');
  return ExitCode.FAILURE;
}
