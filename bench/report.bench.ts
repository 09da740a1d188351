/**
 * rtev report over a large evidence directory (issue 15: 10M records in <= 10 s), reusing the
 * evidence index. The evidence is synthetic but signed and sealed by the real chunk writer and
 * signer (test/helpers/synthetic-evidence.ts: every event type, 97 processes, two containers,
 * function_call records of two probed functions), generated once and kept in --dir.
 *
 *   node dist/bench/report.bench.js [--records 10000000] [--dir /var/tmp/rtev-bench-report] [--reps 3] [--index FILE]
 *
 * --index FILE: the index file to build or reuse (default DIR/index-RECORDS.duckdb); an index of
 * another version is rebuilt by the first report.
 *
 * Phases: generate (once), index (the first `rtev report`, which builds the index), then --reps
 * warm `rtev report` runs of the real CLI (index reused, nothing new), and one in-process run that
 * times each Observations method. The SBOM has 2,000 deb components, 12 of them owning files the
 * evidence touches (CycloneDX evidence.occurrences); the OSV file has advisories for those (two
 * with functions: SSL_read in libssl.so.3 called, vuln_func in the app called) and for 200
 * never-loaded ones. Not run in CI. Results go to docs/benchmarks.md.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openEvidenceIndex } from '../src/index/index';
import { indexObservations } from '../src/report/index-observations';
import { loadVerifyKeyFile } from '../src/sign/key-files';
import { cachedSyntheticEvidence } from '../test/helpers/synthetic-evidence';

interface Args { records: number; dir: string; reps: number; index: string | undefined }

function args(): Args {
  const a: Args = { records: 10_000_000, dir: '/var/tmp/rtev-bench-report', reps: 3, index: undefined };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i++) {
    const k = v[i]!;
    const next = (): string => v[++i] ?? '';
    if (k === '--records') a.records = Number(next());
    else if (k === '--dir') a.dir = next();
    else if (k === '--reps') a.reps = Number(next());
    else if (k === '--index') a.index = next();
  }
  return a;
}

const RTEV = path.resolve(__dirname, '..', '..', 'bin', 'rtev');
const load = (): string => os.loadavg().map((x) => x.toFixed(1)).join(' ');

async function generate(a: Args): Promise<{ evidence: string; pub: string }> {
  const { evidence, pub, generatedMs } = await cachedSyntheticEvidence(a.dir, a.records);
  if (generatedMs !== undefined) console.log(`generate: ${a.records} records in ${(generatedMs / 1000).toFixed(1)} s (load ${load()})`);
  return { evidence, pub };
}

/** inputs writes the SBOM (2,000 components) and the OSV advisories the benchmark reports on. */
function inputs(dir: string): { sbom: string; vulns: string } {
  const deb = (name: string): string => `pkg:deb/debian/${name}@1.0-1?arch=amd64&distro=debian-12`;
  const owned: Array<{ name: string; files: string[] }> = [
    { name: 'libssl3', files: ['/usr/lib/x86_64-linux-gnu/libssl.so.3'] },
    { name: 'synth-app', files: ['/opt/app/bin/app'] },
    ...[0, 1, 2].map((i) => ({ name: `libz${i}`, files: [`/usr/lib/x86_64-linux-gnu/libz${i}.so.1`] })),
    ...[0, 1, 2, 3, 4, 5, 6].map((i) => ({ name: `tool${i}`, files: [`/usr/bin/tool${i}`] })),
  ];
  const components = [
    ...owned.map((o) => ({ type: 'library', 'bom-ref': o.name, name: o.name, version: '1.0-1', purl: deb(o.name), evidence: { occurrences: o.files.map((location) => ({ location })) } })),
    ...Array.from({ length: 2000 - owned.length }, (_, i) => ({ type: 'library', 'bom-ref': `pkg${i}`, name: `pkg${i}`, version: '1.0-1', purl: deb(`pkg${i}`) })),
  ];
  const sbom = path.join(dir, 'sbom.cdx.json');
  fs.writeFileSync(sbom, JSON.stringify({ bomFormat: 'CycloneDX', specVersion: '1.6', version: 1, components }));
  const osv = (id: string, name: string, imports?: object[]): object => ({
    id, summary: `synthetic advisory ${id} (benchmark data)`, database_specific: { synthetic: true },
    affected: [{ package: { ecosystem: 'Debian:12', name }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '9.9-1' }] }], ...(imports ? { ecosystem_specific: { imports } } : {}) }],
  });
  const vulns = [
    osv('BENCH-SSL', 'libssl3', [{ path: 'libssl.so.3', symbols: ['SSL_read'] }]),
    osv('BENCH-APP', 'synth-app', [{ path: '/opt/app/bin/app', symbols: ['vuln_func', 'other_func'] }]),
    ...owned.slice(2).map((o) => osv(`BENCH-${o.name}`, o.name)),
    ...Array.from({ length: 200 }, (_, i) => osv(`BENCH-NL-${i}`, `pkg${i}`)),
  ];
  const file = path.join(dir, 'vulns.json');
  fs.writeFileSync(file, JSON.stringify(vulns));
  return { sbom, vulns: file };
}

function report(ev: string, pub: string, sbom: string, vulns: string, index: string, out: string): { ms: number; stderr: string; code: number | null } {
  const t = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [RTEV, 'report', ev, '--pubkey', pub, '--sbom', sbom, '--vulns', vulns, '--host', '--index', index, '--format', 'json', '--out', out],
    { encoding: 'utf8', maxBuffer: 64 << 20 });
  return { ms: Number(process.hrtime.bigint() - t) / 1e6, stderr: r.stderr, code: r.status };
}

async function main(): Promise<void> {
  const a = args();
  fs.mkdirSync(a.dir, { recursive: true });
  console.log(`report benchmark: ${a.records} records, ${os.cpus().length} CPUs (${os.cpus()[0]?.model}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, load ${load()}`);
  const { evidence, pub } = await generate(a);
  const { sbom, vulns } = inputs(a.dir);
  const index = a.index ?? path.join(a.dir, `index-${a.records}.duckdb`);
  const out = path.join(a.dir, 'report.json');
  if (!fs.existsSync(index)) {
    const first = report(evidence, pub, sbom, vulns, index, out);
    if (first.code !== 0) throw new Error(`rtev report failed: ${first.stderr}`);
    console.log(`first report (builds the index): ${(first.ms / 1000).toFixed(1)} s (load ${load()})`);
  }
  const times: number[] = [];
  for (let i = 0; i < a.reps; i++) {
    const r = report(evidence, pub, sbom, vulns, index, out);
    if (r.code !== 0) throw new Error(`rtev report failed: ${r.stderr}`);
    times.push(r.ms);
    console.log(`warm report ${i + 1}: ${(r.ms / 1000).toFixed(2)} s (load ${load()})`);
  }
  const doc = JSON.parse(fs.readFileSync(out, 'utf8')) as { coverage: { records: string; chunks: number }; counts: Record<string, number>; products: Array<{ verdicts: Array<{ vulnerability: string; status: string; step: string }> }> };
  const steps: Record<string, number> = {};
  for (const v of doc.products[0]?.verdicts ?? []) steps[`${v.status}/${v.step}`] = (steps[`${v.status}/${v.step}`] ?? 0) + 1;
  console.log(`report: ${doc.coverage.records} records in ${doc.coverage.chunks} chunks; verdicts ${JSON.stringify(steps)}`);
  // where the time goes: each Observations method in-process (index open included)
  const t0 = process.hrtime.bigint();
  const ms = (t: bigint): string => `${(Number(process.hrtime.bigint() - t) / 1e6).toFixed(0)} ms`;
  const idx = await openEvidenceIndex({ source: evidence, indexPath: index, keys: [loadVerifyKeyFile(pub)] });
  const phases: string[] = [`open+sync ${ms(t0)}`];
  try {
    const obs = indexObservations(idx);
    for (const [name, f] of [
      ['coverage', () => obs.coverage()], ['functionProbes', () => obs.functionProbes()], ['loadedFiles', () => obs.loadedFiles({ kind: 'host' })],
      ['functionHits', () => obs.functionHits({ kind: 'host' })], ['activity', () => obs.activity({ kind: 'host' }, 60)],
    ] as const) {
      const t = process.hrtime.bigint();
      await (f as () => Promise<unknown>)();
      phases.push(`${name} ${ms(t)}`);
    }
  } finally {
    await idx.close();
  }
  console.log(`in-process: ${phases.join(', ')}`);
  const sorted = [...times].sort((x, y) => x - y);
  console.log(`RESULT warm report median ${(sorted[Math.floor(sorted.length / 2)]! / 1000).toFixed(2)} s, min ${(sorted[0]! / 1000).toFixed(2)} s over ${a.reps} runs; index ${(fs.statSync(index).size / 2 ** 20).toFixed(0)} MiB; load ${load()}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
