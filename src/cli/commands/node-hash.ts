import { UsageError } from '../../errors';
import type { Runtime } from '../../model/record';
import { parseArgs, usageText, type OptionSpec } from '../args';
import { ExitCode } from '../exit-codes';
import type { CliIO, Command } from '../io';
import { computeNodeHash, RUNTIMES } from '../../symbolize/node-hash';

const OPTIONS: OptionSpec[] = [
  { name: 'kind', kind: 'string', value: 'KIND', help: `one of ${RUNTIMES.join('|')}` },
  { name: 'component', kind: 'string', value: 'COMPONENT', help: 'canonical purl with version (no qualifiers), gnu-build-id:<hex> or file-sha256:<hex>' },
  { name: 'symbol', kind: 'string', value: 'SYMBOL', help: 'canonical symbol for the kind (native: linkage name; go: importpath.Recv.Method)' },
];

const USAGE = usageText([
  'usage: rtev node-hash --kind KIND --component COMPONENT --symbol SYMBOL',
  '',
  'Prints the node_hash v1 of a function (docs/format.md "function_call and node_hash"):',
  '  sha256 over "nodehash/v1" NUL kind NUL component NUL symbol (UTF-8, NFC).',
].join('\n'), OPTIONS);

/** A component is a canonical purl with a version and no qualifiers or subpath, a GNU build id, or a file digest. */
const COMPONENT = /^(?:pkg:[a-z][a-z0-9.+-]*\/(?:[^/@?#\s]+\/)*[^/@?#\s]+@[^?#\s]+|gnu-build-id:(?:[0-9a-f]{2})+|file-sha256:[0-9a-f]{64})$/;

function parse(args: string[]): { kind: Runtime; component: string; symbol: string } {
  const parsed = parseArgs(args, OPTIONS);
  const got = (k: string): string => {
    const v = parsed.values.get(k);
    if (v === undefined || v === '') throw new UsageError(`node-hash: --${k} is required`, "see 'rtev help node-hash'");
    if (v.includes('\0')) throw new UsageError(`node-hash: --${k} must not contain NUL`);
    return v;
  };
  const kind = got('kind');
  const component = got('component');
  const symbol = got('symbol');
  if (!(RUNTIMES as readonly string[]).includes(kind)) throw new UsageError(`node-hash: --kind must be one of ${RUNTIMES.join(', ')}`, `e.g. --kind native`);
  if (!COMPONENT.test(component)) {
    throw new UsageError(`node-hash: --component '${component.slice(0, 200)}' is not a canonical purl with a version, gnu-build-id:HEX or file-sha256:HEX`,
      'e.g. pkg:deb/debian/libssl3@3.0.11-1~deb12u2 (no ?qualifiers or #subpath), gnu-build-id:4f1a..., or file-sha256:<64 hex digits>');
  }
  return { kind: kind as Runtime, component, symbol };
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
