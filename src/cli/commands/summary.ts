import * as fs from 'node:fs';
import { UsageError } from '../../errors';
import { openEvidenceIndex } from '../../index/index';
import { retentionLines, summarize, type PathSeen, type Summary } from '../../index/summary';
import { parseArgs, parseInteger, usageText, type OptionSpec } from '../args';
import { ExitCode } from '../exit-codes';
import type { CliIO, Command } from '../io';
import { FILTER_OPTIONS, filterFromArgs, formatWall, INDEX_OPTIONS, trustedKeys } from './evidence-args';
import { refuseUnverified } from './query';

const OPTIONS: OptionSpec[] = [
  ...FILTER_OPTIONS,
  { name: 'format', kind: 'string', value: 'FORMAT', help: 'table (default) or json' },
  { name: 'top', kind: 'string', value: 'N', help: 'table: at most N rows per section (default 25; json has all)' },
  ...INDEX_OPTIONS,
  { name: 'db', kind: 'string', value: 'URL', help: 'summarize the fleet index in PostgreSQL (rtev ingest) instead of a directory; --host picks hosts' },
];

export const summaryCommand: Command = {
  summary: 'what ran, per image and for the host: programs, libraries, files written, peers, TLS bytes, functions, coverage',
  usage: usageText('usage: rtev summary DIR [filters] [--image DIGEST|NAME] [--since TIME] [--format table|json]\n' +
    '       rtev summary --db postgresql://... [--host NAME] [filters] [--format table|json]\n\n' +
    'Counts come from verified chunks only; package purls and container names from the signed attribution.\n' +
    'Function call counts are exact (chunk predicates). The coverage section says what "not seen" means:\n' +
    'drops per probe, gaps in the chain, chunks that failed verification.', OPTIONS),
  async run(args: string[], io: CliIO): Promise<number> {
    const parsed = parseArgs(args, OPTIONS, 1);
    const source = parsed.positionals[0];
    const db = parsed.values.get('db');
    const filter = filterFromArgs(parsed);
    const format = parsed.values.get('format') ?? 'table';
    if (format !== 'table' && format !== 'json') throw new UsageError(`--format: '${format}' is not one of table, json`);
    const top = parseInteger(parsed.values.get('top') ?? '25', 'top', 1, 1_000_000);
    if (db !== undefined) {
      if (source !== undefined) throw new UsageError('summary takes a directory or --db, not both');
      const { FleetIndex } = require('../../fleet/query') as typeof import('../../fleet/query');
      const { fleetSummary } = require('../../fleet/summary') as typeof import('../../fleet/summary');
      const fleet = await FleetIndex.open(db, 'rtev-summary');
      try {
        const s = await fleetSummary(fleet, filter);
        io.stdout.write(format === 'json' ? renderJson(s) : renderTable(s, top));
        return ExitCode.OK;
      } finally {
        await fleet.close();
      }
    }
    if (source === undefined) throw new UsageError('summary needs an evidence directory or --db URL', 'rtev summary DIR');
    if (!fs.existsSync(source) || !fs.statSync(source).isDirectory()) throw new UsageError(`${source} is not an evidence directory`);
    const index = await openEvidenceIndex({
      source, keys: trustedKeys(parsed), allowUnverified: parsed.flags.has('allow-unverified'), rebuild: parsed.flags.has('rebuild-index'),
      ...(parsed.values.get('index') !== undefined ? { indexPath: parsed.values.get('index')! } : {}),
      onNotice: (line) => io.stderr.write(line + '\n'),
    });
    try {
      const bad = refuseUnverified(index, io);
      if (bad !== undefined) return bad;
      const s = await summarize(index, filter);
      io.stdout.write(format === 'json' ? renderJson(s) : renderTable(s, top));
      return ExitCode.OK;
    } finally {
      await index.close();
    }
  },
};

/** renderJson writes the summary with exact integers (bigint as JSON numbers) and RFC 3339 times next to ns. */
export function renderJson(s: Summary): string {
  const text = JSON.stringify(s, (_key, v: unknown) => {
    if (typeof v === 'bigint') return `\u0000${v}\u0000`;
    return v;
  }, 2);
  // bigints become exact JSON integers
  return text.replace(/"\\u0000(-?\d+)\\u0000"/g, '$1') + '\n';
}

function seenText(x: { count: bigint; firstWallNs: bigint | null; lastWallNs: bigint | null }): string {
  return `${String(x.count).padStart(8)}  ${formatWall(x.firstWallNs).slice(0, 23)}  ${formatWall(x.lastWallNs).slice(0, 23)}`;
}

export function renderTable(s: Summary, top: number): string {
  const out: string[] = [];
  const c = s.coverage;
  out.push(`window: ${formatWall(c.fromWallNs)} .. ${formatWall(c.toWallNs)} (${c.chunks} chunk(s), ${c.records} records)`);
  out.push(`coverage: ${c.complete ? 'complete: nothing lost, no gaps' : 'INCOMPLETE: "not seen" may mean "not recorded"'}; lost ${c.lost}`);
  for (const p of c.probes) out.push(`  probe ${p.probe.padEnd(14)} active in ${p.chunks} chunk(s): submitted ${p.submitted}, in chunks ${p.inChunk}, ring_full ${p.ringFull}, lost ${p.lost}`);
  for (const ch of c.chains) {
    out.push(`  chain ${ch.chainId} (${ch.hostname}${ch.machineId !== '' ? ` ${ch.machineId.slice(0, 12)}` : ''}): seq ${ch.firstSeq}..${ch.lastSeq}, ${ch.chunks} chunk(s)`);
    for (const l of retentionLines(ch)) out.push(`    ${l}`);
    for (const g of ch.gaps.slice(0, top)) out.push(`    gap: ${g}`);
  }
  for (const u of c.unverified) out.push(`  unverified: ${u.file}: ${u.reason}`);
  const pathSection = (title: string, rows: PathSeen[]): void => {
    if (rows.length === 0) return;
    out.push(`  ${title} (${rows.length}):      count  first                    last`);
    for (const r of rows.slice(0, top)) out.push(`    ${seenText(r)}  ${r.path}${r.packages.length > 0 ? `  ${r.packages.join(' ')}` : ''}`);
    if (rows.length > top) out.push(`    ... ${rows.length - top} more (--top N, or --format json)`);
  };
  for (const sc of s.scopes) {
    out.push('');
    const head = sc.kind === 'host' ? 'host' : sc.kind === 'image' ? `image ${sc.scope}${sc.imageNames.length > 0 ? ` (${sc.imageNames.join(', ')})` : ''}` : `container ${sc.scope}`;
    out.push(`${head}: ${sc.records} records`);
    if (sc.containers.length > 0) out.push(`  containers: ${sc.containers.map((x) => `${x.containerId}${x.names.length > 0 ? ` (${x.names.join(', ')})` : ''}`).join(', ')}`);
    pathSection('executables run', sc.executables);
    pathSection('libraries loaded', sc.libraries);
    pathSection('files written', sc.filesWritten);
    if (sc.peers.length > 0) {
      out.push(`  peers contacted (${sc.peers.length}):`);
      for (const p of sc.peers.slice(0, top)) out.push(`    ${seenText(p)}  ${p.addr.includes(':') ? `[${p.addr}]` : p.addr}${p.port !== null ? `:${p.port}` : ''} (${p.via.join(', ')})`);
    }
    if (sc.tls.length > 0) {
      out.push(`  TLS bytes per process (${sc.tls.length}):`);
      for (const t of sc.tls.slice(0, top)) out.push(`    ${seenText(t)}  ${t.comm}[${t.pid}] read ${t.readBytes} written ${t.writeBytes}`);
    }
    if (sc.functions.length > 0) {
      out.push(`  function_call records (${sc.functions.length}):`);
      for (const f of sc.functions.slice(0, top)) out.push(`    ${seenText(f)}  ${f.symbol ?? '?'} in ${f.library ?? '?'} ${f.nodeHash ?? ''}`);
    }
  }
  if (s.functionCalls.length > 0) {
    out.push('');
    out.push('functions executed (exact calls from the chunk predicates, all processes):');
    for (const f of s.functionCalls) {
      out.push(`  ${f.symbol} in ${f.library}${f.packages.length > 0 ? ` (${f.packages.join(' ')})` : ''} ${f.nodeHash ?? ''}: calls ${f.calls} (emitted ${f.emitted}, suppressed ${f.suppressed}), first ${formatWall(f.firstWallNs)}, last ${formatWall(f.lastWallNs)}`);
    }
  }
  return out.join('\n') + '\n';
}
