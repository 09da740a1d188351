import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { REPO, rootOrSkip, runRtev, tempDir } from '../helpers/collector';
import { cycloneDxErrors, goVexRules, openVexValidator, spdxValidator } from '../helpers/report';

/**
 * plan -> collect -> report on real programs and packages: a C program against Debian's
 * zlib1g, curl with libssl3 (HTTPS to openssl s_server), a Go program using net/url from
 * golang-go's standard library, and the C program in a podman image built from the host's
 * own files and dpkg entries. The advisories are synthetic (database_specific.synthetic),
 * with ranges around the installed versions, one per step of the verdict ladder.
 */
const PROGS = path.join(REPO, 'test', 'progs');
const IMAGE = 'localhost/rtev-reach:1';

const sh = (cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts }).trim();

interface Pkg { name: string; version: string; source: string; arch: string }
function pkg(name: string): Pkg {
  const [version, source, arch] = sh('dpkg-query', ['-W', '-f', '${Version}\t${source:Package}\t${Architecture}', name]).split('\t');
  return { name, version: version!, source: source!, arch: arch! };
}
const purlOf = (p: Pkg): string => `pkg:deb/debian/${p.name}@${p.version}?arch=${p.arch}&distro=debian-12&upstream=${p.source}`;

function cdx(components: object[], subject?: object): string {
  return JSON.stringify({ bomFormat: 'CycloneDX', specVersion: '1.6', version: 1, ...(subject ? { metadata: { component: subject } } : {}), components });
}

function osv(id: string, ecosystem: string, name: string, events: object[], imports?: object[]): object {
  return { id, summary: `synthetic advisory ${id} (test data)`, database_specific: { synthetic: true },
    affected: [{ package: { ecosystem, name }, ranges: [{ type: ecosystem === 'Go' ? 'SEMVER' : 'ECOSYSTEM', events }], ...(imports ? { ecosystem_specific: { imports } } : {}) }] };
}

/** buildImage makes a podman image holding zapp, its libraries and their real dpkg entries. */
function buildImage(zapp: string, work: string): string {
  const root = path.join(work, 'rootfs');
  for (const d of ['usr/bin', 'usr/lib/x86_64-linux-gnu', 'usr/lib64', 'etc', 'var/lib/dpkg/info']) fs.mkdirSync(path.join(root, d), { recursive: true });
  fs.symlinkSync('usr/lib', path.join(root, 'lib'));
  fs.symlinkSync('usr/lib64', path.join(root, 'lib64'));
  fs.symlinkSync('usr/bin', path.join(root, 'bin'));
  fs.copyFileSync(zapp, path.join(root, 'usr/bin/zapp'));
  const libs = sh('ldd', [zapp]).split('\n').map((l) => /(\/\S+) \(0x/.exec(l)?.[1]).filter((x): x is string => x !== undefined);
  for (const lib of libs) {
    const real = fs.realpathSync(lib);
    const inRoot = (p: string): string => path.join(root, p.replace(/^\/(lib|lib64)\//, '/usr/$1/'));
    fs.copyFileSync(real, inRoot(real));
    if (inRoot(lib) !== inRoot(real) && !fs.existsSync(inRoot(lib))) fs.symlinkSync(real, inRoot(lib));
  }
  fs.copyFileSync('/etc/os-release', path.join(root, 'etc/os-release'));
  const stanzas = ['zlib1g', 'libc6'].map((p) => sh('dpkg-query', ['-s', p])).join('\n\n') + '\n';
  fs.writeFileSync(path.join(root, 'var/lib/dpkg/status'), stanzas);
  for (const p of ['zlib1g:amd64', 'libc6:amd64']) fs.copyFileSync(`/var/lib/dpkg/info/${p}.list`, path.join(root, `var/lib/dpkg/info/${p}.list`));
  execFileSync('tar', ['-C', root, '-cf', path.join(work, 'rootfs.tar'), '.']);
  execFileSync('podman', ['rmi', '-f', IMAGE], { stdio: 'ignore' });
  sh('podman', ['import', path.join(work, 'rootfs.tar'), IMAGE]);
  return sh('podman', ['image', 'inspect', '--format', '{{.Digest}}', IMAGE]);
}

interface Setup { dir: string; ev: string; key: string; sboms: string[]; vulns: string; plan: string }
let setup: Setup | undefined;

async function collect(): Promise<Setup> {
  if (setup !== undefined) return setup;
  const dir = tempDir('rtev-reach-');
  const zapp = path.join(dir, 'zapp');
  sh('gcc', ['-O1', '-o', zapp, path.join(PROGS, 'reach', 'zapp.c'), '-lz']);
  const goSrc = path.join(dir, 'goapp-src');
  fs.cpSync(path.join(PROGS, 'reach', 'goapp'), goSrc, { recursive: true });
  const goapp = path.join(dir, 'goapp');
  sh('go', ['build', '-o', goapp, '.'], { cwd: goSrc, env: { ...process.env, GOFLAGS: '-mod=mod', GOCACHE: path.join(dir, 'gocache'), GOPATH: path.join(dir, 'gopath'), GOPROXY: 'off' } });
  const goVersion = /go(\d+\.\d+(?:\.\d+)?)/.exec(sh('go', ['version']))![1]!;
  const digest = buildImage(zapp, dir);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'k.pem'), '-out', path.join(dir, 'c.pem'), '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
  fs.writeFileSync(path.join(dir, 'f.txt'), 'hello over TLS\n');

  const [zlib, ssl, bpftrace, curl] = ['zlib1g', 'libssl3', 'bpftrace', 'libcurl4'].map(pkg) as [Pkg, Pkg, Pkg, Pkg];
  const hostSbom = path.join(dir, 'host.cdx.json');
  fs.writeFileSync(hostSbom, cdx([
    ...[zlib, ssl, bpftrace, curl].map((p) => ({ type: 'library', 'bom-ref': p.name, name: p.name, version: p.version, purl: purlOf(p) })),
    { type: 'library', 'bom-ref': 'go-stdlib', name: 'stdlib', version: `v${goVersion}`, purl: `pkg:golang/stdlib@v${goVersion}`, evidence: { occurrences: [{ location: goapp }] } },
  ]));
  const imageSbom = path.join(dir, 'image.cdx.json');
  fs.writeFileSync(imageSbom, cdx([{ type: 'library', 'bom-ref': 'zlib1g', name: 'zlib1g', version: zlib.version, purl: purlOf(zlib) }],
    { type: 'container', name: 'rtev-reach', purl: `pkg:oci/rtev-reach@${digest}` }));
  const vulns = path.join(dir, 'vulns');
  fs.mkdirSync(vulns);
  fs.writeFileSync(path.join(vulns, 'debian.json'), JSON.stringify([
    osv('SYN-ZLIB-CALLED', 'Debian:12', 'zlib', [{ introduced: '0' }, { fixed: '1:9.9-1' }], [{ path: 'libz.so.1', symbols: ['uncompress', 'zlib_no_such_function'] }]),
    osv('SYN-ZLIB-PROBED', 'Debian:12', 'zlib', [{ introduced: '0' }, { fixed: '1:9.9-1' }], [{ path: 'libz.so.1', symbols: ['inflateGetHeader'] }]),
    osv('SYN-ZLIB-FIXED', 'Debian:12', 'zlib', [{ introduced: '0' }, { fixed: '1:1.2.11.dfsg-4.1' }]),
    osv('SYN-SSL-TILDE', 'Debian:12', 'openssl', [{ introduced: '0' }, { fixed: ssl.version.replace(/~.*$/, '') }], [{ path: 'libssl.so.3', symbols: ['SSL_connect'] }]),
    osv('SYN-SSL-TILDE-FIXED', 'Debian:12', 'openssl', [{ introduced: '0' }, { fixed: ssl.version.replace(/~deb12u\d+$/, '~deb12u1') }]),
    osv('SYN-SSL-INTERNAL', 'Debian:12', 'openssl', [{ introduced: '0' }, { fixed: '9.9.9-1' }], [{ path: 'libcrypto.so.3', symbols: ['ossl_punycode_decode'] }]),
    osv('SYN-BPFTRACE-NOTLOADED', 'Debian:12', 'bpftrace', [{ introduced: '0' }, { fixed: '9.9-1' }]),
    osv('SYN-CURL-LOADED', 'Debian:12', 'curl', [{ introduced: '0' }, { fixed: '99.0-1' }]),
  ]));
  fs.writeFileSync(path.join(vulns, 'go.json'), JSON.stringify({ vulns: [
    osv('GO-SYN-URL', 'Go', 'stdlib', [{ introduced: '0' }, { fixed: '1.99.0' }], [{ path: 'net/url', symbols: ['Parse', 'ParseQuery'] }]),
  ] }));
  const key = path.join(dir, 'key.pem');
  assert.equal((await runRtev(['keygen', '--out', key])).code, 0);
  const plan = path.join(dir, 'plan.json');
  const sbomArgs = ['--sbom', hostSbom, '--sbom', imageSbom, '--vulns', vulns, '--host', '--image', IMAGE];
  const p = await runRtev(['plan', ...sbomArgs, '--out', plan]);
  assert.equal(p.code, 0, p.stderr);
  const ev = path.join(dir, 'ev');
  const port = 20000 + Math.floor(Math.random() * 12000);
  const c = await runRtev(['collect', '--quiet', '--key', key, '--out', ev, '--functions', plan, '--',
    'bash', path.join(PROGS, 'reach', 'scenario.sh'), dir, String(port), zapp, goapp, IMAGE], { timeoutMs: 180_000 });
  assert.equal(c.code, 0, c.stderr);
  setup = { dir, ev, key: `${key}.pub`, sboms: sbomArgs, vulns, plan };
  return setup;
}

async function report(s: Setup, extra: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return runRtev(['report', s.ev, '--pubkey', s.key, ...s.sboms, '--plan', s.plan, ...extra], { timeoutMs: 120_000 });
}

type V = { vulnerability: string; status: string; step: string; justification?: string; evidence: Array<{ seq: string; chunk_sha256: string; ts_ns: string; pid: number }>; coverage_reasons: string[] };
function verdicts(json: string): Record<string, Record<string, V>> {
  const doc = JSON.parse(json) as { products: Array<{ product: { id: string }; verdicts: V[] }> };
  return Object.fromEntries(doc.products.map((p) => [p.product.id.startsWith('pkg:oci/') ? 'image' : 'host', Object.fromEntries(p.verdicts.map((v) => [v.vulnerability, v]))]));
}

test('plan: targets for zlib, libssl and Go net/url on the host and in the image; unprobeable functions with reasons', async (t) => {
  if (!rootOrSkip(t)) return;
  const s = await collect();
  const plan = JSON.parse(fs.readFileSync(s.plan, 'utf8')) as { functions: Array<{ binary: string; symbol: string; product: string }>; unprobeable: Array<{ symbol: string; reason: string }> };
  const syms = plan.functions.map((f) => `${f.product.startsWith('pkg:oci/') ? 'image' : 'host'} ${path.basename(f.binary)}:${f.symbol}`).sort();
  assert.deepEqual(syms, ['host goapp:net/url.Parse', 'host libssl.so.3:SSL_connect',
    'host libz.so.1.2.13:inflateGetHeader', 'host libz.so.1.2.13:uncompress', 'image libz.so.1.2.13:inflateGetHeader', 'image libz.so.1.2.13:uncompress']);
  const why = Object.fromEntries(plan.unprobeable.map((u) => [u.symbol, u.reason]));
  assert.match(why['ossl_punycode_decode']!, /^not in any symbol table of libcrypto\.so\.3/, 'Debian strips OpenSSL internal symbols');
  assert.match(why['zlib_no_such_function']!, /^not in any symbol table/);
  assert.match(why['net/url.ParseQuery']!, /^not in any symbol table of goapp/, 'the Go linker left out the uncalled function');
});

test('report: every ladder step from real evidence, default policy; OpenVEX and CycloneDX validate', async (t) => {
  if (!rootOrSkip(t)) return;
  const s = await collect();
  const r = await report(s, ['--format', 'json']);
  assert.equal(r.code, 0, r.stderr);
  const v = verdicts(r.stdout);
  if (process.env['RTEV_TEST_VERBOSE']) console.log((await report(s, [])).stdout);
  const st = (p: string, id: string): string => `${v[p]?.[id]?.status}/${v[p]?.[id]?.step}`;
  assert.equal(st('host', 'SYN-ZLIB-CALLED'), 'affected/function_executed');
  assert.equal(st('host', 'SYN-SSL-TILDE'), 'affected/function_executed', 'curl called SSL_connect; 3.0.19-1~deb12u2 < 3.0.19-1 in dpkg order');
  assert.equal(st('host', 'GO-SYN-URL'), 'affected/function_executed');
  assert.equal(st('image', 'SYN-ZLIB-CALLED'), 'affected/function_executed', 'the call inside the container, in the image\'s own libz');
  assert.equal(st('host', 'SYN-ZLIB-PROBED'), 'under_investigation/probed_not_called');
  assert.equal(st('host', 'SYN-BPFTRACE-NOTLOADED'), 'under_investigation/not_loaded');
  assert.equal(st('host', 'SYN-CURL-LOADED'), 'affected/component_loaded');
  assert.equal(st('host', 'SYN-SSL-INTERNAL'), 'affected/component_loaded', 'libcrypto loaded, its internal function unprobeable');
  assert.equal(st('host', 'SYN-ZLIB-FIXED'), 'fixed/fixed');
  assert.equal(st('host', 'SYN-SSL-TILDE-FIXED'), 'fixed/fixed');
  const called = v['host']!['SYN-ZLIB-CALLED']!;
  assert.ok(called.evidence.length > 0 && /^[0-9a-f]{64}$/.test(called.evidence[0]!.chunk_sha256) && Number(called.evidence[0]!.seq) >= 1);
  // the evidence reference points at a real signed line: that chunk's line is a function_call of uncompress
  const e = called.evidence[0]! as unknown as { seq: string; line: number };
  const chunk = fs.readFileSync(path.join(s.ev, `chunk-${e.seq.padStart(12, '0')}.ndjson`), 'utf8').split('\n')[e.line - 1]!;
  assert.match(chunk, /"symbol":"uncompress","type":"function_call"/);

  const vex = await report(s, ['--format', 'openvex']);
  assert.equal(vex.code, 0, vex.stderr);
  const doc = JSON.parse(vex.stdout);
  assert.deepEqual(openVexValidator()(doc), []);
  assert.deepEqual(goVexRules(doc), []);
  const image = doc.statements.find((x: { products: Array<{ '@id': string }> }) => x.products[0]!['@id'].startsWith('pkg:oci/rtev-reach@sha256:'));
  assert.ok(image, 'the image is a pkg:oci product with the package as subcomponent');
  const bom = await report(s, ['--format', 'cyclonedx']);
  assert.equal(await cycloneDxErrors(bom.stdout), null);
  const table = await report(s, []);
  if (process.env['RTEV_TEST_VERBOSE']) console.log(table.stdout);
  assert.match(table.stdout, /SYN-ZLIB-CALLED\*\s+zlib1g/);
});

test('report --not-observed-as-not-affected: complete coverage gives not_affected/vulnerable_code_not_in_execute_path', async (t) => {
  if (!rootOrSkip(t)) return;
  const s = await collect();
  const r = await report(s, ['--format', 'json', '--not-observed-as-not-affected']);
  assert.equal(r.code, 0, r.stderr);
  const v = verdicts(r.stdout)['host']!;
  for (const id of ['SYN-ZLIB-PROBED', 'SYN-BPFTRACE-NOTLOADED']) {
    assert.equal(v[id]!.status, 'not_affected', `${id}: ${JSON.stringify(v[id]!.coverage_reasons)}`);
    assert.equal(v[id]!.justification, 'vulnerable_code_not_in_execute_path');
  }
  assert.equal(v['SYN-ZLIB-CALLED']!.status, 'affected');
  const vex = JSON.parse((await report(s, ['--format', 'openvex', '--not-observed-as-not-affected'])).stdout);
  assert.deepEqual(openVexValidator()(vex), []);
  // never vulnerable_code_not_present for code that is present: only version verdicts carry it
  for (const p of Object.values(verdicts(r.stdout))) {
    for (const x of Object.values(p)) if (x.justification === 'vulnerable_code_not_present') assert.equal(x.step, 'version_not_affected', x.vulnerability);
  }
});

test('report --not-observed-as-not-affected: a real drop in the ledger (file_open ring full) keeps the never-loaded verdicts at under_investigation, with the reason', async (t) => {
  if (!rootOrSkip(t)) return;
  const s = await collect();
  // a second collection with the same plan: zapp first (loads libz, calls uncompress, never
  // inflateGetHeader), then an open storm into a 4 KiB file_open ring, so the kernel drops records
  const ev = path.join(s.dir, 'ev-drop');
  const zapp = path.join(s.dir, 'zapp');
  const c = await runRtev(['collect', '--quiet', '--key', path.join(s.dir, 'key.pem'), '--out', ev, '--functions', s.plan, '--ring-size', '4096', '--',
    'bash', '-c', `${zapp} 2; i=0; while [ $i -lt 20000 ]; do : </etc/hostname; i=$((i+1)); done`], { timeoutMs: 180_000 });
  assert.equal(c.code, 0, c.stderr);
  const r = await runRtev(['report', ev, '--pubkey', s.key, ...s.sboms, '--plan', s.plan, '--format', 'json', '--not-observed-as-not-affected'], { timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as { coverage: { probes: Array<{ probe: string; lost: string; chunks: number }>; gaps: string[] } };
  const lost = (probe: string): bigint => BigInt(doc.coverage.probes.find((p) => p.probe === probe)?.lost ?? '0');
  assert.ok(lost('file_open') > 0n, `the storm filled the 4 KiB ring: ${JSON.stringify(doc.coverage.probes)}`);
  assert.deepEqual(doc.coverage.gaps, [], 'no chain gaps: the drop is the only reason');
  const v = verdicts(r.stdout)['host']!;
  // never loaded: "no file opened" means nothing when file opens were lost
  const notLoaded = v['SYN-BPFTRACE-NOTLOADED']! as V & { status_notes: string };
  assert.equal(`${notLoaded.status}/${notLoaded.step}`, 'under_investigation/not_loaded', JSON.stringify(notLoaded.coverage_reasons));
  assert.equal(notLoaded.justification, undefined);
  const dropReason = new RegExp(`^drop ledger: ${lost('file_open')} file_open record\\(s\\) lost$`);
  assert.ok(notLoaded.coverage_reasons.some((x) => dropReason.test(x)), JSON.stringify(notLoaded.coverage_reasons));
  assert.match(notLoaded.status_notes, /^kept under_investigation \(coverage incomplete\): .*drop ledger: \d+ file_open record\(s\) lost/);
  // probed and never called: its relevant probe is function_call, judged by that probe's own ledger
  const probed = v['SYN-ZLIB-PROBED']!;
  assert.equal(probed.step, 'probed_not_called');
  if (lost('function_call') === 0n) assert.equal(probed.status, 'not_affected', JSON.stringify(probed.coverage_reasons));
  else assert.equal(probed.status, 'under_investigation');
  assert.equal(v['SYN-ZLIB-CALLED']!.status, 'affected', 'the call is evidence whatever was lost');
  // the same evidence without the drop-sensitive opt-in: under_investigation either way
  const plain = verdicts((await runRtev(['report', ev, '--pubkey', s.key, ...s.sboms, '--plan', s.plan, '--format', 'json'], { timeoutMs: 120_000 })).stdout)['host']!;
  assert.equal(plain['SYN-BPFTRACE-NOTLOADED']!.status, 'under_investigation');
  const vex = JSON.parse((await runRtev(['report', ev, '--pubkey', s.key, ...s.sboms, '--plan', s.plan, '--format', 'openvex', '--not-observed-as-not-affected'], { timeoutMs: 120_000 })).stdout);
  assert.deepEqual(openVexValidator()(vex), []);
  const st = vex.statements.find((x: { vulnerability: { name: string } }) => x.vulnerability.name === 'SYN-BPFTRACE-NOTLOADED');
  assert.equal(st.status, 'under_investigation');
  assert.match(st.status_notes, /drop ledger: \d+ file_open record\(s\) lost/);
});

test('report refuses tampered evidence (exit 11); --allow-unverified caps verdicts at under_investigation', async (t) => {
  if (!rootOrSkip(t)) return;
  const s = await collect();
  const copy = path.join(s.dir, 'ev-tampered');
  fs.cpSync(s.ev, copy, { recursive: true });
  const chunk = path.join(copy, 'chunk-000000000001.ndjson');
  const text = fs.readFileSync(chunk, 'utf8');
  fs.chmodSync(chunk, 0o600);
  fs.writeFileSync(chunk, text.replace('"comm":"zapp"', '"comm":"zapq"'));
  const refused = await runRtev(['report', copy, '--pubkey', s.key, ...s.sboms]);
  assert.equal(refused.code, 11, refused.stderr);
  assert.match(refused.stderr, /fails verification/);
  const allowed = await runRtev(['report', copy, '--pubkey', s.key, ...s.sboms, '--allow-unverified', '--format', 'json']);
  assert.equal(allowed.code, 0, allowed.stderr);
  const v = verdicts(allowed.stdout)['host']!;
  assert.equal(v['SYN-ZLIB-CALLED']!.status, 'under_investigation');
  assert.equal(v['SYN-ZLIB-FIXED']!.status, 'fixed', 'version verdicts use no evidence');
});

test('rtev sbom: the host (with the Go program) and the image from their package databases; plan from them finds the same targets', async (t) => {
  if (!rootOrSkip(t)) return;
  const s = await collect();
  const hostCdx = path.join(s.dir, 'rtev-host.cdx.json');
  const goapp = path.join(s.dir, 'goapp');
  const h = await runRtev(['sbom', '--host', '--binary', goapp, '--out', hostCdx], { timeoutMs: 120_000 });
  assert.equal(h.code, 0, h.stderr);
  const hostText = fs.readFileSync(hostCdx, 'utf8');
  assert.equal(await cycloneDxErrors(hostText), null);
  const purls = (JSON.parse(hostText).components as Array<{ purl: string; evidence?: { occurrences: Array<{ location: string }> } }>);
  const zlib = purls.find((c) => c.purl.startsWith('pkg:deb/debian/zlib1g@'));
  assert.ok(zlib, 'zlib1g from dpkg');
  assert.match(zlib.purl, /\?arch=amd64&distro=debian-12&upstream=zlib$/);
  const std = purls.find((c) => c.purl.startsWith('pkg:golang/stdlib@') && c.evidence?.occurrences.some((o) => o.location === goapp));
  assert.ok(std, 'the Go program\'s stdlib module with the executable as its occurrence');
  const imgCdx = path.join(s.dir, 'rtev-image.cdx.json');
  const i = await runRtev(['sbom', '--image', IMAGE, '--out', imgCdx]);
  assert.equal(i.code, 0, i.stderr);
  const img = JSON.parse(fs.readFileSync(imgCdx, 'utf8'));
  assert.equal(await cycloneDxErrors(JSON.stringify(img)), null);
  assert.match(img.metadata.component.purl, /^pkg:oci\/rtev-reach@sha256:[0-9a-f]{64}\?/);
  assert.deepEqual(img.components.map((c: { name: string }) => c.name).sort(), ['libc6', 'zlib1g']);
  const plan = path.join(s.dir, 'plan-rtev-sbom.json');
  const p = await runRtev(['plan', '--sbom', hostCdx, '--sbom', imgCdx, '--vulns', s.vulns, '--host', '--image', IMAGE, '--out', plan], { timeoutMs: 120_000 });
  assert.equal(p.code, 0, p.stderr);
  const norm = (f: string): string[] => (JSON.parse(fs.readFileSync(f, 'utf8')).functions as Array<{ binary: string; symbol: string }>).map((x) => `${x.binary}:${x.symbol}`).sort();
  // a superset: every Go executable on the host built with the same stdlib is vulnerable by version too
  const ours = new Set(norm(plan));
  for (const x of norm(s.plan)) assert.ok(ours.has(x), x);
  for (const x of ours) if (!norm(s.plan).includes(x)) assert.match(x, /:net\/url\.Parse$/);
  const spdx = await runRtev(['sbom', '--host', '--format', 'spdx']);
  assert.equal(spdx.code, 0, spdx.stderr);
  const doc = JSON.parse(spdx.stdout);
  assert.equal(doc.spdxVersion, 'SPDX-2.3');
  assert.deepEqual(spdxValidator()(doc), [], 'the host SPDX validates against the official SPDX 2.3 schema');
  assert.ok(doc.packages.some((x: { externalRefs?: Array<{ referenceLocator: string }> }) => x.externalRefs?.[0]?.referenceLocator.startsWith('pkg:deb/debian/libssl3@')));
  const imgSpdx = await runRtev(['sbom', '--image', IMAGE, '--format', 'spdx']);
  assert.equal(imgSpdx.code, 0, imgSpdx.stderr);
  const imgDoc = JSON.parse(imgSpdx.stdout);
  assert.deepEqual(spdxValidator()(imgDoc), [], 'the image SPDX validates');
  // the SPDX SBOMs drive plan like the CycloneDX ones: the same targets
  const hostSpdx = path.join(s.dir, 'rtev-host.spdx.json');
  const imageSpdx = path.join(s.dir, 'rtev-image.spdx.json');
  fs.writeFileSync(imageSpdx, imgSpdx.stdout);
  assert.equal((await runRtev(['sbom', '--host', '--binary', goapp, '--format', 'spdx', '--out', hostSpdx], { timeoutMs: 120_000 })).code, 0);
  const planSpdx = path.join(s.dir, 'plan-rtev-spdx.json');
  const ps = await runRtev(['plan', '--sbom', hostSpdx, '--sbom', imageSpdx, '--vulns', s.vulns, '--host', '--image', IMAGE, '--out', planSpdx], { timeoutMs: 120_000 });
  assert.equal(ps.code, 0, ps.stderr);
  assert.deepEqual(norm(planSpdx), norm(plan), 'SPDX and CycloneDX SBOMs of the same roots give the same plan');
});

test('HTML report in headless Chromium (Debian chromium): DOM numbers equal the JSON report, no network, screenshot', async (t) => {
  if (!rootOrSkip(t)) return;
  const s = await collect();
  const html = path.join(s.dir, 'report.html');
  const r = await report(s, ['--format', 'html', '--out', html]);
  assert.equal(r.code, 0, r.stderr);
  const json = JSON.parse((await report(s, ['--format', 'json'])).stdout) as {
    counts: Record<string, number>; coverage: { chunks: number; records: string; lost: string; gaps: string[] };
    products: Array<{ product: { id: string }; verdicts: Array<{ vulnerability: string; status: string; step: string; component: { purl: string } }>; loadedFiles: number }>;
  };
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { chromium } = require('playwright-core') as typeof import('playwright-core');
  const profile = tempDir('rtev-chromium-');
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium', headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await ctx.newPage();
    const requests: string[] = [];
    page.on('request', (q) => requests.push(q.url()));
    await page.goto(`file://${html}`);
    const dom = await page.evaluate(() => {
      // runs in the page: the DOM's document (test code is compiled without the DOM lib)
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      const document = (globalThis as any).document;
      const txt = (sel: string): string => document.querySelector(sel)?.textContent ?? '';
      return {
        counts: Object.fromEntries([...document.querySelectorAll('[data-count]')].filter((e: any) => e.tagName === 'SPAN').map((e: any) => [e.getAttribute('data-count'), Number(e.textContent)])),
        chunks: txt('[data-coverage=chunks]'), records: txt('[data-coverage=records]'), lost: txt('[data-coverage=lost]'), gaps: txt('[data-coverage=gaps]'),
        products: [...document.querySelectorAll('section.product')].map((sec: any) => ({
          id: sec.getAttribute('data-product'),
          loaded: Number(sec.querySelector('[data-field=loaded-files]')?.textContent),
          rows: [...sec.querySelectorAll('tr[data-vuln]')].map((tr: any) => [tr.getAttribute('data-vuln'), tr.getAttribute('data-purl'), tr.getAttribute('data-status'), tr.getAttribute('data-step')]),
          svgBars: sec.querySelectorAll('svg.timeline rect[data-count]').length,
        })),
      };
    });
    assert.deepEqual(dom.counts, json.counts);
    assert.deepEqual([dom.chunks, dom.records, dom.lost, dom.gaps], [String(json.coverage.chunks), json.coverage.records, json.coverage.lost, String(json.coverage.gaps.length)]);
    assert.deepEqual(dom.products.map((p) => [p.id, p.loaded, p.rows]), json.products.map((p) => [p.product.id, p.loadedFiles, p.verdicts.map((v) => [v.vulnerability, v.component.purl, v.status, v.step])]));
    for (const p of dom.products) assert.ok(p.svgBars > 0, `timeline of ${p.id} has bars`);
    assert.deepEqual(requests, [`file://${html}`], 'a self-contained file loads nothing else');
    const png = path.join(s.dir, 'report.png');
    await page.screenshot({ path: png, fullPage: true });
    assert.equal(fs.readFileSync(png).subarray(1, 4).toString('latin1'), 'PNG');
    console.log(`screenshot: ${png}`);
  } finally {
    await ctx.close();
  }
});
