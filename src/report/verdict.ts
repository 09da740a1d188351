import * as path from 'node:path/posix';
import { computeNodeHash } from '../symbolize/node-hash';
import { golangPurl, purl as canonicalPurl } from '../symbolize/purl';
import type { Finding } from './match';
import type { CoverageFacts, EvidenceRef, FunctionHit, FunctionProbe, LoadedFile, ProductKey } from './observations';
import type { AffectedFunction } from './osv';
import { samePackage, type ParsedPurl } from './purl';
import type { SbomComponent } from './sbom';

/**
 * The verdict ladder (docs/reachability.md, "Verdicts"), per vulnerability × product, in order:
 *   1. version outside every affected range: at/after a fix → fixed; never in a range →
 *      not_affected + vulnerable_code_not_present (the vulnerable version is not installed);
 *   2. an affected function ran in the component's own file → affected (function_executed);
 *   3. the component was loaded and the advisory's functions were not all probed → affected,
 *      component-level (component_loaded);
 *   4. otherwise (all functions probed and never called, or the component never loaded) →
 *      under_investigation; with the opt-in and complete coverage → not_affected +
 *      vulnerable_code_not_in_execute_path. Never vulnerable_code_not_present for code that is present.
 * Unverified evidence caps steps 2-4 at under_investigation; step 1 uses no evidence.
 */

export type VexStatus = 'not_affected' | 'affected' | 'fixed' | 'under_investigation';
export type Justification = 'vulnerable_code_not_present' | 'vulnerable_code_not_in_execute_path';
export type Step = 'fixed' | 'version_not_affected' | 'function_executed' | 'component_loaded' | 'probed_not_called' | 'not_loaded';

export interface Product {
  key: ProductKey;
  /** OpenVEX product @id: pkg:oci/NAME@sha256:...?repository_url=... or urn:rtev:host:<machine-id> */
  id: string;
  name: string;
  containers: string[];
}

export interface FunctionStatus {
  fn: AffectedFunction;
  /** probes matching the function (file and symbol), with their exact calls */
  probes: FunctionProbe[];
  /** probed in every chunk of the window */
  wholeWindow: boolean;
  hits: FunctionHit[];
  /** why it could not be probed, when the plan said so */
  unprobeable: string | undefined;
}

export interface Verdict {
  vulnId: string;
  aliases: string[];
  summary: string | undefined;
  synthetic: boolean;
  product: Product;
  component: SbomComponent;
  version: string;
  fixedVersions: string[];
  status: VexStatus;
  justification: Justification | undefined;
  step: Step;
  statusNotes: string;
  impactStatement: string | undefined;
  actionStatement: string | undefined;
  functions: FunctionStatus[];
  /** files of the component seen loaded (at most 5 shown) and their count */
  loaded: LoadedFile[];
  loadedCount: number;
  /** evidence references of executed functions (at most 10) */
  refs: EvidenceRef[];
  coverageComplete: boolean;
  coverageReasons: string[];
  /** set when unverified evidence capped the verdict */
  capped: string | undefined;
}

export interface ProductObservations {
  loaded: LoadedFile[];
  hits: FunctionHit[];
  probes: FunctionProbe[];
  coverage: CoverageFacts;
}

/** Ownership tells which package owns a path in a product (signed attribution first, then package databases, then the SBOM). */
export interface Ownership {
  owners(product: ProductKey, file: string, signedPurl: string | null): ParsedPurl[];
  /** the basenames of the files the component owns in the product (for probes on a copy of the file) */
  basenames(product: ProductKey, component: SbomComponent): ReadonlySet<string>;
}

export interface VerdictOptions {
  notObservedAsNotAffected: boolean;
  /** reason every evidence-based verdict is capped (unverified evidence allowed), or undefined */
  unverified: string | undefined;
  /** unprobeable reasons from the plan, keyed by `kind\0path\0symbol` */
  unprobeable?: ReadonlyMap<string, string>;
}

export function functionKey(f: AffectedFunction): string {
  return `${f.kind}\0${f.path}\0${f.symbol}`;
}

/** componentNodeHash is the node_hash rtev's collector computes for `symbol` in the component. */
export function componentNodeHash(c: SbomComponent, f: AffectedFunction): string | undefined {
  const p = c.parsed;
  if (p.version === undefined) return undefined;
  if (f.kind === 'go' && p.type === 'golang') return computeNodeHash('go', golangPurl(p.namespace === undefined ? p.name : `${p.namespace}/${p.name}`, p.version), f.symbol);
  if (f.kind === 'native') return computeNodeHash('native', canonicalPurl(p.type, p.namespace, p.name, p.version), f.symbol);
  return undefined;
}

/** fileMatches: a native import path names a file by its soname/basename, or by absolute path. */
export function fileMatches(importPath: string, file: string): boolean {
  if (importPath.startsWith('/')) return aliases(file).includes(path.normalize(importPath)) || file.endsWith(importPath);
  const base = path.basename(file);
  return base === importPath || base.startsWith(importPath + '.');
}

function aliases(p: string): string[] {
  const n = path.normalize(p);
  const m = /^\/usr(\/(?:bin|sbin|lib|lib32|lib64|libx32)\/.*)$/.exec(n);
  if (m !== null) return [n, m[1]!];
  if (/^\/(?:bin|sbin|lib|lib32|lib64|libx32)\//.test(n)) return [n, '/usr' + n];
  return [n];
}

function probeFile(fn: string): string {
  const at = fn.lastIndexOf(':');
  return at > 0 ? fn.slice(0, at) : fn;
}

export function decide(finding: Finding, product: Product, obs: ProductObservations, own: Ownership, opts: VerdictOptions): Verdict {
  const c = finding.component;
  const base = {
    vulnId: finding.vuln.id, aliases: finding.vuln.aliases, summary: finding.vuln.summary, synthetic: finding.vuln.synthetic,
    product, component: c, version: finding.version,
    fixedVersions: finding.verdict.status === 'not_affected' ? [] : finding.verdict.fixed,
  };
  const empty = { functions: [], loaded: [], loadedCount: 0, refs: [], coverageComplete: false, coverageReasons: [], capped: undefined, impactStatement: undefined, actionStatement: undefined };
  if (finding.verdict.status === 'fixed') {
    return { ...base, ...empty, status: 'fixed', justification: undefined, step: 'fixed',
      statusNotes: `installed ${c.name} ${finding.version} is at or past the fix (${finding.verdict.fixed.join(', ') || 'end of the affected range'}) in ${finding.affected.ecosystem}; decided by version, not by runtime evidence` };
  }
  if (finding.verdict.status === 'not_affected') {
    return { ...base, ...empty, status: 'not_affected', justification: 'vulnerable_code_not_present', step: 'version_not_affected',
      impactStatement: `installed ${c.name} ${finding.version} is outside every affected range of ${finding.vuln.id} (${finding.affected.ecosystem}); the vulnerable version is not installed`,
      statusNotes: 'decided by version, not by runtime evidence' };
  }

  const key = product.key;
  const ownedBy = (file: string, signed: string | null): boolean => own.owners(key, file, signed).some((o) => samePackage(o, c.parsed));
  // candidates by owner name, computed once per product (a product may have loaded thousands of files)
  const loaded = (loadedByOwnerName(obs.loaded, own, key).get(c.parsed.name) ?? []).filter((l) => ownedBy(l.path, l.purl));
  let names: ReadonlySet<string> | undefined;
  const basenames = (): ReadonlySet<string> => (names ??= own.basenames(key, c));
  const cov = obs.coverage;
  const functions: FunctionStatus[] = finding.functions.map((fn) => {
    const nh = componentNodeHash(c, fn);
    const hits = obs.hits.filter((h) => {
      if (h.symbol !== fn.symbol) return false;
      if (nh !== undefined && h.nodeHash === nh) return true;
      if (fn.kind === 'go') return h.nodeHash === null;
      if (fn.kind !== 'native' || !fileMatches(fn.path, h.library)) return false;
      return ownedBy(h.library, obs.loaded.find((l) => l.path === h.library)?.purl ?? null);
    });
    const probes = obs.probes.filter((p) => {
      if (p.symbol !== fn.symbol) return false;
      if (nh !== undefined && p.nodeHash === nh) return true;
      if (fn.kind === 'go') return false;
      const file = probeFile(p.function);
      return fileMatches(fn.path, file) && basenames().has(path.basename(file));
    });
    return {
      fn, probes, hits, wholeWindow: probes.some((p) => cov.chunks > 0 && p.chunks >= cov.chunks),
      unprobeable: opts.unprobeable?.get(functionKey(fn)),
    };
  });
  const hits = functions.flatMap((f) => f.hits);
  const refs = hits.flatMap((h) => h.refs).sort((a, b) => (a.wallNs < b.wallNs ? -1 : a.wallNs > b.wallNs ? 1 : 0)).slice(0, 10);
  const window = describeWindow(cov);
  const shownLoaded = loaded.slice(0, 5);
  const fixTo = finding.verdict.fixed;
  const action = fixTo.length > 0
    ? `Upgrade ${c.name} to ${fixTo.join(' or ')} or later (installed: ${finding.version}).`
    : `No fixed version of ${c.name} is known for ${finding.vuln.id}; remove or isolate the component, or mitigate as the advisory describes.`;
  const common = { ...base, functions, loaded: shownLoaded, loadedCount: loaded.length, refs, capped: opts.unverified };

  if (opts.unverified === undefined && hits.length > 0) {
    const calls = hits.reduce((s, h) => s + h.records, 0n);
    const what = [...new Set(hits.map((h) => `${h.symbol} in ${h.library}`))].join(', ');
    const r = refs[0];
    return { ...common, status: 'affected', justification: undefined, step: 'function_executed', coverageComplete: false, coverageReasons: [],
      impactStatement: undefined, actionStatement: action,
      statusNotes: `vulnerable function executed: ${what} (${calls} function_call record(s)); first: ${r === undefined ? '?' : refText(r)}; ${window}` };
  }
  const allProbed = functions.length > 0 && functions.every((f) => f.probes.length > 0);
  if (opts.unverified === undefined && loaded.length > 0 && !allProbed) {
    const why = functions.length === 0 ? `${finding.vuln.id} names no affected functions`
      : `not probed: ${functions.filter((f) => f.probes.length === 0).map((f) => `${f.fn.symbol}${f.unprobeable ? ` (${f.unprobeable})` : ''}`).join(', ')}`;
    return { ...common, status: 'affected', justification: undefined, step: 'component_loaded', coverageComplete: false, coverageReasons: [],
      impactStatement: undefined, actionStatement: action,
      statusNotes: `component-level: ${c.name} was loaded (${loaded.length} file(s), e.g. ${loaded[0]!.path}), no function-level evidence (${why}); ${window}` };
  }

  // step 4: probed and never called, or never loaded
  const step: Step = loaded.length > 0 || hits.length > 0 ? 'probed_not_called' : 'not_loaded';
  const reasons = coverageGaps(cov, functions, step);
  const complete = reasons.length === 0;
  const observed = step === 'probed_not_called'
    ? `${c.name} was loaded; ${functions.map((f) => f.fn.symbol).join(', ')} probed, ${hits.length > 0 ? 'calls seen in unverified evidence' : 'never called'}`
    : `no file of ${c.name} was seen opened, executed or mapped${functions.length > 0 ? `; probed: ${functions.filter((f) => f.probes.length > 0).map((f) => f.fn.symbol).join(', ') || 'none'}` : ''}`;
  const notes = `${observed}; ${window}; coverage ${complete ? 'complete' : `incomplete: ${reasons.join('; ')}`}`;
  if (opts.unverified !== undefined) {
    return { ...common, status: 'under_investigation', justification: undefined, step, coverageComplete: false, coverageReasons: [...reasons, opts.unverified],
      impactStatement: undefined, actionStatement: undefined, statusNotes: `at most under_investigation: ${opts.unverified}; ${notes}` };
  }
  if (opts.notObservedAsNotAffected && complete) {
    return { ...common, status: 'not_affected', justification: 'vulnerable_code_not_in_execute_path', step, coverageComplete: true, coverageReasons: [],
      actionStatement: undefined, statusNotes: notes,
      impactStatement: `not observed in the execute path (--not-observed-as-not-affected): ${observed}, over ${window}, with complete coverage (probes active in all ${cov.chunks} chunk(s), nothing lost, no chain gaps). The code is present; this holds for the observed window only.` };
  }
  return { ...common, status: 'under_investigation', justification: undefined, step, coverageComplete: complete, coverageReasons: reasons,
    impactStatement: undefined, actionStatement: undefined,
    statusNotes: opts.notObservedAsNotAffected ? `kept under_investigation (coverage incomplete): ${notes}` : notes };
}

const byOwnerName = new WeakMap<readonly LoadedFile[], Map<string, LoadedFile[]>>();

/** loadedByOwnerName groups a product's loaded files by the names of their owning packages (memoized per list). */
function loadedByOwnerName(loaded: readonly LoadedFile[], own: Ownership, key: ProductKey): Map<string, LoadedFile[]> {
  let m = byOwnerName.get(loaded);
  if (m === undefined) {
    m = new Map();
    for (const l of loaded) {
      for (const name of new Set(own.owners(key, l.path, l.purl).map((o) => o.name))) {
        const list = m.get(name);
        if (list === undefined) m.set(name, [l]);
        else list.push(l);
      }
    }
    byOwnerName.set(loaded, m);
  }
  return m;
}

/** coverageGaps lists why the coverage does not support "not in the execute path". */
export function coverageGaps(cov: CoverageFacts, functions: readonly FunctionStatus[], step: Step): string[] {
  const out: string[] = [];
  if (cov.chunks === 0) out.push('no evidence chunks');
  if (cov.unverifiedChunks > 0) out.push(`${cov.unverifiedChunks} unverified chunk(s)`);
  for (const g of cov.gaps) out.push(`chain gap: ${g}`);
  const need = step === 'not_loaded' ? ['file_open', 'process_exec'] : ['function_call'];
  if (functions.length > 0 && step === 'not_loaded') need.push('function_call');
  for (const probe of need) {
    const p = cov.probes.find((x) => x.probe === probe);
    if (p === undefined || p.chunks === 0) out.push(`probe ${probe} not active`);
    else {
      if (p.chunks < cov.chunks) out.push(`probe ${probe} active in ${p.chunks} of ${cov.chunks} chunks`);
      if (p.lost > 0n) out.push(`drop ledger: ${p.lost} ${probe} record(s) lost`);
      for (const n of p.notObserved ?? []) out.push(`${probe} events not observed: ${n}`);
    }
  }
  if (step === 'probed_not_called' || (step === 'not_loaded' && functions.length > 0)) {
    for (const f of functions) {
      if (f.probes.length === 0) out.push(`${f.fn.symbol} not probed${f.unprobeable ? ` (${f.unprobeable})` : ''}`);
      else if (!f.wholeWindow) out.push(`${f.fn.symbol} probed in ${Math.max(...f.probes.map((p) => p.chunks))} of ${cov.chunks} chunks`);
    }
  }
  return out;
}

export function describeWindow(cov: CoverageFacts): string {
  if (cov.fromWallNs === null || cov.toWallNs === null) return 'no observation window';
  const secs = Number(cov.toWallNs - cov.fromWallNs) / 1e9;
  return `window ${isoNs(cov.fromWallNs)} to ${isoNs(cov.toWallNs)} (${secs.toFixed(1)} s, ${cov.chunks} chunk(s), ${cov.records} records, ${cov.lost} lost)`;
}

export function isoNs(ns: bigint): string {
  return new Date(Number(ns / 1_000_000n)).toISOString();
}

export function refText(r: EvidenceRef): string {
  return `chunk ${r.seq} (sha256:${r.chunkSha256.slice(0, 16)}…) line ${r.lineNo}, ts_ns ${r.tsNs}, pid ${r.pid} (${r.comm})${r.containerId ? `, container ${r.containerId}` : ''}`;
}
