import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO, tempDir } from '../helpers/collector';

/** Shared by the reliability tests (docs/reliability.md). */

/** buildStorm compiles bench/openstorm.c (N x open+close; prints "N ns pid utime_us stime_us"). */
export function buildStorm(): string {
  const out = path.join(tempDir('rtev-rel-storm-'), 'openstorm');
  execFileSync('gcc', ['-O2', '-Wall', '-o', out, path.join(REPO, 'bench', 'openstorm.c')]);
  return out;
}

export interface FinalLedger {
  probes: Record<string, {
    kernel: { submitted: number; filtered: number; ring_full: number; skipped: number; truncated: number };
    user: { received: number; written: number; filtered: number; rejected: number; shed: number };
    in_chunk: number; lost: number;
  }>;
  complete: boolean;
  lost: number;
}

/** predicates returns the predicates of every sealed chunk of DIR, in chain order (docs/format.md). */
export function predicates(dir: string): any[] {
  return fs.readdirSync(dir).filter((n) => /^chunk-\d{12}\.dsse\.json$/.test(n)).sort().map((n) => {
    const env = JSON.parse(fs.readFileSync(path.join(dir, n), 'utf8'));
    return JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8')).predicate;
  });
}

/**
 * finalLedger sums the per-chunk ledger windows of the last run in DIR (each predicate holds the
 * difference of two cumulative snapshots, docs/format.md) into the run's totals. in_flight_end
 * is that of the last window: 0 when the run drained everything it submitted.
 */
export function finalLedger(dir: string): FinalLedger & { windowProblems: string[]; inFlightEnd: Record<string, number> } {
  const all = predicates(dir);
  if (all.length === 0) throw new Error(`no sealed chunk in ${dir}`);
  const runId = all[all.length - 1].chain.run_id;
  const run = all.filter((p) => p.chain.run_id === runId);
  const total: FinalLedger = { probes: {}, complete: true, lost: 0 };
  const windowProblems: string[] = [];
  const inFlightEnd: Record<string, number> = {};
  for (const p of run) {
    total.complete &&= p.ledger.complete;
    total.lost += p.ledger.lost;
    for (const [probe, w] of Object.entries<any>(p.ledger.probes)) {
      const t = (total.probes[probe] ??= {
        kernel: { submitted: 0, filtered: 0, ring_full: 0, skipped: 0, truncated: 0 },
        user: { received: 0, written: 0, filtered: 0, rejected: 0, shed: 0 }, in_chunk: 0, lost: 0,
      });
      for (const k of Object.keys(t.kernel) as (keyof typeof t.kernel)[]) t.kernel[k] += w.kernel[k];
      for (const k of Object.keys(t.user) as (keyof typeof t.user)[]) t.user[k] += w.user[k];
      t.in_chunk += w.in_chunk;
      t.lost += w.lost;
      // the per-window identity of src/store/predicate.ts
      const rhs = w.in_chunk + w.user.filtered + w.user.rejected + w.user.shed + w.in_flight_end - w.in_flight_start;
      if (w.kernel.submitted !== rhs) windowProblems.push(`chunk seq ${p.chain.seq} ${probe}: submitted ${w.kernel.submitted} != in_chunk+filtered+rejected+shed+in_flight_end-in_flight_start ${rhs}`);
      inFlightEnd[probe] = w.in_flight_end;
    }
  }
  return { ...total, windowProblems, inFlightEnd };
}

/** records parses every sealed chunk's NDJSON lines. */
export function chunkRecords(dir: string): any[] {
  const out: any[] = [];
  for (const n of fs.readdirSync(dir).filter((x) => /^chunk-\d{12}\.ndjson$/.test(x)).sort()) {
    for (const line of fs.readFileSync(path.join(dir, n), 'utf8').split('\n')) if (line.length > 0) out.push(JSON.parse(line));
  }
  return out;
}

/** vmRssKb reads VmRSS of a process in KiB, or undefined when it is gone. */
export function vmRssKb(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** assertIdentities checks, per probe, submitted == received and received == written + filtered + rejected + shed. */
export function ledgerProblems(ledger: ReturnType<typeof finalLedger>): string[] {
  const problems: string[] = [...ledger.windowProblems];
  for (const [probe, n] of Object.entries(ledger.inFlightEnd)) if (n !== 0) problems.push(`${probe}: ${n} records in flight at the end of the run`);
  for (const [probe, l] of Object.entries(ledger.probes)) {
    if (l.kernel.submitted !== l.user.received) problems.push(`${probe}: kernel submitted ${l.kernel.submitted} != user received ${l.user.received}`);
    const sum = l.user.written + l.user.filtered + l.user.rejected + l.user.shed;
    if (l.user.received !== sum) problems.push(`${probe}: received ${l.user.received} != written+filtered+rejected+shed ${sum}`);
  }
  return problems;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
