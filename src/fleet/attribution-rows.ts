import { isObj, type StrictValue } from '../encode/strict-json';
import { purlKey } from '../index/filter';
import { copyText } from './rows';

/**
 * The chunk predicate's signed attribution (container facts, package per path; docs/format.md
 * "Attribution") as COPY rows of the containers, images and attribution tables, with the same
 * columns and the same skipping of malformed entries as the local index (src/index/index.ts).
 */

/** at most this many container or file entries of one chunk are indexed */
const MAX_ATTRIBUTION = 200_000;

export interface AttributionRows {
  containers: Buffer[];
  images: Buffer[];
  files: Buffer[];
  skipped: number;
}

export function attributionRows(chunkId: bigint, a: StrictValue | undefined): AttributionRows {
  const out: AttributionRows = { containers: [], images: [], files: [], skipped: 0 };
  if (!isObj(a)) return out;
  const s = (v: StrictValue | undefined): string | null => (typeof v === 'string' ? v : null);
  const row = (values: (string | null)[]): string => `${chunkId}\t${values.map(copyText).join('\t')}\n`;
  const c: string[] = [];
  const im: string[] = [];
  const fl: string[] = [];
  for (const e of Array.isArray(a['containers']) ? a['containers'].slice(0, MAX_ATTRIBUTION) : []) {
    if (!isObj(e) || typeof e['container_id'] !== 'string') {
      out.skipped++;
      continue;
    }
    const image = isObj(e['image']) ? e['image'] : undefined;
    const digest = s(image?.['digest']);
    const names = Array.isArray(e['names']) ? e['names'].filter((n): n is string => typeof n === 'string') : [];
    for (const name of names.length > 0 ? names : [null]) c.push(row([e['container_id'], s(e['runtime']), name, digest, s(image?.['id']), s(e['reason'])]));
    const imageNames = Array.isArray(image?.['names']) ? (image!['names'] as StrictValue[]).filter((n): n is string => typeof n === 'string') : [];
    if (digest !== null) for (const n of imageNames) im.push(row([digest, n]));
  }
  for (const e of Array.isArray(a['files']) ? a['files'].slice(0, MAX_ATTRIBUTION) : []) {
    if (!isObj(e) || typeof e['scope'] !== 'string' || typeof e['path'] !== 'string') {
      out.skipped++;
      continue;
    }
    const purl = s(e['purl']);
    const key = purl === null ? undefined : purlKey(purl);
    const comps = Array.isArray(e['components']) ? JSON.stringify(e['components'].filter((x) => typeof x === 'string')) : '[]';
    fl.push(row([e['scope'], e['path'], purl, key?.base ?? null, key?.version ?? null, s(e['via']), s(e['root']), s(e['reason']), comps]));
  }
  if (c.length > 0) out.containers.push(Buffer.from(c.join('')));
  if (im.length > 0) out.images.push(Buffer.from(im.join('')));
  if (fl.length > 0) out.files.push(Buffer.from(fl.join('')));
  return out;
}
