/**
 * A container selection decided in user space (src/ingest/cgroup-gate.ts + the pipeline's hold):
 * records of a new cgroup wait for its attribution, then are kept (matching container) or
 * filtered (counted); a cgroup whose attribution does not come within the hold bound is shed
 * (counted lost), never written unattributed; the cgroups decided for good are denied in the
 * kernel with the key bpf/common.h computes. Reference and fast path write the same bytes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ContainerFacts } from '../../src/enrich';
import { CgroupGate } from '../../src/ingest/cgroup-gate';
import { FastPath } from '../../src/ingest/fast-path';
import { loadBinding } from '../../src/ingest/native';
import { PathFilter } from '../../src/ingest/path-filter';
import { Pipeline } from '../../src/ingest/pipeline';
import { CGROUP_V1_KEY, cgroupFilterKey } from '../../src/ingest/session';
import { fileOpenRecord, frames, memorySink, ScriptedLookup, type FinalAnswer } from '../helpers/ring-records';

const WEB = 'a'.repeat(64);
const DB = 'b'.repeat(64);
const DIGEST = 'sha256:' + 'c'.repeat(64);

const FACTS: Record<string, ContainerFacts> = {
  [`podman://${WEB}`]: { runtime: 'podman', id: WEB, names: ['web'], digest: DIGEST },
  [`podman://${DB}`]: { runtime: 'podman', id: DB, names: ['db'], digest: DIGEST },
};

/** cgroup 10: web, 11: db, 12: host, 13: a container never resolved, 1 + v1 20: host on a hybrid host */
const ANSWERS = new Map<string, FinalAnswer>([
  ['v2:10', { containerId: `podman://${WEB}`, imageDigest: DIGEST }],
  ['v2:11', { containerId: `podman://${DB}`, imageDigest: DIGEST }],
  ['v2:12', {}],
  ['v2:13', 'never'],
  ['v1:20', {}],
]);

/** attribution that is pending until whenSettled is asked (as the Enricher's first lookup), 5 ms later settled */
const lookup = (): ScriptedLookup => new ScriptedLookup((id, h) => ANSWERS.get(`${h}:${id}`) ?? {}, { settleMs: 5, neverWaits: true });

const openRecord = (ts: bigint, cgroup: bigint, v1: bigint, path: string): Buffer => fileOpenRecord({ ts, cgroup, v1, path });

test('gate: a narrowing selection keeps its containers, drops the rest, denies in the kernel only what is decided for good', () => {
  const denied: bigint[] = [];
  const gate = new CgroupGate({ selector: { containers: ['web'] }, facts: (id) => FACTS[id], deny: (k) => { denied.push(k); return true; } });
  assert.equal(gate.keep('v2:10', 10n, 'v2', { containerId: `podman://${WEB}`, imageDigest: DIGEST }), true);
  assert.equal(gate.keep('v2:11', 11n, 'v2', { containerId: `podman://${DB}`, imageDigest: DIGEST }), false);
  assert.equal(gate.keep('v2:12', 12n, 'v2', {}), false);
  assert.equal(gate.keep('v1:20', 20n, 'v1', {}), false);
  // a container whose names are unknown yet: dropped now, not denied (its resolution may still match)
  assert.equal(gate.keep('v2:14', 14n, 'v2', { containerId: `podman://${'d'.repeat(64)}` }), false);
  assert.deepEqual(denied, [11n, 12n, 20n | CGROUP_V1_KEY]);
  assert.equal(cgroupFilterKey(20n, 'v1'), (1n << 63n) | 20n, 'bit 63 marks a v1 memory cgroup (bpf/common.h CGROUP_V1_KEY)');
  // decisions are remembered: asking again denies nothing more
  assert.equal(gate.keep('v2:12', 12n, 'v2', {}), false);
  assert.deepEqual(gate.stats, { kept: 1, dropped: 4, denied: 3, denyFull: 0, pruned: 0, pruneSkipped: 0 });
  // by image, and containers-only
  const byImage = new CgroupGate({ selector: { images: [DIGEST] }, facts: (id) => FACTS[id] });
  assert.equal(byImage.keep('v2:11', 11n, 'v2', { containerId: `podman://${DB}`, imageDigest: DIGEST }), true);
  const any = new CgroupGate({ selector: { containersOnly: true }, facts: () => undefined });
  assert.equal(any.keep('v2:13', 13n, 'v2', { containerId: `podman://${DB}` }), true);
  assert.equal(any.keep('v2:12', 12n, 'v2', {}), false);
});

test('gate: keys decided before the kernel filter exists are denied once it is connected; a full map is counted', () => {
  const gate = new CgroupGate({ selector: { containers: ['web'] }, facts: (id) => FACTS[id] });
  gate.keep('v2:12', 12n, 'v2', {});
  gate.keep('v2:11', 11n, 'v2', { containerId: `podman://${DB}`, imageDigest: DIGEST });
  const denied: bigint[] = [];
  gate.connect((k) => { denied.push(k); return k !== 11n; });
  assert.deepEqual(denied, [12n, 11n]);
  assert.deepEqual(gate.stats, { kept: 0, dropped: 2, denied: 1, denyFull: 1, pruned: 0, pruneSkipped: 0 });
});

/** run: the records through a pipeline with the selection, by the reference or the fast path */
async function run(records: Buffer[], fast: boolean, holdMs = 200): Promise<{ lines: string[]; pipeline: Pipeline; gate: CgroupGate }> {
  const sink = memorySink();
  const gate = new CgroupGate({ selector: { containers: ['web'] }, facts: (id) => FACTS[id] });
  const fp = fast ? FastPath.create(loadBinding(), { fileOpen: true, attribute: true }, {}) : undefined;
  if (fast) assert.ok(fp !== undefined, 'the addon has the fast path');
  const pipeline = new Pipeline({ sink, pathFilter: new PathFilter([], []), containers: lookup(), select: gate, holdMs, ...(fp !== undefined ? { fastPath: fp } : {}) });
  // two batches: the second comes after the attributions settled (fast path lines for kept cgroups)
  for (const part of [records, records.map((r) => Buffer.from(r))]) {
    const raw = frames(part);
    const slots = fp !== undefined ? fp.encodeFrames(raw, raw.length) : [raw];
    for (const slot of slots) pipeline.handleBatch(slot, slot.length);
    await pipeline.idle();
  }
  return { lines: sink.lines, pipeline, gate };
}

test('pipeline + gate: new cgroups wait for attribution, then are kept or filtered; one never attributed is shed; the identity holds', async () => {
  const records = [
    openRecord(1n, 10n, 0n, '/web/first'), openRecord(2n, 12n, 0n, '/host/a'), openRecord(3n, 11n, 0n, '/db/a'),
    openRecord(4n, 13n, 0n, '/never/a'), openRecord(5n, 10n, 0n, '/web/second'), openRecord(6n, 1n, 20n, '/hybrid-host/a'),
  ];
  for (const fast of [false, true]) {
    const { lines, pipeline, gate } = await run(records, fast);
    const paths = lines.map((l) => JSON.parse(l).event.path);
    assert.deepEqual(paths, ['/web/first', '/web/second', '/web/first', '/web/second'], `fast=${fast}`);
    for (const l of lines) assert.equal(JSON.parse(l).container_id, `podman://${WEB}`);
    const u = pipeline.user.file_open;
    assert.equal(u.received, 12n);
    assert.equal(u.written, 4n);
    assert.equal(u.filtered, 6n, 'host, hybrid host and the other container, twice each');
    assert.equal(u.shed, 2n, 'the never attributed cgroup, once per batch');
    assert.equal(u.received, u.written + u.filtered + u.shed + u.rejected, 'the accounting identity');
    assert.equal(pipeline.unattributed, 0, 'nothing is written unattributed under a selection');
    assert.equal(pipeline.hold.expired, 2);
    assert.ok(pipeline.hold.maxRecords >= 4 && pipeline.hold.maxBytes > 0 && pipeline.hold.maxMs >= 190, JSON.stringify(pipeline.hold));
    assert.equal(gate.stats.kept, 1);
  }
  const ref = await run(records, false);
  const fast = await run(records, true);
  assert.deepEqual(fast.lines, ref.lines, 'the fast path writes the bytes of the reference path');
});

test('pipeline: the hold is bounded in bytes: past maxHeldBytes the oldest cgroup is released early and counted', async () => {
  const sink = memorySink();
  const pipeline = new Pipeline({ sink, pathFilter: new PathFilter([], []), containers: lookup(), holdMs: 100, maxHeldBytes: 300 });
  const raw = frames([openRecord(1n, 13n, 0n, '/never/a'), openRecord(2n, 13n, 0n, '/never/b'), openRecord(3n, 12n, 0n, '/host/a'), openRecord(4n, 12n, 0n, '/host/b')]);
  pipeline.handleBatch(raw, raw.length);
  await pipeline.idle();
  // without a selection, what cannot wait is written unattributed (and counted)
  assert.equal(sink.lines.length, 4);
  assert.ok(pipeline.hold.evicted >= 2, JSON.stringify(pipeline.hold));
  assert.ok(pipeline.hold.maxBytes <= 300 + 100, `bounded: ${pipeline.hold.maxBytes}`);
  assert.equal(pipeline.unattributed, pipeline.hold.evicted + pipeline.hold.expired);
});
