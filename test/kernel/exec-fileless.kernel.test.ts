import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { test } from 'node:test';
import { compileC, rootOrSkip, runRtev, tempDir } from '../helpers/collector';

/**
 * Fileless and unusual executions (docs/probes.md, process_exec): when the path the syscall saw
 * says nothing (`/dev/fd/N` from fexecve, empty for execveat AT_EMPTY_PATH, `/proc/self/exe`),
 * `filename` is what the kernel knows of the executed file, as /proc/PID/exe reads it.
 */
test('memfd, execveat(AT_EMPTY_PATH), deleted file and /proc/self/exe name the executed file', async (t) => {
  if (!rootOrSkip(t)) return;
  const trigger = fs.realpathSync(compileC('exec-fileless.c'));
  const dir = fs.realpathSync(tempDir());
  const trueReal = fs.realpathSync('/bin/true');
  const script = `${trigger} memfd && ${trigger} empty && ${trigger} deleted ${dir} && ${trigger} selfexe`;
  const run = await runRtev(['collect', '--stdout', '--quiet', '--probes', 'process_exec', '--', 'sh', '-c', script]);
  assert.equal(run.code, 0, run.stderr);
  const execs = run.records.filter((r) => r.event.type === 'process_exec');
  const byArgv0 = (argv0: string) => {
    const found = execs.filter((r) => r.event.argv0 === argv0);
    assert.equal(found.length, 1, `${argv0}: ${JSON.stringify(execs.map((r) => [r.event.argv0, r.event.filename]))}`);
    return found[0].event.filename;
  };
  assert.equal(byArgv0('rtev-memfd-true'), '/memfd:rtev-memfd (deleted)');
  assert.equal(byArgv0('rtev-empty-true'), trueReal);
  assert.equal(byArgv0('rtev-deleted-true'), `${dir}/rtev-deleted-true (deleted)`);
  assert.equal(byArgv0('rtev-selfexe'), trigger);
  // the common path is untouched: the trigger's own execs keep the path as passed
  assert.equal(execs.filter((r) => r.event.filename === trigger && r.event.argv0 === trigger).length, 4);
});
