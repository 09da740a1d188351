import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { DirRoot } from '../../src/packages/host/root';
import { generateSbom, toCycloneDxSbom, toSpdxSbom } from '../../src/report/sbom-gen';
import { loadSbomFile, MAX_SBOM_BYTES, parseSbomText } from '../../src/report/sbom';
import { cycloneDxErrors, REPO_ROOT, spdxValidator } from '../helpers/report';

/**
 * SPDX 2.3: `rtev sbom --format spdx` output against the official SPDX 2.3 JSON schema
 * (vendored, test/fixtures/schemas/README.md), and the SPDX 2.2/2.3 reader on bad input:
 * each problem is a one-line error naming the file, or a counted skip naming the element.
 */
const FIXTURE = path.join(REPO_ROOT, 'test', 'fixtures', 'packages', 'root');
const NOW = new Date('2026-12-01T10:00:00.123Z');

test('rtev sbom --format spdx: the fixture root (dpkg, Python) as host and as image validates against the SPDX 2.3 schema and reads back', async () => {
  const validate = spdxValidator();
  const gen = await generateSbom(new DirRoot('host', 'fixture', FIXTURE), { name: 'fixture-host', kind: 'host' });
  assert.ok(gen.components.length >= 3, `components from the fixture's package databases: ${gen.components.map((c) => c.purl).join(' ')}`);
  const kinds = new Set(gen.components.map((c) => c.kind));
  for (const k of ['deb', 'python']) assert.ok(kinds.has(k as never), `a ${k} component`);
  const image = { ...gen, subject: { name: 'app', kind: 'image' as const, purl: 'pkg:oci/app@sha256:' + 'ab'.repeat(32) + '?repository_url=localhost%2Fapp&tag=1' } };
  // a Go executable's module carries its file; an epoch version; a purl with qualifiers
  image.components = [...image.components, { name: 'golang.org/x/text', version: 'v0.3.7', purl: 'pkg:golang/golang.org/x/text@v0.3.7', kind: 'go', files: ['/usr/bin/app'] },
    { name: 'stdlib', version: 'v1.19.8', purl: 'pkg:golang/stdlib@v1.19.8', kind: 'go', files: ['/usr/bin/app', '/usr/bin/huge'] }];
  image.fileSha256 = { '/usr/bin/app': 'ef'.repeat(32) };
  for (const s of [gen, image]) {
    const text = toSpdxSbom(s, { version: '0.0.0-test' }, NOW);
    const doc = JSON.parse(text);
    assert.deepEqual(validate(doc), [], `${s.subject.kind}: schema errors`);
    assert.equal(doc.spdxVersion, 'SPDX-2.3');
    assert.match(doc.creationInfo.created, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'SPDX dates have no fraction');
    // what rtev writes, rtev reads back: the same purls, the subject by DESCRIBES
    const back = parseSbomText(text, 'gen.spdx.json');
    assert.deepEqual(back.skipped, []);
    assert.deepEqual(back.components.map((c) => c.purl).sort(), s.components.map((c) => c.purl).sort());
    // a Go executable is a file element (SHA256) that CONTAINS the module: read back as the component's file
    for (const c of s.components.filter((x) => x.kind === 'go')) {
      assert.deepEqual(back.components.find((b) => b.purl === c.purl)!.files, ['/usr/bin/app'], c.purl);
    }
    assert.equal(back.subject?.name, s.subject.name);
    assert.equal(back.subject?.purl, s.subject.purl);
    // the CycloneDX twin validates too
    assert.equal(await cycloneDxErrors(toCycloneDxSbom(s, { version: '0.0.0-test' }, NOW)), null);
  }
});

test('the SPDX 2.3 validator is not vacuous: wrong enum values, missing required fields and unknown keys fail', () => {
  const validate = spdxValidator();
  const ok = {
    spdxVersion: 'SPDX-2.3', dataLicense: 'CC0-1.0', SPDXID: 'SPDXRef-DOCUMENT', name: 'x', documentNamespace: 'https://example.invalid/x',
    creationInfo: { created: '2026-01-01T00:00:00Z', creators: ['Tool: test'] },
    packages: [{ SPDXID: 'SPDXRef-P', name: 'p', downloadLocation: 'NOASSERTION', primaryPackagePurpose: 'OPERATING_SYSTEM',
      externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: 'pkg:deb/debian/p@1?arch=amd64' }] }],
  };
  assert.deepEqual(validate(ok), []);
  const bad = (f: (d: typeof ok & Record<string, unknown>) => void): string[] => {
    const d = JSON.parse(JSON.stringify(ok));
    f(d);
    return validate(d);
  };
  // the value rtev wrote before this check ('OPERATING-SYSTEM') is not in the 2.3 enum
  assert.match(bad((d) => { d.packages[0]!.primaryPackagePurpose = 'OPERATING-SYSTEM'; }).join('\n'), /primaryPackagePurpose must be equal to one of the allowed values/);
  assert.match(bad((d) => { delete (d as Record<string, unknown>)['dataLicense']; }).join('\n'), /must have required property 'dataLicense'/);
  assert.match(bad((d) => { (d.packages[0] as Record<string, unknown>)['supplierName'] = 'x'; }).join('\n'), /must NOT have additional properties/);
  assert.match(bad((d) => { d.packages[0]!.externalRefs[0]!.referenceCategory = 'PACKAGE_MANAGER'; }).join('\n'), /referenceCategory must be equal to one of the allowed values/);
  assert.match(bad((d) => { d.creationInfo.creators = []; }).join('\n'), /creators must NOT have fewer than 1 items/);
});

const GOOD = {
  spdxVersion: 'SPDX-2.3', dataLicense: 'CC0-1.0', SPDXID: 'SPDXRef-DOCUMENT', name: 'h', documentNamespace: 'https://example.invalid/h',
  creationInfo: { created: '2026-01-01T00:00:00Z', creators: ['Tool: test'] },
  packages: [
    { SPDXID: 'SPDXRef-a', name: 'zlib1g', versionInfo: '1:1.2.13.dfsg-1', downloadLocation: 'NOASSERTION',
      externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: 'pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64&distro=debian-12' }] },
  ],
};

function oneLineError(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (err: Error) => {
    assert.match(err.message, re);
    assert.ok(!err.message.includes('\n'), `one line: ${JSON.stringify(err.message)}`);
    return true;
  });
}

test('SPDX 2.2/2.3 input: unusable documents are one-line errors naming the file', () => {
  oneLineError(() => parseSbomText('{"spdxVersion": "SPDX-2.3", "packages": [', 'cut.json'), /^--sbom cut\.json: not JSON/);
  oneLineError(() => parseSbomText(JSON.stringify({ ...GOOD, spdxVersion: 'SPDX-3.0' }), 'v3.json'), /^--sbom v3\.json: SPDX-3\.0 \(rtev reads SPDX-2\.2 and SPDX-2\.3 JSON\)/);
  oneLineError(() => parseSbomText(JSON.stringify({ ...GOOD, spdxVersion: 'SPDX-2.3\n\u001b[31mred' }), 'ctl.json'), /^--sbom ctl\.json: SPDX-2\.3\\u000a\\u001b\[31mred/);
  oneLineError(() => parseSbomText(JSON.stringify({ ...GOOD, packages: { a: 1 } }), 'obj.json'), /^--sbom obj\.json: "packages" is not an array/);
  oneLineError(() => parseSbomText(JSON.stringify({ ...GOOD, relationships: 'DESCRIBES' }), 'rel.json'), /^--sbom rel\.json: "relationships" is not an array/);
  oneLineError(() => parseSbomText(JSON.stringify({ ...GOOD, files: 7 }), 'files.json'), /^--sbom files\.json: "files" is not an array/);
  oneLineError(() => parseSbomText(JSON.stringify({ ...GOOD, spdxVersion: 23 }), 'num.json'), /^--sbom num\.json: neither CycloneDX JSON \(bomFormat\) nor SPDX JSON \(spdxVersion\)/);
  // a file over the bound is refused from its size, before any byte is read (sparse file)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-spdx-'));
  try {
    const huge = path.join(dir, 'huge.spdx.json');
    fs.writeFileSync(huge, '{');
    fs.truncateSync(huge, MAX_SBOM_BYTES + 1);
    oneLineError(() => loadSbomFile(huge), new RegExp(`^--sbom ${huge.replace(/[.]/g, '\\.')}: ${MAX_SBOM_BYTES + 1} bytes is over the ${MAX_SBOM_BYTES}-byte limit`));
    oneLineError(() => loadSbomFile(path.join(dir, 'missing.json')), /ENOENT/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('SPDX 2.2/2.3 input: bad elements are counted skips naming the element; the good ones are kept', () => {
  for (const spdxVersion of ['SPDX-2.2', 'SPDX-2.3']) {
    const doc = {
      ...GOOD, spdxVersion,
      packages: [
        ...GOOD.packages,
        'not an object',
        { name: 'no-id', downloadLocation: 'NOASSERTION' },
        { SPDXID: 'SPDXRef-nopurl', name: 'nopurl', downloadLocation: 'NOASSERTION', externalRefs: 'x' },
        { SPDXID: 'SPDXRef-badpurl', name: 'bad\npurl', downloadLocation: 'NOASSERTION',
          externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: 'pkg:\u0000' + 'x'.repeat(5000) }] },
        { SPDXID: 'SPDXRef-a', name: 'again', downloadLocation: 'NOASSERTION',
          externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: 'pkg:deb/debian/other@1' }] },
        // the 2.2-era spelling of the category is accepted on input
        { SPDXID: 'SPDXRef-old', name: 'libssl3', versionInfo: 7, downloadLocation: 'NOASSERTION',
          externalRefs: [{ referenceCategory: 'PACKAGE_MANAGER', referenceType: 'purl', referenceLocator: 'pkg:deb/debian/libssl3@3.0.19-1~deb12u2?arch=amd64' }] },
      ],
      files: [{ SPDXID: 'SPDXRef-f', fileName: 'usr/lib/x86_64-linux-gnu/libssl.so.3', checksums: [{ algorithm: 'SHA1', checksumValue: '00' }] }, { fileName: 3 }],
      relationships: [
        { spdxElementId: 'SPDXRef-old', relationshipType: 'CONTAINS', relatedSpdxElement: 'SPDXRef-f' },
        { spdxElementId: 'SPDXRef-old', relationshipType: 'CONTAINS' },
        null,
      ],
    };
    const s = parseSbomText(JSON.stringify(doc), 'in.json');
    assert.equal(s.specVersion, spdxVersion.slice(5));
    assert.deepEqual(s.components.map((c) => [c.ref, c.version, c.files]), [
      ['SPDXRef-a', '1:1.2.13.dfsg-1', []],
      ['SPDXRef-old', '3.0.19-1~deb12u2', ['/usr/lib/x86_64-linux-gnu/libssl.so.3']],
    ]);
    const skips = s.skipped.map((x) => `${x.what}: ${x.reason}`);
    assert.deepEqual(skips.map((x) => x.replace(/'pkg:.*$/, "'pkg:…")), [
      'files[1]: not an object with a string SPDXID and fileName',
      'relationships[1]: not an object with string spdxElementId, relationshipType and relatedSpdxElement',
      'relationships[2]: not an object with string spdxElementId, relationshipType and relatedSpdxElement',
      'packages[1]: not an object with an SPDXID',
      'packages[2]: not an object with an SPDXID',
      'packages[3] nopurl: no purl external reference',
      "packages[4] bad\\u000apurl: invalid purl 'pkg:…",
      "packages[5] again: duplicate SPDXID 'SPDXRef-a'",
    ]);
    for (const x of skips) assert.ok(!/[\n\u0000]/.test(x) && x.length < 300, `one bounded line: ${JSON.stringify(x).slice(0, 80)}`);
  }
});

test('SPDX 2.2: the subject from documentDescribes when no DESCRIBES relationship names it', () => {
  const doc = {
    ...GOOD, spdxVersion: 'SPDX-2.2', documentDescribes: ['SPDXRef-img'],
    packages: [...GOOD.packages, { SPDXID: 'SPDXRef-img', name: 'app', downloadLocation: 'NOASSERTION',
      externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: `pkg:oci/app@sha256:${'cd'.repeat(32)}` }] }],
  };
  const s = parseSbomText(JSON.stringify(doc), 'd.json');
  assert.equal(s.subject?.purl, `pkg:oci/app@sha256:${'cd'.repeat(32)}`);
});
