/** parsePackageJson takes name and version from a package.json; undefined if either is missing. */
export function parsePackageJson(text: string): { name: string; version: string } | undefined {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof j !== 'object' || j === null) return undefined;
  const { name, version } = j as { name?: unknown; version?: unknown };
  if (typeof name !== 'string' || typeof version !== 'string') return undefined;
  if (!/^(?:@[a-z0-9][a-z0-9._~-]{0,213}\/)?[a-z0-9._~-][a-z0-9._~-]{0,213}$/i.test(name)) return undefined;
  if (!/^[A-Za-z0-9.+_-]{1,256}$/.test(version)) return undefined;
  return { name, version };
}

/**
 * npmPackageDir returns the package directory of a file under node_modules: the deepest
 * `node_modules/<name>` or `node_modules/@scope/<name>` of the path.
 */
export function npmPackageDir(p: string): string | undefined {
  const i = p.lastIndexOf('/node_modules/');
  if (i < 0) return undefined;
  const rest = p.slice(i + '/node_modules/'.length).split('/');
  if (rest[0] === undefined || rest[0] === '' || rest[0] === '.bin') return undefined;
  const n = rest[0].startsWith('@') ? 2 : 1;
  if (rest.length <= n) return undefined; // the directory itself, not a file in it
  return p.slice(0, i + '/node_modules/'.length) + rest.slice(0, n).join('/');
}
