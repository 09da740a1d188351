import { globToRegExp } from '../util/glob';

/**
 * Path allow/deny globs applied in user space to file_open records (src/util/glob.ts):
 * `*` matches within one path component, `**` across components, `?` one character.
 * A path passes when it matches some include glob (or there are none) and no exclude glob.
 */
export class PathFilter {
  readonly #include: RegExp[];
  readonly #exclude: RegExp[];

  constructor(include: string[], exclude: string[]) {
    this.#include = include.map((g) => globToRegExp(g));
    this.#exclude = exclude.map((g) => globToRegExp(g));
  }

  get active(): boolean {
    return this.#include.length > 0 || this.#exclude.length > 0;
  }

  passes(path: string): boolean {
    if (this.#include.length > 0 && !this.#include.some((r) => r.test(path))) return false;
    return !this.#exclude.some((r) => r.test(path));
  }
}
