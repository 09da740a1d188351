import * as fs from 'node:fs';
import * as path from 'node:path';
import { commandNames, commandUsage } from '../../src/cli/main';

/**
 * docs/cli.md carries each command's usage text, generated from the commands' option tables
 * (what `rtev help CMD` prints) between `<!-- usage:NAME -->` and `<!-- /usage:NAME -->`.
 * A command whose block is not in the page yet gets one in the "Command reference" section.
 * `node dist/test/tools/cli-doc.js --write` rewrites the page; test/unit/cli-doc.test.ts fails
 * when the page and the tables disagree.
 */
const REFERENCE = '## Command reference';
const REFERENCE_INTRO = `${REFERENCE}

Generated from the option tables (\`rtev help CMD\` prints the same text;
\`node dist/test/tools/cli-doc.js --write\` regenerates it, and a unit test fails when it drifts).
`;

function block(name: string): string {
  return `<!-- usage:${name} -->\n\`\`\`\n${commandUsage(name)}\n\`\`\`\n<!-- /usage:${name} -->`;
}

export function renderCliDoc(doc: string): string {
  let out = doc;
  const missing: string[] = [];
  for (const name of commandNames()) {
    const re = new RegExp(`<!-- usage:${name} -->[\\s\\S]*?<!-- /usage:${name} -->`);
    if (re.test(out)) out = out.replace(re, () => block(name));
    else missing.push(name);
  }
  if (missing.length > 0) {
    if (!out.includes(REFERENCE)) {
      const at = out.indexOf('\n## Exit codes');
      const section = `${REFERENCE_INTRO}\n`;
      out = at < 0 ? `${out.trimEnd()}\n\n${section}` : `${out.slice(0, at + 1)}${section}\n${out.slice(at + 1)}`;
    }
    const at = out.indexOf(REFERENCE_INTRO) + REFERENCE_INTRO.length;
    const blocks = missing.map((n) => `\n### rtev ${n}\n\n${block(n)}\n`).join('');
    out = out.slice(0, at) + blocks + out.slice(at);
  }
  return out;
}

if (require.main === module) {
  const file = path.resolve(__dirname, '..', '..', '..', 'docs', 'cli.md');
  const doc = fs.readFileSync(file, 'utf8');
  const next = renderCliDoc(doc);
  if (process.argv.includes('--write')) fs.writeFileSync(file, next);
  else process.stdout.write(next === doc ? 'docs/cli.md is current\n' : 'docs/cli.md differs from the option tables; run with --write\n');
}
