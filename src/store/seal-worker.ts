import { parentPort, workerData } from 'node:worker_threads';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { fingerprint } from '../sign/keys';
import { ChainSealer, type SealJob, type SealerState } from './chain-sealer';
import { reportFailure, type FailureCell } from './seal-failure';

/**
 * The seal worker: fsync, rename, sign and retention run here, so that a busy ingest
 * thread (which may not return to the event loop for long under an event storm) neither
 * waits for the disk nor keeps chunks from being sealed.
 *
 * Messages in: { job: SealJob } in sequence order (with the digest the writer took as it
 * wrote the chunk), then { close: true }.
 * Messages out: { closed: true } once every job before the close is done.
 * A failure is written to the shared FailureCell at once (the ingest thread polls it) and
 * every later job is abandoned: sealing past a hole would break the chain.
 */

const data = workerData as { state: Omit<SealerState, 'key'> & { privateKey: KeyObject }; cell: FailureCell };
const publicKey = createPublicKey(data.state.privateKey);
const sealer = new ChainSealer({ ...data.state, key: { privateKey: data.state.privateKey, publicKey, keyid: fingerprint(publicKey) } });
let broken = false;

parentPort!.on('message', (msg: { job?: SealJob; close?: boolean }) => {
  if (msg.job !== undefined) {
    if (broken) {
      sealer.abandon(msg.job);
      return;
    }
    try {
      sealer.seal(msg.job);
    } catch (err) {
      broken = true;
      reportFailure(data.cell, err, msg.job.seq);
    }
  } else if (msg.close === true) {
    parentPort!.postMessage({ closed: true });
  }
});
