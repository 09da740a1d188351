import { UsageError } from '../../errors';
import type { Runtime } from '../../model/record';
import { ExitCode } from '../exit-codes';
import type { CliIO, Command } from '../io';
import { computeNodeHash, RUNTIMES } from '../../symbolize/node-hash';

const USAGE = [
  'usage: rtev node-hash --kind KIND --component COMPONENT --symbol SYMBOL',
  '',
  'Prints the node_hash v1 of a function (docs/format.md "function_call and node_hash"):',
  '  sha256 over "nodehash/v1" NUL kind NUL component NUL symbol (UTF-8, NFC).',
  '',
  `  --kind KIND            one of ${RUNTIMES.join('|')}`,
  '  --component COMPONENT canonical purl with version (no qualifiers), gnu-build-id:<hex> or file-sha256:<hex>',
  '  --symbol SYMBOL       canonical symbol for the kind (native: linkage name; go: importpath.Recv.Method)',
].join('\n');

function parse(args: string[]): { kind: Runtime; component: string; symbol: string } {
  const got: Record<string, string> = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(0, eq) : a;
    if (name !== '--kind' && name !== '--component' && name !== '--symbol') throw new UsageError(`node-hash: unknown argument '${a}'`, "see 'rtev node-hash --help'");
    const value = eq > 0 ? a.slice(eq + 1) : args[++i];
    if (value === undefined) throw new UsageError(`node-hash: ${name} needs a value`);
    got[name.slice(2)] = value;
  }
  for (const k of ['kind', 'component', 'symbol']) {
    if (got[k] === undefined || got[k] === '') throw new UsageError(`node-hash: --${k} is required`, "see 'rtev node-hash --help'");
  }
  if (!(RUNTIMES as readonly string[]).includes(got['kind']!)) throw new UsageError(`node-hash: --kind must be one of ${RUNTIMES.join(', ')}`);
  for (const k of ['component', 'symbol']) if (got[k]!.includes('\0')) throw new UsageError(`node-hash: --${k} must not contain NUL`);
  return { kind: got['kind'] as Runtime, component: got['component']!, symbol: got['symbol']! };
}

/** nodeHashCommand is `rtev node-hash`, the static-analysis side's way to compute the same value. */
export const nodeHashCommand: Command = {
  summary: 'print the node_hash of (kind, component, symbol)',
  usage: USAGE,
  async run(args: string[], io: CliIO): Promise<number> {
    const { kind, component, symbol } = parse(args);
    io.stdout.write(computeNodeHash(kind, component, symbol) + '\n');
    return ExitCode.OK;
  },
};
