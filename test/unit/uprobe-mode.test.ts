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
