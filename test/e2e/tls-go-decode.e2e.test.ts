import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { GO_TLS_AT_RET, GO_TLS_FUNCS, resolveGoTls } from '../../src/ingest/uprobes/go';
import { decodeAll } from '../../src/ingest/uprobes/x86';
import { ElfFile } from '../../src/symbolize/elf';
import { readGoPclntab } from '../../src/symbolize/go';
import { nodeHost } from '../../src/symbolize/host';
import { buildGoTls } from '../progs/tls/build';

// Needs the Go toolchain (golang-go) and objdump (binutils), not root: it checks the x86-64 length
// decoder of src/ingest/uprobes/x86.ts against objdump over every function of a real Go executable.

/** objdump's instruction start addresses, and those of its `ret`s. */
function objdumpStarts(file: string): { starts: Set<number>; rets: Set<number> } {
  const out = execFileSync('objdump', ['-d', '-w', '--no-show-raw-insn', file], { maxBuffer: 1 << 30, encoding: 'utf8' });
  const starts = new Set<number>();
  const rets = new Set<number>();
  for (const m of out.matchAll(/^ {1,2}([0-9a-f]+):\t(\S*)/gm)) {
    const a = parseInt(m[1]!, 16);
    starts.add(a);
    if (m[2] === 'ret') rets.add(a);
  }
  return { starts, rets };
}

test('x86-64 decoder: every instruction start of every Go function is one of objdump\'s; the Read/Write RETs are objdump\'s', () => {
  const { normal, stripped } = buildGoTls();
  const { starts, rets } = objdumpStarts(normal);
  const src = nodeHost.open(normal);
  try {
    const elf = ElfFile.parse(src);
    const funcs = readGoPclntab(elf)!;
    let checked = 0;
    const mismatched: string[] = [];
    for (const f of funcs) {
      // crypto/internal/boring/sig.* are byte-pattern markers, not code (objdump says "(bad)" there too)
      if (f.name.startsWith('crypto/internal/boring/sig.')) continue;
      const off = elf.vaddrToFileOffset(f.entry);
      if (off === undefined) continue;
      const ins = decodeAll(src.read(Number(off), Number(f.end - f.entry)));
      const wrong = ins.map((i) => Number(f.entry) + i.offset).filter((a) => !starts.has(a));
      if (wrong.length > 0) mismatched.push(`${f.name} at 0x${wrong[0]!.toString(16)}`);
      checked++;
    }
    assert.ok(checked > 2000, `only ${checked} functions`);
    assert.deepEqual(mismatched, []);
    // the probe points: objdump's rets inside Read and Write, at the same file offsets stripped or not
    const a = resolveGoTls(normal);
    const b = resolveGoTls(stripped);
    assert.equal(a.kind, 'probe');
    assert.deepEqual(b, a);
    if (a.kind !== 'probe') return;
    const probe = a.probe;
    assert.match(a.probe.goVersion, /^go1\.\d+/);
    for (const { name, op } of GO_TLS_FUNCS) {
      const f = funcs.find((x) => x.name === name)!;
      const base = Number(f.entry) - Number(elf.vaddrToFileOffset(f.entry)!);
      const expected = [...rets].filter((r) => r >= Number(f.entry) && r < Number(f.end)).sort((x, y) => x - y);
      const mine: number[] = probe.offsets.filter((_, i) => probe.cookies[i] === (BigInt(op) | GO_TLS_AT_RET)).map((o) => Number(o) + base);
      assert.ok(expected.length > 0);
      assert.deepEqual(mine, expected, name);
      assert.equal(probe.offsets.filter((_, i) => probe.cookies[i] === BigInt(op)).map((o) => Number(o) + base)[0], Number(f.entry));
    }
  } finally {
    src.close();
  }
});

test('Go executables without crypto/tls, and files that are not Go, are not Go TLS targets', () => {
  assert.equal(resolveGoTls('/bin/true').kind, 'not_go');
  assert.equal(resolveGoTls(process.execPath).kind, 'not_go');
});
