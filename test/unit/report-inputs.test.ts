import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { matchComponents, VulnIndex } from '../../src/report/match';
import { evaluateAffected, loadOsvPaths, parseOsvText } from '../../src/report/osv';
import { parseSbomText } from '../../src/report/sbom';

/** Synthetic OSV records (test data, marked database_specific.synthetic). */
const OPENSSL = {
  id: 'RTEV-TEST-0001', aliases: ['CVE-0000-0001'], summary: 'synthetic: SSL_select_next_proto over-read',
  database_specific: { synthetic: true },
  affected: [{
    package: { ecosystem: 'Debian:12', name: 'openssl', purl: 'pkg:deb/debian/openssl?arch=source' },
    ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '3.0.99-1~deb12u1' }] }],
    ecosystem_specific: { imports: [{ path: 'libssl.so.3', symbols: ['SSL_select_next_proto'] }] },
  }],
};

const GO = {
  id: 'GO-TEST-0002', database_specific: { synthetic: true },
  affected: [{
    package: { ecosystem: 'Go', name: 'golang.org/x/text' },
    ranges: [{ type: 'SEMVER', events: [{ introduced: '0' }, { fixed: '0.3.8' }] }],
    ecosystem_specific: { imports: [{ path: 'golang.org/x/text/language', symbols: ['Parse', 'MatchStrings'] }] },
  }],
};

test('OSV: one record, an array, {"vulns": [...]}, a directory; skips are named and counted', () => {
  assert.equal(parseOsvText(JSON.stringify(OPENSSL), 'a.json').records.length, 1);
  assert.equal(parseOsvText(JSON.stringify([OPENSSL, GO]), 'b.json').records.length, 2);
  const bad = parseOsvText(JSON.stringify({ vulns: [OPENSSL, { id: 'X-1', affected: [{ package: { ecosystem: 'Hackage', name: 'x' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }] }] }] },
    { summary: 'no id' }, { id: 'X-2', withdrawn: '2024-01-01T00:00:00Z', affected: [] },
    { id: 'X-3', affected: [{ package: { ecosystem: 'Debian:12', name: 'zlib' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: 'not/a version' }] }] }] }] }), 'c.json');
  assert.deepEqual(bad.records.map((r) => r.id), ['RTEV-TEST-0001']);
  const reasons = bad.skipped.map((s) => `${s.what}: ${s.reason}`);
  assert.ok(reasons.some((r) => /c\.json\[1\] X-1 affected\[0\]: unknown ecosystem 'Hackage'/.test(r)), reasons.join('\n'));
  assert.ok(reasons.some((r) => /c\.json\[2\]: no "id"/.test(r)), reasons.join('\n'));
  assert.ok(reasons.some((r) => /X-2: withdrawn/.test(r)));
  assert.ok(reasons.some((r) => /X-3 affected\[0\]: fixed 'not\/a version'/.test(r)), reasons.join('\n'));
  assert.throws(() => parseOsvText('{"id": "x", ', 'broken.json'), /--vulns broken\.json: not JSON/);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-osv-'));
  fs.mkdirSync(path.join(dir, 'sub'));
  fs.writeFileSync(path.join(dir, 'a.json'), JSON.stringify(OPENSSL));
  fs.writeFileSync(path.join(dir, 'sub', 'b.json'), JSON.stringify({ vulns: [GO, OPENSSL] }));
  fs.writeFileSync(path.join(dir, 'README.txt'), 'not json, not read');
  const load = loadOsvPaths([dir]);
  assert.equal(load.files, 2);
  assert.deepEqual(load.records.map((r) => r.id).sort(), ['GO-TEST-0002', 'RTEV-TEST-0001']);
  assert.equal(load.skipped.filter((s) => /duplicate id/.test(s.reason)).length, 1);
  assert.throws(() => loadOsvPaths([path.join(dir, 'missing')]), /no such file/);
});

test('OSV ranges: affected, fixed (at or past a fix), never affected, last_affected, versions list', () => {
  const aff = parseOsvText(JSON.stringify(OPENSSL), 'x').records[0]!.affected[0]!;
  assert.deepEqual(evaluateAffected(aff, '3.0.19-1~deb12u2'), { status: 'affected', fixed: ['3.0.99-1~deb12u1'] });
  assert.equal(evaluateAffected(aff, '3.0.99-1~deb12u1').status, 'fixed');
  assert.equal(evaluateAffected(aff, '3.0.99-1').status, 'fixed');
  // dpkg ~ ordering: 3.0.99-1~deb12u0 sorts before the fix 3.0.99-1~deb12u1, 3.0.99~rc1 before 3.0.99
  assert.equal(evaluateAffected(aff, '3.0.99-1~deb12u0').status, 'affected');
  assert.equal(evaluateAffected(aff, '3.0.99~rc1-1').status, 'affected');
  const later = parseOsvText(JSON.stringify({ id: 'L', affected: [{ package: { ecosystem: 'npm', name: 'x' },
    ranges: [{ type: 'SEMVER', events: [{ introduced: '2.0.0' }, { last_affected: '2.3.0' }, { introduced: '3.0.0' }, { fixed: '3.1.0' }] }],
    versions: ['1.5.0'] }] }), 'x').records[0]!.affected[0]!;
  assert.equal(evaluateAffected(later, '1.9.0').status, 'not_affected');
  assert.equal(evaluateAffected(later, '1.5.0').status, 'affected', 'explicit versions list');
  assert.equal(evaluateAffected(later, '2.3.0').status, 'affected');
  assert.equal(evaluateAffected(later, '2.4.0').status, 'fixed');
  assert.equal(evaluateAffected(later, '3.0.5').status, 'affected');
  assert.deepEqual(evaluateAffected(later, '3.2.0'), { status: 'fixed', fixed: ['3.1.0'] });
});

test('affected functions: Go imports, RustSec affects.functions, the native imports[] convention', () => {
  const rust = { id: 'RUSTSEC-TEST', affected: [{ package: { ecosystem: 'crates.io', name: 'smallvec' }, ranges: [{ type: 'SEMVER', events: [{ introduced: '0' }] }],
    ecosystem_specific: { affects: { functions: ['smallvec::SmallVec::insert_many'] } } }] };
  const recs = parseOsvText(JSON.stringify([OPENSSL, GO, rust]), 'x').records;
  assert.deepEqual(recs[0]!.affected[0]!.functions, [{ kind: 'native', path: 'libssl.so.3', symbol: 'SSL_select_next_proto' }]);
  assert.deepEqual(recs[1]!.affected[0]!.functions.map((f) => f.symbol), ['golang.org/x/text/language.Parse', 'golang.org/x/text/language.MatchStrings']);
  assert.deepEqual(recs[2]!.affected[0]!.functions, [{ kind: 'rust', path: 'smallvec', symbol: 'smallvec::SmallVec::insert_many' }]);
});

const CDX = {
  bomFormat: 'CycloneDX', specVersion: '1.6', serialNumber: 'urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79', version: 1,
  metadata: { component: { type: 'container', name: 'app', purl: 'pkg:oci/app@sha256%3A' + 'a'.repeat(64) } },
  components: [
    { type: 'library', 'bom-ref': 'libssl3', name: 'libssl3', version: '3.0.19-1~deb12u2', purl: 'pkg:deb/debian/libssl3@3.0.19-1~deb12u2?arch=amd64&distro=debian-12&upstream=openssl',
      components: [{ type: 'library', name: 'nested', version: '0.3.7', purl: 'pkg:golang/golang.org/x/text@v0.3.7' }] },
    { type: 'library', name: 'no-purl' },
    { type: 'library', name: 'bad', purl: 'pkg:' },
    { type: 'library', 'bom-ref': 'j', name: 'jar', purl: 'pkg:maven/org.example/j@1.0' },
  ],
};

const SPDX = {
  spdxVersion: 'SPDX-2.3', SPDXID: 'SPDXRef-DOCUMENT', name: 'host', dataLicense: 'CC0-1.0', documentNamespace: 'https://example.invalid/x',
  creationInfo: { created: '2026-01-01T00:00:00Z', creators: ['Tool: test'] },
  packages: [
    { SPDXID: 'SPDXRef-zlib1g', name: 'zlib1g', versionInfo: '1:1.2.13.dfsg-1', downloadLocation: 'NOASSERTION',
      externalRefs: [{ referenceCategory: 'PACKAGE_MANAGER', referenceType: 'purl', referenceLocator: 'pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64&distro=debian-12' }] },
    { SPDXID: 'SPDXRef-libssl3', name: 'libssl3', versionInfo: '3.0.19-1~deb12u2', downloadLocation: 'NOASSERTION',
      externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: 'pkg:deb/debian/libssl3@3.0.19-1~deb12u2?arch=amd64&distro=debian-12' }] },
  ],
  files: [{ SPDXID: 'SPDXRef-f1', fileName: './usr/lib/x86_64-linux-gnu/libssl.so.3', checksums: [] }],
  relationships: [{ spdxElementId: 'SPDXRef-libssl3', relationshipType: 'CONTAINS', relatedSpdxElement: 'SPDXRef-f1' }],
};

test('SBOM readers: CycloneDX 1.6 (nested components, skips) and SPDX 2.3 (both PACKAGE-MANAGER spellings, files)', () => {
  const c = parseSbomText(JSON.stringify(CDX), 'c.json');
  assert.equal(c.format, 'cyclonedx');
  assert.deepEqual(c.components.map((x) => x.parsed.name), ['libssl3', 'text', 'j']);
  assert.equal(c.subject?.purl?.startsWith('pkg:oci/app@'), true);
  assert.deepEqual(c.skipped.map((s) => s.reason), ['no purl', "invalid purl 'pkg:'"]);
  for (const spec of ['1.4', '1.5']) assert.equal(parseSbomText(JSON.stringify({ ...CDX, specVersion: spec }), 'c').components.length, 3);
  assert.throws(() => parseSbomText(JSON.stringify({ ...CDX, specVersion: '1.2' }), 'old.json'), /--sbom old\.json: CycloneDX specVersion '1\.2'/);
  const s = parseSbomText(JSON.stringify(SPDX), 's.json');
  assert.deepEqual(s.components.map((x) => [x.ref, x.version]), [['SPDXRef-zlib1g', '1:1.2.13.dfsg-1'], ['SPDXRef-libssl3', '3.0.19-1~deb12u2']]);
  assert.deepEqual(s.components[1]!.files, ['/usr/lib/x86_64-linux-gnu/libssl.so.3']);
  assert.equal(parseSbomText(JSON.stringify({ ...SPDX, spdxVersion: 'SPDX-2.2' }), 's').components.length, 2);
  assert.throws(() => parseSbomText('[1]', 'arr.json'), /not a JSON object/);
  assert.throws(() => parseSbomText('{"a":1}', 'x.json'), /neither CycloneDX JSON/);
});

test('matching: Debian source packages via upstream= or the dpkg Source map, releases, unknown purl types counted', () => {
  const index = new VulnIndex(parseOsvText(JSON.stringify([OPENSSL, GO]), 'x').records);
  const c = parseSbomText(JSON.stringify(CDX), 'c.json');
  const m = matchComponents(c.components, index);
  assert.deepEqual(m.findings.map((f) => [f.component.parsed.name, f.vuln.id, f.verdict.status, f.matchedBy]),
    [['libssl3', 'RTEV-TEST-0001', 'affected', 'source:openssl'], ['text', 'GO-TEST-0002', 'affected', 'name']]);
  assert.ok(m.skipped.some((s) => /purl type 'maven'/.test(s.reason)));
  // SPDX purl without upstream=: the dpkg Source: map joins it
  const s = parseSbomText(JSON.stringify(SPDX), 's.json');
  assert.equal(matchComponents(s.components, index).findings.length, 0);
  const viaDpkg = matchComponents(s.components, index, { debSources: new Map([['libssl3', 'openssl']]) });
  assert.deepEqual(viaDpkg.findings.map((f) => f.matchedBy), ['source:openssl']);
  // a Debian:11 advisory does not apply to a debian-12 package
  const d11 = JSON.parse(JSON.stringify(OPENSSL));
  d11.affected[0].package.ecosystem = 'Debian:11';
  assert.equal(matchComponents(c.components, new VulnIndex(parseOsvText(JSON.stringify(d11), 'x').records)).findings.length, 0);
});
