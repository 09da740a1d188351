import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { FileOpen, FunctionCall, Hdr, NetConnect, ProcessExec, SslOp, TcpState } from '../../src/decode/layout';
import { SockOwner } from '../../src/ingest/listeners';
import { RtevConfig } from '../../src/ingest/session';
import { REPO } from '../helpers/collector';
import { requireTools } from '../helpers/tools';

/*
 * Tool: bpftool, to read the BTF of the object `make build` compiled (build/rtev.bpf.o). Why not a
 * recorded dump: the check is that the decoder matches the object built from bpf/ now, so a dump
 * recorded once would go stale silently. A missing bpftool or object fails the test.
 */

/** structsOf reads struct member offsets (bytes) and sizes from the BTF of the compiled object. */
function structsOf(object: string): Map<string, { size: number; members: Map<string, number> }> {
  const text = execFileSync('bpftool', ['btf', 'dump', 'file', object, 'format', 'raw'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const structs = new Map<string, { size: number; members: Map<string, number> }>();
  let current: Map<string, number> | undefined;
  for (const line of text.split('\n')) {
    const head = /^\[\d+\] STRUCT '(\w+)' size=(\d+)/.exec(line);
    if (head) {
      current = new Map();
      structs.set(head[1]!, { size: Number(head[2]), members: current });
      continue;
    }
    const member = /^\s+'(\w+)' type_id=\d+ bits_offset=(\d+)/.exec(line);
    if (member && current) current.set(member[1]!, Number(member[2]) / 8);
    else if (!line.startsWith('\t')) current = undefined;
  }
  return structs;
}

test('decoder offsets match the BTF of build/rtev.bpf.o (bpf/events.h)', () => {
  requireTools('bpftool');
  const object = path.join(REPO, 'build', 'rtev.bpf.o');
  assert.ok(fs.existsSync(object), 'build/rtev.bpf.o is built (make build)');
  const structs = structsOf(object);
  const check = (name: string, layout: Record<string, number>, skip: string[] = []) => {
    const s = structs.get(name);
    assert.ok(s, `struct ${name} in BTF`);
    assert.equal(layout['SIZE'], s.size, `${name} size`);
    for (const [field, offset] of Object.entries(layout)) {
      if (field === 'SIZE' || skip.includes(field)) continue;
      const btf: number | undefined = s.members.get(field);
      assert.equal(offset, btf, `${name}.${field} offset`);
    }
  };
  check('evt_hdr', Hdr, ['commLen']);
  check('evt_file_open', FileOpen);
  check('evt_process_exec', ProcessExec);
  check('evt_tcp_state', TcpState);
  check('evt_net_connect', NetConnect);
  check('evt_ssl_op', SslOp);
  check('evt_function_call', FunctionCall);
  check('sock_owner', SockOwner); // a map value written by user space (src/ingest/listeners.ts)
  check('rtev_config', RtevConfig, ['_pad']); // the rodata written before load (src/ingest/session.ts)
});
