import { Client } from 'pg';
import { UsageError, errorMessage } from '../errors';
import { compileFilter, type EvidenceFilter } from '../index/filter';
import type { IndexRow } from '../index/index';
import type { EventType } from '../model/record';
import { biasedToU64 } from './rows';
import { checkNoPassword } from './secrets';

/**
 * Fleet queries over the PostgreSQL index: the filters of the local index (src/index/filter.ts
 * compiles the same WHERE clause for PostgreSQL), the same rows in the same order (ts_ns,
 * then chain, seq, line: ts_ns_biased sorts as ts_ns does), each line byte for byte as its host signed it.
 */

/**
 * wallWindow: the records of a --since/--until window, found through their chunks (schema v7 has
 * no index on records.wall_ns; the chunk_id BRIN serves this): the ids from the first to the
 * last chunk that can hold a record of the window. A record's wall_ns is its ts_ns plus the
 * delta (wall - mono) of one of its chunk's two anchors (src/fleet/rows.ts), and its ts_ns is
 * within the chunk's signed min_ts_ns..max_ts_ns (checked against the body at ingest), so a
 * chunk whose range moved by the larger delta ends before the window, or whose range moved by
 * the smaller delta starts after it, holds none. The caller keeps the exact r.wall_ns condition
 * (compileFilter's); this only narrows the rows read. Params are appended to `params`.
 */
export function wallWindow(f: EvidenceFilter, params: unknown[]): string | undefined {
  if (f.sinceWallNs === undefined && f.untilWallNs === undefined) return undefined;
  const od = '(k.opened_wall_ns - k.opened_mono_ns)';
  const sd = '(k.sealed_wall_ns - k.sealed_mono_ns)';
  const cond: string[] = ['k.min_ts_ns IS NOT NULL'];
  if (f.sinceWallNs !== undefined) {
    params.push(f.sinceWallNs.toString());
    cond.push(`k.max_ts_ns + GREATEST(${od}, ${sd}) >= $${params.length}::numeric`);
  }
  if (f.untilWallNs !== undefined) {
    params.push(f.untilWallNs.toString());
    cond.push(`k.min_ts_ns + LEAST(${od}, ${sd}) < $${params.length}::numeric`);
  }
  const w = cond.join(' AND ');
  return `r.chunk_id BETWEEN (SELECT min(k.chunk_id) FROM chunks k WHERE ${w}) AND (SELECT max(k.chunk_id) FROM chunks k WHERE ${w})`;
}

/** fleetFilter: compileFilter's WHERE for PostgreSQL, narrowed to a --since/--until window's chunks (wallWindow) */
export function fleetFilter(f: EvidenceFilter): { where: string; params: unknown[] } {
  const { where, params } = compileFilter(f, 'postgres');
  const ps: unknown[] = [...params];
  const w = wallWindow(f, ps);
  return { where: w === undefined ? where : `${where} AND ${w}`, params: ps };
}

/** the original line of record r, as text (its bytes, checked to be UTF-8 at ingest) */
export const LINE = `convert_from(r.line, 'UTF8')`;

export class FleetIndex {
  private constructor(readonly db: Client, readonly url: string) {}

  static async open(url: string, application = 'rtev-query'): Promise<FleetIndex> {
    checkNoPassword(url, 'db', 'put the password in PGPASSWORD or ~/.pgpass (or use peer/cert authentication)');
    const db = new Client({ connectionString: url, application_name: application });
    db.on('error', () => undefined);
    try {
      await db.connect();
      const r = await db.query(`SELECT to_regclass('public.rtev_meta') AS t`);
      if (r.rows[0]?.t === null) throw new UsageError('the fleet database has no rtev schema', "run 'rtev fleet init --db URL' once as the database owner");
    } catch (err) {
      await db.end().catch(() => undefined);
      if (err instanceof UsageError) throw err;
      throw new UsageError(`cannot open the fleet database: ${errorMessage(err)}`);
    }
    return new FleetIndex(db, url);
  }

  /** rows streams matching records through a server-side cursor (bounded memory). */
  async *rows(f: EvidenceFilter, o: { limit?: number; batch?: number } = {}): AsyncIterable<IndexRow> {
    const { where, params } = fleetFilter(f);
    const limit = o.limit !== undefined ? ` LIMIT ${Math.max(0, Math.floor(o.limit))}` : '';
    const batch = o.batch ?? 5000;
    await this.db.query('BEGIN READ ONLY');
    try {
      // the line: the row's bytes of it, as text
      await this.db.query(`DECLARE rtev_rows NO SCROLL CURSOR FOR
        SELECT k.chain_id, k.seq, k.chunk_sha256, r.line_no, r.ts_ns_biased, r.wall_ns, r.type, r.pid, r.comm, r.container_id, r.image_digest, ${LINE} AS line
        FROM records r JOIN chunks k ON k.chunk_id = r.chunk_id WHERE ${where} ORDER BY r.ts_ns_biased, k.chain_id, k.seq, r.line_no${limit}`, params);
      for (;;) {
        const r = await this.db.query(`FETCH ${batch} FROM rtev_rows`);
        for (const v of r.rows) {
          yield {
            chainId: v.chain_id, seq: BigInt(v.seq), chunkSha256: v.chunk_sha256, lineNo: Number(v.line_no), tsNs: biasedToU64(v.ts_ns_biased), wallNs: BigInt(v.wall_ns),
            type: v.type as EventType, pid: Number(v.pid), comm: v.comm, containerId: v.container_id, imageDigest: v.image_digest, line: v.line, verified: true,
          };
        }
        if (r.rows.length < batch) break;
      }
    } finally {
      await this.db.query('COMMIT').catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    await this.db.end().catch(() => undefined);
  }
}
