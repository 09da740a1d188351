import type { Client } from 'pg';
import { gapState, type GapState } from './gaps';

/** The per-host view of `rtev fleet status`, read from the fleet index. */

export interface GapRun {
  /** open: nothing accounts for it; filled: the chunk arrived late; checkpointed: deleted by retention, a signed checkpoint says so; recorded: an unclean restart */
  state: GapState;
  kind: string;
  chainId: string;
  fromSeq: number;
  throughSeq: number;
  /** seqs of the run still in this state (a range row counts the chunks that arrived in it later as filled) */
  seqs: number;
  detail: string;
  recordedAt: string;
  closedAt: string | null;
  /** the checkpoint that names the run (sha256 of its envelope) */
  checkpoint: string | null;
}

export interface CheckpointStatus {
  chainId: string;
  firstSeq: number;
  removedFrom: number;
  removedThrough: number;
  unshipped: { fromSeq: number; throughSeq: number } | null;
  keyid: string;
  envelopeSha256: string;
  receivedAt: string;
  /** how many checkpoints of the chain were received (the host rewrites it at each removal) */
  received: number;
  /** the first chunk it vouches for: indexed with that envelope, not indexed yet, or indexed with another one */
  firstChunk: 'verified' | 'pending' | 'contradicted' | 'unknown';
}

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
  /** gap runs of every chain of the host, open, filled, checkpointed and recorded */
  gaps: GapRun[];
  /** seqs per gap state over all chains */
  gapSeqs: { open: number; filled: number; checkpointed: number };
  /**
   * the head chain accounted for: every seq from 1 to the head is indexed, checkpointed or an
   * open gap; `unaccounted` is what is none of them (0 unless the index is inconsistent)
   */
  account: { chainId: string; throughSeq: number; indexed: number; checkpointed: number; open: number; unaccounted: number } | null;
  /** the newest retention checkpoint per chain */
  checkpoints: CheckpointStatus[];
  rejected: { code: string; count: number; lastReason: string; lastSeq: number | null }[];
  keys: { keyid: string; chunks: number; lastSeen: string }[];
  /** new chains an operator accepted (rtev fleet accept-chain), oldest first */
  accepted: { oldChainId: string; oldHeadSeq: number; newChainId: string; reason: string; by: string; at: string }[];
}

export interface GapRow {
  host_id: string;
  chain_id: string;
  kind: string;
  from_seq: string;
  through_seq: string;
  detail: string;
  at: Date;
  filled_at: Date | null;
  closed_by: string | null;
  checkpoint_sha256: string | null;
  arrived: string;
}

/** gapRuns turns gap rows (sorted by chain, from_seq) into runs of one state (pure; exported for the unit test). */
export function gapRuns(rows: readonly GapRow[]): GapRun[] {
  const out: GapRun[] = [];
  // schema v3 kept a 'retention' row beside each missing row a checkpoint closed: one of them counts
  const twins = new Set(rows.filter((r) => r.kind === 'missing' && r.closed_by === 'checkpoint').map((r) => `${r.chain_id}:${r.from_seq}`));
  for (const r of rows) {
    if (r.kind === 'retention' && twins.has(`${r.chain_id}:${r.from_seq}`)) continue;
    const from = Number(r.from_seq);
    const through = Number(r.through_seq);
    const size = through - from + 1;
    const arrived = Math.min(size, Number(r.arrived));
    let state = gapState(r.kind, r.closed_by, r.filled_at);
    // a range row: the chunks that arrived in it later are filled, the rest keeps its state
    if (size > 1 && arrived > 0 && state !== 'recorded') {
      pushRun(out, { ...run(r, 'filled', arrived), detail: `${arrived} of ${size} chunk(s) of seq ${from}..${through} arrived later and were indexed` });
      if (arrived === size) continue;
    }
    if (state === 'filled' && size > 1 && arrived < size) state = 'open';
    pushRun(out, run(r, state, size > 1 ? size - arrived : 1));
  }
  return out;
}

function run(r: GapRow, state: GapState, seqs: number): GapRun {
  return {
    state, kind: r.kind, chainId: r.chain_id, fromSeq: Number(r.from_seq), throughSeq: Number(r.through_seq), seqs, detail: r.detail,
    recordedAt: new Date(r.at).toISOString(), closedAt: r.filled_at === null ? null : new Date(r.filled_at).toISOString(), checkpoint: r.checkpoint_sha256,
  };
}

/** consecutive single seqs of one chain, state and kind are one run */
function pushRun(out: GapRun[], g: GapRun): void {
  const last = out[out.length - 1];
  if (last !== undefined && last.chainId === g.chainId && last.state === g.state && last.kind === g.kind && last.throughSeq + 1 === g.fromSeq
    && last.seqs === last.throughSeq - last.fromSeq + 1 && g.seqs === g.throughSeq - g.fromSeq + 1) {
    last.throughSeq = g.throughSeq;
    last.seqs += g.seqs;
    if (g.closedAt !== null && (last.closedAt === null || g.closedAt > last.closedAt)) last.closedAt = g.closedAt;
    last.checkpoint = g.checkpoint ?? last.checkpoint;
    return;
  }
  out.push(g);
}

export async function fleetStatus(db: Client): Promise<HostStatus[]> {
  const hosts = await db.query(`SELECT h.host_id, h.hostname, h.chain_id, h.head_seq, h.head_sealed_wall_ns, h.last_indexed_at, h.chunks, h.records, h.lost,
      (SELECT count(*) FROM chunks c WHERE c.host_id = h.host_id AND c.lost > 0) AS drop_chunks,
      (SELECT count(*) FROM chunks c WHERE c.host_id = h.host_id AND c.chain_id = h.chain_id AND c.seq <= h.head_seq) AS head_chain_chunks
    FROM hosts h ORDER BY h.hostname, h.host_id`);
  const gaps = await db.query<GapRow>(`SELECT g.host_id, g.chain_id, g.kind, g.from_seq, g.through_seq, g.detail, g.at, g.filled_at, g.closed_by, g.checkpoint_sha256,
      CASE WHEN g.through_seq > g.from_seq THEN (SELECT count(*) FROM chunks c WHERE c.host_id = g.host_id AND c.chain_id = g.chain_id AND c.seq BETWEEN g.from_seq AND g.through_seq) ELSE 0 END AS arrived
    FROM gaps g ORDER BY g.host_id, g.chain_id, g.from_seq, g.kind`);
  const cps = await db.query(`SELECT DISTINCT ON (k.host_id, k.chain_id) k.host_id, k.chain_id, k.first_seq, k.removed_from, k.removed_through, k.unshipped_from, k.unshipped_through,
      k.keyid, k.envelope_sha256, k.first_envelope_sha256, k.at, c.envelope_sha256 AS indexed_first,
      count(*) OVER (PARTITION BY k.host_id, k.chain_id) AS received
    FROM checkpoints k LEFT JOIN chunks c ON c.host_id = k.host_id AND c.chain_id = k.chain_id AND c.seq = k.first_seq
    ORDER BY k.host_id, k.chain_id, k.first_seq DESC, k.at DESC`);
  const rej = await db.query(`SELECT host_id, code, count(*) AS n, (array_agg(reason ORDER BY id DESC))[1] AS reason, (array_agg(seq ORDER BY id DESC))[1] AS seq
    FROM rejections GROUP BY host_id, code ORDER BY host_id, code`);
  const keys = await db.query('SELECT host_id, keyid, chunks, last_seen FROM host_keys ORDER BY host_id, first_seen');
  const accepts = await db.query('SELECT host_id, old_chain_id, old_head_seq, new_chain_id, reason, accepted_by, at FROM chain_accepts ORDER BY host_id, id');
  const by = new Map<string, HostStatus>();
  const get = (id: string): HostStatus => {
    let s = by.get(id);
    if (s === undefined) {
      s = { hostId: id, hostname: null, chainId: null, headSeq: null, lastChunkSealedAt: null, lastIndexedAt: null, lagSeconds: null, chunks: 0, records: 0, lost: '0', chunksWithDrops: 0,
        gaps: [], gapSeqs: { open: 0, filled: 0, checkpointed: 0 }, account: null, checkpoints: [], rejected: [], keys: [], accepted: [] };
      by.set(id, s);
    }
    return s;
  };
  const now = Date.now();
  const headChainChunks = new Map<string, number>();
  for (const h of hosts.rows) {
    const s = get(h.host_id);
    const sealedMs = h.head_sealed_wall_ns === null ? null : Number(BigInt(h.head_sealed_wall_ns) / 1_000_000n);
    Object.assign(s, {
      hostname: h.hostname, chainId: h.chain_id, headSeq: Number(h.head_seq), chunks: Number(h.chunks), records: Number(h.records), lost: String(h.lost),
      chunksWithDrops: Number(h.drop_chunks), lastIndexedAt: new Date(h.last_indexed_at).toISOString(),
      lastChunkSealedAt: sealedMs === null ? null : new Date(sealedMs).toISOString(), lagSeconds: sealedMs === null ? null : Math.max(0, (now - sealedMs) / 1000),
    });
    headChainChunks.set(h.host_id, Number(h.head_chain_chunks));
  }
  const rowsBy = new Map<string, GapRow[]>();
  for (const g of gaps.rows) {
    const list = rowsBy.get(g.host_id);
    if (list === undefined) rowsBy.set(g.host_id, [g]);
    else list.push(g);
  }
  for (const [id, rows] of rowsBy) {
    const s = get(id);
    s.gaps = gapRuns(rows);
    for (const g of s.gaps) if (g.state !== 'recorded') s.gapSeqs[g.state] += g.seqs;
  }
  for (const s of by.values()) {
    if (s.chainId === null || s.headSeq === null) continue;
    const inChain = s.gaps.filter((g) => g.chainId === s.chainId && g.fromSeq <= s.headSeq!);
    const count = (st: GapState): number => inChain.filter((g) => g.state === st).reduce((n, g) => n + g.seqs, 0);
    const indexed = headChainChunks.get(s.hostId) ?? 0;
    const [checkpointed, open] = [count('checkpointed'), count('open')];
    s.account = { chainId: s.chainId, throughSeq: s.headSeq, indexed, checkpointed, open, unaccounted: s.headSeq - indexed - checkpointed - open };
  }
  for (const c of cps.rows) {
    get(c.host_id).checkpoints.push({
      chainId: c.chain_id, firstSeq: Number(c.first_seq), removedFrom: Number(c.removed_from), removedThrough: Number(c.removed_through),
      unshipped: c.unshipped_from === null ? null : { fromSeq: Number(c.unshipped_from), throughSeq: Number(c.unshipped_through) },
      keyid: c.keyid, envelopeSha256: c.envelope_sha256, receivedAt: new Date(c.at).toISOString(), received: Number(c.received),
      firstChunk: c.first_envelope_sha256 === null ? 'unknown' : c.indexed_first === null ? 'pending' : c.indexed_first === c.first_envelope_sha256 ? 'verified' : 'contradicted',
    });
  }
  for (const r of rej.rows) get(r.host_id).rejected.push({ code: r.code, count: Number(r.n), lastReason: r.reason, lastSeq: r.seq === null ? null : Number(r.seq) });
  for (const k of keys.rows) get(k.host_id).keys.push({ keyid: k.keyid, chunks: Number(k.chunks), lastSeen: new Date(k.last_seen).toISOString() });
  for (const a of accepts.rows) {
    get(a.host_id).accepted.push({ oldChainId: a.old_chain_id, oldHeadSeq: Number(a.old_head_seq), newChainId: a.new_chain_id, reason: a.reason, by: a.accepted_by, at: new Date(a.at).toISOString() });
  }
  return [...by.values()];
}

const STATE_TEXT: Record<GapState, string> = {
  open: 'open',
  filled: 'filled',
  checkpointed: 'deleted by retention (checkpointed)',
  recorded: 'recorded',
};

export function renderGap(g: GapRun): string {
  const range = `seq ${g.fromSeq}..${g.throughSeq}${g.seqs !== g.throughSeq - g.fromSeq + 1 ? ` (${g.seqs} of them)` : ''}`;
  const what = g.state === 'filled' && g.seqs === g.throughSeq - g.fromSeq + 1
    ? `arrived late, linked its neighbours and was indexed${g.closedAt !== null ? ` (${g.closedAt})` : ''}`
    : g.state === 'checkpointed' && g.checkpoint !== null
      ? `removed on the host before they were shipped, as its signed retention checkpoint sha256:${g.checkpoint.slice(0, 16)}... records`
      : g.detail;
  return `  gap ${STATE_TEXT[g.state]} (${g.kind}) ${range}: ${what}`;
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
    if (h.account !== null) {
      const a = h.account;
      out.push(`  chain seq 1..${a.throughSeq}: ${a.indexed} indexed, ${a.checkpointed} deleted by retention (checkpointed), ${a.open} open gap(s)${a.unaccounted !== 0 ? `, ${a.unaccounted} UNACCOUNTED` : ''}`);
    }
    if (h.gaps.length === 0) out.push('  gaps: none');
    for (const g of h.gaps) out.push(renderGap(g));
    for (const c of h.checkpoints) {
      const first = { verified: `its envelope of seq ${c.firstSeq} is the indexed one`, pending: `seq ${c.firstSeq} not indexed yet`, contradicted: `CONTRADICTED: the indexed seq ${c.firstSeq} has another envelope`, unknown: 'first chunk not recorded' }[c.firstChunk];
      out.push(`  checkpoint: chunks before seq ${c.firstSeq} of chain ${c.chainId} removed on the host${c.unshipped !== null ? `, seq ${c.unshipped.fromSeq}..${c.unshipped.throughSeq} never shipped` : ''}; ${first}; key sha256:${c.keyid.slice(0, 16)}..., ${c.received} received, last ${c.receivedAt}`);
    }
    if (h.rejected.length === 0) out.push('  rejected: none');
    for (const r of h.rejected) out.push(`  rejected ${r.count} x ${r.code}${r.lastSeq !== null ? ` (last: seq ${r.lastSeq})` : ''}: ${r.lastReason}`);
    for (const a of h.accepted) out.push(`  chain accepted: ${a.newChainId} replaces ${a.oldChainId} (at seq ${a.oldHeadSeq}), by ${a.by} at ${a.at}: ${a.reason}`);
    for (const k of h.keys) out.push(`  key sha256:${k.keyid} (${k.chunks} chunk(s), last ${k.lastSeen})`);
  }
  return out.join('\n') + '\n';
}
