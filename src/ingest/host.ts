import * as fs from 'node:fs';
import * as path from 'node:path';
import { UsageError } from '../errors';
import { cgroup2Mount } from '../platform/cgroup2';

/** processTree lists pid and its current descendants from /proc (children files); at most `max`. */
export function processTree(root: number, procRoot = '/proc', max = 65536): number[] {
  const result: number[] = [];
  const queue = [root];
  while (queue.length > 0 && result.length < max) {
    const pid = queue.shift()!;
    result.push(pid);
    let tasks: string[] = [];
    try {
      tasks = fs.readdirSync(`${procRoot}/${pid}/task`);
    } catch {
      continue; // exited
    }
    for (const tid of tasks) {
      try {
        const children = fs.readFileSync(`${procRoot}/${pid}/task/${tid}/children`, 'utf8');
        for (const c of children.split(' ')) if (/^\d+$/.test(c)) queue.push(Number(c));
      } catch {
        // thread exited
      }
    }
  }
  return result;
}

/** resolveCgroupId accepts a cgroup v2 id or a path (absolute, or relative to the cgroup2 mount). */
export function resolveCgroupId(text: string): bigint {
  if (/^\d+$/.test(text)) return BigInt(text);
  const mount = cgroup2Mount();
  const candidates = text.startsWith('/sys/fs/cgroup') ? [text] : [path.join(mount, text)];
  for (const candidate of candidates) {
    try {
      const st = fs.statSync(candidate, { bigint: true });
      if (st.isDirectory()) return st.ino;
    } catch {
      // try the next
    }
  }
  throw new UsageError(`--cgroup: no cgroup v2 directory '${text}'`, `give a path under ${mount} or a numeric cgroup id`);
}
