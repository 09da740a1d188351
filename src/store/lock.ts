import * as fs from 'node:fs';
import * as path from 'node:path';
import { RtevError } from '../errors';
import { LOCK_NAME } from './layout';
import { outputError } from './fsio';

/**
 * One collector per evidence directory: DIR/.rtev.lock holds the pid of its owner. A lock
 * whose pid is gone (the owner was killed) is taken over; that is also how a restart after
 * SIGKILL finds the directory.
 */
export function lockEvidenceDir(dir: string): () => void {
  const file = path.join(dir, LOCK_NAME);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
      fs.writeSync(fd, `${process.pid}\n`);
      fs.closeSync(fd);
      return () => {
        try {
          fs.unlinkSync(file);
        } catch {
          // already gone: nothing to release
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw outputError(err, `cannot lock ${dir}`);
    }
    const st = fs.lstatSync(file);
    if (!st.isFile()) throw new RtevError('OUTPUT', `${file} is not a regular file; refusing to use ${dir}`);
    const pid = Number.parseInt(fs.readFileSync(file, 'utf8').slice(0, 32), 10);
    if (Number.isSafeInteger(pid) && pid > 0 && alive(pid)) {
      throw new RtevError('OUTPUT', `another rtev collect (pid ${pid}) is writing to ${dir}`, { hint: 'stop it or choose another --out directory' });
    }
    fs.unlinkSync(file);
  }
  throw new RtevError('OUTPUT', `cannot lock ${dir}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
