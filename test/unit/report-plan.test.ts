import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { hostProduct, ProductFiles } from '../../src/report/host';
import { parseOsvText } from '../../src/report/osv';
import { buildPlan, planFile } from '../../src/report/plan';
import { parseSbomText } from '../../src/report/sbom';
import { parseFunctionsFile } from '../../src/symbolize/targets';
import { requireTools } from '../helpers/tools';

/**
 * The host's real zlib1g (dpkg database, ELF symbol tables) against synthetic advisories.
 * Tool: dpkg-query, the oracle for the installed version; the test is about this host's package,
 * so no recorded answer would do. A missing dpkg-query fails the test.
 */
test('plan: targets in the real libz.so.1 of zlib1g, each unprobeable function with its reason', () => {
  requireTools('dpkg-query');
  const version = execFileSync('dpkg-query', ['-W', '-f', '${Version}', 'zlib1g'], { encoding: 'utf8' });
  const sbom = parseSbomText(JSON.stringify({ bomFormat: 'CycloneDX', specVersion: '1.6', version: 1, components: [
    { type: 'library', 'bom-ref': 'z', name: 'zlib1g', version, purl: `pkg:deb/debian/zlib1g@${version}?arch=amd64&distro=debian-12&upstream=zlib` },
    { type: 'library', 'bom-ref': 'r', name: 'smallvec', version: '1.0.0', purl: 'pkg:cargo/smallvec@1.0.0' },
  ] }), 'sbom.json');
  const vulns = parseOsvText(JSON.stringify([
    { id: 'SYN-Z', database_specific: { synthetic: true }, affected: [{ package: { ecosystem: 'Debian:12', name: 'zlib' },
      ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '1:9.9-1' }] }],
      ecosystem_specific: { imports: [{ path: 'libz.so.1', symbols: ['uncompress', 'inflateGetHeader', 'zlib_no_such_function'] }, { path: 'libnothere.so.1', symbols: ['f'] }] } }] },
    { id: 'SYN-Z-FIXED', affected: [{ package: { ecosystem: 'Debian:12', name: 'zlib' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '1:1.0-1' }] }],
      ecosystem_specific: { imports: [{ path: 'libz.so.1', symbols: ['compress'] }] } }] },
    { id: 'SYN-RUST', affected: [{ package: { ecosystem: 'crates.io', name: 'smallvec' }, ranges: [{ type: 'SEMVER', events: [{ introduced: '0' }] }],
      ecosystem_specific: { affects: { functions: ['smallvec::SmallVec::insert_many'] } } }] },
  ]), 'v.json').records;
  const host = hostProduct('0123', 'h');
  const files = new ProductFiles();
  files.add(host, '', sbom);
  const plan = buildPlan([{ product: host, sbom }], vulns, files);
  assert.deepEqual(plan.functions.map((t) => [t.binary.replace(/^\/usr/, ''), t.symbol, t.vulnerabilities]), [
    ['/lib/x86_64-linux-gnu/libz.so.1.2.13', 'inflateGetHeader', ['SYN-Z']],
    ['/lib/x86_64-linux-gnu/libz.so.1.2.13', 'uncompress', ['SYN-Z']],
  ], 'one path per distinct file (libz.so.1 is a symlink); the fixed advisory plans nothing');
  const why = Object.fromEntries(plan.unprobeable.map((u) => [u.symbol, u.reason]));
  assert.match(why['zlib_no_such_function']!, /^not in any symbol table of libz\.so\.1\.2\.13/);
  assert.match(why['f']!, /^file not present: no file libnothere\.so\.1 of zlib1g/);
  assert.match(why['smallvec::SmallVec::insert_many']!, /^runtime not supported: Rust/);
  assert.equal(plan.vulnerable, 2);
  // rtev collect reads the plan as a --functions file
  assert.deepEqual(parseFunctionsFile(planFile(plan)), plan.functions.map((t) => `${t.binary}:${t.symbol}`));
});
