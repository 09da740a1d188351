import { lastAtOrBefore } from '../util/search';

/**
 * Pure parsers for /proc/PID files. Reading them is the caller's job (through Host), so tests
 * feed committed text fixtures.
 */

/** Mapping is one line of /proc/PID/maps. */
export interface Mapping {
  start: bigint;
  end: bigint;
  perms: string;
  offset: bigint;
  dev: string;
  inode: bigint;
  /** path as the process sees it ('' for anonymous memory; `[vdso]` etc. for special ones). */
  path: string;
  deleted: boolean;
}

const MAPS_LINE = /^([0-9a-f]{1,16})-([0-9a-f]{1,16}) ([-rwxsp]{4}) ([0-9a-f]{1,16}) ([0-9a-f]{1,8}:[0-9a-f]{1,8}) (\d{1,20})\s*(.*)$/;

/** parseMaps parses maps text; malformed lines are counted, never thrown. */
export function parseMaps(text: string, maxLines = 200_000): { mappings: Mapping[]; rejected: number } {
  const mappings: Mapping[] = [];
  let rejected = 0;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length && i < maxLines; i++) {
    const line = lines[i]!;
    if (line === '') continue;
    const m = MAPS_LINE.exec(line.length > 8192 ? '' : line);
    if (m === null) {
      rejected++;
      continue;
    }
    let path = m[7]!;
    const deleted = path.endsWith(' (deleted)');
    if (deleted) path = path.slice(0, -' (deleted)'.length);
    const start = BigInt('0x' + m[1]);
    const end = BigInt('0x' + m[2]);
    if (end <= start) {
      rejected++;
      continue;
    }
    mappings.push({ start, end, perms: m[3]!, offset: BigInt('0x' + m[4]), dev: m[5]!, inode: BigInt(m[6]!), path, deleted });
  }
  if (lines.length > maxLines) rejected += lines.length - maxLines;
  mappings.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  return { mappings, rejected };
}

/** findMapping binary-searches sorted mappings for the one containing `addr`. */
export function findMapping(mappings: readonly Mapping[], addr: bigint): Mapping | undefined {
  const m = mappings[lastAtOrBefore(mappings, (x) => x.start, addr)];
  return m !== undefined && addr < m.end ? m : undefined;
}

/** isFileBacked says whether a mapping names a file we can open for symbols. */
export function isFileBacked(m: Mapping): boolean {
  return m.inode !== 0n && m.path.startsWith('/');
}

/** isSpecial matches kernel-provided mappings: `[vdso]`, `[vsyscall]`, `[uprobes]`, `[stack]`, `[heap]`. */
export function isSpecial(m: Mapping): boolean {
  return m.path.startsWith('[');
}

/** nsPidFromStatus returns the innermost namespace pid (last field of `NSpid:`), as bcc does. */
export function nsPidFromStatus(status: string): number | undefined {
  const m = /^NSpid:\s*([\d\s]+)$/m.exec(status);
  if (m === null) return undefined;
  const fields = m[1]!.trim().split(/\s+/);
  const last = Number(fields[fields.length - 1]);
  return Number.isSafeInteger(last) && last > 0 ? last : undefined;
}

/** fileOffsetOf converts a runtime address inside a mapping to a file offset (reference §2.3). */
export function fileOffsetOf(m: Mapping, addr: bigint): bigint {
  return addr - m.start + m.offset;
}
