import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { commandNames, commandUsage, main } from '../../src/cli/main';
import { REPO } from '../helpers/collector';
import { renderCliDoc } from '../tools/cli-doc';

const DOC = fs.readFileSync(path.join(REPO, 'docs', 'cli.md'), 'utf8');

test('docs/cli.md carries every command\'s usage exactly as the option tables give it', () => {
  assert.equal(renderCliDoc(DOC), DOC, "docs/cli.md drifted from the option tables: run 'node dist/test/tools/cli-doc.js --write'");
});

test('every option of every command is documented, the function-call options included', () => {
  for (const name of commandNames()) {
    const options = [...commandUsage(name)!.matchAll(/^ {2}--([a-z0-9-]+)/gm)].map((m) => m[1]!);
    assert.ok(options.length > 0 || name === 'plan' || name === 'report', `${name} lists no options`);
    for (const o of options) assert.ok(DOC.includes(`--${o}`), `docs/cli.md lacks --${o} of rtev ${name}`);
  }
  for (const o of ['--function', '--frames', '--functions', '--function-mode']) assert.ok(DOC.includes(`  ${o} `), o);
});

test("'rtev help CMD' prints the command's usage; an unknown one is a usage error with the close name", async () => {
  const io = () => {
    const out = { stdout: new PassThrough(), stderr: new PassThrough(), stdin: new PassThrough() };
    let o = '';
    let e = '';
    out.stdout.on('data', (c: Buffer) => (o += c.toString()));
    out.stderr.on('data', (c: Buffer) => (e += c.toString()));
    return { io: out, text: () => o, err: () => e };
  };
  const a = io();
  assert.equal(await main(['help', 'collect'], a.io), 0);
  assert.equal(a.text(), commandUsage('collect') + '\n');
  assert.match(a.text(), /--function-mode/);
  const b = io();
  assert.equal(await main(['help', 'colect'], b.io), 2);
  assert.match(b.err(), /unknown command 'colect'\n {2}fix: did you mean 'collect'\?/);
});
