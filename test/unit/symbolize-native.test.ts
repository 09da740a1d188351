import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { computeNodeHash, resolveTargets, Symbolizer, formatFrames } from '../../src/symbolize';
import { buildC, buildId, start, tempDir, type CVariants } from '../progs/func/build';
import { requireTools } from '../helpers/tools';

/*
 * Tools: gcc, objcopy, strip, xz (build test/progs/func/vuln.c in every variant: PIE, non-PIE,
 * .gnu_debuglink, build-id debug tree, MiniDebugInfo) and nm, readelf (the independent oracle
 * for symbol offsets and build ids). Why not a recorded binary: the tests run the program and
 * symbolize its live process, so it must be built for this machine's libc and loader, and the
 * debuglink CRC, build-id paths and MiniDebugInfo must come from the toolchain the users have,
 * not from a file we made once. A missing tool fails the test (the Makefile installs them).
 */
const tools = ['gcc', 'objcopy', 'strip', 'xz', 'nm', 'readelf'];
let built: CVariants | undefined;
let dir = '';

function variants(): CVariants {
  if (built === undefined) {
    requireTools(...tools);
    dir = tempDir();
    built = buildC(dir);
  }
  return built;
}

/** expectedOffset computes symbol → file offset with nm + readelf -l, independently of our reader. */
function expectedOffset(file: string, sym: string): bigint {
  const nm = execFileSync('nm', [file], { encoding: 'utf8' });
  const line = nm.split('\n').find((l) => l.endsWith(` ${sym}`));
  assert.ok(line, `nm has ${sym}`);
  const vaddr = BigInt('0x' + line.split(' ')[0]);
  const ph = execFileSync('readelf', ['-lW', file], { encoding: 'utf8' });
  for (const l of ph.split('\n')) {
    const f = l.trim().split(/\s+/);
    if (f[0] !== 'LOAD') continue;
    const off = BigInt(f[1]!), va = BigInt(f[2]!), filesz = BigInt(f[4]!);
    if (vaddr >= va && vaddr < va + filesz) return vaddr - va + off;
  }
  throw new Error('no PT_LOAD');
}

test('native: resolveTargets gives the nm/readelf file offset, canonical symbol and build-id component', async () => {
  const v = variants();
  for (const file of [v.pie, v.nopie]) {
    const { targets, warnings } = await resolveTargets([`${file}:vuln_*`]);
    assert.deepEqual(warnings, []);
    assert.equal(targets.length, 1);
    const t = targets[0]!;
    assert.equal(t.symbol, 'vuln_func');
    assert.equal(t.kind, 'native');
    assert.equal(t.path, file);
    assert.equal(t.fileOffset, expectedOffset(file, 'vuln_func'));
    assert.equal(t.component, `gnu-build-id:${buildId(file)}`);
    assert.equal(t.nodeHash, computeNodeHash('native', `gnu-build-id:${buildId(file)}`, 'vuln_func'));
    const st = fs.statSync(file, { bigint: true });
    assert.equal(t.ino, st.ino);
    assert.equal(t.dev, st.dev);
  }
});

test('native: stripped binaries resolve through debuglink, build-id debug dir and MiniDebugInfo', async () => {
  const v = variants();
  const cases: Array<[string, string[]]> = [[v.debuglink, []], [v.buildIdStripped, [v.debugRoot]], [v.mini, []]];
  for (const [file, debugDirs] of cases) {
    assert.doesNotMatch(execFileSync('nm', [file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).toString(), /vuln_func/);
    const { targets } = await resolveTargets([`${file}:caller_b`], { debugDirs });
    assert.equal(targets.length, 1, file);
    assert.equal(targets[0]!.symbol, 'caller_b');
    assert.equal(targets[0]!.component, `gnu-build-id:${buildId(file)}`);
  }
  // Offsets agree with the unstripped twin.
  const [a] = (await resolveTargets([`${v.debuglink}:vuln_func`])).targets;
  assert.equal(a!.fileOffset, expectedOffset(v.pie, 'vuln_func'));
});

for (const name of ['pie', 'nopie', 'debuglink', 'buildIdStripped', 'mini'] as const) {
  test(`native: describeCall on a live ${name} process names vuln_func, its caller and the node_hash`, async () => {
    const v = variants();
    const file = v[name];
    const p = await start(file);
    try {
      const s = new Symbolizer({ debugDirs: name === 'buildIdStripped' ? [v.debugRoot] : ['/usr/lib/debug'] });
      const vuln = p.values['vuln']!;
      const ret = p.values['ret']!;
      // As the BPF side delivers it: ip first, then (spliced) return address.
      const d = s.describeCall(p.pid, undefined, vuln, [vuln], { entryReturnAddr: ret });
      assert.equal(d.addr, '0x' + vuln.toString(16));
      assert.equal(d.symbol, 'vuln_func');
      assert.equal(d.library, file);
      assert.equal(d.runtime, 'native');
      assert.equal(d.stack[0], d.addr);
      assert.equal(d.stack[1], '0x' + ret.toString(16));
      assert.equal(d.frames[1]!.symbol, 'caller_b');
      assert.equal(d.component, `gnu-build-id:${buildId(file)}`);
      assert.equal(d.node_hash, computeNodeHash('native', `gnu-build-id:${buildId(file)}`, 'vuln_func'));
      assert.equal(d.stackQuality, 'partial');
      assert.equal(d.stack[d.stack.length - 1], '0x0', 'partial stacks end with the 0x0 marker');
      assert.match(formatFrames(d), /#1 0x[0-9a-f]+ caller_b\+0x[0-9a-f]+/);
    } finally {
      await p.stop();
    }
  });
}

test('native: a process that exits while symbolizing gives counted failures, not a throw', async () => {
  const v = variants();
  const p = await start(v.pie);
  const s = new Symbolizer();
  const vuln = p.values['vuln']!;
  const first = s.describeCall(p.pid, undefined, vuln, [vuln]);
  assert.equal(first.symbol, 'vuln_func');
  p.child.kill('SIGKILL');
  await p.stop();
  // Unknown address after exit: maps re-read fails, the last snapshot is kept.
  const later = s.describeCall(p.pid, undefined, vuln, [vuln, 0x10n]);
  assert.equal(later.symbol, 'vuln_func');
  assert.equal(later.frames[1]!.source, 'none');
  assert.ok(s.counters.processGone >= 1);
  // A pid that never existed (or is gone before the first read).
  const none = new Symbolizer().describeCall(0x3fffffff, undefined, 0x1000n, [0x1000n]);
  assert.equal(none.symbol, undefined);
  assert.ok(none.failures.length > 0);
  s.forgetProcess(p.pid);
});

test('targets: non-ELF file, missing symbol and missing file are clear USAGE errors', async () => {
  const v = variants();
  const txt = path.join(dir, 'not-elf.txt');
  fs.writeFileSync(txt, 'hello\n');
  await assert.rejects(resolveTargets([`${txt}:main`]), (e: Error & { code?: string }) => e.code === 'USAGE' && /not an ELF file/.test(e.message));
  await assert.rejects(resolveTargets([`${v.pie}:vuln_fnuc`]), (e: Error & { code?: string }) => e.code === 'USAGE' && /close matches: vuln_func/.test(e.message));
  await assert.rejects(resolveTargets([`${dir}/nope:main`]), /does not exist/);
  await assert.rejects(resolveTargets(['no-colon']), /BINARY:SYMBOL/);
  // A glob that matches nothing only warns when another spec matched.
  const r = await resolveTargets([`${v.pie}:vuln_func`, `${v.pie}:nothing_*`]);
  assert.equal(r.targets.length, 1);
  assert.match(r.warnings.join('\n'), /nothing_\*/);
  // Attach once per distinct file offset.
  const dup = await resolveTargets([`${v.pie}:vuln_func`, `${v.pie}:vuln_*`]);
  assert.equal(dup.targets.length, 1);
});
