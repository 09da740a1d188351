/**
 * Little-endian reads without Buffer's per-call argument validation, for the decode hot path
 * after the record's size was checked (bench/pipeline.bench.ts: about 40 ns saved per read on
 * Node 20). Callers guarantee `offset + width <= b.length`.
 */
export function u16(b: Uint8Array, offset: number): number {
  return b[offset]! | (b[offset + 1]! << 8);
}

export function u32(b: Uint8Array, offset: number): number {
  return (b[offset]! | (b[offset + 1]! << 8) | (b[offset + 2]! << 16)) + b[offset + 3]! * 0x1000000;
}

export function i32(b: Uint8Array, offset: number): number {
  return b[offset]! | (b[offset + 1]! << 8) | (b[offset + 2]! << 16) | (b[offset + 3]! << 24);
}
