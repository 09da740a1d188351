import * as fs from 'node:fs';
import * as path from 'node:path';
import { RtevError, UsageError } from '../errors';
import { closest } from '../util/edit-distance';

/**
 * A small strict option parser: every option is declared, values are checked, and the
 * error names the option and the fix. (node:util parseArgs lacks repeatable typed values
 * and `--` handling with a command after it.)
 */
export interface OptionSpec {
  name: string;
  kind: 'flag' | 'string' | 'list';
  /** one-line help */
  help: string;
  value?: string;
}

export interface ParsedArgs {
  flags: Set<string>;
  values: Map<string, string>;
  lists: Map<string, string[]>;
  positionals: string[];
  /** everything after `--` */
  command: string[];
}

/** The longest option value accepted (a path is at most 4096 bytes on Linux; a longer glob is a mistake). */
export const MAX_VALUE_CHARS = 4096;
/** The most values one repeatable option takes. */
export const MAX_LIST_VALUES = 1024;

export function parseArgs(args: string[], specs: OptionSpec[], allowPositionals = 0): ParsedArgs {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const parsed: ParsedArgs = { flags: new Set(), values: new Map(), lists: new Map(), positionals: [], command: [] };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') {
      parsed.command = args.slice(i + 1);
      break;
    }
    if (!arg.startsWith('--') || arg === '-') {
      if (parsed.positionals.length >= allowPositionals) throw new UsageError(`unexpected argument '${arg}'`, "run with --help for usage; put a command to observe after '--'");
      parsed.positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(2, eq) : arg.slice(2);
    const spec = byName.get(name);
    if (spec === undefined) {
      const close = closest(name, [...byName.keys()]);
      throw new UsageError(`unknown option --${name}`, close ? `did you mean --${close}?` : 'run with --help for the options');
    }
    if (spec.kind === 'flag') {
      if (eq > 0) throw new UsageError(`option --${name} takes no value`);
      parsed.flags.add(name);
      continue;
    }
    let value: string | undefined;
    if (eq > 0) value = arg.slice(eq + 1);
    else value = args[++i];
    if (value === undefined) throw new UsageError(`option --${name} needs a value (${spec.value ?? 'VALUE'})`, `e.g. --${name} ${spec.value ?? 'VALUE'}; see 'rtev help' for the options`);
    if (value.length > MAX_VALUE_CHARS) {
      throw new UsageError(`--${name}: the value is ${value.length} characters; the limit is ${MAX_VALUE_CHARS}`, 'give a shorter value (a glob, a path or a name)');
    }
    if (spec.kind === 'list' && (parsed.lists.get(name)?.length ?? 0) >= MAX_LIST_VALUES) {
      throw new UsageError(`--${name}: more than ${MAX_LIST_VALUES} values`, `give at most ${MAX_LIST_VALUES}`);
    }
    if (spec.kind === 'string') parsed.values.set(name, value);
    else parsed.lists.set(name, [...(parsed.lists.get(name) ?? []), value]);
  }
  return parsed;
}

export function usageText(head: string, specs: OptionSpec[]): string {
  const rows = specs.map((s) => {
    const left = `--${s.name}${s.kind === 'flag' ? '' : ' ' + (s.value ?? 'VALUE')}`;
    return `  ${left.padEnd(28)} ${s.help}`;
  });
  return `${head}\n\noptions:\n${rows.join('\n')}`;
}

/** The longest timer Node.js keeps (2^31 - 1 ms, 24.8 days): the bound of a duration that arms a timer. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** parseDuration accepts 500ms, 10s, 5m, 2h or plain seconds, up to `maxMs`. */
export function parseDuration(text: string, option: string, maxMs = Number.MAX_SAFE_INTEGER): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new UsageError(`--${option}: '${text}' is not a duration`, 'use e.g. 500ms, 10s, 5m or 1h');
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  const ms = Math.round(n * (unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : 3_600_000));
  if (!Number.isSafeInteger(ms) || ms > maxMs) {
    throw new UsageError(`--${option}: '${text}' is longer than the limit of ${formatMs(maxMs)}`, maxMs === MAX_TIMER_MS
      ? `give at most ${formatMs(maxMs)}, or leave --${option} out and stop with SIGINT/SIGTERM` : `give at most ${formatMs(maxMs)}`);
  }
  return ms;
}

function formatMs(ms: number): string {
  return ms >= 3_600_000 ? `${Math.floor(ms / 3_600_000)}h (${ms} ms)` : `${ms} ms`;
}

/** parseSize accepts bytes with an optional K, M or G suffix (powers of 1024). */
export function parseSize(text: string, option: string): number {
  const m = /^(\d+)([KMG]i?B?)?$/i.exec(text.trim());
  if (!m) throw new UsageError(`--${option}: '${text}' is not a size`, 'use e.g. 4096, 64K, 16M or 1G');
  const unit = (m[2] ?? '').charAt(0).toUpperCase();
  const factor = unit === 'K' ? 1024 : unit === 'M' ? 1024 ** 2 : unit === 'G' ? 1024 ** 3 : 1;
  return Number(m[1]) * factor;
}

export function parseInteger(text: string, option: string, min: number, max: number): number {
  const n = /^\s*-?\d+\s*$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`--${option}: '${text}' must be an integer from ${min} to ${max}`, `e.g. --${option} ${min === max ? min : Math.max(min, Math.min(max, 20))}`);
  }
  return n;
}

/** refuseWith fails when an option that has no effect in a mode (`--stdout`) is given with it. */
export function refuseWith(parsed: ParsedArgs, mode: string, options: readonly string[], why: string, fix: string): void {
  if (!parsed.flags.has(mode)) return;
  const given = options.filter((o) => parsed.values.has(o) || parsed.lists.has(o) || parsed.flags.has(o));
  if (given.length > 0) throw new UsageError(`${given.map((o) => `--${o}`).join(', ')} ${given.length > 1 ? 'have' : 'has'} no effect with --${mode}: ${why}`, fix);
}

/**
 * checkCommand finds the program of `-- CMD ARGS` the way execvp would (a name with a slash
 * as it is, else the first PATH entry that has it), so a missing or non-executable command is
 * one error line (exit 127 or 126, the shell's convention) before anything is loaded.
 */
export function checkCommand(command: readonly string[], env: NodeJS.ProcessEnv = process.env): void {
  const name = command[0];
  if (name === undefined) return;
  if (name === '') throw new RtevError('COMMAND_NOT_FOUND', "the command after '--' is empty");
  const candidates = name.includes('/') ? [name] : (env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin').split(':').map((d) => path.join(d === '' ? '.' : d, name));
  let found: string | undefined;
  for (const c of candidates) {
    try {
      if (!fs.statSync(c).isFile()) continue;
    } catch {
      continue;
    }
    found ??= c;
    try {
      fs.accessSync(c, fs.constants.X_OK);
      return;
    } catch {
      // keep looking, as execvp does
    }
  }
  if (found !== undefined) throw new RtevError('COMMAND_NOT_EXECUTABLE', `${found} is not executable`, { hint: `chmod +x ${found}, or run it through its interpreter (-- sh ${found})` });
  throw new RtevError('COMMAND_NOT_FOUND', `command not found: ${name}`, {
    hint: name.includes('/') ? 'check the path' : 'check the spelling, or give its path (PATH is searched as the shell does)',
  });
}
