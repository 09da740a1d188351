/**
 * The few protobuf messages of the containerd API rtev needs, encoded and decoded by hand
 * (wire format: https://protobuf.dev/programming-guides/encoding/). Field numbers are from
 * containerd v1.6 api/services/{containers,images,namespaces}/v1/*.proto and
 * api/types/descriptor.proto. Unknown fields are skipped, so newer servers still parse.
 */

/** encodeStringField encodes one length-delimited string field (wire type 2). */
export function encodeStringField(field: number, value: string): Buffer {
  const bytes = Buffer.from(value, 'utf8');
  return Buffer.concat([encodeVarint((field << 3) | 2), encodeVarint(bytes.length), bytes]);
}

function encodeVarint(n: number): Buffer {
  const out: number[] = [];
  let v = n >>> 0;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
  return Buffer.from(out);
}

/** ProtoFields maps a field number to its length-delimited values (other wire types dropped). */
export type ProtoFields = Map<number, Buffer[]>;

/** decodeFields splits a message into its length-delimited fields; throws on a truncated message. */
export function decodeFields(buf: Buffer): ProtoFields {
  const out: ProtoFields = new Map();
  let pos = 0;
  const varint = (): bigint => {
    let result = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (pos >= buf.length) throw new RangeError('truncated varint');
      const b = buf[pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
    }
    throw new RangeError('varint too long');
  };
  while (pos < buf.length) {
    const key = Number(varint());
    const field = key >>> 3;
    const wire = key & 7;
    if (wire === 0) varint();
    else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else if (wire === 2) {
      const len = Number(varint());
      if (pos + len > buf.length) throw new RangeError('truncated field');
      const list = out.get(field) ?? [];
      list.push(buf.subarray(pos, pos + len));
      out.set(field, list);
      pos += len;
    } else throw new RangeError(`unsupported wire type ${wire}`);
    if (pos > buf.length) throw new RangeError('truncated fixed field');
  }
  return out;
}

function str(fields: ProtoFields, n: number): string | undefined {
  const v = fields.get(n);
  return v === undefined ? undefined : v[v.length - 1]!.toString('utf8');
}

function msg(fields: ProtoFields, n: number): ProtoFields | undefined {
  const v = fields.get(n);
  return v === undefined ? undefined : decodeFields(v[v.length - 1]!);
}

/** ContainerdContainer holds the fields of containerd's `Container` message rtev uses. */
export interface ContainerdContainer {
  id: string;
  image: string;
  labels: Map<string, string>;
}

/** decodeGetContainerResponse decodes `GetContainerResponse { Container container = 1; }`. */
export function decodeGetContainerResponse(buf: Buffer): ContainerdContainer {
  const c = msg(decodeFields(buf), 1);
  if (c === undefined) throw new TypeError('GetContainerResponse without container');
  // Container { string id = 1; map<string,string> labels = 2; string image = 3; ... }
  const labels = new Map<string, string>();
  for (const entry of c.get(2) ?? []) {
    const kv = decodeFields(entry);
    labels.set(str(kv, 1) ?? '', str(kv, 2) ?? '');
  }
  return { id: str(c, 1) ?? '', image: str(c, 3) ?? '', labels };
}

/** decodeGetImageResponse decodes `GetImageResponse { Image image = 1; }` to the target digest. */
export function decodeGetImageResponse(buf: Buffer): { name: string; targetDigest: string; mediaType: string } {
  const img = msg(decodeFields(buf), 1);
  if (img === undefined) throw new TypeError('GetImageResponse without image');
  // Image { string name = 1; map labels = 2; Descriptor target = 3; ... }
  // Descriptor { string media_type = 1; string digest = 2; int64 size = 3; ... }
  const target = msg(img, 3);
  return {
    name: str(img, 1) ?? '',
    targetDigest: target === undefined ? '' : (str(target, 2) ?? ''),
    mediaType: target === undefined ? '' : (str(target, 1) ?? ''),
  };
}

/** decodeListNamespacesResponse decodes `ListNamespacesResponse { repeated Namespace namespaces = 1; }`. */
export function decodeListNamespacesResponse(buf: Buffer): string[] {
  return (decodeFields(buf).get(1) ?? []).map((ns) => str(decodeFields(ns), 1) ?? '').filter((n) => n.length > 0);
}

/** grpcFrame wraps one message in the gRPC length-prefixed framing (uncompressed). */
export function grpcFrame(message: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

/** grpcUnframe extracts the first message from a gRPC response body; throws if incomplete or compressed. */
export function grpcUnframe(body: Buffer): Buffer {
  if (body.length < 5) throw new RangeError('gRPC body shorter than its frame header');
  if (body[0] !== 0) throw new RangeError('compressed gRPC message not supported');
  const len = body.readUInt32BE(1);
  if (body.length < 5 + len) throw new RangeError('truncated gRPC message');
  return body.subarray(5, 5 + len);
}
