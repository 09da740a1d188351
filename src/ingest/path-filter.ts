/**
 * Path allow/deny globs applied in user space to file_open records.
 * `*` matches within one path component, `**` across components, `?` one character.
 * A path passes when it matches some include glob (or there are none) and no exclude glob.
 */
export class PathFilter {
  readonly #include: RegExp[];
  readonly #exclude: RegExp[];

  constructor(include: string[], exclude: string[]) {
    this.#include = include.map(globToRegExp);
    this.#exclude = exclude.map(globToRegExp);
  }

  get active(): boolean {
    return this.#include.length > 0 || this.#exclude.length > 0;
  }

  passes(path: string): boolean {
    if (this.#include.length > 0 && !this.#include.some((r) => r.test(path))) return false;
    return !this.#exclude.some((r) => r.test(path));
  }
}

export function globToRegExp(glob: string): RegExp {
  let out = '^';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        out += '.*';
        i++;
      } else {
        out += '[^/]*';
      }
    } else if (c === '?') {
      out += '[^/]';
    } else {
      out += c.replace(/[\\^$.+()|{}[\]]/g, '\\$&');
    }
  }
  return new RegExp(out + '$', 's');
}
