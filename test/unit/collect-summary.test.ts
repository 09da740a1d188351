/**
 * The end summary of rtev collect names the records the ts_ns merge wrote out of order or released
 * early, when there are any (before, only --verbose did); nothing is added when both are 0.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { orderNote } from '../../src/cli/commands/collect';

test('summary: late and early-released counts of the ts_ns merge appear when nonzero', () => {
  const stats = { late: 0, forced: 0, maxRecords: 12, maxBytes: 3000 };
  assert.equal(orderNote(undefined), '');
  assert.equal(orderNote(stats), '');
  assert.equal(orderNote({ ...stats, late: 3 }), '; 3 written out of ts_ns order (later than the --order-window)');
  assert.equal(orderNote({ ...stats, forced: 7 }), "; 7 released early (the merge's size bound)");
  assert.equal(orderNote({ ...stats, late: 1, forced: 2 }), "; 1 written out of ts_ns order (later than the --order-window), 2 released early (the merge's size bound)");
});
