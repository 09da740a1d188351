/**
 * Package URLs (https://github.com/package-url/purl-spec) in the forms syft writes, so that
 * rtev's attributions join with syft SBOMs. Path segments keep RFC 3986 unreserved characters
 * and `+` `:` (Go's url.PathEscape, which packageurl-go uses: `2.36-9+deb12u4`, `1:1.2.13`);
 * qualifier values are query-escaped (`upstream=openssl%403.0.11`), keys sorted.
 * Two purls are compared parsed (samePurl), never as strings.
 */

export interface Purl {
  type: string;
  namespace?: string;
  name: string;
  version?: string;
  qualifiers: Record<string, string>;
  subpath?: string;
}

const PATH_KEEP = /[A-Za-z0-9._~+:-]/;
const QUERY_KEEP = /[A-Za-z0-9._~-]/;

function escapeWith(s: string, keep: RegExp): string {
  let out = '';
  for (const byte of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += byte < 0x80 && keep.test(c) ? c : '%' + byte.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

/** formatPurl renders a purl; qualifiers with empty values are dropped, keys sorted. */
export function formatPurl(p: Purl): string {
  const ns = p.namespace === undefined || p.namespace === '' ? '' : p.namespace.split('/').map((s) => escapeWith(s, PATH_KEEP)).join('/') + '/';
  let out = `pkg:${p.type.toLowerCase()}/${ns}${escapeWith(p.name, PATH_KEEP)}`;
  if (p.version !== undefined && p.version !== '') out += '@' + escapeWith(p.version, PATH_KEEP);
  const keys = Object.keys(p.qualifiers).filter((k) => p.qualifiers[k] !== '').sort();
  if (keys.length > 0) out += '?' + keys.map((k) => `${k.toLowerCase()}=${escapeWith(p.qualifiers[k]!, QUERY_KEEP)}`).join('&');
  if (p.subpath !== undefined && p.subpath !== '') out += '#' + p.subpath.split('/').map((s) => escapeWith(s, PATH_KEEP)).join('/');
  return out;
}

function unescape(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

/** parsePurl reads a purl string; undefined when it is not one (bounded: at most 4096 chars). */
export function parsePurl(s: string): Purl | undefined {
  if (typeof s !== 'string' || s.length > 4096 || !s.startsWith('pkg:')) return undefined;
  let rest = s.slice(4).replace(/^\/+/, '');
  let subpath: string | undefined;
  const hash = rest.indexOf('#');
  if (hash >= 0) {
    subpath = unescape(rest.slice(hash + 1));
    if (subpath === undefined) return undefined;
    rest = rest.slice(0, hash);
  }
  const qualifiers: Record<string, string> = {};
  const q = rest.indexOf('?');
  if (q >= 0) {
    for (const kv of rest.slice(q + 1).split('&')) {
      if (kv === '') continue;
      const eq = kv.indexOf('=');
      if (eq <= 0) return undefined;
      const v = unescape(kv.slice(eq + 1));
      if (v === undefined) return undefined;
      qualifiers[kv.slice(0, eq).toLowerCase()] = v;
    }
    rest = rest.slice(0, q);
  }
  const slash = rest.indexOf('/');
  if (slash <= 0) return undefined;
  const type = rest.slice(0, slash).toLowerCase();
  if (!/^[a-z.+-][a-z0-9.+-]*$/.test(type)) return undefined;
  rest = rest.slice(slash + 1);
  let version: string | undefined;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    version = unescape(rest.slice(at + 1));
    if (version === undefined) return undefined;
    rest = rest.slice(0, at);
  }
  const segs = rest.split('/').filter((x) => x !== '');
  if (segs.length === 0) return undefined;
  const dec = segs.map(unescape);
  if (dec.some((x) => x === undefined)) return undefined;
  const name = dec.pop()!;
  const namespace = dec.length > 0 ? dec.join('/') : undefined;
  return {
    type, name, qualifiers,
    ...(namespace !== undefined ? { namespace } : {}),
    ...(version !== undefined ? { version } : {}),
    ...(subpath !== undefined ? { subpath } : {}),
  };
}

/** samePurl compares two purls parsed: type, namespace, name, version, qualifiers, subpath. */
export function samePurl(a: string, b: string): boolean {
  const x = parsePurl(a);
  const y = parsePurl(b);
  if (x === undefined || y === undefined) return false;
  const caseless = x.type === 'deb' || x.type === 'npm' || x.type === 'pypi' || x.type === 'golang';
  const n = (s: string | undefined): string | undefined => (caseless && s !== undefined ? s.toLowerCase() : s);
  if (x.type !== y.type || n(x.namespace) !== n(y.namespace) || n(x.name) !== n(y.name) || x.version !== y.version || x.subpath !== y.subpath) return false;
  const kx = Object.keys(x.qualifiers).sort();
  const ky = Object.keys(y.qualifiers).sort();
  return kx.length === ky.length && kx.every((k, i) => k === ky[i] && x.qualifiers[k] === y.qualifiers[k]);
}

export interface DebPurlInput {
  name: string;
  version: string;
  arch?: string;
  /** from os-release: ID and VERSION_ID; without an ID there is no purl namespace (syft: none) */
  distro: { id: string; versionId?: string };
  source?: { name: string; version?: string };
}

/**
 * debPurl is syft's Debian purl (syft/pkg/cataloger/debian/package.go packageURL):
 * `pkg:deb/<ID>/<Package>@<Version>?arch=<Architecture>&distro=<ID>-<VERSION_ID>&upstream=<Source>[@<SourceVersion>]`.
 */
export function debPurl(p: DebPurlInput): string {
  const qualifiers: Record<string, string> = {};
  if (p.arch !== undefined) qualifiers.arch = p.arch;
  qualifiers.distro = p.distro.versionId !== undefined && p.distro.versionId !== '' ? `${p.distro.id}-${p.distro.versionId}` : p.distro.id;
  if (p.source !== undefined && p.source.name !== '') {
    qualifiers.upstream = p.source.version !== undefined && p.source.version !== '' ? `${p.source.name}@${p.source.version}` : p.source.name;
  }
  return formatPurl({ type: 'deb', namespace: p.distro.id, name: p.name, version: p.version, qualifiers });
}

/** pypiName normalizes a Python distribution name (PEP 503): lower case, runs of -_. become -. */
export function pypiName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

export function pypiPurl(name: string, version: string): string {
  return formatPurl({ type: 'pypi', name: pypiName(name), version, qualifiers: {} });
}

/** npmPurl: `@scope/name` gives namespace `@scope` (written %40scope). */
export function npmPurl(name: string, version: string): string {
  const slash = name.startsWith('@') ? name.indexOf('/') : -1;
  return slash > 0
    ? formatPurl({ type: 'npm', namespace: name.slice(0, slash), name: name.slice(slash + 1), version, qualifiers: {} })
    : formatPurl({ type: 'npm', name, version, qualifiers: {} });
}

/** golangPurl splits the module path at its last `/` into namespace and name. */
export function golangPurl(modulePath: string, version: string): string {
  const slash = modulePath.lastIndexOf('/');
  return slash < 0
    ? formatPurl({ type: 'golang', name: modulePath, version, qualifiers: {} })
    : formatPurl({ type: 'golang', namespace: modulePath.slice(0, slash), name: modulePath.slice(slash + 1), version, qualifiers: {} });
}

export function mavenPurl(group: string | undefined, artifact: string, version: string): string {
  return formatPurl({ type: 'maven', ...(group !== undefined && group !== '' ? { namespace: group } : {}), name: artifact, version, qualifiers: {} });
}
