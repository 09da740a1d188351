import { createHash } from 'node:crypto';
import { DpkgIndex, parseDpkgStatus } from '../packages/dpkg';
import type { RootFs } from '../packages/host/root';
import { parseOsRelease } from '../packages/os-release';
import { parsePackageJson } from '../packages/npm';
import { golangPurl, npmPurl, pypiPurl } from '../packages/purl';
import { parseWheelMetadata } from '../packages/python';
import { ElfFile } from '../symbolize/elf';
import { readGoBuildInfo } from '../symbolize/go';

/**
 * `rtev sbom`: the packages of one root (the host, or an image's layers) from its package
 * databases, through the same readers as the collector's attribution (src/packages/): dpkg
 * status, Python dist-info METADATA, npm package.json, Go build info of executables. Written
 * as CycloneDX 1.6 or SPDX 2.3 JSON.
 */

export interface GenComponent {
  name: string;
  version: string;
  purl: string;
  kind: 'deb' | 'python' | 'npm' | 'go';
  /** files that hold the component and that plan/report need (Go executables); empty otherwise */
  files: string[];
}

export interface GenSbom {
  subject: { name: string; purl?: string; kind: 'host' | 'image' };
  components: GenComponent[];
  notes: string[];
  /** sha256 (hex) of the files components name (Go executables), for SPDX file elements */
  fileSha256?: Record<string, string>;
}

/** Files larger than this are not hashed (SPDX then names them in a package comment only). */
const MAX_HASHED_FILE = 1 << 30;

const MAX_STATUS = 64 << 20;
const MAX_LIST = 16 << 20;
const PY_DIRS = ['/usr/lib/python3/dist-packages', '/usr/local/lib'];
const NPM_DIRS = ['/usr/lib/node_modules', '/usr/local/lib/node_modules'];
const BIN_DIRS = ['/usr/bin', '/usr/sbin', '/usr/local/bin', '/usr/local/sbin', '/usr/libexec'];
const MAX_BINARIES = 5000;

export async function generateSbom(root: RootFs, subject: GenSbom['subject'], extraBinaries: readonly string[] = []): Promise<GenSbom> {
  const comps = new Map<string, GenComponent>();
  const notes: string[] = [];
  const fileSha256: Record<string, string> = {};
  const add = (c: GenComponent): void => {
    const prev = comps.get(c.purl);
    if (prev === undefined) comps.set(c.purl, c);
    else for (const f of c.files) if (!prev.files.includes(f)) prev.files.push(f);
  };
  // dpkg
  const statusBuf = await root.readFile('/var/lib/dpkg/status', MAX_STATUS);
  const osBuf = (await root.readFile('/etc/os-release', 65536)) ?? (await root.readFile('/usr/lib/os-release', 65536));
  const os = parseOsRelease(osBuf?.toString('utf8') ?? '');
  let dpkg: DpkgIndex | undefined;
  if (statusBuf !== undefined) {
    const status = parseDpkgStatus(statusBuf.toString('utf8'));
    if (status.malformed > 0) notes.push(`dpkg: ${status.malformed} malformed stanza(s) skipped`);
    dpkg = new DpkgIndex(status, os);
    if (!dpkg.hasDistro) notes.push('dpkg: no /etc/os-release ID: deb packages have no purl and are left out');
    for (const p of status.packages) {
      const purl = dpkg.purlOf(p);
      if (purl !== undefined) add({ name: p.name, version: p.version, purl, kind: 'deb', files: [] });
    }
    for (const f of (await root.readdir('/var/lib/dpkg/info')) ?? []) {
      if (!f.endsWith('.list')) continue;
      const text = await root.readFile(`/var/lib/dpkg/info/${f}`, MAX_LIST);
      if (text !== undefined) dpkg.addList(f.slice(0, -5), text.toString('utf8'));
    }
  } else notes.push('no dpkg database (/var/lib/dpkg/status)');
  // Python: *.dist-info/METADATA and *.egg-info/PKG-INFO in dist-packages and site-packages
  for (const base of PY_DIRS) {
    for (const dir of await pythonDirs(root, base)) {
      for (const e of (await root.readdir(dir)) ?? []) {
        const meta = e.endsWith('.dist-info') ? 'METADATA' : e.endsWith('.egg-info') ? 'PKG-INFO' : undefined;
        if (meta === undefined) continue;
        const text = await root.readFile(`${dir}/${e}/${meta}`, 1 << 20).catch(() => undefined);
        const m = text === undefined ? {} : parseWheelMetadata(text.toString('utf8'));
        if (m.name === undefined || m.version === undefined) continue;
        add({ name: m.name, version: m.version, purl: pypiPurl(m.name, m.version), kind: 'python', files: [] });
      }
    }
  }
  // npm: global node_modules, scoped packages, one nested level
  for (const base of NPM_DIRS) await npmDir(root, base, 0, add);
  // Go build info of executables (bounded), and of the files given
  const bins: string[] = [...extraBinaries];
  for (const d of BIN_DIRS) for (const e of ((await root.readdir(d)) ?? []).sort()) if (bins.length < MAX_BINARIES) bins.push(`${d}/${e}`);
  if (bins.length >= MAX_BINARIES) notes.push(`go: only the first ${MAX_BINARIES} executables were read for build info`);
  for (const b of bins) {
    const src = await root.open(b).catch(() => undefined);
    if (src === undefined) continue;
    try {
      if (src.size < 64 || src.read(0, 4).readUInt32BE(0) !== 0x7f454c46) continue;
      const info = readGoBuildInfo(ElfFile.parse(src));
      if (info === undefined) continue;
      if (src.size <= MAX_HASHED_FILE) {
        const h = createHash('sha256');
        for (let off = 0; off < src.size; off += 1 << 20) h.update(src.read(off, Math.min(1 << 20, src.size - off)));
        fileSha256[b] = h.digest('hex');
      }
      const v = /^go(\d+(?:\.\d+)*)/.exec(info.goVersion)?.[1];
      if (v !== undefined) add({ name: 'stdlib', version: `v${v}`, purl: golangPurl('stdlib', `v${v}`), kind: 'go', files: [b] });
      for (const m of [...(info.main !== undefined && info.main.version !== '(devel)' ? [info.main] : []), ...info.deps]) {
        add({ name: m.path, version: m.version, purl: golangPurl(m.path, m.version), kind: 'go', files: [b] });
      }
    } catch {
      // not an ELF file we can read: no build info
    } finally {
      src.close();
    }
  }
  const components = [...comps.values()].sort((a, b) => (a.purl < b.purl ? -1 : a.purl > b.purl ? 1 : 0));
  return { subject, components, notes, fileSha256 };
}

async function pythonDirs(root: RootFs, base: string): Promise<string[]> {
  if (base === '/usr/lib/python3/dist-packages') return [base];
  const out: string[] = [];
  for (const e of (await root.readdir(base)) ?? []) if (/^python3\.\d+$/.test(e)) for (const s of ['site-packages', 'dist-packages']) out.push(`${base}/${e}/${s}`);
  return out;
}

async function npmDir(root: RootFs, dir: string, depth: number, add: (c: GenComponent) => void): Promise<void> {
  if (depth > 2) return;
  for (const e of (await root.readdir(dir)) ?? []) {
    if (e.startsWith('.')) continue;
    if (e.startsWith('@')) {
      for (const s of (await root.readdir(`${dir}/${e}`)) ?? []) await npmPackage(root, `${dir}/${e}/${s}`, depth, add);
    } else await npmPackage(root, `${dir}/${e}`, depth, add);
  }
}

async function npmPackage(root: RootFs, dir: string, depth: number, add: (c: GenComponent) => void): Promise<void> {
  const text = await root.readFile(`${dir}/package.json`, 1 << 20).catch(() => undefined);
  const p = text === undefined ? undefined : parsePackageJson(text.toString('utf8'));
  if (p !== undefined) add({ name: p.name, version: p.version, purl: npmPurl(p.name, p.version), kind: 'npm', files: [] });
  await npmDir(root, `${dir}/node_modules`, depth + 1, add);
}

/** toCycloneDxSbom writes CycloneDX 1.6 JSON; Go executables are evidence.occurrences of their modules. */
export function toCycloneDxSbom(s: GenSbom, tool: { version: string }, now: Date): string {
  const components = s.components.map((c, i) => {
    const o: Record<string, unknown> = { type: 'library', 'bom-ref': `c${i + 1}`, name: c.name, version: c.version, purl: c.purl,
      properties: [{ name: 'rtev:package:source', value: c.kind }] };
    if (c.files.length > 0) o['evidence'] = { occurrences: c.files.map((f) => ({ location: f })) };
    return o;
  });
  const digest = createHash('sha256').update(JSON.stringify([s.subject, components])).digest('hex');
  const subject: Record<string, unknown> = { type: s.subject.kind === 'image' ? 'container' : 'operating-system', 'bom-ref': 'subject', name: s.subject.name };
  if (s.subject.purl !== undefined) subject['purl'] = s.subject.purl;
  const bom = {
    bomFormat: 'CycloneDX', specVersion: '1.6', serialNumber: `urn:uuid:${uuidOf(digest)}`, version: 1,
    metadata: { timestamp: now.toISOString(), tools: { components: [{ type: 'application', name: 'rtev', version: tool.version }] }, component: subject,
      properties: s.notes.map((n) => ({ name: 'rtev:sbom:note', value: n })) },
    components,
    dependencies: [{ ref: 'subject', dependsOn: components.map((c) => c['bom-ref'] as string) }],
  };
  return JSON.stringify(bom, null, 2) + '\n';
}

/**
 * toSpdxSbom writes SPDX 2.3 JSON (valid against the official schema, test/unit/report-spdx.test.ts):
 * one package per component with its purl, the subject DESCRIBED by the document and CONTAINing
 * every package; the executables a component is built into (Go) as file elements with their
 * SHA256 that CONTAIN the package (what `rtev plan`/`report` read back as the component's files).
 */
export function toSpdxSbom(s: GenSbom, tool: { version: string }, now: Date): string {
  const id = (i: number): string => `SPDXRef-Package-${i + 1}`;
  const digest = createHash('sha256').update(JSON.stringify([s.subject, s.components.map((c) => c.purl)])).digest('hex');
  const subjectPkg: Record<string, unknown> = { SPDXID: 'SPDXRef-Subject', name: s.subject.name, downloadLocation: 'NOASSERTION', filesAnalyzed: false,
    primaryPackagePurpose: s.subject.kind === 'image' ? 'CONTAINER' : 'OPERATING_SYSTEM' };
  if (s.subject.purl !== undefined) subjectPkg['externalRefs'] = [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: s.subject.purl }];
  const fileIds = new Map<string, string>();
  const files: Record<string, unknown>[] = [];
  for (const c of s.components) {
    for (const f of c.files) {
      const sha = s.fileSha256?.[f];
      if (sha === undefined || fileIds.has(f)) continue;
      const fid = `SPDXRef-File-${fileIds.size + 1}`;
      fileIds.set(f, fid);
      files.push({ SPDXID: fid, fileName: f, checksums: [{ algorithm: 'SHA256', checksumValue: sha }], fileTypes: ['BINARY'] });
    }
  }
  const contains: Record<string, unknown>[] = [];
  const packages = s.components.map((c, i) => {
    const unhashed = c.files.filter((f) => !fileIds.has(f));
    // the executable CONTAINS the (statically linked) module; the package lists no files of its own
    for (const f of c.files) if (fileIds.has(f)) contains.push({ spdxElementId: fileIds.get(f)!, relationshipType: 'CONTAINS', relatedSpdxElement: id(i) });
    return {
      SPDXID: id(i), name: c.name, versionInfo: c.version, downloadLocation: 'NOASSERTION',
      filesAnalyzed: false, primaryPackagePurpose: 'LIBRARY',
      externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: c.purl }],
      ...(unhashed.length > 0 ? { comment: `found in: ${unhashed.slice(0, 20).join(', ')}` } : {}),
    };
  });
  const doc = {
    spdxVersion: 'SPDX-2.3', dataLicense: 'CC0-1.0', SPDXID: 'SPDXRef-DOCUMENT', name: `rtev sbom ${s.subject.name}`,
    documentNamespace: `https://rtev.invalid/spdx/${digest}`,
    creationInfo: { created: now.toISOString().replace(/\.\d{3}Z$/, 'Z'), creators: [`Tool: rtev-${tool.version}`] },
    packages: [subjectPkg, ...packages],
    ...(files.length > 0 ? { files } : {}),
    relationships: [
      { spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: 'SPDXRef-Subject' },
      ...s.components.map((_c, i) => ({ spdxElementId: 'SPDXRef-Subject', relationshipType: 'CONTAINS', relatedSpdxElement: id(i) })),
      ...contains,
    ],
  };
  return JSON.stringify(doc, null, 2) + '\n';
}

function uuidOf(hex: string): string {
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${((parseInt(hex[16]!, 16) & 3) | 8).toString(16)}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

