/**
 * When the symbolizer re-reads /proc/PID/maps after a lookup miss: decided by the sequence of
 * lookups, never by the clock, so a fast and a slow host give the same frames. The maps come
 * from a proc root in a temp dir, rewritten between lookups like a process mapping libraries.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { Symbolizer } from '../../src/symbolize/symbolizer';

const PID = 4242;
const line = (start: number, name: string) =>
  `${start.toString(16)}-${(start + 0x1000).toString(16)} r-xp 00000000 08:01 ${start >> 12} /usr/lib/${name}\n`;

test('a lookup miss re-reads the maps: always the first after a read, then once per N lookups', () => {
  const proc = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-proc-'));
  const maps = path.join(proc, String(PID), 'maps');
  fs.mkdirSync(path.dirname(maps));
  fs.writeFileSync(maps, line(0x10000, 'a.so'));
  const s = new Symbolizer({ procRoot: proc, mapsRefreshLookups: 8 });
  assert.equal(s.symbolizeFrame(PID, 0x10010n).library, '/usr/lib/a.so');
  assert.equal(s.counters.mapsReads, 1);

  // b.so mapped right after the first read (dlopen): the first miss re-reads at once
  fs.appendFileSync(maps, line(0x20000, 'b.so'));
  assert.equal(s.symbolizeFrame(PID, 0x20010n).library, '/usr/lib/b.so');
  assert.equal(s.counters.mapsReads, 2);

  // c.so: a miss within 8 lookups of that re-read does not read again...
  fs.appendFileSync(maps, line(0x30000, 'c.so'));
  assert.equal(s.symbolizeFrame(PID, 0x30010n).library, undefined);
  assert.equal(s.counters.mapsReads, 2);
  for (let i = 0; i < 6; i++) s.symbolizeFrame(PID, 0x10010n);
  assert.equal(s.symbolizeFrame(PID, 0x30010n).library, undefined, 'the 8th lookup since the read');
  // ...the 9th does
  assert.equal(s.symbolizeFrame(PID, 0x30010n).library, '/usr/lib/c.so');
  assert.equal(s.counters.mapsReads, 3);

  // the process exits: the next due re-read fails, is counted once, the snapshot stays
  fs.rmSync(path.dirname(maps), { recursive: true });
  for (let i = 0; i < 8; i++) s.symbolizeFrame(PID, 0x10010n);
  assert.equal(s.symbolizeFrame(PID, 0x40010n).source, 'none');
  assert.equal(s.counters.processGone, 1);
  assert.equal(s.symbolizeFrame(PID, 0x20010n).library, '/usr/lib/b.so');
  assert.equal(s.symbolizeFrame(PID, 0x50010n).source, 'none');
  assert.equal(s.counters.processGone, 1);
  assert.equal(s.counters.mapsReads, 4, 'a gone process is not read again');
});

test('a process that exits right after its first lookup: the first miss finds it gone', () => {
  const proc = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-proc-'));
  const maps = path.join(proc, String(PID), 'maps');
  fs.mkdirSync(path.dirname(maps));
  fs.writeFileSync(maps, line(0x10000, 'a.so'));
  const s = new Symbolizer({ procRoot: proc });
  assert.equal(s.symbolizeFrame(PID, 0x10010n).library, '/usr/lib/a.so');
  fs.rmSync(path.dirname(maps), { recursive: true });
  assert.equal(s.symbolizeFrame(PID, 0x10n).source, 'none');
  assert.equal(s.counters.processGone, 1);
  assert.equal(s.symbolizeFrame(PID, 0x10010n).library, '/usr/lib/a.so', 'the last snapshot is kept');
});
