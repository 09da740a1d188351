import * as fs from 'node:fs';
import { RtevError } from '../errors';
import type { OptionSpec } from './args';

/** configArgs turns a JSON config file into option arguments placed before the command line's. */
export function configArgs(file: string, options: readonly OptionSpec[]): string[] {
  let text: string;
  try {
    const st = fs.statSync(file);
    if (!st.isFile() || st.size > 1 << 20) throw new Error('not a regular file under 1 MiB');
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new RtevError('CONFIG', `cannot read config file ${file}`, { cause: err });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new RtevError('CONFIG', `config file ${file} is not valid JSON`, { cause: err });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RtevError('CONFIG', `config file ${file} must hold a JSON object of options`);
  }
  const out: string[] = [];
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    const spec = options.find((o) => o.name === key);
    if (spec === undefined || key === 'config') {
      throw new RtevError('CONFIG', `config file ${file}: unknown option '${key}'`, { hint: "use the long option names of 'rtev collect --help'" });
    }
    const bad = (): RtevError => new RtevError('CONFIG', `config file ${file}: option '${key}' has the wrong type`);
    if (spec.kind === 'flag') {
      if (typeof v !== 'boolean') throw bad();
      if (v) out.push(`--${key}`);
    } else if (spec.kind === 'list') {
      const items = Array.isArray(v) ? v : [v];
      for (const item of items) {
        if (typeof item !== 'string' && typeof item !== 'number') throw bad();
        out.push(`--${key}`, String(item));
      }
    } else {
      if (key === 'probes' && Array.isArray(v)) out.push('--probes', v.join(','));
      else if (typeof v === 'string' || typeof v === 'number') out.push(`--${key}`, String(v));
      else throw bad();
    }
  }
  return out;
}
