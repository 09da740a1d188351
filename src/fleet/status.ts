import type { Client } from 'pg';

/** The per-host view of `rtev fleet status`, read from the fleet index. */

export interface HostStatus {
  hostId: string;
  hostname: string | null;
  chainId: string | null;
  headSeq: number | null;
  lastChunkSealedAt: string | null;
  lastIndexedAt: string | null;
  /** seconds from the last chunk's seal to now */
  lagSeconds: number | null;
  chunks: number;
  records: number;
  lost: string;
  chunksWithDrops: number;
  gaps: { kind: string; fromSeq: number; throughSeq: number; detail: string }[];
  rejected: { code: string; count: number; lastReason: string; lastSeq: number | null }[];
  keys: { keyid: string; chunks: number; lastSeen: string }[];
  /** new chains an operator accepted (rtev fleet accept-chain), oldest first */
  accepted: { oldChainId: string; oldHeadSeq: number; newChainId: string; reason: string; by: string; at: string }[];
}

export async function fleetStatus(db: Client): Promise<HostStatus[]> {
  const hosts = await db.query(`SELECT h.host_id, h.hostname, h.chain_id, h.head_seq, h.head_sealed_wall_ns, h.last_indexed_at, h.chunks, h.records, h.lost,
      (SELECT count(*) FROM chunks c WHERE c.host_id = h.host_id AND c.lost > 0) AS drop_chunks
    FROM hosts h ORDER BY h.hostname, h.host_id`);
  const gaps = await db.query('SELECT host_id, kind, from_seq, through_seq, detail FROM gaps WHERE filled_at IS NULL ORDER BY host_id, from_seq, kind');
  const rej = await db.query(`SELECT host_id, code, count(*) AS n, (array_agg(reason ORDER BY id DESC))[1] AS reason, (array_agg(seq ORDER BY id DESC))[1] AS seq
    FROM rejections GROUP BY host_id, code ORDER BY host_id, code`);
  const keys = await db.query('SELECT host_id, keyid, chunks, last_seen FROM host_keys ORDER BY host_id, first_seen');
  const accepts = await db.query('SELECT host_id, old_chain_id, old_head_seq, new_chain_id, reason, accepted_by, at FROM chain_accepts ORDER BY host_id, id');
  const by = new Map<string, HostStatus>();
  const get = (id: string): HostStatus => {
    let s = by.get(id);
    if (s === undefined) {
      s = { hostId: id, hostname: null, chainId: null, headSeq: null, lastChunkSealedAt: null, lastIndexedAt: null, lagSeconds: null, chunks: 0, records: 0, lost: '0', chunksWithDrops: 0, gaps: [], rejected: [], keys: [], accepted: [] };
      by.set(id, s);
    }
    return s;
  };
  const now = Date.now();
  for (const h of hosts.rows) {
    const s = get(h.host_id);
    const sealedMs = h.head_sealed_wall_ns === null ? null : Number(BigInt(h.head_sealed_wall_ns) / 1_000_000n);
    Object.assign(s, {
      hostname: h.hostname, chainId: h.chain_id, headSeq: Number(h.head_seq), chunks: Number(h.chunks), records: Number(h.records), lost: String(h.lost),
      chunksWithDrops: Number(h.drop_chunks), lastIndexedAt: new Date(h.last_indexed_at).toISOString(),
      lastChunkSealedAt: sealedMs === null ? null : new Date(sealedMs).toISOString(), lagSeconds: sealedMs === null ? null : Math.max(0, (now - sealedMs) / 1000),
    });
  }
  for (const g of gaps.rows) get(g.host_id).gaps.push({ kind: g.kind, fromSeq: Number(g.from_seq), throughSeq: Number(g.through_seq), detail: g.detail });
  for (const r of rej.rows) get(r.host_id).rejected.push({ code: r.code, count: Number(r.n), lastReason: r.reason, lastSeq: r.seq === null ? null : Number(r.seq) });
  for (const k of keys.rows) get(k.host_id).keys.push({ keyid: k.keyid, chunks: Number(k.chunks), lastSeen: new Date(k.last_seen).toISOString() });
  for (const a of accepts.rows) {
    get(a.host_id).accepted.push({ oldChainId: a.old_chain_id, oldHeadSeq: Number(a.old_head_seq), newChainId: a.new_chain_id, reason: a.reason, by: a.accepted_by, at: new Date(a.at).toISOString() });
  }
  return [...by.values()];
}

export function renderStatus(list: HostStatus[]): string {
  const out: string[] = [];
  out.push(`${list.length} host(s)`);
  for (const h of list) {
    out.push(`${h.hostname ?? '(never indexed)'} [${h.hostId}]`);
    if (h.headSeq !== null) {
      out.push(`  last chunk: seq ${h.headSeq} of chain ${h.chainId}, sealed ${h.lastChunkSealedAt}, indexed ${h.lastIndexedAt}, lag ${h.lagSeconds!.toFixed(1)} s`);
      out.push(`  indexed: ${h.chunks} chunk(s), ${h.records} record(s); drops: ${h.lost === '0' ? 'none' : `${h.lost} record(s) lost in ${h.chunksWithDrops} chunk(s)`}`);
    }
    if (h.gaps.length === 0) out.push('  gaps: none');
    for (const g of h.gaps) out.push(`  gap (${g.kind}) seq ${g.fromSeq}..${g.throughSeq}: ${g.detail}`);
    if (h.rejected.length === 0) out.push('  rejected: none');
    for (const r of h.rejected) out.push(`  rejected ${r.count} x ${r.code}${r.lastSeq !== null ? ` (last: seq ${r.lastSeq})` : ''}: ${r.lastReason}`);
    for (const a of h.accepted) out.push(`  chain accepted: ${a.newChainId} replaces ${a.oldChainId} (at seq ${a.oldHeadSeq}), by ${a.by} at ${a.at}: ${a.reason}`);
    for (const k of h.keys) out.push(`  key sha256:${k.keyid} (${k.chunks} chunk(s), last ${k.lastSeen})`);
  }
  return out.join('\n') + '\n';
}
