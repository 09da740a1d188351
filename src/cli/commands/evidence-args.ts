import * as fs from 'node:fs';
import * as path from 'node:path';
import { UsageError } from '../../errors';
import { unknownTypes, type EvidenceFilter, type PeerSpec } from '../../index/filter';
import type { EventType } from '../../model/record';
import { defaultKeyDir, DEFAULT_KEY_NAME, loadVerifyKeyFile, publicKeyPath } from '../../sign/key-files';
import type { VerifyKey } from '../../sign/keys';
import { parseInteger, type OptionSpec, type ParsedArgs } from '../args';

/** Options shared by `rtev query` and `rtev summary`: filters, keys, the index. */

export const FILTER_OPTIONS: OptionSpec[] = [
  { name: 'type', kind: 'list', value: 'TYPE', help: 'only records of this event type (repeatable)' },
  { name: 'since', kind: 'string', value: 'TIME', help: 'from this time: RFC 3339 (2026-12-01T08:00:00Z) or relative (10m, 2h, 1d ago)' },
  { name: 'until', kind: 'string', value: 'TIME', help: 'before this time (same forms as --since)' },
  { name: 'pid', kind: 'list', value: 'PID', help: 'only records of this process (repeatable)' },
  { name: 'comm', kind: 'list', value: 'NAME', help: 'only records whose comm is NAME (repeatable)' },
  { name: 'path', kind: 'list', value: 'GLOB', help: 'file_open/process_exec path matching GLOB (* within a component, ** across)' },
  { name: 'peer', kind: 'list', value: 'ADDR[:PORT]', help: 'net_connect/tcp_state records with this peer ([::1]:443 for IPv6)' },
  { name: 'container', kind: 'list', value: 'ID|PREFIX|NAME', help: 'records of this container (its name is kept in the signed evidence)' },
  { name: 'image', kind: 'list', value: 'DIGEST|NAME', help: 'records of containers of this image (sha256:... or a name)' },
  { name: 'host-only', kind: 'flag', help: 'only records outside containers' },
  { name: 'symbol', kind: 'list', value: 'NAME|GLOB', help: 'function_call records of this symbol (glob with * or ?)' },
  { name: 'node-hash', kind: 'list', value: 'HASH', help: 'function_call records with this node_hash (sha256:...)' },
  { name: 'package', kind: 'list', value: 'PURL', help: 'records of files owned by this package (without @version: any version)' },
  { name: 'host', kind: 'list', value: 'NAME|MACHINE_ID', help: 'only chunks of this host (several hosts in one directory)' },
  { name: 'chain', kind: 'list', value: 'UUID', help: 'only chunks of this chain' },
];

export const INDEX_OPTIONS: OptionSpec[] = [
  { name: 'pubkey', kind: 'list', value: 'FILE', help: 'trusted public key (repeatable; default: the default key directory\'s signing.key.pub)' },
  { name: 'index', kind: 'string', value: 'PATH', help: 'index file (default: $RTEV_INDEX_DIR, /var/cache/rtev/index or ~/.cache/rtev/index)' },
  { name: 'rebuild-index', kind: 'flag', help: 'drop the index and build it again from the chunks' },
  { name: 'allow-unverified', kind: 'flag', help: 'also show records of chunks that fail verification, marked unverified' },
];

const TYPES = new Set(['file_open', 'process_exec', 'tcp_state', 'net_connect', 'ssl_op', 'function_call']);

/** filterFromArgs builds the filter; nowNs anchors relative times. */
export function filterFromArgs(a: ParsedArgs, nowNs: bigint = BigInt(Date.now()) * 1_000_000n): EvidenceFilter {
  const f: EvidenceFilter = {};
  const list = (n: string): string[] => a.lists.get(n) ?? [];
  const types = list('type').flatMap((t) => t.split(',')).filter((t) => t !== '');
  const bad = unknownTypes(types);
  if (bad.length > 0) throw new UsageError(`unknown event type '${bad[0]}'`, `types: ${[...TYPES].join(', ')}`);
  if (types.length > 0) f.types = types as EventType[];
  const since = a.values.get('since');
  const until = a.values.get('until');
  if (since !== undefined) f.sinceWallNs = parseTime(since, 'since', nowNs);
  if (until !== undefined) f.untilWallNs = parseTime(until, 'until', nowNs);
  if (list('pid').length > 0) f.pids = list('pid').map((p) => parseInteger(p, 'pid', 0, 4194304));
  if (list('comm').length > 0) f.comms = list('comm');
  if (list('path').length > 0) f.paths = list('path');
  if (list('peer').length > 0) f.peers = list('peer').map(parsePeer);
  if (list('container').length > 0) f.containers = list('container');
  if (list('image').length > 0) f.images = list('image');
  if (a.flags.has('host-only')) f.hostOnly = true;
  if (list('symbol').length > 0) f.symbols = list('symbol');
  if (list('node-hash').length > 0) f.nodeHashes = list('node-hash');
  if (list('package').length > 0) {
    for (const p of list('package')) if (!/^pkg:[A-Za-z][A-Za-z0-9.+-]*\/.+/.test(p)) throw new UsageError(`--package: '${p}' is not a purl`, 'e.g. pkg:deb/debian/curl or pkg:deb/debian/curl@7.88.1-10+deb12u14');
    f.packages = list('package');
  }
  if (list('host').length > 0) f.hosts = list('host');
  if (list('chain').length > 0) f.chains = list('chain');
  return f;
}

const UNIT_NS: Record<string, bigint> = { ms: 1_000_000n, s: 1_000_000_000n, m: 60_000_000_000n, h: 3_600_000_000_000n, d: 86_400_000_000_000n };

/** parseTime reads RFC 3339 (exact to the ns) or a relative age ("10m", "2h ago") into Unix ns. */
export function parseTime(text: string, option: string, nowNs: bigint): bigint {
  const t = text.trim();
  const rel = /^(\d{1,9})(ms|s|m|h|d)( ago)?$/.exec(t);
  if (rel !== null) return nowNs - BigInt(rel[1]!) * UNIT_NS[rel[2]!]!;
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|z|[+-]\d{2}:\d{2}))?$/.exec(t);
  if (m === null) throw new UsageError(`--${option}: '${text}' is not a time`, 'use RFC 3339 (2026-12-01T08:00:00Z, 2026-12-01T09:00:00+01:00, 2026-12-01) or an age (30s, 10m, 2h, 1d)');
  const [, y, mo, d, h = '00', mi = '00', s = '00', frac = '', zone = 'Z'] = m;
  const ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  const check = new Date(ms);
  if (Number.isNaN(ms) || check.getUTCDate() !== Number(d) || Number(h) > 23 || Number(mi) > 59 || Number(s) > 60) throw new UsageError(`--${option}: '${text}' is not a valid date and time`);
  let ns = BigInt(ms) * 1_000_000n + BigInt(frac.padEnd(9, '0') || '0');
  if (zone !== 'Z' && zone !== 'z') {
    const sign = zone[0] === '-' ? -1n : 1n;
    ns -= sign * (BigInt(zone.slice(1, 3)) * 60n + BigInt(zone.slice(4, 6))) * 60_000_000_000n;
  }
  return ns;
}

/** parsePeer reads ADDR, ADDR:PORT, [V6] or [V6]:PORT. */
export function parsePeer(text: string): PeerSpec {
  const port = (p: string): number => parseInteger(p, 'peer', 0, 65535);
  const v6 = /^\[([0-9A-Fa-f:.]+)\](?::(\d+))?$/.exec(text);
  if (v6 !== null) return v6[2] === undefined ? { addr: v6[1]!.toLowerCase() } : { addr: v6[1]!.toLowerCase(), port: port(v6[2]) };
  if (/^[0-9A-Fa-f:]+$/.test(text) && text.split(':').length > 2) return { addr: text.toLowerCase() };
  const v4 = /^(\d{1,3}(?:\.\d{1,3}){3})(?::(\d+))?$/.exec(text);
  if (v4 !== null) return v4[2] === undefined ? { addr: v4[1]! } : { addr: v4[1]!, port: port(v4[2]) };
  throw new UsageError(`--peer: '${text}' is not an address`, 'use 127.0.0.1, 127.0.0.1:8080, ::1 or [::1]:443');
}

/** trustedKeys loads --pubkey files, or the default key directory's public key. */
export function trustedKeys(a: ParsedArgs): VerifyKey[] {
  const files = a.lists.get('pubkey') ?? [];
  if (files.length === 0) {
    const fallback = publicKeyPath(path.join(defaultKeyDir(), DEFAULT_KEY_NAME));
    if (!fs.existsSync(fallback)) throw new UsageError('no public key given and no default key exists', `pass --pubkey FILE (the .pub file next to the key given to 'rtev collect --key')`);
    files.push(fallback);
  }
  return files.map((f) => loadVerifyKeyFile(f));
}

/** formatWall renders Unix ns as RFC 3339 UTC with nanoseconds. */
export function formatWall(ns: bigint | null): string {
  if (ns === null) return '-';
  const ms = ns / 1_000_000n;
  const frac = ((ns % 1_000_000_000n) + 1_000_000_000n) % 1_000_000_000n;
  const d = new Date(Number(ms));
  if (Number.isNaN(d.getTime())) return String(ns);
  return `${d.toISOString().slice(0, 19)}.${String(frac).padStart(9, '0')}Z`;
}
