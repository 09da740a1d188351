/** OsRelease is what a purl needs of /etc/os-release (or /usr/lib/os-release). */
export interface OsRelease {
  id?: string;
  versionId?: string;
  idLike: string[];
}

/**
 * parseOsRelease reads os-release(5): KEY=value lines, values optionally quoted. Only ID,
 * VERSION_ID and ID_LIKE are kept, and only in the characters os-release allows for them.
 */
export function parseOsRelease(text: string): OsRelease {
  const out: OsRelease = { idLike: [] };
  for (const raw of text.slice(0, 65536).split('\n')) {
    const line = raw.trim();
    const eq = line.indexOf('=');
    if (eq <= 0 || line.startsWith('#')) continue;
    const key = line.slice(0, eq);
    let v = line.slice(eq + 1);
    if (v.length >= 2 && (v[0] === '"' || v[0] === "'") && v[v.length - 1] === v[0]) v = v.slice(1, -1);
    if (key === 'ID' && /^[a-z0-9._-]{1,64}$/.test(v)) out.id = v;
    else if (key === 'VERSION_ID' && /^[A-Za-z0-9._~-]{1,64}$/.test(v)) out.versionId = v;
    else if (key === 'ID_LIKE') out.idLike = v.split(/\s+/).filter((x) => /^[a-z0-9._-]{1,64}$/.test(x)).slice(0, 16);
  }
  return out;
}

/** isDebianLike: syft writes deb purls for Debian and its derivatives (ID or ID_LIKE debian/ubuntu). */
export function isDebianLike(os: OsRelease): boolean {
  return os.id !== undefined && [os.id, ...os.idLike].some((x) => x === 'debian' || x === 'ubuntu');
}
