/**
 * rtev's globs, one implementation for every user: `--path`/`--exclude` on file_open records
 * (src/ingest/path-filter.ts) and the `--path`/`--symbol` filters of `rtev query`/`summary`
 * (src/index/filter.ts, also translated to SQL there).
 *
 * - `*` matches any run of characters within one path component (not `/`);
 * - `**` matches any run of characters, across components;
 * - `?` matches one character other than `/`;
 * - everything else is literal (no classes, no braces).
 *
 * With `{ flat: true }` (function symbols, which have no components) `*` and `?` also match `/`.
 * The regular expression is anchored and uses only syntax that JavaScript, RE2 (DuckDB's
 * regexp_full_match) and PostgreSQL's `~` read alike.
 */

export interface GlobOptions {
  /** `*` and `?` match `/` too (there are no components) */
  flat?: boolean;
}

/** globToRegex turns a glob into the source of an anchored regular expression (no flags needed). */
export function globToRegex(glob: string, options: GlobOptions = {}): string {
  const one = options.flat === true ? '.' : '[^/]';
  let out = '^';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        out += '.*';
        i++;
      } else {
        out += `${one}*`;
      }
    } else if (c === '?') {
      out += one;
    } else if (/[\\^$.+()|{}[\]]/.test(c)) {
      out += '\\' + c;
    } else {
      out += c;
    }
  }
  return out + '$';
}

/** globToRegExp is globToRegex compiled; `s` so that `.` also matches a newline in a path. */
export function globToRegExp(glob: string, options: GlobOptions = {}): RegExp {
  return new RegExp(globToRegex(glob, options), 's');
}

/** isGlob tells whether a value is a pattern rather than a literal. */
export function isGlob(value: string): boolean {
  return value.includes('*') || value.includes('?');
}
