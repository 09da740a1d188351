import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NativeBinding } from '../../src/ingest/native';
import { chooseUprobeMode } from '../../src/ingest/session';

const kernel = (sessions: boolean) => ({ uprobeSessionSupported: () => sessions }) as unknown as NativeBinding;

test('uprobe attach mode: sessions where the kernel has them, RTEV_UPROBE_MODE overrides, bad values are usage errors', () => {
  assert.equal(chooseUprobeMode(kernel(true), {}), 'session');
  assert.equal(chooseUprobeMode(kernel(false), {}), 'classic');
  assert.equal(chooseUprobeMode(kernel(true), { RTEV_UPROBE_MODE: 'classic' }), 'classic');
  assert.equal(chooseUprobeMode(kernel(true), { RTEV_UPROBE_MODE: '' }), 'session');
  assert.equal(chooseUprobeMode(kernel(true), { RTEV_UPROBE_MODE: 'session' }), 'session');
  assert.throws(() => chooseUprobeMode(kernel(false), { RTEV_UPROBE_MODE: 'session' }), { code: 'USAGE', message: /Linux 6\.13/ });
  assert.throws(() => chooseUprobeMode(kernel(true), { RTEV_UPROBE_MODE: 'multi' }), { code: 'USAGE' });
});

test('usesUprobes: only probes with uprobe programs make the session ask the kernel for uprobe sessions', async () => {
  const { usesUprobes } = await import('../../src/ingest/session');
  const { KERNEL_PROBES, DEFAULT_PROBES } = await import('../../src/ingest/probes');
  assert.equal(usesUprobes(KERNEL_PROBES, DEFAULT_PROBES), false, 'file_open, process_exec, tcp_state: no uprobes');
  assert.equal(usesUprobes(KERNEL_PROBES, ['file_open', 'net_connect']), true);
  assert.equal(usesUprobes(KERNEL_PROBES, ['ssl_op']), true);
  assert.equal(usesUprobes(KERNEL_PROBES, ['process_exec', 'function_call']), true);
});
