import * as fs from 'node:fs';
import { UsageError, errorMessage } from '../../errors';
import { matchRecord, type EvidenceFilter } from '../../index/filter';
import { openEvidenceIndex, type EvidenceIndex, type IndexRow } from '../../index/index';
import { fileLines, readBoundedText } from '../../platform/lines';
import { parseArgs, parseInteger, usageText, type OptionSpec } from '../args';
import { ExitCode } from '../exit-codes';
import type { CliIO, Command } from '../io';
import { FILTER_OPTIONS, filterFromArgs, formatWall, INDEX_OPTIONS, trustedKeys } from './evidence-args';

const OPTIONS: OptionSpec[] = [
  ...FILTER_OPTIONS,
  { name: 'format', kind: 'string', value: 'FORMAT', help: 'table (default on a terminal), ndjson (default otherwise: the exact chunk lines), json or csv' },
  { name: 'json', kind: 'flag', help: 'same as --format ndjson' },
  { name: 'limit', kind: 'string', value: 'N', help: 'at most N records' },
  { name: 'frames', kind: 'string', value: 'FILE', help: 'table: show symbolized stacks from a collect --frames file' },
  ...INDEX_OPTIONS,
  { name: 'db', kind: 'string', value: 'URL', help: 'query the fleet index in PostgreSQL (rtev ingest) instead of a directory; --host picks hosts' },
];

type Format = 'table' | 'ndjson' | 'json' | 'csv';

export const queryCommand: Command = {
  summary: 'find records in an evidence directory (verified, indexed) or an NDJSON file',
  usage: usageText('usage: rtev query DIR|FILE [filters] [--format table|ndjson|json|csv]\n\n' +
    'Filters combine (AND); a repeated filter matches any of its values (OR). Records come in ts_ns order.\n' +
    'Only chunks whose signature and digest verify are served: a failing chunk makes query exit 11,\n' +
    'unless --allow-unverified. The index is derived data, updated on each query and rebuilt if damaged.', OPTIONS),
  async run(args: string[], io: CliIO): Promise<number> {
    const parsed = parseArgs(args, OPTIONS, 1);
    const source = parsed.positionals[0];
    const dbUrl = parsed.values.get('db');
    if (source === undefined && dbUrl === undefined) throw new UsageError('query needs an evidence directory, an NDJSON file or --db URL', 'rtev query DIR [filters]');
    if (source !== undefined && dbUrl !== undefined) throw new UsageError('query takes a directory or --db URL, not both');
    const filter = filterFromArgs(parsed);
    // --frames is a view for people: it implies the table
    const fmtArg = parsed.flags.has('json') ? 'ndjson' : parsed.values.get('format') ?? (io.stdout.isTTY === true || parsed.values.has('frames') ? 'table' : 'ndjson');
    if (!['table', 'ndjson', 'json', 'csv'].includes(fmtArg)) throw new UsageError(`--format: '${fmtArg}' is not one of table, ndjson, json, csv`);
    const format = fmtArg as Format;
    const limitArg = parsed.values.get('limit');
    const limit = limitArg === undefined ? undefined : parseInteger(limitArg, 'limit', 0, Number.MAX_SAFE_INTEGER);
    const framesFile = parsed.values.get('frames');
    const frames = framesFile === undefined ? undefined : readFrames(framesFile);
    const out = new Output(io, format, frames);
    if (dbUrl !== undefined) return queryFleet(dbUrl, filter, out, io, limit);
    let st: fs.Stats;
    try {
      st = fs.statSync(source!);
    } catch (err) {
      throw new UsageError(`cannot read ${source}: ${errorMessage(err)}`);
    }
    if (!st.isDirectory()) return queryPlainFile(source!, filter, out, io, limit);
    const index = await openEvidenceIndex({
      source: source!, keys: trustedKeys(parsed), allowUnverified: parsed.flags.has('allow-unverified'), rebuild: parsed.flags.has('rebuild-index'),
      ...(parsed.values.get('index') !== undefined ? { indexPath: parsed.values.get('index')! } : {}),
      onNotice: (line) => io.stderr.write(line + '\n'),
    });
    try {
      const bad = refuseUnverified(index, io);
      if (bad !== undefined) return bad;
      out.begin();
      let shown = 0;
      for await (const row of index.rows(filter, limit === undefined ? {} : { limit })) {
        await out.row(row);
        shown++;
      }
      await out.end();
      io.stderr.write(`rtev: ${shown} records${index.sync.failed.length > 0 ? ` (${index.sync.failed.length} unverified chunk(s) included, marked)` : ''}\n`);
      return ExitCode.OK;
    } finally {
      await index.close();
    }
  },
};

/**
 * refuseUnverified names the chunks that failed verification and gives exit 11, unless the
 * index was opened with allowUnverified (then it only warns).
 */
export function refuseUnverified(index: EvidenceIndex, io: CliIO): number | undefined {
  const failed = index.sync.failed;
  if (failed.length === 0) return undefined;
  for (const f of failed.slice(0, 10)) io.stderr.write(`rtev: ${index.allowUnverified ? 'unverified' : 'refused'}: ${f.file}: ${f.reason}\n`);
  if (failed.length > 10) io.stderr.write(`rtev: ... and ${failed.length - 10} more chunk(s) failing verification\n`);
  if (index.allowUnverified) return undefined;
  io.stderr.write(`rtev: ${failed.length} chunk(s) failed verification; nothing is served from tampered evidence\n  fix: run 'rtev verify ${index.source}' for details, or pass --allow-unverified to see their records marked\n`);
  return ExitCode.VERIFY_INVALID;
}

/** queryFleet serves the same rows and formats from the fleet index in PostgreSQL. */
async function queryFleet(url: string, filter: EvidenceFilter, out: Output, io: CliIO, limit: number | undefined): Promise<number> {
  const { FleetIndex } = require('../../fleet/query') as typeof import('../../fleet/query');
  const fleet = await FleetIndex.open(url);
  try {
    out.begin();
    let shown = 0;
    for await (const row of fleet.rows(filter, limit === undefined ? {} : { limit })) {
      await out.row(row);
      shown++;
    }
    await out.end();
    io.stderr.write(`rtev: ${shown} records\n`);
    return ExitCode.OK;
  } finally {
    await fleet.close();
  }
}

/**
 * A plain NDJSON file is put in ts_ns order within a window of this many records (a file of
 * `rtev collect --stdout` is in order already; docs/format.md, "Record order"): the window holds
 * the matching records, the oldest goes out when it is full. Records further apart come in file order.
 */
export const PLAIN_ORDER_WINDOW = 65_536;

/** queryPlainFile streams an unsigned NDJSON file (rtev collect --stdout) through the filter, in ts_ns order within PLAIN_ORDER_WINDOW. */
async function queryPlainFile(file: string, filter: EvidenceFilter, out: Output, io: CliIO, limit: number | undefined): Promise<number> {
  if (filter.sinceWallNs !== undefined || filter.untilWallNs !== undefined) {
    throw new UsageError('--since/--until need an evidence directory (its chunks carry the time anchors); a plain NDJSON file has none');
  }
  io.stderr.write(`rtev: ${file} is plain NDJSON, not signed evidence: shown unverified, in ts_ns order within ${PLAIN_ORDER_WINDOW} records\n`);
  const rl = fileLines(file, 'query input', true); // bounded lines; a device such as /dev/zero is refused
  out.begin();
  let shown = 0;
  let bad = 0;
  let records = 0;
  let lineNo = 0;
  const window = new MinHeap<OutRow>((a, b) => (a.tsNs < b.tsNs ? true : a.tsNs === b.tsNs && a.lineNo < b.lineNo));
  for await (const line of rl) {
    lineNo++;
    if (limit !== undefined && shown >= limit) break;
    if (line.length === 0) continue;
    let rec: any;
    try {
      rec = JSON.parse(line);
    } catch {
      bad++;
      continue;
    }
    const ts = exactTs(line);
    if (typeof rec?.event?.type !== 'string' || ts === undefined) {
      bad++;
      continue;
    }
    rec.ts_ns = ts;
    records++;
    if (!matchRecord(filter, rec)) continue;
    window.push({ chainId: '', seq: 0n, chunkSha256: '', lineNo, tsNs: ts, wallNs: null, type: rec.event.type, pid: rec.pid, comm: rec.comm, containerId: rec.container_id ?? null, imageDigest: rec.image_digest ?? null, line, verified: false });
    if (window.size > PLAIN_ORDER_WINDOW) {
      await out.row(window.pop()!);
      shown++;
    }
  }
  while (window.size > 0 && (limit === undefined || shown < limit)) {
    await out.row(window.pop()!);
    shown++;
  }
  await out.end();
  if (bad > 0 && records === 0) throw new UsageError(`${file} holds no records: none of its ${bad} non-empty line(s) is an rtev record`, `give an evidence directory or an NDJSON file of records; 'rtev validate ${file}' tells why`);
  io.stderr.write(`rtev: ${shown} records${bad > 0 ? `, ${bad} line(s) skipped (not records; rtev validate tells why)` : ''}\n`);
  return ExitCode.OK;
}

/** exactTs takes ts_ns from the line's text: JSON.parse would round it beyond 2^53. */
function exactTs(line: string): bigint | undefined {
  const at = line.lastIndexOf('"ts_ns":');
  const m = at < 0 ? null : /^"ts_ns":(\d{1,20})/.exec(line.slice(at, at + 30));
  return m === null ? undefined : BigInt(m[1]!);
}

type OutRow = Omit<IndexRow, 'wallNs'> & { wallNs: bigint | null };

/** MinHeap: a binary heap by `before` (a bounded reorder window). */
class MinHeap<T> {
  readonly #items: T[] = [];
  constructor(private readonly before: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.#items.length;
  }

  push(item: T): void {
    const a = this.#items;
    a.push(item);
    for (let i = a.length - 1; i > 0;) {
      const p = (i - 1) >> 1;
      if (!this.before(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }

  pop(): T | undefined {
    const a = this.#items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      a[0] = last;
      for (let i = 0; ;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.before(a[l]!, a[m]!)) m = l;
        if (r < a.length && this.before(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}

/** Output renders rows in one format, waiting when stdout is full. */
class Output {
  #first = true;
  constructor(private readonly io: CliIO, private readonly format: Format, private readonly frames: Map<string, string> | undefined) {}

  begin(): void {
    if (this.format === 'json') this.#write('[');
    if (this.format === 'csv') this.#write('wall_time,ts_ns,type,pid,tid,comm,container_id,image_digest,summary,chain_id,seq,chunk_sha256,line_no,verified\n');
  }

  async row(r: OutRow): Promise<void> {
    let text: string;
    switch (this.format) {
      case 'ndjson':
        text = r.line + '\n';
        break;
      case 'json':
        text = `${this.#first ? '\n  ' : ',\n  '}{"chain_id":${JSON.stringify(r.chainId)},"chunk_sha256":${JSON.stringify(r.chunkSha256)},"line_no":${r.lineNo},"record":${r.line},"seq":${r.seq},"verified":${r.verified},"wall_time":${JSON.stringify(formatWall(r.wallNs))}}`;
        break;
      case 'csv': {
        const rec = JSON.parse(r.line);
        text = [formatWall(r.wallNs), String(r.tsNs), r.type, String(r.pid), rec.tid === undefined ? '' : String(rec.tid), r.comm, r.containerId ?? '', r.imageDigest ?? '',
          describeEvent(rec), r.chainId, String(r.seq), r.chunkSha256, String(r.lineNo), String(r.verified)].map(csvCell).join(',') + '\n';
        break;
      }
      default: {
        const rec = JSON.parse(r.line);
        text = `${formatWall(r.wallNs)} ${r.verified ? '' : '[UNVERIFIED] '}${describe(rec, String(r.tsNs))}\n`;
        const stack = this.frames?.get(`${r.tsNs}:${rec.tid ?? rec.pid}`);
        if (stack !== undefined) text += stack + '\n';
      }
    }
    this.#first = false;
    if (!this.#write(text)) await new Promise<void>((resolve) => this.io.stdout.once('drain', () => resolve()));
  }

  async end(): Promise<void> {
    if (this.format === 'json') this.#write(this.#first ? ']\n' : '\n]\n');
  }

  #write(s: string): boolean {
    return this.io.stdout.write(s);
  }
}

function csvCell(s: string): string {
  // a leading =, +, - or @ would be a formula in a spreadsheet
  const safe = /^[=+\-@]/.test(s) && !/^-?\d+$/.test(s) ? `'${s}` : s;
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

function describeEvent(r: any): string {
  const e = r.event;
  switch (e.type) {
    case 'file_open': return `open ${e.access ?? ''} ${JSON.stringify(e.path)}`;
    case 'process_exec': return `exec ${JSON.stringify(e.filename)} argv0=${JSON.stringify(e.argv0 ?? '')} ppid=${e.ppid}`;
    case 'tcp_state': return `tcp ${e.oldstate}->${e.newstate} ${e.saddr}:${e.sport} -> ${e.daddr}:${e.dport}`;
    case 'net_connect': return `${r.src} ${e.addr}:${e.port} fd=${e.fd} ${e.success ? 'ok' : `error=${e.error}`}`;
    case 'ssl_op': return `ssl ${e.operation} ${e.bytes} bytes ssl=${e.ssl_ptr}`;
    case 'function_call': return `call ${e.symbol ?? e.addr} in ${e.library ?? '?'} (${e.runtime ?? '?'}) ${e.node_hash ?? ''}`;
    default: return String(e.type);
  }
}

function describe(r: any, ts: string): string {
  const who = `${r.comm}[${r.pid}${r.tid !== undefined && r.tid !== r.pid ? '/' + r.tid : ''}]`;
  const where = r.container_id !== undefined ? ` ${String(r.container_id).slice(0, 24)}` : '';
  return `${ts} ${who}${where} ${describeEvent(r)}`;
}

/** readFrames indexes a --frames file by "ts_ns:tid"; each value is the rendered stack. */
function readFrames(file: string): Map<string, string> {
  const map = new Map<string, string>();
  let text: string;
  try {
    text = readBoundedText(file, 256 << 20, '--frames file');
  } catch (err) {
    throw new UsageError(`cannot read --frames file ${file}: ${errorMessage(err)}`);
  }
  for (const line of text.split('\n')) {
    if (line.length === 0) continue;
    try {
      const f = JSON.parse(line);
      const rows = (f.frames as any[]).map((fr, i) => {
        const name = fr.symbol === undefined ? '??' : fr.offset === undefined ? fr.symbol : `${fr.symbol}+${fr.offset}`;
        return `    #${i} ${fr.addr} ${name}${fr.library ? ` (${fr.library})` : ''} [${fr.kind} ${fr.source}]`;
      });
      if (f.stack_quality !== 'complete') rows.push(`    (stack ${f.stack_quality})`);
      map.set(`${exactTs(line)}:${f.tid}`, rows.join('\n'));
    } catch {
      // a damaged line only loses its stack
    }
  }
  return map;
}

