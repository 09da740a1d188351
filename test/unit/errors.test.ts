import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RtevError, errorMessage } from '../../src/errors';

test('errorMessage: one line with its causes; control characters quoted from hostile input are escaped', () => {
  let parseError: unknown;
  try {
    JSON.parse('\u001a\n\u0006{');
  } catch (err) {
    parseError = err;
  }
  const message = errorMessage(new RtevError('CONFIG', 'config file c.json is not valid JSON', { cause: parseError }));
  assert.match(message, /^config file c\.json is not valid JSON: /);
  assert.doesNotMatch(message, /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/);
  assert.match(message, /\\u001a/);
  assert.equal(errorMessage(new Error('a\u2028b\rc')), 'a\\u2028b\\u000dc');
  assert.equal(errorMessage(new Error('outer', { cause: new Error('inner') })), 'outer: inner');
});
