/**
 * Observations is what the report needs from the evidence, whatever stores it: the embedded
 * index (src/index/, `rtev report DIR`) or a central database (`rtev report --db URL`).
 * Every method is a bounded aggregate; nothing returns all records. u64 values are bigint.
 */

export type ProductKey = { kind: 'host' } | { kind: 'image'; digest: string };

export function productKeyString(p: ProductKey): string {
  return p.kind === 'host' ? 'host' : p.digest;
}

/** EvidenceRef points at one signed record: chunk (chain, seq, digest), line, and who. */
export interface EvidenceRef {
  chainId: string;
  seq: bigint;
  chunkSha256: string;
  lineNo: number;
  tsNs: bigint;
  wallNs: bigint;
  pid: number;
  comm: string;
  containerId: string | null;
  imageDigest: string | null;
}

/** LoadedFile is a file of the product seen opened, executed or running a probed function. */
export interface LoadedFile {
  path: string;
  /** the signed attribution's purl for (scope, path), when the collector recorded one */
  purl: string | null;
  records: bigint;
  firstWallNs: bigint;
  lastWallNs: bigint;
  ref: EvidenceRef;
}

/** FunctionHit aggregates function_call records of one (library, symbol, node_hash) in a product. */
export interface FunctionHit {
  library: string;
  symbol: string;
  nodeHash: string | null;
  runtime: string;
  records: bigint;
  firstWallNs: bigint;
  lastWallNs: bigint;
  /** a few records (earliest first), at most 5 */
  refs: EvidenceRef[];
  /** frames of the first record (hex addresses, innermost first) */
  stack: string[];
}

/** FunctionProbe is one probed target with its exact calls, from the chunk predicates. */
export interface FunctionProbe {
  /** `FILE:SYMBOL` as the collector resolved it */
  function: string;
  symbol: string;
  nodeHash: string | null;
  calls: bigint;
  /** chunks whose function_calls list the target (it was probed in those windows) */
  chunks: number;
}

export interface ProbeCoverage {
  probe: string;
  /** chunks whose run had this probe on */
  chunks: number;
  lost: bigint;
  /** classes of its events the probe did not observe in some chunks (ledger `not_observed`); absent: none */
  notObserved?: string[];
}

export interface CoverageFacts {
  fromWallNs: bigint | null;
  toWallNs: bigint | null;
  chunks: number;
  records: bigint;
  lost: bigint;
  probes: ProbeCoverage[];
  /** chain gaps: missing chunks, chunks deleted by retention (checkpointed) in the window, broken links, unclean restarts, unsealed tails */
  gaps: string[];
  /**
   * per chain with seqs that are not indexed: the account of seq 1..last (indexed, deleted by
   * retention as a signed checkpoint records, missing) and the checkpointed runs before the
   * window; absent when every chain is whole from seq 1
   */
  retention?: string[];
  /** chunks that failed verification (only present with allowUnverified) */
  unverifiedChunks: number;
  /** chunk files that failed verification, with the reason */
  failures: string[];
  hosts: Array<{ hostname: string; machineId: string }>;
}

export interface ActivityBucket {
  startWallNs: bigint;
  counts: Record<string, number>;
}

export interface ObservedProduct {
  key: ProductKey;
  containers: string[];
  imageNames: string[];
  records: bigint;
}

export interface Observations {
  coverage(): Promise<CoverageFacts>;
  products(): Promise<ObservedProduct[]>;
  loadedFiles(p: ProductKey): Promise<LoadedFile[]>;
  functionHits(p: ProductKey): Promise<FunctionHit[]>;
  functionProbes(): Promise<FunctionProbe[]>;
  /** records per event type in `buckets` equal slices of the coverage window */
  activity(p: ProductKey, buckets: number): Promise<ActivityBucket[]>;
}
