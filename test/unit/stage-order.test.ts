import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { REPO } from '../helpers/collector';

/**
 * The stages of src/, in the order data flows (docs/architecture.md, /work/shared/design/layout.md):
 * a module imports only from its own stage or from stages before it. src/errors.ts is model-level.
 */
export const STAGES = ['model', 'util', 'platform', 'decode', 'encode', 'sign', 'enrich', 'symbolize', 'packages', 'store', 'verify',
  'ingest', 'index', 'report', 'fleet', 'cli'] as const;

const TOP_LEVEL: Record<string, (typeof STAGES)[number]> = { 'errors.ts': 'model' };

/** stageOf names the stage of a file under src/ (a path relative to src/), or undefined. */
export function stageOf(relative: string): string | undefined {
  const parts = relative.split(path.sep);
  const isStage = (name: string): boolean => (STAGES as readonly string[]).includes(name);
  if (parts.length > 1) return isStage(parts[0]!) ? parts[0] : undefined;
  const name = parts[0]!.replace(/\.js$/, '');
  // a single segment is a top-level file ('../errors') or a stage's index ('../enrich')
  return TOP_LEVEL[name.endsWith('.ts') ? name : `${name}.ts`] ?? (isStage(name) ? name : undefined);
}

/** importsOf lists the module specifiers of a TypeScript source (static, dynamic and require). */
export function importsOf(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const specs: string[] = [];
  const patterns = [/\bfrom\s+['"]([^'"]+)['"]/g, /\bimport\s+['"]([^'"]+)['"]/g, /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g, /\brequire\(\s*['"]([^'"]+)['"]\s*\)/g];
  for (const re of patterns) for (const m of code.matchAll(re)) specs.push(m[1]!);
  return specs;
}

/** violations checks one file's imports against the stage order; returns one line per offence. */
export function violations(srcRoot: string, file: string, source: string): string[] {
  const from = path.relative(srcRoot, file);
  const fromStage = stageOf(from);
  if (fromStage === undefined) return [`${from}: not in any stage (add its folder to STAGES in test/unit/stage-order.test.ts)`];
  const out: string[] = [];
  for (const spec of importsOf(source)) {
    if (!spec.startsWith('.')) continue;
    const target = path.relative(srcRoot, path.resolve(path.dirname(file), spec));
    if (target.startsWith('..')) continue; // package.json and the like, outside src/
    const toStage = stageOf(target);
    if (toStage === undefined) {
      out.push(`${from}: imports ${spec}, which is in no stage`);
    } else if (STAGES.indexOf(toStage as never) > STAGES.indexOf(fromStage as never)) {
      out.push(`${from} (${fromStage}) imports ${spec} (${toStage}), a later stage`);
    }
  }
  return out;
}

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = path.join(dir, d.name);
    if (d.isDirectory()) return sources(p);
    return d.name.endsWith('.ts') ? [p] : [];
  });
}

test('no module in src/ imports from a later stage', () => {
  const root = path.join(REPO, 'src');
  const files = sources(root);
  assert.ok(files.length > 50, `found only ${files.length} sources under ${root}`);
  const found = files.flatMap((f) => violations(root, f, fs.readFileSync(f, 'utf8')));
  assert.deepEqual(found, []);
});

test('the check catches imports against the order, in every import form', () => {
  const root = '/r/src';
  assert.deepEqual(violations(root, '/r/src/decode/x.ts', "import { Collector } from '../ingest/collector';"),
    ['decode/x.ts (decode) imports ../ingest/collector (ingest), a later stage']);
  assert.equal(violations(root, '/r/src/model/y.ts', "const m = require('../cli/main');").length, 1);
  assert.equal(violations(root, '/r/src/errors.ts', "export type { X } from './store/sink';").length, 1);
  assert.equal(violations(root, '/r/src/store/z.ts', "const q = await import('../index/query');").length, 1);
  assert.deepEqual(violations(root, '/r/src/cli/c.ts', "import { RtevError } from '../errors';\nimport * as fs from 'node:fs';"), []);
  assert.deepEqual(violations(root, '/r/src/ingest/s.ts', "// import from '../cli/main'\nimport { a } from './session';"), []);
  assert.equal(violations(root, '/r/src/newstage/w.ts', '').length, 1, 'a folder outside the stages fails');
});
