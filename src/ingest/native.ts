import { RtevError } from '../errors';
import { addonPath } from '../platform/paths';

/** Opaque handles owned by the addon. */
export type ObjectHandle = { readonly __brand: 'bpf_object' };
export type RingHandle = { readonly __brand: 'ring' };
export type EncoderHandle = { readonly __brand: 'encoder' };

export type UprobeMultiKind = 'uprobe_multi' | 'uretprobe_multi' | 'uprobe_session';

/** NativeBinding is the addon's surface (native/*.c; exported in native/init.c). */
export interface NativeBinding {
  openObject(path: string): ObjectHandle;
  setGlobal(h: ObjectHandle, name: string, bytes: Buffer): void;
  setMapMaxEntries(h: ObjectHandle, map: string, entries: number): void;
  setAutoload(h: ObjectHandle, program: string, on: boolean): void;
  programs(h: ObjectHandle): { name: string; section: string }[];
  load(h: ObjectHandle, echoLog: boolean): void;
  attach(h: ObjectHandle, program: string): number;
  /** attachTracepoint attaches a tracepoint program to `category/name` instead of its section's tracepoint */
  attachTracepoint?(h: ObjectHandle, program: string, tracepoint: string): number;
  attachUprobe(h: ObjectHandle, program: string, retprobe: boolean, pid: number, binary: string, fileOffset: bigint, cookie: bigint): number;
  /**
   * attachUprobeMulti attaches one program to several offsets of one file with a single
   * uprobe_multi link (kernel >= 6.6; `uprobe_session` >= 6.13); cookies[i] is what
   * bpf_get_attach_cookie gives at offsets[i]. pid <= 0: every process.
   */
  attachUprobeMulti(h: ObjectHandle, program: string, kind: UprobeMultiKind, binary: string, fileOffsets: bigint[],
    cookies: bigint[], pid: number): number;
  /** setExpectedAttachType must precede load() for programs attached with attachUprobeMulti. */
  setExpectedAttachType(h: ObjectHandle, program: string, kind: UprobeMultiKind): void;
  /** uprobeSessionSupported: the running kernel's BTF has uprobe sessions and their kfuncs. */
  uprobeSessionSupported(): boolean;
  /** runIterator runs a BPF iterator program over all its elements once; returns the bytes it wrote. */
  runIterator(h: ObjectHandle, program: string): number;
  detach(h: ObjectHandle, link: number): void;
  /**
   * detachMany destroys the links from parallel threads and returns when all are gone (unknown ids
   * are ignored). Same effect as detach() per link; faster for uprobe links (docs/probes-network.md).
   */
  detachMany(h: ObjectHandle, links: number[]): void;
  mapUpdate(h: ObjectHandle, map: string, key: Buffer, value: Buffer): void;
  mapDelete(h: ObjectHandle, map: string, key: Buffer): boolean;
  mapLookup(h: ObjectHandle, map: string, key: Buffer): Buffer | null;
  /**
   * callback(batch, usedBytes, slot) per batch; callback(null, null, null) once after stopRing
   * drained the ring. Each batch's slot must be given back with releaseSlot.
   */
  startRing(h: ObjectHandle, map: string, callback: (batch: Buffer | null, used: number | null, slot: number | null) => void,
    encoder?: EncoderHandle): RingHandle;
  /**
   * The fast path (native/encode.h): an encoder given to startRing turns the records it can
   * into canonical NDJSON lines in the consumer thread (segment frames, src/decode/segment.ts).
   * With `attribute`, only records of cgroups set with encoderSetCgroup are encoded; the
   * fragments are the exact bytes `,"container_id":…` / `,"image_digest":…` (or null).
   * Optional: a binding without them (the test double) runs the reference path only.
   */
  createEncoder?(fileOpen: boolean, attribute: boolean): EncoderHandle;
  encoderSetCgroup?(e: EncoderHandle, id: bigint, v1: boolean, container: Buffer | null, digest: Buffer | null): boolean;
  encoderClearCgroups?(e: EncoderHandle): void;
  encoderForgetCgroup?(e: EncoderHandle, id: bigint, v1: boolean): void;
  /** encodeFrames runs raw record frames through the consumer thread's slot writer (tests, benchmarks) */
  encodeFrames?(e: EncoderHandle, frames: Buffer, used: number): Buffer[];
  releaseSlot(ring: RingHandle, slot: number): void;
  stopRing(ring: RingHandle): void;
  numPossibleCpus(): number;
}

/** NativeError is what the addon throws: a code, an errno and libbpf's log. */
export interface NativeError extends Error {
  code: string;
  errno: number;
  libbpfLog: string;
}

export function isNativeError(err: unknown): err is NativeError {
  return err instanceof Error && typeof (err as Partial<NativeError>).code === 'string' && 'libbpfLog' in err;
}

let binding: NativeBinding | undefined;

/** loadBinding loads the addon (native/build/Release/rtev_native.node, or RTEV_NATIVE_ADDON) once. */
export function loadBinding(): NativeBinding {
  if (binding !== undefined) return binding;
  const file = addonPath();
  try {
    binding = require(file) as NativeBinding;
  } catch (err) {
    throw new RtevError('ADDON_LOAD', `cannot load the native addon ${file}`, {
      cause: err, hint: "build it with 'make build' (needs libbpf-dev, libelf-dev and a C compiler)",
    });
  }
  return binding;
}

/** lastVerifierLines keeps the part of a libbpf log that says why a load failed. */
export function lastVerifierLines(log: string, count = 3): string[] {
  return log.split('\n').map((l) => l.trim()).filter((l) => l.length > 0 && !l.startsWith('libbpf: prog') && !l.startsWith('-- END'))
    .slice(-count);
}
