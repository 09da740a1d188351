import { InputError, type Skip } from './input';
import { readBoundedText } from './osv';
import { parsePurl, type ParsedPurl } from './purl';

/**
 * SBOM readers: CycloneDX JSON 1.4-1.6 and SPDX JSON 2.2/2.3. Both give the same
 * SbomComponent list (nested CycloneDX components flattened); components without a usable
 * purl are counted skips. docs/reachability.md, "Inputs".
 */

export const MAX_SBOM_BYTES = 256 * 1024 * 1024;
export const MAX_COMPONENTS = 1_000_000;

export interface SbomComponent {
  /** CycloneDX bom-ref or SPDX SPDXID; a generated `rtev-component-N` when the SBOM has none */
  ref: string;
  name: string;
  version: string | undefined;
  purl: string;
  parsed: ParsedPurl;
  /** files the SBOM says the component contains (SPDX CONTAINS / hasFiles), absolute paths */
  files: string[];
}

export interface Sbom {
  format: 'cyclonedx' | 'spdx';
  specVersion: string;
  /** CycloneDX serialNumber (urn:uuid:...), for BOM-Links */
  serialNumber: string | undefined;
  bomVersion: number | undefined;
  /** what the SBOM describes (CycloneDX metadata.component / SPDX DESCRIBES), if it names one */
  subject: { name: string; purl: string | undefined } | undefined;
  components: SbomComponent[];
  skipped: Skip[];
  source: string;
}

export function loadSbomFile(file: string): Sbom {
  return parseSbomText(readBoundedText(file, MAX_SBOM_BYTES, '--sbom'), file);
}

/** parseSbomText detects the format and parses (pure). */
export function parseSbomText(text: string, source: string): Sbom {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new InputError(`--sbom ${source}: not JSON (${(err as Error).message})`);
  }
  if (!isObject(doc)) throw new InputError(`--sbom ${source}: not a JSON object`);
  if (doc['bomFormat'] === 'CycloneDX') return parseCycloneDx(doc, source);
  if (typeof doc['spdxVersion'] === 'string') return parseSpdx(doc, source);
  throw new InputError(`--sbom ${source}: neither CycloneDX JSON (bomFormat) nor SPDX JSON (spdxVersion)`, 'give a CycloneDX 1.4-1.6 or SPDX 2.2/2.3 JSON file');
}

function parseCycloneDx(doc: Record<string, unknown>, source: string): Sbom {
  const spec = String(doc['specVersion'] ?? '');
  if (!['1.4', '1.5', '1.6'].includes(spec)) throw new InputError(`--sbom ${source}: CycloneDX specVersion '${spec}' (rtev reads 1.4, 1.5 and 1.6)`);
  const skipped: Skip[] = [];
  const components: SbomComponent[] = [];
  const refs = new Set<string>();
  let gen = 0;
  const visit = (list: unknown, where: string, depth: number): void => {
    if (!Array.isArray(list)) return;
    if (depth > 32) {
      skipped.push({ what: where, reason: 'components nested deeper than 32 levels' });
      return;
    }
    list.forEach((c, i) => {
      const w = `${where}[${i}]`;
      if (components.length >= MAX_COMPONENTS) throw new InputError(`--sbom ${source}: more than ${MAX_COMPONENTS} components`);
      if (!isObject(c)) {
        skipped.push({ what: w, reason: 'not an object' });
        return;
      }
      const name = typeof c['name'] === 'string' ? c['name'] : '';
      const label = `${w} ${oneLine(name) || '(no name)'}`;
      const purl = c['purl'];
      if (typeof purl !== 'string' || purl === '') skipped.push({ what: label, reason: 'no purl' });
      else {
        const parsed = parsePurl(purl);
        if (parsed === undefined) skipped.push({ what: label, reason: `invalid purl '${oneLine(purl)}'` });
        else {
          let ref = typeof c['bom-ref'] === 'string' && c['bom-ref'] !== '' ? c['bom-ref'] : `rtev-component-${++gen}`;
          if (refs.has(ref)) ref = `${ref}#rtev-${++gen}`;
          refs.add(ref);
          components.push({ ref, name, version: typeof c['version'] === 'string' ? c['version'] : parsed.version, purl, parsed, files: cdxFiles(c) });
        }
      }
      visit(c['components'], `${w}.components`, depth + 1);
    });
  };
  visit(doc['components'], 'components', 0);
  const meta = isObject(doc['metadata']) && isObject(doc['metadata']['component']) ? doc['metadata']['component'] : undefined;
  return {
    format: 'cyclonedx', specVersion: spec,
    serialNumber: typeof doc['serialNumber'] === 'string' ? doc['serialNumber'] : undefined,
    bomVersion: typeof doc['version'] === 'number' ? doc['version'] : undefined,
    subject: meta === undefined ? undefined : { name: String(meta['name'] ?? ''), purl: typeof meta['purl'] === 'string' ? meta['purl'] : undefined },
    components, skipped, source,
  };
}

/** cdxFiles reads evidence.occurrences locations and rtev:file properties (written by `rtev sbom`). */
function cdxFiles(c: Record<string, unknown>): string[] {
  const out: string[] = [];
  const ev = c['evidence'];
  if (isObject(ev) && Array.isArray(ev['occurrences'])) {
    for (const o of ev['occurrences']) if (isObject(o) && typeof o['location'] === 'string') out.push(absPath(o['location']));
  }
  return out;
}

function parseSpdx(doc: Record<string, unknown>, source: string): Sbom {
  const spec = String(doc['spdxVersion']);
  if (spec !== 'SPDX-2.2' && spec !== 'SPDX-2.3') throw new InputError(`--sbom ${source}: ${oneLine(spec)} (rtev reads SPDX-2.2 and SPDX-2.3 JSON)`);
  const skipped: Skip[] = [];
  const list = (key: string): unknown[] => {
    const v = doc[key];
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw new InputError(`--sbom ${source}: "${key}" is not an array (SPDX ${spec.slice(5)} JSON)`);
    if (v.length > MAX_COMPONENTS) throw new InputError(`--sbom ${source}: more than ${MAX_COMPONENTS} ${key}`);
    return v;
  };
  const files = new Map<string, string>();
  list('files').forEach((f, i) => {
    if (isObject(f) && typeof f['SPDXID'] === 'string' && typeof f['fileName'] === 'string') files.set(f['SPDXID'], absPath(f['fileName']));
    else skipped.push({ what: `files[${i}]`, reason: 'not an object with a string SPDXID and fileName' });
  });
  const contains = new Map<string, string[]>();
  let describes: string | undefined;
  list('relationships').forEach((r, i) => {
    const a = isObject(r) ? r['spdxElementId'] : undefined;
    const b = isObject(r) ? r['relatedSpdxElement'] : undefined;
    if (!isObject(r) || typeof a !== 'string' || typeof b !== 'string' || typeof r['relationshipType'] !== 'string') {
      skipped.push({ what: `relationships[${i}]`, reason: 'not an object with string spdxElementId, relationshipType and relatedSpdxElement' });
      return;
    }
    // package CONTAINS file, or file CONTAINS package (an executable holding a statically linked module)
    if (r['relationshipType'] === 'CONTAINS' && files.has(b)) contains.set(a, [...(contains.get(a) ?? []), files.get(b)!]);
    else if (r['relationshipType'] === 'CONTAINS' && files.has(a)) contains.set(b, [...(contains.get(b) ?? []), files.get(a)!]);
    if (r['relationshipType'] === 'DESCRIBES' && a === 'SPDXRef-DOCUMENT') describes ??= b;
  });
  // SPDX 2.2 documents often name the subject in documentDescribes instead of a relationship
  if (describes === undefined && Array.isArray(doc['documentDescribes']) && typeof doc['documentDescribes'][0] === 'string') describes = doc['documentDescribes'][0];
  const components: SbomComponent[] = [];
  const ids = new Set<string>();
  let subject: Sbom['subject'];
  list('packages').forEach((p, i) => {
    const w = `packages[${i}]`;
    if (!isObject(p) || typeof p['SPDXID'] !== 'string' || p['SPDXID'] === '') {
      skipped.push({ what: w, reason: 'not an object with an SPDXID' });
      return;
    }
    const spdxId = p['SPDXID'];
    const name = typeof p['name'] === 'string' ? p['name'] : '';
    const label = `${w} ${oneLine(name || spdxId)}`;
    if (ids.has(spdxId)) {
      skipped.push({ what: label, reason: `duplicate SPDXID '${oneLine(spdxId)}'` });
      return;
    }
    ids.add(spdxId);
    const refs = Array.isArray(p['externalRefs']) ? p['externalRefs'] : [];
    // PACKAGE_MANAGER: the SPDX 2.2 tag-value spelling, found in JSON written by older tools
    const purlRef = refs.find((r) => isObject(r) && (r['referenceCategory'] === 'PACKAGE-MANAGER' || r['referenceCategory'] === 'PACKAGE_MANAGER') && r['referenceType'] === 'purl');
    const purl = isObject(purlRef) && typeof purlRef['referenceLocator'] === 'string' ? purlRef['referenceLocator'] : undefined;
    // the described package is the product (like CycloneDX metadata.component), not one of its components
    if (spdxId === describes) {
      subject = { name, purl };
      return;
    }
    if (purl === undefined) {
      skipped.push({ what: label, reason: 'no purl external reference' });
      return;
    }
    const parsed = parsePurl(purl);
    if (parsed === undefined) {
      skipped.push({ what: label, reason: `invalid purl '${oneLine(purl)}'` });
      return;
    }
    const own = [...(contains.get(spdxId) ?? [])];
    if (Array.isArray(p['hasFiles'])) for (const id of p['hasFiles']) if (typeof id === 'string' && files.has(id)) own.push(files.get(id)!);
    components.push({
      ref: spdxId, name, version: typeof p['versionInfo'] === 'string' ? p['versionInfo'] : parsed.version, purl, parsed, files: [...new Set(own)],
    });
  });
  return { format: 'spdx', specVersion: spec.slice('SPDX-'.length), serialNumber: undefined, bomVersion: undefined, subject, components, skipped, source };
}

/** oneLine makes untrusted text safe for a one-line message: control characters escaped, at most 200 characters. */
export function oneLine(s: string): string {
  // eslint-disable-next-line no-control-regex
  const t = s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return t.length > 200 ? `${t.slice(0, 200)}…` : t;
}

/** absPath strips SPDX's `./` (or syft's missing `/`) so SBOM file names compare as absolute paths. */
export function absPath(name: string): string {
  const s = name.replace(/^\.\//, '');
  return s.startsWith('/') ? s : '/' + s;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
