/**
 * Canonical purls for node_hash components: `pkg:<type>/<namespace>/<name>@<version>` with
 * qualifiers and subpath dropped. Each segment is percent-encoded except RFC 3986 unreserved
 * characters and `+` `:` (kept, as Go's url.PathEscape and syft do, so Debian versions like
 * `2.36-9+deb12u4` and `1:2.3` read naturally). Namespace segments keep their `/`.
 */
export function purl(type: string, namespace: string | undefined, name: string, version: string): string {
  const ns = namespace === undefined || namespace === '' ? '' : namespace.split('/').map(enc).join('/') + '/';
  return `pkg:${type.toLowerCase()}/${ns}${enc(name)}@${enc(version)}`;
}

function enc(s: string): string {
  let out = '';
  for (const byte of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(byte);
    if (/[A-Za-z0-9._~+:-]/.test(c)) out += c;
    else out += '%' + byte.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

/** golangPurl splits a module path into purl namespace/name (`golang.org/x` / `net`). */
export function golangPurl(modulePath: string, version: string): string {
  const slash = modulePath.lastIndexOf('/');
  return slash < 0
    ? purl('golang', undefined, modulePath, version)
    : purl('golang', modulePath.slice(0, slash), modulePath.slice(slash + 1), version);
}
