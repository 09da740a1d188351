import { createHash } from 'node:crypto';

/**
 * The wire layout a ring fixture depends on: `enum evt_kind` and the named structs of
 * bpf/events.h, comments and whitespace removed, so that a changed field, size or kind number
 * changes the hash and a reworded comment does not.
 */
export function wireLayout(eventsH: string, structs: readonly string[]): string {
  const code = eventsH.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/\/\/[^\n]*/g, ' ');
  const block = (keyword: 'struct' | 'enum', name: string): string => {
    const m = new RegExp(`\\b${keyword}\\s+${name}\\s*\\{[^}]*\\}\\s*;`).exec(code);
    if (m === null) throw new Error(`bpf/events.h has no ${keyword} ${name}`);
    return m[0].replace(/\s+/g, ' ');
  };
  return [block('enum', 'evt_kind'), ...structs.map((s) => block('struct', s))].join('\n');
}

export function wireLayoutHash(eventsH: string, structs: readonly string[]): string {
  return createHash('sha256').update(wireLayout(eventsH, structs)).digest('hex');
}

/** The structs each record type is laid out with (every record starts with evt_hdr). */
export const STRUCTS_OF = {
  file_open: ['evt_hdr', 'evt_file_open'],
  process_exec: ['evt_hdr', 'evt_process_exec'],
  tcp_state: ['evt_hdr', 'evt_tcp_state'],
  net_connect: ['evt_hdr', 'evt_net_connect'],
  ssl_op: ['evt_hdr', 'evt_ssl_op'],
  function_call: ['evt_hdr', 'evt_function_call'],
} as const;

/** structsOf: the sorted, distinct structs of a set of record types. */
export function structsOf(probes: readonly (keyof typeof STRUCTS_OF)[]): string[] {
  return [...new Set(probes.flatMap((p) => STRUCTS_OF[p]))].sort((a, b) => (a === 'evt_hdr' ? -1 : b === 'evt_hdr' ? 1 : a.localeCompare(b)));
}
