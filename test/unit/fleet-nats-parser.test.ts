import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import type * as NatsInternal from '@nats-io/nats-core/lib/internal_mod';
import { presizeSplitMessages } from '../../src/fleet/nats';

// nats-core's protocol parser, as the client uses it (the package's "./internal" export)
const { Kind, Parser } = require('@nats-io/nats-core/internal') as typeof NatsInternal;

interface Got { kind: number; subject: string; reply: string; hdr: number; data: Uint8Array; whole: number }

/** parse `wire` fed in the given read sizes (cycled), with the parser's events collected */
function parseIn(wire: Buffer, reads: number[]): Got[] {
  const got: Got[] = [];
  const p = new Parser({
    push(e: NatsInternal.ParserEvent): void {
      if (e.kind !== Kind.MSG) return;
      const ma = e.msg!;
      const data = e.data!;
      got.push({ kind: e.kind, subject: Buffer.from(ma.subject).toString(), reply: ma.reply ? Buffer.from(ma.reply).toString() : '', hdr: ma.hdr, data: Uint8Array.from(data), whole: data.buffer.byteLength });
    },
  });
  for (let at = 0, i = 0; at < wire.length; i++) {
    const n = reads[i % reads.length]!;
    // a fresh copy per read, as a socket gives them
    p.parse(Uint8Array.from(wire.subarray(at, at + n)));
    at += n;
  }
  return got;
}

test('presizeSplitMessages: a message split over socket reads is parsed to the same bytes, in one buffer of its size', () => {
  presizeSplitMessages();
  const big = crypto.randomBytes(1024 * 1024 + 333);
  const hdrs = Buffer.from('NATS/1.0\r\nNats-Sequence: 7\r\n\r\n');
  const mid = crypto.randomBytes(70_000);
  const wire = Buffer.concat([
    Buffer.from(`MSG a.b 1 _INBOX.x ${big.length}\r\n`), big, Buffer.from('\r\n'),
    Buffer.from(`MSG small 2 5\r\nhello\r\n`),
    Buffer.from(`HMSG c.d 3 ${hdrs.length} ${hdrs.length + mid.length}\r\n`), hdrs, mid, Buffer.from('\r\n'),
    Buffer.from('PING\r\n'),
  ]);
  for (const reads of [[65536], [1, 7, 65536, 3], [wire.length], [4096, 100_000]]) {
    const got = parseIn(wire, reads);
    assert.equal(got.length, 3, `reads ${reads.join(',')}`);
    assert.equal(got[0]!.subject, 'a.b');
    assert.equal(got[0]!.reply, '_INBOX.x');
    assert.ok(Buffer.from(got[0]!.data).equals(big), `reads ${reads.join(',')}: payload bytes`);
    assert.equal(Buffer.from(got[1]!.data).toString(), 'hello');
    assert.equal(got[2]!.subject, 'c.d');
    assert.equal(got[2]!.hdr, hdrs.length);
    assert.ok(Buffer.from(got[2]!.data).equals(Buffer.concat([hdrs, mid])), `reads ${reads.join(',')}: headers and payload`);
    // split: the payload is the whole of a buffer of its size (the parser's own growth by
    // doubling would leave it in a buffer of up to twice that)
    if (reads[0]! < big.length) assert.equal(got[0]!.whole, big.length, `reads ${reads.join(',')}: buffer of the message's size`);
    if (reads[0]! < big.length && reads.every((n) => n < mid.length)) assert.equal(got[2]!.whole, hdrs.length + mid.length);
  }
});
