import { ledgerLost, probeLost, type Ledger } from '../model/ledger';

/**
 * StatusLine redraws one line on a terminal: elapsed time, records written (total and per
 * second), records lost and output size. Each redraw clears the line (`\r`, erase to end of
 * line) and is cut to the terminal's width, so a narrow terminal does not fill with stale
 * lines. rtev collect leaves it off while an observed command shares the terminal (the
 * command's output would land in the middle of it).
 */
export class StatusLine {
  readonly #out: NodeJS.WritableStream & { columns?: number };
  readonly #enabled: boolean;
  #previousWritten = 0n;
  #previousAt = 0;
  #drawn = false;

  constructor(out: NodeJS.WritableStream & { columns?: number }, enabled: boolean) {
    this.#out = out;
    this.#enabled = enabled;
  }

  update(ledger: Ledger, bytes: number, elapsedMs: number): void {
    if (!this.#enabled) return;
    this.#out.write(`\r\x1b[K${fitWidth(this.render(ledger, bytes, elapsedMs), this.#out.columns)}`);
    this.#drawn = true;
  }

  /** render is the line's text (without terminal controls). */
  render(ledger: Ledger, bytes: number, elapsedMs: number): string {
    const seconds = Math.max(0.001, (elapsedMs - this.#previousAt) / 1000);
    const written = writtenOf(ledger);
    const rate = Number(written - this.#previousWritten) / seconds;
    this.#previousWritten = written;
    this.#previousAt = elapsedMs;
    return `rtev ${formatElapsed(elapsedMs)}  ${written} records  ${formatRate(rate)}/s  lost ${ledgerLost(ledger)}  ${formatBytes(bytes)}`;
  }

  clear(): void {
    if (this.#drawn) this.#out.write('\r\x1b[K');
    this.#drawn = false;
  }
}

/** fitWidth cuts a line to the terminal width (one column short, so the cursor never wraps). */
export function fitWidth(line: string, columns: number | undefined): string {
  if (columns === undefined || columns <= 1) return line;
  const chars = [...line];
  return chars.length < columns ? line : chars.slice(0, columns - 1).join('');
}

function writtenOf(ledger: Ledger): bigint {
  let n = 0n;
  for (const l of Object.values(ledger)) n += l.user.written;
  return n;
}

/** summaryLine is the one line printed when collect ends. */
export function summaryLine(ledger: Ledger, bytesWritten: number, elapsedMs: number, where: string): string {
  const parts = Object.entries(ledger).map(([probe, l]) => `${probe} ${l.user.written}`);
  // a class a probe does not observe is never "nothing lost": say it on the same line
  const unseen = Object.entries(ledger).flatMap(([probe, l]) => (l.notObserved ?? []).map((n) => `${probe} ${n.sources.join('/')}`));
  return `rtev: ${writtenOf(ledger)} records (${parts.join(', ')}) in ${(elapsedMs / 1000).toFixed(1)}s, ${ledgerLost(ledger)} lost, ` +
    `${bytesWritten} bytes to ${where}${unseen.length > 0 ? `; NOT OBSERVED (not recorded, not counted): ${unseen.join(', ')}` : ''}`;
}

/**
 * tlsCoverageLine is the end-of-run line of ssl_op coverage: which processes mapped a TLS library
 * that rtev does not probe (so "no TLS records" can be told from "TLS not observable").
 */
export function tlsCoverageLine(u: {
  tlsUncovered: Record<string, number>; tlsUncoveredProcesses: number; tlsExamples: { pid: number; comm: string; library: string; kind: string }[];
}): string {
  const n = u.tlsUncoveredProcesses;
  if (n === 0) return 'rtev: ssl_op: TLS not observable in 0 processes (every TLS library seen mapped was probed)';
  const kinds = Object.entries(u.tlsUncovered).map(([k, c]) => `${k} ${c}`).join(', ');
  const examples = u.tlsExamples.map((e) => `pid ${e.pid} ${e.comm} ${e.library.split('/').pop()} (${e.kind})`);
  return `rtev: ssl_op: TLS not observable in ${n} process${n === 1 ? '' : 'es'} (${kinds}): ${examples.join(', ')}` +
    `${Object.values(u.tlsUncovered).reduce((a, c) => a + c, 0) > examples.length ? ', ...' : ''}`;
}

/** What the loss warning can name as the fix. */
export interface LossContext {
  bulkRingBytes: number;
  rareRingBytes: number;
  stdout: boolean;
  /** records --stdout could not write (part of the ledger's shed) */
  unwritten: bigint;
}

/**
 * lossWarning says how many records were lost, where, and what to do about it; undefined when
 * nothing was lost.
 */
export function lossWarning(ledger: Ledger, c: LossContext): string | undefined {
  const lost = ledgerLost(ledger);
  if (lost === 0n) return undefined;
  let ringFull = 0n;
  let bulkFull = 0n;
  let rejected = 0n;
  let shed = 0n;
  const where: string[] = [];
  for (const [probe, l] of Object.entries(ledger)) {
    const n = probeLost(l);
    if (n === 0n) continue;
    where.push(`${probe} ${n}`);
    ringFull += l.kernel.ringFull;
    if (probe === 'file_open') bulkFull += l.kernel.ringFull;
    rejected += l.user.rejected;
    shed += l.user.shed;
  }
  const causes: string[] = [];
  const fixes: string[] = [];
  if (ringFull > 0n) {
    causes.push(`${ringFull} because a kernel ring was full`);
    fixes.push(bulkFull > 0n ? `a bigger ring (--ring-size ${formatSize(Math.min(c.bulkRingBytes * 4, 1 << 30))})` : `a bigger ring (--rare-ring-size ${formatSize(Math.min(c.rareRingBytes * 4, 1 << 30))})`);
    fixes.push('fewer events (--pid, --tree, --container, --include-path, --exclude-path)');
  }
  if (c.unwritten > 0n) {
    causes.push(`${c.unwritten} because the reader of standard output did not keep up`);
    fixes.push('a faster reader, or --out DIR');
  }
  if (shed - c.unwritten > 0n) causes.push(`${shed - c.unwritten} shed under back-pressure`);
  if (rejected > 0n) causes.push(`${rejected} malformed records rejected`);
  const fix = fixes.length > 0 ? `; try ${fixes.join(' or ')}` : '';
  return `${lost} records lost (${where.join(', ')}): ${causes.join(', ')}${fix}`;
}

function formatElapsed(ms: number): string {
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m${String(sec).padStart(2, '0')}s` : m > 0 ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

function formatRate(n: number): string {
  return n >= 1000 ? `${(n / 1000).toFixed(1)}k` : n.toFixed(0);
}

function formatSize(n: number): string {
  return n >= 1 << 30 ? `${n / (1 << 30)}G` : n >= 1 << 20 ? `${n / (1 << 20)}M` : `${n / 1024}K`;
}

function formatBytes(n: number): string {
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}
