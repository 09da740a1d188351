import type { EncoderHandle, NativeBinding } from './native';
import type { FastPathTable } from './pipeline';

export interface FastPathOptions {
  /** file_open records are collected */
  fileOpen: boolean;
  /** container attribution is on: only cgroups the pipeline has set are encoded */
  attribute: boolean;
  /** a user-space path filter is active (--include-path/--exclude-path) */
  pathFilter?: boolean;
}

/**
 * FastPath is the addon's encoder (native/encode.h): the consumer thread of the bulk ring turns
 * file_open records into canonical NDJSON lines itself, with no JS object or string per record
 * (docs/benchmarks.md, "Fast path"). The reference path (decode -> record -> encode) takes every
 * record the encoder leaves to it, and test/unit/fast-path.test.ts holds the two to the same bytes.
 *
 * It also is the pipeline's FastPathTable: the cgroup -> container fields the encoder may use.
 * Set RTEV_FAST_PATH=0 to run the reference path alone (for comparisons).
 */
export class FastPath implements FastPathTable {
  readonly #native: NativeBinding;
  readonly #encoder: EncoderHandle;

  private constructor(native: NativeBinding, encoder: EncoderHandle) {
    this.#native = native;
    this.#encoder = encoder;
  }

  /** create gives undefined when the binding has no encoder (the test double) or it is turned off */
  static create(native: NativeBinding, options: FastPathOptions, env: NodeJS.ProcessEnv = process.env): FastPath | undefined {
    // the user-space path filter needs the decoded path: file_open then takes the reference path
    if (env['RTEV_FAST_PATH'] === '0' || !options.fileOpen || options.pathFilter || native.createEncoder === undefined) return undefined;
    return new FastPath(native, native.createEncoder(options.fileOpen, options.attribute));
  }

  set(id: bigint, v1: boolean, info: { containerId?: string; imageDigest?: string }): void {
    // the exact bytes encodeRecord (src/encode/record.ts) writes for these fields
    const container = info.containerId !== undefined ? Buffer.from(',"container_id":' + JSON.stringify(info.containerId)) : null;
    const digest = info.containerId !== undefined && info.imageDigest !== undefined
      ? Buffer.from(',"image_digest":' + JSON.stringify(info.imageDigest)) : null;
    this.#native.encoderSetCgroup!(this.#encoder, id, v1, container, digest);
  }

  forget(id: bigint, v1: boolean): void {
    this.#native.encoderForgetCgroup!(this.#encoder, id, v1);
  }

  clear(): void {
    this.#native.encoderClearCgroups!(this.#encoder);
  }

  /** encodeFrames: what a consumer thread with this encoder hands to JS for these raw frames */
  encodeFrames(frames: Buffer, used: number): Buffer[] {
    return this.#native.encodeFrames!(this.#encoder, frames, used);
  }

  /** for BpfSession.startRings only: the encoder to give the ring consumer */
  static handleOf(fp: FastPath): EncoderHandle {
    return fp.#encoder;
  }
}
