/**
 * The containerd client against hostile answers. The peer is a real HTTP/2 server on a unix
 * socket speaking gRPC framing, as containerd does; it answers what each case needs (the
 * real containerd is in test/kernel/enrich-containers.kernel.test.ts).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http2 from 'node:http2';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { CONTAINERD_MAX_RESPONSE_BYTES, ContainerdSource } from '../../src/enrich/host/containerd-source';
import { encodeStringField, grpcFrame } from '../../src/enrich/protobuf';

/** deadline of calls that a local server answers: only a ceiling, never what a test waits for */
const SLOW_CEILING_MS = 30_000;

const ID = 'c7'.repeat(32);
const DIGEST = `sha256:${'ab'.repeat(32)}`;

type Handler = (path: string, stream: http2.ServerHttp2Stream) => void;

async function withServer(handler: Handler, run: (socket: string) => Promise<void>): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-ctrd-unit-'));
  const socket = path.join(dir, 'containerd.sock');
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {}); // the client may go away mid-answer
    handler(String(headers[':path']), stream);
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  try {
    await run(socket);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** answer sends one gRPC message and the trailers. */
function answer(stream: http2.ServerHttp2Stream, message: Buffer, trailers: http2.OutgoingHttpHeaders = { 'grpc-status': '0' }): void {
  stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
  stream.on('wantTrailers', () => stream.sendTrailers(trailers));
  stream.end(grpcFrame(message));
}

/** a GetContainerResponse { Container container = 1 { id = 1, image = 3 } } and a GetImageResponse { Image image = 1 { name = 1, Descriptor target = 3 { digest = 2 } } } */
const containerResponse = (image: string) => field(1, Buffer.concat([encodeStringField(1, ID), encodeStringField(3, image)]));
function imageResponse(): Buffer {
  const target = Buffer.concat([encodeStringField(1, 'application/vnd.oci.image.manifest.v1+json'), encodeStringField(2, DIGEST)]);
  const image = Buffer.concat([encodeStringField(1, 'localhost/x:1'), field(3, target)]);
  return field(1, image);
}
function field(n: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([(n << 3) | 2]), varint(body.length), body]);
}
function varint(v: number): Buffer {
  const out: number[] = [];
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
  return Buffer.from(out);
}

test('containerd: a well-formed answer gives the image digest', async () => {
  await withServer((p, stream) => {
    if (p.endsWith('.Containers/Get')) answer(stream, containerResponse('localhost/x:1'));
    else answer(stream, imageResponse());
  }, async (socket) => {
    const r = await new ContainerdSource(socket, SLOW_CEILING_MS, ['default']).resolve(ID, {});
    assert.deepEqual(r, { ok: true, digest: DIGEST, basis: 'manifest', image: { names: ['localhost/x:1'] } });
  });
});

test('containerd: a response over the cap is refused as response_too_large, without buffering it all', async () => {
  let sent = 0;
  await withServer((_p, stream) => {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
    const chunk = Buffer.alloc(64 * 1024, 0x41);
    const pump = (): void => {
      while (sent < 64 * 1024 * 1024 && !stream.destroyed) {
        sent += chunk.length;
        if (!stream.write(chunk)) {
          stream.once('drain', pump);
          return;
        }
      }
      if (!stream.destroyed) stream.end();
    };
    pump();
  }, async (socket) => {
    const r = await new ContainerdSource(socket, 10_000, ['default']).resolve(ID, {});
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.reason, 'response_too_large');
    assert.match(!r.ok ? r.detail ?? '' : '', new RegExp(`larger than ${CONTAINERD_MAX_RESPONSE_BYTES} bytes`));
  });
  assert.ok(sent < 64 * 1024 * 1024, `the client stopped the stream (server sent ${sent} bytes)`);
  // a smaller cap, given explicitly
  await withServer((_p, stream) => answer(stream, Buffer.alloc(2000, 1)), async (socket) => {
    const r = await new ContainerdSource(socket, SLOW_CEILING_MS, ['default'], 1024).resolve(ID, {});
    assert.equal(!r.ok && r.reason, 'response_too_large');
  });
});

test('containerd: malformed protobuf, framing and headers are counted failures, never uncaught exceptions', async () => {
  const cases: { name: string; handler: Handler; reason: string }[] = [
    { name: 'truncated protobuf', reason: 'metadata_malformed', handler: (_p, s) => answer(s, Buffer.from([0x0a, 0x40, 0x01])) },
    { name: 'bad wire type', reason: 'metadata_malformed', handler: (_p, s) => answer(s, Buffer.from([0x0f, 0x01])) },
    { name: 'endless varint', reason: 'metadata_malformed', handler: (_p, s) => answer(s, Buffer.alloc(16, 0xff)) },
    {
      name: 'frame longer than the body', reason: 'metadata_malformed', handler: (_p, s) => {
        s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        s.on('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }));
        s.end(Buffer.from([0, 0, 0, 1, 0, 1, 2]));
      },
    },
    {
      name: 'malformed percent-encoding in grpc-message', reason: 'socket_error', handler: (_p, s) => {
        s.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '13', 'grpc-message': 'bad %E0%A4%A' }, { endStream: true });
      },
    },
    {
      name: 'malformed grpc-message in the trailers', reason: 'socket_error',
      handler: (_p, s) => answer(s, Buffer.alloc(0), { 'grpc-status': '2', 'grpc-message': '%%%' }),
    },
    { name: 'stream reset', reason: 'socket_error', handler: (_p, s) => s.close(http2.constants.NGHTTP2_INTERNAL_ERROR) },
  ];
  const uncaught: unknown[] = [];
  const onUncaught = (err: unknown): void => { uncaught.push(err); };
  process.on('uncaughtException', onUncaught);
  try {
    for (const c of cases) {
      await withServer(c.handler, async (socket) => {
        const r = await new ContainerdSource(socket, SLOW_CEILING_MS, ['default']).resolve(ID, {});
        assert.equal(r.ok, false, c.name);
        assert.equal(!r.ok && r.reason, c.reason, `${c.name}: ${JSON.stringify(r)}`);
      });
    }
    await new Promise((r) => setImmediate(r));
  } finally {
    process.off('uncaughtException', onUncaught);
  }
  assert.deepEqual(uncaught, []);
});
