import type { EvidenceEvent, EvidenceRecord } from '../model/record';

/**
 * encodeRecord writes one record as a canonical JSON line (without the newline).
 *
 * Keys are emitted in their sorted order by hand instead of sorting per record: the
 * generic canonicalize() costs about 4x more per record (bench/fast-paths.bench.ts), and
 * a property test (test/unit/encode.test.ts) holds this function to canonicalize()'s bytes.
 */
export function encodeRecord(record: EvidenceRecord): string {
  let out = '{';
  let sep = '';
  if (record.cgroup_id !== undefined) { out += '"cgroup_id":' + record.cgroup_id.toString(); sep = ','; }
  out += sep + '"comm":' + quote(record.comm);
  if (record.container_id !== undefined) out += ',"container_id":' + JSON.stringify(record.container_id);
  out += ',"event":' + encodeEvent(record.event);
  if (record.image_digest !== undefined) out += ',"image_digest":' + JSON.stringify(record.image_digest);
  out += ',"pid":' + int(record.pid);
  out += ',"src":' + quote(record.src);
  if (record.tid !== undefined) out += ',"tid":' + int(record.tid);
  out += ',"ts_ns":' + record.ts_ns.toString() + '}';
  return out;
}

function encodeEvent(event: EvidenceEvent): string {
  const f = new Fields();
  switch (event.type) {
    case 'file_open':
      f.str('access', event.access).int('dfd', event.dfd).int('flags', event.flags)
        .int('mode', event.mode).str('path', event.path);
      break;
    case 'process_exec':
      f.str('argv0', event.argv0).str('filename', event.filename).int('ppid', event.ppid);
      break;
    case 'tcp_state':
      f.str('daddr', event.daddr).int('dport', event.dport).str('family', event.family)
        .str('newstate', event.newstate).str('oldstate', event.oldstate)
        .str('saddr', event.saddr).int('sport', event.sport);
      break;
    case 'net_connect':
      f.str('addr', event.addr).int('error', event.error).int('fd', event.fd)
        .int('port', event.port).bool('success', event.success);
      break;
    case 'ssl_op':
      f.int('bytes', event.bytes).str('operation', event.operation).str('ssl_ptr', event.ssl_ptr);
      break;
    case 'function_call':
      f.str('addr', event.addr).str('library', event.library).str('node_hash', event.node_hash)
        .str('runtime', event.runtime).strs('stack', event.stack).str('symbol', event.symbol);
      break;
  }
  return f.str('type', event.type).close();
}

/** Fields appends key/value pairs that the caller passes in sorted key order. */
class Fields {
  out = '{';

  str(key: string, value: string | undefined): this {
    if (value !== undefined) this.add(key, quote(value));
    return this;
  }

  int(key: string, value: number | undefined): this {
    if (value !== undefined) this.add(key, int(value));
    return this;
  }

  bool(key: string, value: boolean | undefined): this {
    if (value !== undefined) this.add(key, value ? 'true' : 'false');
    return this;
  }

  strs(key: string, values: readonly string[] | undefined): this {
    if (values !== undefined) this.add(key, '[' + values.map(quote).join(',') + ']');
    return this;
  }

  close(): string {
    return this.out + '}';
  }

  add(key: string, encoded: string): void {
    this.out += (this.out.length > 1 ? ',"' : '"') + key + '":' + encoded;
  }
}

/** Printable ASCII without '"' and '\\': JSON.stringify would return it unchanged in quotes. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** quote is JSON.stringify for a string, with a fast path for plain ASCII (measured as part of encodeRecord: bench/fast-paths.bench.ts). */
export function quote(value: string): string {
  return value.length < 256 && PLAIN.test(value) ? '"' + value + '"' : JSON.stringify(value);
}

function int(value: number): string {
  if (!Number.isSafeInteger(value)) throw new TypeError(`record field is not an integer: ${value}`);
  return Object.is(value, -0) ? '0' : String(value);
}
