import * as fs from 'node:fs';
import * as path from 'node:path';
import { comparatorFor, ecosystemFamily, VersionError, type Comparator, type EcosystemFamily } from './version';
import { InputError, type Skip } from './input';

/**
 * OSV reader (https://ossf.github.io/osv-schema/). A `--vulns PATH` is a file holding one
 * record, an array of records or `{"vulns": [...]}`, or a directory of such files (read
 * recursively, `*.json` only). Every record or affected entry that cannot be used is a
 * counted Skip naming it; only unreadable input is an error. docs/reachability.md.
 */

/** MAX_OSV_FILE_BYTES bounds one file; OSV dumps are one record per file, so this is generous. */
export const MAX_OSV_FILE_BYTES = 64 * 1024 * 1024;
/** MAX_OSV_FILES bounds a directory walk. */
export const MAX_OSV_FILES = 1_000_000;

export interface OsvEvent {
  introduced?: string;
  fixed?: string;
  last_affected?: string;
  limit?: string;
}

export interface OsvRange {
  type: 'ECOSYSTEM' | 'SEMVER';
  events: OsvEvent[];
}

/**
 * AffectedFunction is one function an advisory names:
 * - `go`: Go `ecosystem_specific.imports[]`; `path` is the import path, `symbol` the canonical
 *   `importpath.Func` or `importpath.Type.Method` (as rtev's function_call records name it);
 * - `native`: the same `imports[]` shape in a non-Go ecosystem; `path` is a shared object's
 *   file name (`libssl.so.3`) or an executable's absolute path, `symbol` its ELF symbol;
 * - `rust`: RustSec `affects.functions` (`crate::module::func`); not probeable by name.
 */
export interface AffectedFunction {
  kind: 'go' | 'native' | 'rust';
  path: string;
  symbol: string;
}

export interface OsvAffected {
  ecosystem: string;
  family: EcosystemFamily;
  /** Debian:12 → '12'; '' when the ecosystem has no release suffix */
  release: string;
  name: string;
  purl: string | undefined;
  ranges: OsvRange[];
  versions: string[];
  functions: AffectedFunction[];
}

export interface OsvRecord {
  id: string;
  aliases: string[];
  summary: string | undefined;
  modified: string | undefined;
  affected: OsvAffected[];
  /** file (and index inside it) the record came from */
  source: string;
  /** database_specific.synthetic === true: test data, not a real advisory */
  synthetic: boolean;
}

export interface OsvLoad {
  records: OsvRecord[];
  skipped: Skip[];
  files: number;
}

/** loadOsvPaths reads every `--vulns` path; duplicate ids keep the first (a Skip names the second). */
export function loadOsvPaths(paths: readonly string[]): OsvLoad {
  const out: OsvLoad = { records: [], skipped: [], files: 0 };
  const seen = new Set<string>();
  for (const p of paths) {
    let st: fs.Stats;
    try {
      st = fs.statSync(p);
    } catch (err) {
      throw new InputError(`--vulns ${p}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (err as Error).message}`);
    }
    const files = st.isDirectory() ? walkJson(p) : [p];
    for (const f of files) {
      out.files++;
      const text = readBoundedText(f, MAX_OSV_FILE_BYTES, '--vulns');
      const parsed = parseOsvText(text, f);
      out.skipped.push(...parsed.skipped);
      for (const r of parsed.records) {
        if (seen.has(r.id)) {
          out.skipped.push({ what: `${r.source} ${r.id}`, reason: 'duplicate id (the first one read is used)' });
          continue;
        }
        seen.add(r.id);
        out.records.push(r);
      }
    }
  }
  return out;
}

function walkJson(dir: string): string[] {
  const out: string[] = [];
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop()!;
    const entries = fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? 1 : -1));
    for (const e of entries) {
      const full = path.join(d, e.name);
      if (e.isDirectory()) stack.push(full);
      else if (e.isFile() && e.name.endsWith('.json')) out.push(full);
      if (out.length > MAX_OSV_FILES) throw new InputError(`--vulns ${dir}: more than ${MAX_OSV_FILES} files`);
    }
  }
  return out.sort();
}

/** readBoundedText reads a UTF-8 file, refusing one over `max` bytes with a one-line error. */
export function readBoundedText(file: string, max: number, option: string): string {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    throw new InputError(`${option} ${file}: ${(err as Error).message}`);
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size > max) throw new InputError(`${option} ${file}: ${size} bytes is over the ${max}-byte limit for one file`, 'split it into a directory of smaller files');
    const buf = Buffer.alloc(size);
    let off = 0;
    while (off < size) {
      const n = fs.readSync(fd, buf, off, size - off, off);
      if (n === 0) break;
      off += n;
    }
    return buf.subarray(0, off).toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}

/** parseOsvText parses one file's text (pure). */
export function parseOsvText(text: string, source: string): { records: OsvRecord[]; skipped: Skip[] } {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new InputError(`--vulns ${source}: not JSON (${(err as Error).message})`);
  }
  let list: unknown[];
  if (Array.isArray(doc)) list = doc;
  else if (isObject(doc) && Array.isArray(doc['vulns'])) list = doc['vulns'];
  else if (isObject(doc)) list = [doc];
  else throw new InputError(`--vulns ${source}: expected an OSV record, an array of them or {"vulns": [...]}`);
  const records: OsvRecord[] = [];
  const skipped: Skip[] = [];
  list.forEach((raw, i) => {
    const where = list.length === 1 && !Array.isArray(doc) && !(isObject(doc) && 'vulns' in doc) ? source : `${source}[${i}]`;
    const r = parseRecord(raw, where, skipped);
    if (r !== undefined) records.push(r);
  });
  return { records, skipped };
}

function parseRecord(raw: unknown, where: string, skipped: Skip[]): OsvRecord | undefined {
  if (!isObject(raw)) {
    skipped.push({ what: where, reason: 'not a JSON object' });
    return undefined;
  }
  const id = raw['id'];
  if (typeof id !== 'string' || id === '' || id.length > 256) {
    skipped.push({ what: where, reason: 'no "id" string' });
    return undefined;
  }
  const label = `${where} ${id}`;
  if (typeof raw['withdrawn'] === 'string') {
    skipped.push({ what: label, reason: `withdrawn ${raw['withdrawn']}` });
    return undefined;
  }
  if (!Array.isArray(raw['affected'])) {
    skipped.push({ what: label, reason: 'no "affected" array' });
    return undefined;
  }
  const affected: OsvAffected[] = [];
  raw['affected'].forEach((a, i) => {
    const res = parseAffected(a);
    if (typeof res === 'string') skipped.push({ what: `${label} affected[${i}]`, reason: res });
    else affected.push(res);
  });
  if (affected.length === 0) {
    skipped.push({ what: label, reason: 'no usable affected package' });
    return undefined;
  }
  const db = raw['database_specific'];
  return {
    id,
    aliases: Array.isArray(raw['aliases']) ? raw['aliases'].filter((x): x is string => typeof x === 'string' && x !== id) : [],
    summary: typeof raw['summary'] === 'string' ? raw['summary'] : undefined,
    modified: typeof raw['modified'] === 'string' ? raw['modified'] : undefined,
    affected,
    source: where,
    synthetic: isObject(db) && db['synthetic'] === true,
  };
}

/** parseAffected returns the entry, or the reason it is skipped. */
function parseAffected(a: unknown): OsvAffected | string {
  if (!isObject(a) || !isObject(a['package'])) return 'no "package" object';
  const pkg = a['package'];
  const ecosystem = pkg['ecosystem'];
  const name = pkg['name'];
  if (typeof ecosystem !== 'string' || typeof name !== 'string' || name === '') return 'package needs "ecosystem" and "name" strings';
  const family = ecosystemFamily(ecosystem);
  if (family === undefined) return `unknown ecosystem '${ecosystem}' (rtev compares Debian:N, Go, npm, PyPI, crates.io)`;
  const cmp = comparatorFor(family);
  const ranges: OsvRange[] = [];
  for (const r of Array.isArray(a['ranges']) ? a['ranges'] : []) {
    if (!isObject(r)) return 'a range is not an object';
    if (r['type'] === 'GIT') continue; // commit ranges say nothing about installed versions
    if (r['type'] !== 'ECOSYSTEM' && r['type'] !== 'SEMVER') return `range type ${JSON.stringify(r['type'])} is not ECOSYSTEM, SEMVER or GIT`;
    if (!Array.isArray(r['events']) || r['events'].length === 0) return 'a range has no events';
    const events: OsvEvent[] = [];
    for (const e of r['events']) {
      if (!isObject(e)) return 'an event is not an object';
      const keys = (['introduced', 'fixed', 'last_affected', 'limit'] as const).filter((k) => typeof e[k] === 'string');
      if (keys.length !== 1) return 'an event needs exactly one of introduced, fixed, last_affected, limit';
      const k = keys[0]!;
      const v = e[k] as string;
      if (!(k === 'introduced' && v === '0') && !(k === 'limit' && v === '*')) {
        try {
          cmp(v, v);
        } catch (err) {
          if (err instanceof VersionError) return `${k} ${err.message}`;
          throw err;
        }
      }
      events.push({ [k]: v });
    }
    ranges.push({ type: r['type'], events });
  }
  const versions = Array.isArray(a['versions']) ? a['versions'].filter((v): v is string => typeof v === 'string') : [];
  if (ranges.length === 0 && versions.length === 0) return 'no ECOSYSTEM/SEMVER range and no versions list';
  return {
    ecosystem, family, release: ecosystem.includes(':') ? ecosystem.slice(ecosystem.indexOf(':') + 1) : '',
    name, purl: typeof pkg['purl'] === 'string' ? pkg['purl'] : undefined,
    ranges, versions, functions: affectedFunctions(a, family),
  };
}

/** affectedFunctions reads Go/native `imports[]` and RustSec `affects.functions` (docs/reachability.md). */
export function affectedFunctions(a: Record<string, unknown>, family: EcosystemFamily): AffectedFunction[] {
  const es = a['ecosystem_specific'];
  if (!isObject(es)) return [];
  const out: AffectedFunction[] = [];
  const seen = new Set<string>();
  const add = (f: AffectedFunction): void => {
    const k = `${f.kind}\0${f.path}\0${f.symbol}`;
    if (!seen.has(k) && out.length < 10_000) {
      seen.add(k);
      out.push(f);
    }
  };
  if (Array.isArray(es['imports'])) {
    for (const imp of es['imports']) {
      if (!isObject(imp) || typeof imp['path'] !== 'string' || imp['path'] === '') continue;
      const p = imp['path'];
      const symbols = Array.isArray(imp['symbols']) ? imp['symbols'].filter((s): s is string => typeof s === 'string' && s !== '') : [];
      for (const s of symbols) {
        if (family === 'Go') add({ kind: 'go', path: p, symbol: `${p}.${s}` });
        else add({ kind: 'native', path: p, symbol: s });
      }
    }
  }
  const rust = isObject(es['affects']) ? es['affects']['functions'] : es['functions'];
  if (Array.isArray(rust)) {
    for (const f of rust) if (typeof f === 'string' && f !== '') add({ kind: 'rust', path: f.split('::')[0]!, symbol: f });
  }
  return out;
}

export type RangeVerdict =
  | { status: 'affected'; fixed: string[] }
  | { status: 'fixed'; fixed: string[] }
  | { status: 'not_affected' };

/**
 * evaluateAffected places an installed version against one affected entry, following the
 * OSV evaluation rules: events in version order, `introduced` opens, `fixed` and past
 * `last_affected` close. Not affected after having entered a range means a fix (or the end
 * of the affected line) is installed: `fixed`; never having entered one: `not_affected`.
 */
export function evaluateAffected(aff: OsvAffected, version: string): RangeVerdict {
  const cmp = comparatorFor(aff.family);
  const fixedAll: string[] = [];
  let entered = false;
  for (const v of aff.versions) {
    if (safeCmp(cmp, version, v) === 0) return { status: 'affected', fixed: fixesOf(aff) };
  }
  for (const r of aff.ranges) {
    const res = evaluateRange(r, version, cmp);
    fixedAll.push(...res.fixed);
    if (res.affected) return { status: 'affected', fixed: uniq(res.fixed.length > 0 ? res.fixed : fixesOf(aff)) };
    if (res.entered) entered = true;
  }
  return entered ? { status: 'fixed', fixed: uniq(fixedAll) } : { status: 'not_affected' };
}

function evaluateRange(r: OsvRange, version: string, cmp: Comparator): { affected: boolean; entered: boolean; fixed: string[] } {
  const key = (e: OsvEvent): string => (e.introduced ?? e.fixed ?? e.last_affected ?? e.limit)!;
  const events = [...r.events].sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    if (ka === kb) return 0;
    if (ka === '0') return -1;
    if (kb === '0') return 1;
    if (ka === '*') return 1;
    if (kb === '*') return -1;
    return safeCmp(cmp, ka, kb);
  });
  let affected = false;
  let entered = false;
  let fixed: string[] = [];
  for (const e of events) {
    if (e.introduced !== undefined) {
      if (e.introduced === '0' || safeCmp(cmp, version, e.introduced) >= 0) {
        affected = true;
        entered = true;
        fixed = [];
      } else break;
    } else if (e.fixed !== undefined) {
      fixed.push(e.fixed);
      if (safeCmp(cmp, version, e.fixed) >= 0) affected = false;
      else break;
    } else if (e.last_affected !== undefined) {
      if (safeCmp(cmp, version, e.last_affected) > 0) affected = false;
      else break;
    } else if (e.limit !== undefined && e.limit !== '*') {
      if (safeCmp(cmp, version, e.limit) >= 0) {
        affected = false;
        break;
      }
    }
  }
  return { affected, entered, fixed };
}

function fixesOf(aff: OsvAffected): string[] {
  return uniq(aff.ranges.flatMap((r) => r.events.flatMap((e) => (e.fixed === undefined ? [] : [e.fixed]))));
}

function safeCmp(cmp: Comparator, a: string, b: string): number {
  return cmp(a, b);
}

function uniq(xs: string[]): string[] {
  return [...new Set(xs)];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
