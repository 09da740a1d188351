import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StreamSink, type StreamSinkOptions } from '../../src/store/stream-sink';
import { lossWarning, StatusLine, fitWidth } from '../../src/cli/status';
import type { Ledger } from '../../src/model/ledger';

const info = (probe = 'file_open') => ({ type: 'file_open' as const, tsNs: 1n, probe });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await sleep(10);
}

/** a writer into memory; `stall` makes it answer EAGAIN, `fail` with an errno */
function memoryWriter(): { chunks: Buffer[]; stall: boolean; fail?: string; write: NonNullable<StreamSinkOptions['write']> } {
  const w = {
    chunks: [] as Buffer[], stall: false, fail: undefined as string | undefined,
    write: (_fd: number, data: Buffer, offset: number, length: number, cb: (err: NodeJS.ErrnoException | null, n: number) => void) => {
      setImmediate(() => {
        if (w.fail !== undefined) return cb(Object.assign(new Error(w.fail), { code: w.fail }), 0);
        if (w.stall) return cb(Object.assign(new Error('EAGAIN'), { code: 'EAGAIN' }), 0);
        w.chunks.push(Buffer.from(data.subarray(offset, offset + length)));
        cb(null, length);
      });
    },
  };
  return w;
}

test('--stdout is live: a quiet stream writes a record within the flush interval, not at exit', async () => {
  const w = memoryWriter();
  const sink = new StreamSink(1, { flushIntervalMs: 30, write: w.write });
  sink.write('{"a":1}', info());
  await sleep(5);
  assert.equal(w.chunks.length, 0, 'buffered for a short while');
  await until(() => w.chunks.length > 0);
  assert.equal(Buffer.concat(w.chunks).toString(), '{"a":1}\n');
  sink.write('{"b":2}', info());
  await sink.close({});
  assert.equal(Buffer.concat(w.chunks).toString(), '{"a":1}\n{"b":2}\n');
  assert.equal(sink.bytesWritten, 16);
});

test('--stdout under load: whole-buffer writes, whole lines only', async () => {
  const w = memoryWriter();
  const sink = new StreamSink(1, { flushIntervalMs: 10_000, write: w.write });
  const line = `{"x":"${'y'.repeat(200)}"}`;
  for (let i = 0; i < 20_000; i++) sink.write(line, info());
  await sink.close({});
  assert.ok(w.chunks.length < 20, `${w.chunks.length} writes for 20,000 records`);
  for (const c of w.chunks) assert.equal(c[c.length - 1], 0x0a, 'every write ends at a line end');
  assert.equal(Buffer.concat(w.chunks).toString().split('\n').length - 1, 20_000);
});

test('a stalled reader never blocks: close gives up after its timeout and counts what was not written', async () => {
  const w = memoryWriter();
  w.stall = true;
  const sink = new StreamSink(1, { flushIntervalMs: 5, closeTimeoutMs: 100, maxBacklogBytes: 4096, write: w.write });
  for (let i = 0; i < 1000; i++) sink.write(`{"i":${i}}`, info(i % 2 === 0 ? 'file_open' : 'process_exec'));
  await sleep(30);
  for (let i = 0; i < 1000; i++) sink.write(`{"j":${i}}`, info());
  const t0 = Date.now();
  await sink.close({});
  assert.ok(Date.now() - t0 < 5000, 'close returned');
  const lost = sink.unwritten();
  assert.equal((lost.get('file_open') ?? 0n) + (lost.get('process_exec') ?? 0n), 2000n);
  assert.equal(lost.get('process_exec'), 500n);
  assert.equal(sink.lostReasons().get('reader_stalled'), 2000n);
});

test('a reader that closed the pipe is OUTPUT_CLOSED, reported once, records counted', async () => {
  const w = memoryWriter();
  w.fail = 'EPIPE';
  const errors: unknown[] = [];
  const sink = new StreamSink(1, { flushIntervalMs: 5, write: w.write, onError: (e) => errors.push(e) });
  sink.write('{"a":1}', info());
  await until(() => errors.length > 0);
  assert.equal(errors.length, 1);
  assert.equal((errors[0] as { code: string }).code, 'OUTPUT_CLOSED');
  assert.throws(() => sink.write('{"b":1}', info()), { code: 'OUTPUT_CLOSED' });
  await sink.close({});
  assert.equal(sink.lostReasons().get('reader_closed'), 1n);
});

const ledger = (ringFull: bigint, shed = 0n): Ledger => ({
  file_open: { kernel: { submitted: 100n, filtered: 0n, ringFull, skipped: 0n, truncated: 0n }, user: { received: 100n, written: 100n - shed, filtered: 0n, rejected: 0n, shed, deduplicated: 0n } },
});

test('the loss warning says how much, where, why and what to do; nothing when nothing was lost', () => {
  const ctx = { bulkRingBytes: 16 << 20, rareRingBytes: 4 << 20, stdout: true, unwritten: 0n };
  assert.equal(lossWarning(ledger(0n), ctx), undefined);
  const w = lossWarning(ledger(21532n), ctx)!;
  assert.match(w, /^21532 records lost \(file_open 21532\): 21532 because a kernel ring was full; try a bigger ring \(--ring-size 64M\)/);
  assert.match(lossWarning(ledger(0n, 7n), { ...ctx, unwritten: 7n })!, /7 because the reader of standard output did not keep up; try a faster reader, or --out DIR/);
});

test('the status line redraws in place, cut to the terminal width, with elapsed time and totals', () => {
  const writes: string[] = [];
  const out = { write: (s: string) => { writes.push(s); return true; }, columns: 30 } as unknown as NodeJS.WritableStream & { columns: number };
  const status = new StatusLine(out, true);
  status.update(ledger(3n), 2048, 65_000);
  assert.ok(writes[0]!.startsWith('\r\x1b[K'));
  const text = writes[0]!.slice(4);
  assert.equal([...text].length, 29);
  assert.ok(text.startsWith('rtev 1m05s  100 records'), text);
  assert.equal(fitWidth('abc', 80), 'abc');
  status.clear();
  assert.equal(writes.at(-1), '\r\x1b[K');
});

test('a reader that stalls mid-buffer: the whole lines it took count as written, the rest as lost', async () => {
  let taken = 0;
  const write: NonNullable<StreamSinkOptions['write']> = (_fd, _data, _offset, length, cb) => {
    setImmediate(() => {
      if (taken > 0) return cb(Object.assign(new Error('EAGAIN'), { code: 'EAGAIN' }), 0);
      taken = Math.min(length, 25); // two whole lines of 10 bytes and half a third
      cb(null, taken);
    });
  };
  const sink = new StreamSink(1, { flushIntervalMs: 5, closeTimeoutMs: 100, write });
  for (let i = 0; i < 10; i++) sink.write(`{"i":${i}}xx`, info());
  await sink.close({});
  assert.equal(sink.unwritten().get('file_open'), 8n);
  assert.equal(sink.bytesWritten, 25);
});
