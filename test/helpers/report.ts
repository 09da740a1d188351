import * as fs from 'node:fs';
import * as path from 'node:path';
import Ajv from 'ajv';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import type { CoverageFacts, EvidenceRef, FunctionHit, FunctionProbe, LoadedFile, Observations, ProductKey } from '../../src/report/observations';
import { productKeyString } from '../../src/report/observations';
import { parsePurl, type ParsedPurl } from '../../src/report/purl';
import type { SbomComponent } from '../../src/report/sbom';
import type { Ownership } from '../../src/report/verdict';

export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');

/**
 * fixtureObservations serves fixed aggregates: the verdict logic's input in unit tests
 * (the real backends are tested in test/e2e/report.e2e.test.ts on collected evidence).
 */
export function fixtureObservations(d: {
  coverage: CoverageFacts;
  loaded?: Record<string, LoadedFile[]>;
  hits?: Record<string, FunctionHit[]>;
  probes?: FunctionProbe[];
}): Observations {
  return {
    coverage: async () => d.coverage,
    products: async () => [],
    loadedFiles: async (p: ProductKey) => d.loaded?.[productKeyString(p)] ?? [],
    functionHits: async (p: ProductKey) => d.hits?.[productKeyString(p)] ?? [],
    functionProbes: async () => d.probes ?? [],
    activity: async () => [{ startWallNs: d.coverage.fromWallNs ?? 0n, counts: { file_open: 3, function_call: 1 } }],
  };
}

/** mapOwnership: path → purl, the same for every product. */
export function mapOwnership(owners: Record<string, string>): Ownership {
  const parsed = new Map<string, ParsedPurl>(Object.entries(owners).map(([p, u]) => [p, parsePurl(u)!]));
  return {
    owners: (_p, file, signed) => (signed !== null ? [parsePurl(signed)!] : parsed.has(file) ? [parsed.get(file)!] : []),
    basenames: (_p, c: SbomComponent) => new Set([...parsed].filter(([, u]) => u.name === c.parsed.name).map(([f]) => path.basename(f))),
  };
}

export function ref(seq: bigint, lineNo: number, pid: number, wallNs: bigint): EvidenceRef {
  return { chainId: '00000000-0000-4000-8000-000000000001', seq, chunkSha256: 'ab'.repeat(32), lineNo, tsNs: wallNs - 1_700_000_000_000_000_000n, wallNs, pid, comm: 'app', containerId: null, imageDigest: null };
}

/** openVexValidator compiles the vendored OpenVEX 0.2.0 schema (test/fixtures/schemas/README.md). */
export function openVexValidator(): (doc: unknown) => string[] {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  // ajv-formats-draft2019's iri rejects every purl (also the spec's own example): any scheme:... is an IRI here
  ajv.addFormat('iri', (s: string) => /^[a-z][a-z0-9+.-]*:/i.test(s));
  const schema = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'test', 'fixtures', 'schemas', 'openvex-0.2.0.schema.json'), 'utf8'));
  const validate = ajv.compile(schema);
  return (doc) => (validate(doc) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`));
}

/**
 * spdxValidator compiles the vendored official SPDX 2.3 JSON schema (draft-07, so ajv's default
 * class; test/fixtures/schemas/README.md). The schema has no `format` keywords, so the purl/`iri`
 * trap of the OpenVEX schema does not arise; strict mode makes ajv refuse anything it would ignore.
 */
export function spdxValidator(): (doc: unknown) => string[] {
  const ajv = new Ajv({ strict: true, allErrors: true });
  const schema = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'test', 'fixtures', 'schemas', 'spdx-2.3.schema.json'), 'utf8'));
  const validate = ajv.compile(schema);
  return (doc) => (validate(doc) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}${e.params && 'allowedValues' in e.params ? ` ${JSON.stringify(e.params['allowedValues'])}` : ''}`));
}

/** cycloneDxErrors validates with @cyclonedx/cyclonedx-library's strict JSON validator (1.6). */
export async function cycloneDxErrors(json: string): Promise<unknown> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const CDX = require('@cyclonedx/cyclonedx-library');
  return new CDX.Validation.JsonStrictValidator(CDX.Spec.Version.v1dot6).validate(json);
}

/** goVexRules applies go-vex's Statement.Validate() rules, stricter than the schema. */
export function goVexRules(doc: { statements: Array<Record<string, unknown>> }): string[] {
  const out: string[] = [];
  for (const s of doc.statements) {
    const has = (k: string): boolean => s[k] !== undefined;
    if (s['status'] === 'not_affected' && (!has('justification') && !has('impact_statement') || has('action_statement'))) out.push(`${s['@id']}: not_affected rules`);
    if (s['status'] === 'affected' && (!has('action_statement') || has('justification') || has('impact_statement'))) out.push(`${s['@id']}: affected rules`);
    if ((s['status'] === 'fixed' || s['status'] === 'under_investigation') && (has('justification') || has('impact_statement') || has('action_statement'))) out.push(`${s['@id']}: ${s['status']} rules`);
  }
  return out;
}
