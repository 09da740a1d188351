import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { REPO } from '../helpers/collector';

/**
 * Pipes, as a shell pipeline gives them: a slow reader must get every line, a reader that
 * goes away must end rtev quietly with 141 (128 + SIGPIPE). `rtev validate` of many invalid
 * lines is the big-output command here: it needs no root and no evidence.
 */
const RTEV = path.join(REPO, 'bin', 'rtev');
const LINES = 40_000;

function badFile(): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-pipes-')), 'bad.ndjson');
  fs.writeFileSync(file, Array.from({ length: LINES }, (_, i) => `{"bad":${i}}\n`).join(''));
  return file;
}

test('a slow reader of a pipe gets every line before rtev exits', async () => {
  const child = spawn(process.execPath, [RTEV, 'validate', '--max-errors', String(LINES), badFile()], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pause();
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  await new Promise((r) => setTimeout(r, 1500)); // the pipe (64 KiB) is full long before this; rtev has finished its work
  let lines = 0;
  child.stdout.on('data', (chunk: Buffer) => {
    for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) lines++;
  });
  child.stdout.resume();
  const code = await exited;
  assert.equal(code, 11, 'validate exits 11 on invalid records');
  assert.equal(lines, LINES);
});

test('a reader that closes the pipe (| head -5) ends rtev quietly with exit status 141', async () => {
  const child = spawn(process.execPath, [RTEV, 'validate', '--max-errors', String(LINES), badFile()], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  let got = '';
  child.stdout.on('data', (c: Buffer) => {
    got += c.toString();
    if (got.split('\n').length > 5) child.stdout.destroy(); // like head -5
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  assert.equal(code, 141);
  assert.doesNotMatch(stderr, /EPIPE|Error|    at /, stderr);
});
