import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { VerifyKey } from '../sign/keys';
import type { RejectCode } from './chunk-check';

/**
 * RowPool: worker threads that check a body's digest and build its COPY rows for `rtev ingest`
 * (src/fleet/rows-worker.ts),
 * one job at a time each, jobs queued in order. A worker that fails or exits fails its jobs
 * (the caller builds those rows itself) and is not replaced: the pool shrinks, ingest goes on.
 */

export type WorkerRows = {
  by: 'binary' | 'text';
  pieces: Buffer[];
  parsed: number;
  bad: { code: RejectCode; reason: string } | undefined;
  digestBad?: undefined;
} | { digestBad: { code: RejectCode; reason: string } };

interface Job {
  id: number;
  msg: { id: number; envelope: Uint8Array; host: string; body: Uint8Array; chunkId: bigint };
  resolve: (r: WorkerRows) => void;
  reject: (e: Error) => void;
}

interface Slot { worker: Worker; job: Job | undefined; dead: boolean }

export class RowPool {
  readonly #slots: Slot[] = [];
  readonly #queue: Job[] = [];
  #next = 1;

  constructor(n: number, keys: readonly VerifyKey[]) {
    for (let i = 0; i < n; i++) {
      const worker = new Worker(path.join(__dirname, 'rows-worker.js'), { workerData: { keys } });
      const slot: Slot = { worker, job: undefined, dead: false };
      worker.on('message', (r: { id: number; ok: boolean; reason?: string; by?: 'binary' | 'text'; pieces?: Uint8Array[]; parsed?: number; bad?: { code: RejectCode; reason: string }; digestBad?: { code: RejectCode; reason: string } }) => {
        const job = slot.job;
        slot.job = undefined;
        if (job !== undefined && job.id === r.id) {
          if (!r.ok) job.reject(new Error(`row worker: ${r.reason ?? 'failed'}`));
          else if (r.digestBad !== undefined) job.resolve({ digestBad: r.digestBad });
          else job.resolve({ by: r.by!, pieces: r.pieces!.map((u) => Buffer.from(u.buffer, u.byteOffset, u.byteLength)), parsed: r.parsed!, bad: r.bad });
        }
        this.#pump();
      });
      const die = (err: Error): void => {
        if (slot.dead) return;
        slot.dead = true;
        slot.job?.reject(err);
        slot.job = undefined;
        if (this.#slots.every((s) => s.dead)) for (const j of this.#queue.splice(0)) j.reject(err);
        this.#pump();
      };
      worker.on('error', die);
      worker.on('exit', (code) => die(new Error(`row worker exited (${code})`)));
      worker.unref();
      this.#slots.push(slot);
    }
  }

  get size(): number {
    return this.#slots.filter((s) => !s.dead).length;
  }

  /** build: the rows of one chunk (body copied to the worker; the envelope is checked there again) */
  build(envelope: Uint8Array, host: string, body: Buffer, chunkId: bigint): Promise<WorkerRows> {
    if (this.size === 0) return Promise.reject(new Error('no row worker'));
    return new Promise((resolve, reject) => {
      const id = this.#next++;
      // own copies, moved to the worker: a view's clone would copy its whole underlying buffer (a NATS read buffer)
      const own = (u: Uint8Array): Uint8Array => {
        const c = new Uint8Array(u.byteLength);
        c.set(u);
        return c;
      };
      this.#queue.push({ id, msg: { id, envelope: own(envelope), host, body: own(body), chunkId }, resolve, reject });
      this.#pump();
    });
  }

  #pump(): void {
    for (const s of this.#slots) {
      if (s.dead || s.job !== undefined) continue;
      const job = this.#queue.shift();
      if (job === undefined) return;
      s.job = job;
      s.worker.postMessage(job.msg, [job.msg.envelope.buffer as ArrayBuffer, job.msg.body.buffer as ArrayBuffer]);
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.#slots.map((s) => s.worker.terminate().catch(() => undefined)));
  }
}
