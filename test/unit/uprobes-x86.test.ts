import assert from 'node:assert/strict';
import { test } from 'node:test';
import { X86DecodeError, decodeAll, decodeLength, retOffsets } from '../../src/ingest/uprobes/x86';

// Instructions full of C3 bytes that are not RETs (immediates, displacements, ModRM/SIB, VEX/EVEX
// payloads), with the lengths objdump (binutils 2.40) gives them; only the first two are RETs.
const CASES: [string, string][] = [
  ['c3', 'ret'], ['c2 08 00', 'ret $0x8'], ['b8 c3 c3 c3 c3', 'mov $imm32,%eax'], ['48 8b 43 c3', 'mov -0x3d(%rbx),%rax'],
  ['48 b8 c3 c3 c3 c3 c3 c3 c3 c3', 'movabs $imm64,%rax'], ['66 b8 c3 c3', 'mov $imm16,%ax'], ['49 3b 66 10', 'cmp 0x10(%r14),%rsp'],
  ['0f 86 c3 00 00 00', 'jbe rel32'], ['e8 c3 c3 c3 c3', 'call rel32'], ['48 8d 05 c3 00 00 00', 'lea rip-relative'],
  ['c5 f8 77', 'vzeroupper'], ['c5 fd 6f 04 c3', 'vmovdqa (%rbx,%rax,8),%ymm0'], ['c4 e3 7d 39 c3 01', 'vextracti128'],
  ['62 f1 7c 48 28 c3', 'vmovaps zmm'], ['62 f1 7c 48 10 44 c3 01', 'vmovups disp8*N'], ['f3 0f 1e fa', 'endbr64'],
  ['66 0f 3a 0f c3 08', 'palignr'], ['0f 38 00 c3', 'pshufb'], ['f7 c3 c3 c3 c3 c3', 'test $imm32,%ebx'], ['f6 c3 c3', 'test $imm8,%bl'],
  ['f7 d3', 'not %ebx'], ['66 f7 c3 c3 c3', 'test $imm16,%bx'], ['a1 c3 c3 c3 c3 c3 c3 c3 c3', 'movabs moffs64'],
  ['67 a1 c3 c3 c3 c3', 'addr32 mov moffs32'], ['c7 44 24 08 c3 c3 c3 c3', 'movl $imm32,8(%rsp)'],
  ['48 c7 04 25 c3 00 00 00 c3 00 00 00', 'movq $imm32,abs (SIB no base)'], ['0f ba e3 c3', 'bt $imm8'], ['44 0f 11 7c 24 c3', 'movups %xmm15'],
  ['cc', 'int3'], ['90', 'nop'], ['66 0f 1f 44 00 00', 'nopw'], ['f3 48 a5', 'rep movsq'], ['f0 48 0f b1 0b', 'lock cmpxchg'],
  ['48 83 c4 c3', 'add $imm8,%rsp'], ['eb c3', 'jmp rel8'], ['74 c3', 'je rel8'], ['c8 c3 00 c3', 'enter'], ['8f c3', 'pop r/m'],
  ['0f 0b', 'ud2'], ['48 63 c3', 'movslq'], ['c4 e2 79 00 c3', 'vpshufb'], ['c4 e3 f9 16 c3 01', 'vpextrq'], ['0f 70 c3 c3', 'pshufw'],
  ['c5 f9 70 c3 c3', 'vpshufd'], ['62 f3 fd 48 3f c3 c3', 'vpcmpw'],
];
const hex = (s: string): Buffer => Buffer.from(s.replace(/ /g, ''), 'hex');

test('x86-64 lengths: each instruction alone, as objdump decodes it', () => {
  for (const [bytes, what] of CASES) {
    const b = hex(bytes);
    assert.equal(decodeLength(b, 0).length, b.length, `${what} (${bytes})`);
  }
});

test('x86-64 RETs: only at instruction boundaries, never a C3 inside another instruction', () => {
  const all = Buffer.concat(CASES.map(([b]) => hex(b)));
  const ins = decodeAll(all);
  assert.equal(ins.length, CASES.length);
  assert.deepEqual(retOffsets(all), [0, 1]);
  // the same bytes, looked at naively, hold many C3s
  assert.ok([...all].filter((x) => x === 0xc3).length > 60);
});

test('x86-64 decoder gives up on what it does not know or what runs past the end', () => {
  for (const bad of ['06', '60', 'd4 0a', '48 48 90', 'b8 c3 c3', '0f 04', '8f e8 78 c2 c3 00', 'c4 e4 79 00 c3']) {
    assert.throws(() => decodeAll(hex(bad)), X86DecodeError, bad);
  }
  // 15 prefixes: longer than any instruction
  assert.throws(() => decodeAll(hex('66'.repeat(15) + '90')), X86DecodeError);
});
