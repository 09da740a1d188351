import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Attributor } from '../../src/packages/attributor';
import type { RootFs } from '../../src/packages/host/root';

/** a root whose every read never answers: the resolutions it queues stay pending */
function stuckRoot(): RootFs {
  const never = new Promise<never>(() => {});
  return { kind: 'host', key: 'stuck', resolve: () => never, lstat: () => never, readFile: () => never, readdir: () => never, open: () => never, close: () => {} };
}

/** lets settled promises run their continuations (setImmediate is not mocked below) */
const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

test('a seal waits for its attributions at most the bound counted from when its window was taken', async (t) => {
  let now = 0;
  const att = new Attributor({ hostRoot: stuckRoot(), openProcRoot: () => undefined, nowMs: () => now });
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const rec = { pid: 1, event: { type: 'file_open', path: '/etc/stuck' } };
  // two chunks close at once, both with the same stuck file (an open storm of one path)
  att.note(rec);
  const first = att.takeWindow();
  att.note(rec);
  const second = att.takeWindow();

  let firstDone = false;
  const p1 = att.finish(first, 5000).then((a) => ((firstDone = true), a));
  t.mock.timers.tick(4999);
  await settle();
  assert.equal(firstDone, false, 'the first seal waits its whole bound');
  now = 5000;
  t.mock.timers.tick(1);
  const a1 = await p1;
  assert.equal(a1.files[0]!.reason, 'timeout');

  // the second window was taken with the first: its bound is over too, it must not wait 5 s more
  let secondDone = false;
  const p2 = att.finish(second, 5000).then((a) => ((secondDone = true), a));
  await settle();
  assert.equal(secondDone, true, 'the second seal did not wait again');
  assert.equal((await p2).files[0]!.reason, 'timeout');

  // a window taken now has its own full bound
  att.note(rec);
  const third = att.takeWindow();
  let thirdDone = false;
  const p3 = att.finish(third, 5000).then(() => (thirdDone = true));
  t.mock.timers.tick(4000);
  await settle();
  assert.equal(thirdDone, false, 'a later window waits its own bound');
  now = 10_000;
  t.mock.timers.tick(1000);
  await p3;
  assert.equal(att.counters().timeouts, 3);
  att.close();
});
