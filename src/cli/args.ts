import { UsageError } from '../errors';
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
    if (value === undefined) throw new UsageError(`option --${name} needs a value (${spec.value ?? 'VALUE'})`);
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

/** parseDuration accepts 500ms, 10s, 5m, 2h or plain seconds. */
export function parseDuration(text: string, option: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new UsageError(`--${option}: '${text}' is not a duration`, 'use e.g. 500ms, 10s, 5m or 1h');
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return Math.round(n * (unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : 3_600_000));
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
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${option}: '${text}' must be an integer from ${min} to ${max}`);
  return n;
}
