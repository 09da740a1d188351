import type { Skip } from './input';
import { matchComponents, VulnIndex, type MatchOptions } from './match';
import type { ActivityBucket, CoverageFacts, Observations } from './observations';
import type { OsvRecord } from './osv';
import type { Sbom } from './sbom';
import { decide, type Ownership, type Product, type Verdict, type VerdictOptions } from './verdict';

/** ReportModel is everything every output format renders; the JSON format is this, serialized. */
export interface ReportModel {
  tool: { name: 'rtev'; version: string };
  /** the time the statements are known to be true: the end of the evidence window (else the run time) */
  timestamp: string;
  coverage: CoverageFacts;
  options: { notObservedAsNotAffected: boolean; allowUnverified: boolean; unverified: string | undefined };
  products: Array<{ product: Product; verdicts: Verdict[]; activity: ActivityBucket[]; loadedFiles: number; functionHits: number }>;
  skipped: Skip[];
  inputs: { sboms: string[]; vulnRecords: number; vulnFiles: number; components: number; matchable: number };
}

export interface ProductInput {
  product: Product;
  sbom: Sbom;
}

export interface BuildOptions extends VerdictOptions, MatchOptions {
  allowUnverified: boolean;
  version: string;
  now: Date;
  activityBuckets?: number;
}

/** buildReport joins the SBOMs with the advisories and decides every vulnerability × product. */
export async function buildReport(
  inputs: readonly ProductInput[], vulns: { records: OsvRecord[]; skipped: Skip[]; files: number },
  obs: Observations, own: Ownership, opts: BuildOptions,
): Promise<ReportModel> {
  const index = new VulnIndex(vulns.records);
  const coverage = await obs.coverage();
  const probes = await obs.functionProbes();
  const skipped: Skip[] = [...vulns.skipped];
  const products: ReportModel['products'] = [];
  let components = 0;
  let matchable = 0;
  for (const { product, sbom } of inputs) {
    skipped.push(...sbom.skipped.map((s) => ({ what: `${sbom.source}: ${s.what}`, reason: s.reason })));
    const m = matchComponents(sbom.components, index, opts);
    skipped.push(...m.skipped);
    components += sbom.components.length;
    matchable += m.matchable;
    const loaded = await obs.loadedFiles(product.key);
    const hits = await obs.functionHits(product.key);
    const po = { loaded, hits, probes, coverage };
    const verdicts = m.findings.map((f) => decide(f, product, po, own, opts));
    verdicts.sort((a, b) => cmpStr(a.vulnId, b.vulnId) || cmpStr(a.component.purl, b.component.purl));
    const activity = await obs.activity(product.key, opts.activityBuckets ?? 60);
    products.push({ product, verdicts, activity, loadedFiles: loaded.length, functionHits: hits.length });
  }
  const ts = coverage.toWallNs !== null ? new Date(Number(coverage.toWallNs / 1_000_000n)) : opts.now;
  return {
    tool: { name: 'rtev', version: opts.version },
    timestamp: ts.toISOString(),
    coverage,
    options: { notObservedAsNotAffected: opts.notObservedAsNotAffected, allowUnverified: opts.allowUnverified, unverified: opts.unverified },
    products, skipped,
    inputs: { sboms: inputs.map((i) => i.sbom.source), vulnRecords: vulns.records.length, vulnFiles: vulns.files, components, matchable },
  };
}

function cmpStr(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** statusCounts tallies verdicts by OpenVEX status (the table footer, the HTML banner, tests). */
export function statusCounts(m: ReportModel): Record<string, number> {
  const out: Record<string, number> = { affected: 0, not_affected: 0, fixed: 0, under_investigation: 0 };
  for (const p of m.products) for (const v of p.verdicts) out[v.status] = (out[v.status] ?? 0) + 1;
  return out;
}

/** toJson renders the model with bigint as decimal strings (exact) and stable key order. */
export function toJson(m: ReportModel): string {
  return JSON.stringify(jsonValue(m), null, 2) + '\n';
}

export function jsonValue(m: ReportModel): unknown {
  return JSON.parse(JSON.stringify({
    ...m,
    counts: statusCounts(m),
    products: m.products.map((p) => ({
      ...p,
      verdicts: p.verdicts.map((v) => ({
        vulnerability: v.vulnId, aliases: v.aliases, summary: v.summary, synthetic: v.synthetic,
        component: { ref: v.component.ref, name: v.component.name, purl: v.component.purl, version: v.version },
        status: v.status, justification: v.justification, step: v.step, fixed_versions: v.fixedVersions,
        status_notes: v.statusNotes, impact_statement: v.impactStatement, action_statement: v.actionStatement,
        functions: v.functions.map((f) => ({
          kind: f.fn.kind, path: f.fn.path, symbol: f.fn.symbol, probed: f.probes.length > 0, whole_window: f.wholeWindow,
          calls: f.probes.reduce((s, x) => s + x.calls, 0n), records: f.hits.reduce((s, h) => s + h.records, 0n), unprobeable: f.unprobeable,
        })),
        loaded_files: v.loadedCount, loaded: v.loaded.map((l) => ({ path: l.path, records: l.records, first_wall_ns: l.firstWallNs, last_wall_ns: l.lastWallNs })),
        evidence: v.refs.map((r) => ({ chain_id: r.chainId, seq: r.seq, chunk_sha256: r.chunkSha256, line: r.lineNo, ts_ns: r.tsNs, pid: r.pid, comm: r.comm, container_id: r.containerId, image_digest: r.imageDigest })),
        coverage_complete: v.coverageComplete, coverage_reasons: v.coverageReasons, capped: v.capped,
      })),
    })),
  }, (_k, val) => (typeof val === 'bigint' ? val.toString() : val)));
}
