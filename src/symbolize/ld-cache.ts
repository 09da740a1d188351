import { cstring } from './elf';

/**
 * parseLdSoCache reads glibc's /etc/ld.so.cache "new" format (header `glibc-ld.so.cache1.1`,
 * u32 nlibs, u32 len_strings, then 24-byte entries {flags i32, key u32, value u32, osversion
 * u32, hwcap u64}, string offsets relative to that header; glibc elf/cache.c). Returns
 * soname → paths (x86-64 entries first as they come). Unknown formats give an empty map.
 */
export function parseLdSoCache(b: Buffer): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const MAGIC = 'glibc-ld.so.cache1.1';
  const base = b.indexOf(MAGIC, 0, 'latin1');
  if (base < 0) return out;
  if (base + 48 > b.length) return out;
  const n = b.readUInt32LE(base + 20);
  const first = base + 48;
  if (n > 1_000_000 || first + n * 24 > b.length) return out;
  for (let i = 0; i < n; i++) {
    const o = first + i * 24;
    const key = cstring(b, base + b.readUInt32LE(o + 4), 4096);
    const value = cstring(b, base + b.readUInt32LE(o + 8), 4096);
    if (key === '' || !value.startsWith('/')) continue;
    const list = out.get(key) ?? [];
    if (list.length < 8) list.push(value);
    out.set(key, list);
  }
  return out;
}
