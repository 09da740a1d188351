import { parentPort, workerData } from 'node:worker_threads';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { fingerprint } from '../sign/keys';
import { ChainSealer, MAX_GROUP, SealFailure, type SealJob, type SealerState } from './chain-sealer';
import { reportFailure, type FailureCell } from './seal-failure';

/**
 * The seal worker: fsync, rename, sign and retention run here, so that a busy ingest
 * thread (which may not return to the event loop for long under an event storm) neither
 * waits for the disk nor keeps chunks from being sealed.
 *
 * Messages in: { job: SealJob } in sequence order (with the digest the writer took as it
 * wrote the chunk), then { close: true }.
 * Messages out: { closed: true } once every job before the close is done.
 * Jobs that arrive while a group is being sealed wait in `queue` and are sealed together as
 * the next group (group commit, chain-sealer.ts). Each sealed job adds 1 to progress[0]
 * (the ingest thread reads it to bound the number of chunks waiting: chunk-writer.ts).
 * A failure is written to the shared FailureCell at once (the ingest thread polls it) and
 * every later job is abandoned: sealing past a hole would break the chain.
 */

const data = workerData as { state: Omit<SealerState, 'key'> & { privateKey: KeyObject }; cell: FailureCell; progress?: SharedArrayBuffer };
const publicKey = createPublicKey(data.state.privateKey);
const sealer = new ChainSealer({ ...data.state, key: { privateKey: data.state.privateKey, publicKey, keyid: fingerprint(publicKey) } });
const progress = data.progress === undefined ? undefined : new Int32Array(data.progress);
let broken = false;
let running = false;
let closing = false;
const queue: SealJob[] = [];

parentPort!.on('message', (msg: { job?: SealJob; close?: boolean }) => {
  if (msg.job !== undefined) {
    if (broken) sealer.abandon(msg.job);
    else queue.push(msg.job);
  } else if (msg.close === true) {
    closing = true;
  }
  void drain();
});

async function drain(): Promise<void> {
  if (running) return;
  running = true;
  while (queue.length > 0 && !broken) {
    const group = queue.splice(0, MAX_GROUP);
    try {
      await sealer.sealGroup(group);
      if (progress !== undefined) Atomics.add(progress, 0, group.length);
    } catch (err) {
      broken = true;
      const seq = err instanceof SealFailure ? err.seq : group[0]!.seq;
      if (progress !== undefined) Atomics.add(progress, 0, seq - group[0]!.seq);
      reportFailure(data.cell, err instanceof SealFailure ? err.error : err, seq);
      for (const job of group.filter((j) => j.seq >= seq)) sealer.abandon(job);
    }
  }
  for (const job of queue.splice(0)) sealer.abandon(job);
  running = false;
  if (closing) {
    closing = false;
    parentPort!.postMessage({ closed: true });
  }
}
