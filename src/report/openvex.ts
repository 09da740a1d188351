import { createHash } from 'node:crypto';
import type { ReportModel } from './report';
import type { Verdict } from './verdict';

/**
 * OpenVEX 0.2.0 (https://github.com/openvex/spec). Rules kept beyond the JSON schema, as
 * go-vex's Statement.Validate() checks them: `affected` has an action_statement and no
 * justification/impact; `not_affected` has a justification and an impact_statement and no
 * action; `fixed` and `under_investigation` have none of the three. status_notes carry the
 * evidence and coverage. The document @id is a hash of the statements, so the same report
 * gives the same @id (and version 1: a changed content is a new document id).
 */
export const OPENVEX_CONTEXT = 'https://openvex.dev/ns/v0.2.0';

export function toOpenVex(m: ReportModel): string {
  const statements = new Map<string, Record<string, unknown>>();
  for (const p of m.products) {
    for (const v of p.verdicts) {
      const s = statement(v);
      statements.set(s['@id'] as string, s);
    }
  }
  const list = [...statements.values()].sort((a, b) => ((a['@id'] as string) < (b['@id'] as string) ? -1 : 1));
  const digest = sha256(JSON.stringify(list));
  const doc: Record<string, unknown> = {
    '@context': OPENVEX_CONTEXT,
    '@id': `urn:rtev:vex:${digest}`,
    author: 'rtev',
    role: 'runtime evidence analysis',
    timestamp: m.timestamp,
    version: 1,
    tooling: `rtev ${m.tool.version} (runtime evidence: signed function_call, file_open and process_exec records)`,
    statements: list,
  };
  return JSON.stringify(doc, null, 2) + '\n';
}

function statement(v: Verdict): Record<string, unknown> {
  const id = `urn:rtev:vex:statement:${sha256([v.vulnId, v.product.id, v.component.purl].join('\n'))}`;
  const vuln: Record<string, unknown> = { name: v.vulnId };
  const aliases = [...new Set(v.aliases.filter((a) => a !== v.vulnId))];
  if (aliases.length > 0) vuln['aliases'] = aliases;
  if (v.summary !== undefined) vuln['description'] = v.synthetic ? `[synthetic test data] ${v.summary}` : v.summary;
  const s: Record<string, unknown> = {
    '@id': id,
    vulnerability: vuln,
    products: [{ '@id': v.product.id, subcomponents: [{ '@id': v.component.purl }] }],
    status: v.status,
    status_notes: v.statusNotes,
  };
  if (v.status === 'not_affected') {
    s['justification'] = v.justification;
    if (v.impactStatement !== undefined) s['impact_statement'] = v.impactStatement;
  }
  if (v.status === 'affected') s['action_statement'] = v.actionStatement ?? 'No action statement provided';
  return s;
}

function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}
