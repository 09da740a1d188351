import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { compileC, rootOrSkip, runRtev, tempDir } from '../helpers/collector';

test('collect --frames and query --frames show the symbolized stack of a function_call', async (t) => {
  if (!rootOrSkip(t)) return;
  const program = compileC(path.join('func', 'calls.c'), ['-O0', '-fno-omit-frame-pointer']);
  const work = tempDir();
  const frames = path.join(work, 'calls.frames');
  const evidence = path.join(work, 'evidence');
  // 20000 calls keep the process alive long enough for its maps to be read
  // query verifies the chunks with the default key of the same key directory
  const env = { ...process.env, RTEV_KEY_DIR: path.join(work, 'keys'), RTEV_INDEX_DIR: path.join(work, 'index') };
  const run = await runRtev(['collect', '--out', evidence, '--quiet', '--function', `${program}:vuln_func`,
    '--frames', frames, '--', program, '20000'], { env });
  assert.equal(run.code, 0, run.stderr);
  assert.ok(fs.statSync(frames).size > 0, 'frames file written');
  const query = await runRtev(['query', evidence, '--type', 'function_call', '--frames', frames], { env });
  assert.equal(query.code, 0, query.stderr);
  assert.match(query.stdout, /call vuln_func in .*calls \(native\) sha256:[0-9a-f]{64}/);
  assert.match(query.stdout, /#0 0x[0-9a-f]+ vuln_func\+0x0 \(/);
  assert.match(query.stdout, /#1 0x[0-9a-f]+ caller_b\+0x[0-9a-f]+ \(/);
  assert.match(query.stdout, /#2 0x[0-9a-f]+ caller_a\+0x[0-9a-f]+ \(/);
  const json = await runRtev(['query', evidence, '--type', 'function_call', '--json'], { env });
  assert.equal(json.records.length, 1, 'first-seen mode: one record');
  assert.equal(json.records[0].event.symbol, 'vuln_func');
});
