import { createHash } from 'node:crypto';
import type { ReportModel } from './report';
import { productKeyString } from './observations';
import type { Verdict } from './verdict';

/**
 * CycloneDX 1.6 VEX/VDR. Built as plain JSON: the library's models lack evidence.occurrences
 * and callstack (it is used in tests to validate). Each product is a top-level component
 * (image: `container` with its pkg:oci purl; host: `operating-system`) holding its affected
 * packages as nested components; each verdict is one vulnerabilities[] entry whose `affects`
 * names the package's bom-ref. Runtime evidence sits on the package component
 * (evidence.identity/occurrences/callstack) and in `rtev:` properties (docs/reachability.md).
 */
const STATE: Record<Verdict['status'], string> = {
  fixed: 'resolved', affected: 'exploitable', under_investigation: 'in_triage', not_affected: 'not_affected',
};
const JUSTIFICATION: Record<string, string> = {
  vulnerable_code_not_present: 'code_not_present', vulnerable_code_not_in_execute_path: 'code_not_reachable',
};

export function toCycloneDx(m: ReportModel): string {
  const components: Record<string, unknown>[] = [];
  const vulnerabilities: Record<string, unknown>[] = [];
  for (const p of m.products) {
    const pref = productKeyString(p.product.key);
    const children = new Map<string, Record<string, unknown>>();
    for (const v of p.verdicts) {
      const cref = `${pref}|${v.component.ref}`;
      let comp = children.get(cref);
      if (comp === undefined) {
        comp = { type: 'library', 'bom-ref': cref, name: v.component.name || v.component.parsed.name, purl: v.component.purl };
        if (v.version) comp['version'] = v.version;
        children.set(cref, comp);
      }
      addEvidence(comp, v);
      const vref = `vuln|${pref}|${v.component.ref}|${v.vulnId}`;
      const analysis: Record<string, unknown> = { state: STATE[v.status], detail: detail(v) };
      if (v.justification !== undefined) analysis['justification'] = JUSTIFICATION[v.justification];
      if (v.status === 'affected' && v.fixedVersions.length > 0) analysis['response'] = ['update'];
      const entry: Record<string, unknown> = {
        'bom-ref': vref, id: v.vulnId, source: { name: 'OSV' },
        analysis,
        affects: [{ ref: cref, versions: [{ version: v.version, status: v.status === 'fixed' || v.status === 'not_affected' ? 'unaffected' : v.status === 'affected' ? 'affected' : 'unknown' }] }],
        properties: [
          { name: 'rtev:verdict:status', value: v.status },
          { name: 'rtev:verdict:step', value: v.step },
          { name: 'rtev:product', value: v.product.id },
          { name: 'rtev:coverage:complete', value: String(v.coverageComplete) },
          ...v.coverageReasons.map((r) => ({ name: 'rtev:coverage:gap', value: r })),
          ...v.refs.map((r) => ({ name: 'rtev:evidence:ref', value: `chain=${r.chainId} seq=${r.seq} chunk_sha256=${r.chunkSha256} line=${r.lineNo} ts_ns=${r.tsNs} pid=${r.pid}${r.containerId ? ` container=${r.containerId}` : ''}` })),
          ...(v.synthetic ? [{ name: 'rtev:vulnerability:synthetic', value: 'true' }] : []),
        ],
      };
      if (v.summary !== undefined) entry['description'] = v.summary;
      if (v.fixedVersions.length > 0) entry['recommendation'] = `Upgrade ${v.component.name} to ${v.fixedVersions.join(' or ')} or later.`;
      vulnerabilities.push(entry);
    }
    const product: Record<string, unknown> = p.product.key.kind === 'image'
      ? { type: 'container', 'bom-ref': pref, name: p.product.name, version: p.product.key.digest, purl: p.product.id }
      : { type: 'operating-system', 'bom-ref': pref, name: p.product.name, properties: [{ name: 'rtev:product:id', value: p.product.id }] };
    product['components'] = [...children.values()];
    components.push(product);
  }
  const body = { components, vulnerabilities };
  const digest = createHash('sha256').update(JSON.stringify(body)).digest('hex');
  const uuid = `${digest.slice(0, 8)}-${digest.slice(8, 12)}-5${digest.slice(13, 16)}-${((parseInt(digest[16]!, 16) & 3) | 8).toString(16)}${digest.slice(17, 20)}-${digest.slice(20, 32)}`;
  const bom = {
    bomFormat: 'CycloneDX', specVersion: '1.6', serialNumber: `urn:uuid:${uuid}`, version: 1,
    metadata: {
      timestamp: m.timestamp,
      tools: { components: [{ type: 'application', name: 'rtev', version: m.tool.version }] },
      properties: [
        { name: 'rtev:coverage:window', value: m.coverage.fromWallNs === null ? 'none' : `${iso(m.coverage.fromWallNs)}/${iso(m.coverage.toWallNs!)}` },
        { name: 'rtev:coverage:chunks', value: String(m.coverage.chunks) },
        { name: 'rtev:coverage:lost', value: String(m.coverage.lost) },
        { name: 'rtev:coverage:gaps', value: String(m.coverage.gaps.length) },
        { name: 'rtev:option:not-observed-as-not-affected', value: String(m.options.notObservedAsNotAffected) },
      ],
    },
    ...body,
  };
  return JSON.stringify(bom, null, 2) + '\n';
}

function detail(v: Verdict): string {
  return [v.statusNotes, v.impactStatement, v.actionStatement].filter((x) => x !== undefined).join(' | ');
}

function addEvidence(comp: Record<string, unknown>, v: Verdict): void {
  const ev = (comp['evidence'] ?? {}) as Record<string, unknown>;
  const occ = (ev['occurrences'] ?? []) as Record<string, unknown>[];
  const seen = new Set(occ.map((o) => `${o['location']}\0${o['symbol'] ?? ''}`));
  const props = (comp['properties'] ?? []) as Array<{ name: string; value: string }>;
  for (const f of v.functions) {
    for (const h of f.hits) {
      const k = `${h.library}\0${h.symbol}`;
      if (seen.has(k)) continue;
      seen.add(k);
      occ.push({ location: h.library, symbol: h.symbol, additionalContext: `${h.records} function_call record(s), ${iso(h.firstWallNs)} to ${iso(h.lastWallNs)}` });
      if (ev['callstack'] === undefined) {
        ev['callstack'] = { frames: [{ module: h.library, function: h.symbol, fullFilename: h.library }] };
        if (h.stack.length > 1) props.push({ name: 'rtev:runtime:stack', value: h.stack.join(' ') });
      }
    }
  }
  for (const l of v.loaded) {
    const k = `${l.path}\0`;
    if (seen.has(k)) continue;
    seen.add(k);
    occ.push({ location: l.path, additionalContext: `loaded: ${l.records} record(s), ${iso(l.firstWallNs)} to ${iso(l.lastWallNs)}` });
  }
  if (occ.length > 0) {
    ev['occurrences'] = occ;
    ev['identity'] = [{ field: 'purl', confidence: 1, concludedValue: v.component.purl, methods: [{ technique: f(v) ? 'instrumentation' : 'dynamic-analysis', confidence: 1, value: 'rtev runtime evidence (eBPF), signed chunks' }] }];
    comp['evidence'] = ev;
  }
  if (!props.some((p) => p.name === 'rtev:runtime:loaded')) {
    props.push({ name: 'rtev:runtime:loaded', value: String(v.loadedCount > 0 || v.refs.length > 0) });
    if (v.loaded[0] !== undefined) props.push({ name: 'rtev:runtime:first_seen', value: iso(v.loaded.reduce((m, l) => (l.firstWallNs < m ? l.firstWallNs : m), v.loaded[0].firstWallNs)) });
  }
  comp['properties'] = props;
}

function f(v: Verdict): boolean {
  return v.functions.some((x) => x.hits.length > 0);
}

function iso(ns: bigint): string {
  return new Date(Number(ns / 1_000_000n)).toISOString();
}
