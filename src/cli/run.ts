import { mark } from '../ingest/startup-trace';
import { addonError, RtevError, errorMessage } from '../errors';
import { ExitCode } from './exit-codes';
import { processIO, type CliIO, type Command } from './io';
import { packageVersion } from '../platform/paths';
import { closest } from '../util/edit-distance';
import { enableCompileCache } from './compile-cache';

/**
 * The CLI over a command table: src/cli/main.ts's, of every command (bin/rtev's dist/bundle/main.js),
 * or src/cli/collect-main.ts's, of `collect` alone (dist/bundle/collect-main.js, which bin/rtev runs for
 * `rtev collect ...`: a bundle without the other commands' code, which V8 would otherwise parse at
 * every collector start; docs/architecture.md, "The CLI bundle"). Each entry of a table loads its
 * module lazily, so `rtev validate` does not pay for loading the BPF addon.
 */
export type CommandTable = Record<string, () => Command>;

export interface Cli {
  /** main runs one rtev invocation and returns its exit code; it never throws. */
  main(argv: string[], io?: CliIO): Promise<number>;
  /**
   * runCli is the process entry (bin/rtev): it runs main, waits until standard output and
   * standard error have handed every byte to their pipe, file or terminal (a slow reader is
   * waited for), then exits. A reader that goes away (`rtev query ev | head -5`) ends the
   * process quietly with ExitCode.PIPE_CLOSED (docs/cli.md, "Pipes").
   */
  runCli(argv: string[]): Promise<never>;
  /** commandNames lists the commands of the table (docs/cli.md is tested against their usage). */
  commandNames(): string[];
  /** commandUsage is what `rtev help NAME` prints. */
  commandUsage(name: string): string | undefined;
}

export function makeCli(commands: CommandTable): Cli {
  const has = (name: string): boolean => Object.prototype.hasOwnProperty.call(commands, name);
  const commandNames = (): string[] => Object.keys(commands).sort();
  const commandUsage = (name: string): string | undefined => (has(name) ? commands[name]!().usage : undefined);

  function usage(): string {
    return [
      'usage: rtev <command> [options]',
      '',
      'commands:',
      ...commandNames().map((n) => `  ${n.padEnd(10)} ${commands[n]!().summary}`),
      '',
      "run 'rtev help <command>' (or 'rtev <command> --help') for a command's options; exit codes are listed in docs/cli.md",
    ].join('\n');
  }

  function unknownCommand(name: string, io: CliIO): number {
    const close = closest(name, commandNames());
    io.stderr.write(`rtev: unknown command '${name}'\n  fix: ${close !== undefined ? `did you mean '${close}'? ` : ''}commands: ${commandNames().join(', ')}\n`);
    return ExitCode.USAGE;
  }

  async function main(argv: string[], io: CliIO = processIO()): Promise<number> {
    const [name, ...rest] = argv;
    if (name === 'help' && rest[0] !== undefined) {
      const text = commandUsage(rest[0]);
      if (text === undefined) return unknownCommand(rest[0], io);
      io.stdout.write(text + '\n');
      return ExitCode.OK;
    }
    if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
      io.stdout.write(usage() + '\n');
      return name === undefined ? ExitCode.USAGE : ExitCode.OK;
    }
    if (name === '--version') {
      io.stdout.write(packageVersion() + '\n');
      return ExitCode.OK;
    }
    if (!has(name)) return unknownCommand(name, io);
    const command = commands[name]!();
    mark(`modules: ${name} command`);
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

  async function runCli(argv: string[]): Promise<never> {
    process.stdout.on('error', onStdioError);
    process.stderr.on('error', onStdioError);
    // Node >= 22: the commands' modules from V8's code cache, not compiled again at every run
    enableCompileCache();
    let code: number;
    try {
      code = await main(argv);
    } catch (err) {
      code = isPipeClosed(err) ? ExitCode.PIPE_CLOSED : reportError(err, processIO());
    }
    await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
    // exit explicitly: a leftover handle (a timer, a socket to a container runtime) must not keep a finished run alive
    process.exit(code);
  }

  return { main, runCli, commandNames, commandUsage };
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

function isPipeClosed(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED' || (err instanceof RtevError && err.code === 'OUTPUT_CLOSED');
}

function onStdioError(err: Error): void {
  if (isPipeClosed(err)) process.exit(ExitCode.PIPE_CLOSED);
  // any other failure of stdout/stderr (EIO on a vanished terminal, ENOSPC on a file): nothing more can be said there
  process.exit(ExitCode.OUTPUT);
}

/** flushed resolves once everything written to `s` so far has left the process. */
function flushed(s: NodeJS.WriteStream): Promise<void> {
  if (s.destroyed || s.writableLength === 0) return Promise.resolve();
  return new Promise((resolve) => s.write('', () => resolve()));
}
