import { statusCounts, type ReportModel } from './report';
import { describeWindow } from './verdict';

/** toTable renders the terminal view: the coverage line, one row per verdict, the counts, the skips. */
export function toTable(m: ReportModel, maxSkips = 20): string {
  const out: string[] = [];
  const cov = m.coverage;
  out.push(`coverage: ${describeWindow(cov)}; gaps ${cov.gaps.length}${cov.unverifiedChunks > 0 ? `; ${cov.unverifiedChunks} UNVERIFIED chunk(s)` : ''}`);
  for (const p of cov.probes) out.push(`  probe ${p.probe}: ${p.chunks}/${cov.chunks} chunks, ${p.lost} lost`);
  for (const l of cov.retention ?? []) out.push(`  ${l}`);
  for (const g of cov.gaps.slice(0, 10)) out.push(`  gap: ${g}`);
  if (m.options.unverified !== undefined) out.push(`  ${m.options.unverified}`);
  for (const p of m.products) {
    out.push('');
    out.push(`${p.product.name}  ${p.product.id}  (${p.loadedFiles} files seen, ${p.functionHits} function hit groups)`);
    const rows = p.verdicts.map((v) => [v.vulnId + (v.synthetic ? '*' : ''), v.component.name, v.version, v.status + (v.justification ? `/${v.justification}` : ''), v.step, evidence(v)]);
    const head = ['VULNERABILITY', 'COMPONENT', 'VERSION', 'STATUS', 'STEP', 'EVIDENCE'];
    const widths = head.map((h, i) => Math.min(48, Math.max(h.length, ...rows.map((r) => r[i]!.length))));
    const fmt = (r: string[]): string => r.map((c, i) => (i === r.length - 1 ? c : clip(c, widths[i]!).padEnd(widths[i]!))).join('  ');
    out.push('  ' + fmt(head));
    for (const r of rows) out.push('  ' + fmt(r));
    if (rows.length === 0) out.push('  (no SBOM component matches any advisory)');
  }
  const c = statusCounts(m);
  out.push('');
  out.push(`verdicts: affected ${c['affected']}, not_affected ${c['not_affected']}, fixed ${c['fixed']}, under_investigation ${c['under_investigation']}`);
  if (m.products.some((p) => p.verdicts.some((v) => v.synthetic))) out.push('* synthetic test advisory (database_specific.synthetic)');
  if (m.skipped.length > 0) {
    out.push(`skipped ${m.skipped.length} input element(s):`);
    for (const s of m.skipped.slice(0, maxSkips)) out.push(`  ${s.what}: ${s.reason}`);
    if (m.skipped.length > maxSkips) out.push(`  … ${m.skipped.length - maxSkips} more (--format json lists all)`);
  }
  return out.join('\n') + '\n';
}

function evidence(v: ReportModel['products'][number]['verdicts'][number]): string {
  if (v.step === 'function_executed') {
    const r = v.refs[0];
    const calls = v.functions.reduce((s, f) => s + f.hits.reduce((t, h) => t + h.records, 0n), 0n);
    return `${calls} call record(s)${r ? `, chunk ${r.seq} line ${r.lineNo} pid ${r.pid}` : ''}`;
  }
  if (v.step === 'component_loaded') return `${v.loadedCount} file(s) loaded, e.g. ${v.loaded[0]?.path ?? '?'}`;
  if (v.step === 'probed_not_called') return `probed, 0 calls; coverage ${v.coverageComplete ? 'complete' : 'incomplete'}`;
  if (v.step === 'not_loaded') return `not loaded; coverage ${v.coverageComplete ? 'complete' : 'incomplete'}`;
  return 'by version';
}

function clip(s: string, w: number): string {
  return s.length <= w ? s : s.slice(0, w - 1) + '…';
}
