import * as pep440 from '@renovatebot/pep440';
import * as semver from 'semver';

/**
 * Version orders per OSV ecosystem. Debian uses dpkg's order (Debian Policy §5.6.12,
 * dpkg's `verrevcmp`), written here because no maintained npm package implements it;
 * Go and npm use semver (the `semver` package, loose parsing off), PyPI uses PEP 440
 * (`@renovatebot/pep440`). docs/reachability.md, "Version order".
 */
export type Comparator = (a: string, b: string) => number;

/** The ecosystem families rtev compares; `Debian:12` belongs to `Debian`. */
export type EcosystemFamily = 'Debian' | 'Go' | 'npm' | 'PyPI' | 'crates.io';

export function ecosystemFamily(ecosystem: string): EcosystemFamily | undefined {
  const base = ecosystem.split(':')[0]!;
  switch (base) {
    case 'Debian': return 'Debian';
    case 'Go': return 'Go';
    case 'npm': return 'npm';
    case 'PyPI': return 'PyPI';
    case 'crates.io': return 'crates.io';
    default: return undefined;
  }
}

/** VersionError: a version string that the ecosystem's order cannot parse. */
export class VersionError extends Error {}

/** comparatorFor returns the order of an ecosystem family; it throws VersionError for unparsable versions. */
export function comparatorFor(family: EcosystemFamily): Comparator {
  switch (family) {
    case 'Debian': return compareDpkg;
    case 'Go': return compareGo;
    case 'npm':
    case 'crates.io': return compareSemver;
    case 'PyPI': return comparePep440;
  }
}

// ---- dpkg ---------------------------------------------------------------------------------

interface DebVersion {
  epoch: number;
  upstream: string;
  revision: string;
}

/** parseDpkgVersion splits `[epoch:]upstream[-revision]` as dpkg's parseversion does. */
export function parseDpkgVersion(v: string): DebVersion {
  const s = v.trim();
  if (s === '' || /\s/.test(s)) throw new VersionError(`'${v}' is not a Debian version`);
  let epoch = 0;
  let rest = s;
  const colon = s.indexOf(':');
  if (colon >= 0) {
    const e = s.slice(0, colon);
    if (!/^\d+$/.test(e) || e.length > 9) throw new VersionError(`'${v}': epoch '${e}' is not a number`);
    epoch = Number(e);
    rest = s.slice(colon + 1);
  }
  const dash = rest.lastIndexOf('-');
  const upstream = dash >= 0 ? rest.slice(0, dash) : rest;
  const revision = dash >= 0 ? rest.slice(dash + 1) : '';
  if (upstream === '' || !/^[0-9]/.test(upstream)) throw new VersionError(`'${v}': the upstream version must start with a digit`);
  if (!/^[A-Za-z0-9.+~:-]+$/.test(upstream) || (revision !== '' && !/^[A-Za-z0-9.+~]+$/.test(revision))) {
    throw new VersionError(`'${v}' has characters a Debian version may not contain`);
  }
  return { epoch, upstream, revision };
}

/** order is dpkg's weight of one non-digit character: `~` first, then the end, letters, the rest. */
function order(c: string | undefined): number {
  if (c === undefined || isDigit(c)) return 0;
  if (c === '~') return -1;
  const code = c.charCodeAt(0);
  if ((code >= 65 && code <= 90) || (code >= 97 && code <= 122)) return code;
  return code + 256;
}

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= '0' && c <= '9';
}

/** verrevcmp is dpkg's comparison of an upstream version or a revision. */
export function verrevcmp(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    let firstDiff = 0;
    while ((i < a.length && !isDigit(a[i])) || (j < b.length && !isDigit(b[j]))) {
      const ac = order(i < a.length ? a[i] : undefined);
      const bc = order(j < b.length ? b[j] : undefined);
      if (ac !== bc) return ac - bc;
      i++;
      j++;
    }
    while (a[i] === '0') i++;
    while (b[j] === '0') j++;
    while (isDigit(a[i]) && isDigit(b[j])) {
      if (firstDiff === 0) firstDiff = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (isDigit(a[i])) return 1;
    if (isDigit(b[j])) return -1;
    if (firstDiff !== 0) return firstDiff;
  }
  return 0;
}

/** compareDpkg orders two Debian versions exactly as `dpkg --compare-versions` does. */
export function compareDpkg(a: string, b: string): number {
  const x = parseDpkgVersion(a);
  const y = parseDpkgVersion(b);
  if (x.epoch !== y.epoch) return x.epoch > y.epoch ? 1 : -1;
  const u = verrevcmp(x.upstream, y.upstream);
  if (u !== 0) return Math.sign(u);
  return Math.sign(verrevcmp(x.revision, y.revision));
}

// ---- semver, Go, PEP 440 ------------------------------------------------------------------

function compareSemver(a: string, b: string): number {
  const x = semver.parse(a);
  const y = semver.parse(b);
  if (x === null) throw new VersionError(`'${a}' is not a semantic version`);
  if (y === null) throw new VersionError(`'${b}' is not a semantic version`);
  return x.compare(y);
}

/**
 * compareGo orders Go module versions: semver with a `v` prefix (pseudo-versions are
 * prereleases, so they order correctly), `+incompatible` is build metadata. OSV Go ranges
 * are written without the `v` (`1.2.3`), SBOMs and build info with it: both are accepted.
 */
function compareGo(a: string, b: string): number {
  return compareSemver(a.replace(/^v/, ''), b.replace(/^v/, ''));
}

function comparePep440(a: string, b: string): number {
  if (pep440.valid(a) === null) throw new VersionError(`'${a}' is not a PEP 440 version`);
  if (pep440.valid(b) === null) throw new VersionError(`'${b}' is not a PEP 440 version`);
  return Math.sign(pep440.compare(a, b));
}
