import { PackageURL } from 'packageurl-js';
import type { EcosystemFamily } from './version';

/** ParsedPurl is a purl split into its parts (packageurl-js decodes the percent-encoding). */
export interface ParsedPurl {
  type: string;
  namespace: string | undefined;
  name: string;
  version: string | undefined;
  qualifiers: Record<string, string>;
}

/** parsePurl returns undefined for a string that is not a valid purl. */
export function parsePurl(s: string): ParsedPurl | undefined {
  if (typeof s !== 'string' || !s.startsWith('pkg:') || s.length > 4096) return undefined;
  try {
    const p = PackageURL.fromString(s);
    return {
      type: p.type, namespace: p.namespace ?? undefined, name: p.name, version: p.version ?? undefined,
      qualifiers: { ...(p.qualifiers ?? {}) } as Record<string, string>,
    };
  } catch {
    return undefined;
  }
}

/** samePackage compares type, namespace, name and version, ignoring qualifiers (purls are compared parsed). */
export function samePackage(a: ParsedPurl, b: ParsedPurl): boolean {
  return a.type === b.type && (a.namespace ?? '') === (b.namespace ?? '') && a.name === b.name && (a.version ?? '') === (b.version ?? '');
}

/** PurlEcosystem is where a purl's package is looked up in OSV. */
export interface PurlEcosystem {
  family: EcosystemFamily;
  /** OSV package name: Go module path, npm `@scope/name`, PEP 503-normalized PyPI name, Debian binary package */
  name: string;
  /** Debian: the source package (upstream= qualifier, without its @version), when known */
  source: string | undefined;
  /** Debian: the release (`12` from distro=debian-12); '' when unknown */
  release: string;
}

/** pep503 normalizes a Python package name (PEP 503). */
export function pep503(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

/**
 * purlEcosystem maps a purl to its OSV ecosystem, or returns the reason it cannot be
 * matched (a counted skip): deb (namespace debian), golang, npm, pypi, cargo.
 */
export function purlEcosystem(p: ParsedPurl): PurlEcosystem | string {
  switch (p.type) {
    case 'deb': {
      if ((p.namespace ?? '').toLowerCase() !== 'debian') return `purl type deb with namespace '${p.namespace ?? ''}' (only debian is compared)`;
      const distro = p.qualifiers['distro'] ?? '';
      const rel = /^debian-(\d+)/.exec(distro)?.[1] ?? '';
      const up = p.qualifiers['upstream'];
      const source = up === undefined || up === '' ? undefined : up.replace(/@.*$/, '').replace(/\s*\(.*$/, '');
      return { family: 'Debian', name: p.name, source, release: rel };
    }
    case 'golang':
      return { family: 'Go', name: p.namespace === undefined ? p.name : `${p.namespace}/${p.name}`, source: undefined, release: '' };
    case 'npm':
      return { family: 'npm', name: p.namespace === undefined ? p.name : `${p.namespace}/${p.name}`, source: undefined, release: '' };
    case 'pypi':
      return { family: 'PyPI', name: pep503(p.name), source: undefined, release: '' };
    case 'cargo':
      return { family: 'crates.io', name: p.name, source: undefined, release: '' };
    default:
      return `purl type '${p.type}' is not matched against OSV (rtev knows deb, golang, npm, pypi, cargo)`;
  }
}

/** osvName normalizes an OSV package name the way purlEcosystem does for its family. */
export function osvName(family: EcosystemFamily, name: string): string {
  return family === 'PyPI' ? pep503(name) : name;
}
