import type { Client } from 'pg';
import { UsageError } from '../errors';

/**
 * `rtev fleet accept-chain`: an operator accepts a host's new chain after the host's evidence
 * was deleted and rewritten (a reinstall). Ingest rejects such a chain as `chain-replaced`
 * until then; the acceptance is a row of `chain_accepts` (who, when, why, which chain it
 * replaces at which head), written by the database owner: the ingest role can read it but not
 * write it, so a host cannot get its own rewritten history accepted. From then on ingest
 * indexes the new chain as it would a first chain (seq 1, or a recorded gap), and the host
 * ships it again (`rtev ship DIR --resend-from 1`: its chunks were rejected, not kept).
 */

export interface Acceptance {
  hostId: string;
  hostname: string;
  oldChainId: string;
  oldHeadSeq: number;
  newChainId: string;
  rejectedChunks: number;
  acceptedBy: string;
  at: string;
}

/** acceptChain records the acceptance; `host` is a host id (machine id) or a hostname that names one host. */
export async function acceptChain(db: Client, host: string, chainId: string, reason: string): Promise<Acceptance> {
  if (reason.trim() === '') throw new UsageError('accept-chain needs --reason TEXT (it is recorded with the acceptance)');
  if (!/^[A-Za-z0-9._:-]{1,128}$/.test(chainId)) throw new UsageError(`--chain: '${chainId.slice(0, 80)}' is not a chain id`);
  await db.query('BEGIN');
  try {
    const hosts = await db.query<{ host_id: string; hostname: string; chain_id: string; head_seq: string }>(
      'SELECT host_id, hostname, chain_id, head_seq FROM hosts WHERE host_id = $1 OR hostname = $1 ORDER BY host_id FOR UPDATE', [host]);
    if (hosts.rowCount === 0) throw new UsageError(`no indexed host '${host}'`, "see 'rtev fleet status'");
    if (hosts.rows.length > 1) throw new UsageError(`'${host}' names ${hosts.rows.length} hosts`, `use the host id: ${hosts.rows.map((h) => h.host_id).join(', ')}`);
    const h = hosts.rows[0]!;
    if (h.chain_id === chainId) throw new UsageError(`chain ${chainId} is already ${h.hostname}'s indexed chain`);
    const seen = await db.query<{ n: string }>(`SELECT count(*) AS n FROM rejections WHERE host_id = $1 AND chain_id = $2 AND code = 'chain-replaced'`, [h.host_id, chainId]);
    const rejected = Number(seen.rows[0]!.n);
    if (rejected === 0) throw new UsageError(`no chunk of chain ${chainId} was rejected as chain-replaced for ${h.hostname}`, "the chain id is in 'rtev fleet status' (rejected ... chain-replaced)");
    const r = await db.query<{ accepted_by: string; at: Date }>(
      `INSERT INTO chain_accepts (host_id, old_chain_id, old_head_seq, new_chain_id, reason) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (host_id, old_chain_id, new_chain_id) DO UPDATE SET reason = chain_accepts.reason RETURNING accepted_by, at`,
      [h.host_id, h.chain_id, h.head_seq, chainId, reason.slice(0, 1000)]);
    await db.query('COMMIT');
    return { hostId: h.host_id, hostname: h.hostname, oldChainId: h.chain_id, oldHeadSeq: Number(h.head_seq), newChainId: chainId, rejectedChunks: rejected, acceptedBy: r.rows[0]!.accepted_by, at: new Date(r.rows[0]!.at).toISOString() };
  } catch (err) {
    await db.query('ROLLBACK').catch(() => undefined);
    if ((err as { code?: string }).code === '42501') throw new UsageError('accept-chain: permission denied', 'run it as the database owner (the role that ran rtev fleet init), not as the ingest or reader role');
    throw err;
  }
}
