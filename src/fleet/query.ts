import type { Client } from 'pg';

/**
 * Fleet queries over the PostgreSQL index: the same rows as a local `rtev query`, plus the
 * host. Lines come back byte for byte as the hosts signed them, in the local engine's
 * order (ts_ns, then chain, seq, line).
 */

export interface FleetFilter {
  hosts?: string[];
  types?: string[];
  pids?: number[];
}

export interface FleetRow {
  host_id: string;
  hostname: string;
  line: string;
}

/** compile builds the WHERE clause over records r (and hosts h) with $n parameters. */
export function compileFleetFilter(f: FleetFilter, first = 1): { where: string; params: unknown[] } {
  const parts: string[] = [];
  const params: unknown[] = [];
  const p = (v: unknown): string => {
    params.push(v);
    return `$${first + params.length - 1}`;
  };
  if (f.hosts !== undefined && f.hosts.length > 0) {
    const a = p(f.hosts);
    parts.push(`(r.host_id = ANY(${a}) OR EXISTS (SELECT 1 FROM hosts h WHERE h.host_id = r.host_id AND (h.hostname = ANY(${a}) OR h.machine_id = ANY(${a}))))`);
  }
  if (f.types !== undefined && f.types.length > 0) parts.push(`r.type = ANY(${p(f.types)})`);
  if (f.pids !== undefined && f.pids.length > 0) parts.push(`r.pid = ANY(${p(f.pids)})`);
  return { where: parts.length > 0 ? parts.join(' AND ') : 'true', params };
}

/** fleetLines streams matching original lines to `out`, in batches (a cursor over the result). */
export async function fleetLines(db: Client, f: FleetFilter, out: (line: string) => void, batch = 5000): Promise<number> {
  const { where, params } = compileFleetFilter(f);
  await db.query('BEGIN READ ONLY');
  try {
    await db.query(`DECLARE rtev_q NO SCROLL CURSOR FOR SELECT r.line FROM records r WHERE ${where} ORDER BY r.ts_ns, r.chain_id, r.seq, r.line_no`, params);
    let n = 0;
    for (;;) {
      const r = await db.query<{ line: string }>(`FETCH ${batch} FROM rtev_q`);
      for (const row of r.rows) out(row.line);
      n += r.rows.length;
      if (r.rows.length < batch) break;
    }
    return n;
  } finally {
    await db.query('COMMIT').catch(() => undefined);
  }
}
