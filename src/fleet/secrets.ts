import * as fs from 'node:fs';
import { UsageError } from '../errors';

/**
 * No secret on a command line or in a log: URLs given as options must not carry a
 * password (it would show in `ps` and in shell history). Passwords come from files or the
 * environment the libraries already read (PGPASSWORD, ~/.pgpass; NATS credentials files).
 */

/** checkNoPassword refuses a URL with a password and returns it with the password-free form for logs. */
export function checkNoPassword(url: string, option: string, hint: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url.includes('://') ? url : `nats://${url}`);
  } catch {
    throw new UsageError(`--${option}: '${redact(url)}' is not a URL`);
  }
  if (parsed.password !== '') throw new UsageError(`--${option} must not contain a password (it would be visible in the process list)`, hint);
  return url;
}

/** redact removes any user:password@ part from a URL-ish string, for messages. */
export function redact(text: string): string {
  return text.replace(/\/\/[^/@\s]*@/g, '//***@');
}

/** readSecretFile reads a small credentials file that must not be group/world-readable. */
export function readSecretFile(file: string, option: string): Buffer {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    throw new UsageError(`--${option}: cannot read ${file}: ${(err as Error).message}`);
  }
  if (!st.isFile()) throw new UsageError(`--${option}: ${file} is not a regular file`);
  if ((st.mode & 0o077) !== 0) throw new UsageError(`--${option}: ${file} is readable by group or others`, `chmod 600 ${file}`);
  if (st.size > 64 * 1024) throw new UsageError(`--${option}: ${file} is too large for a credentials file`);
  return fs.readFileSync(file);
}
