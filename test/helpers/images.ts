/**
 * What the privileged tests need from the machine, made on demand: each test file calls
 * ensureImage() for the podman images it uses, so every file passes alone, in any order, on a
 * machine where no earlier run left anything behind. Safe when several test processes ask at
 * once: the check-and-build runs under a lock file (O_EXCL, holder pid inside; a lock whose
 * holder died is taken over).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildGoTls } from '../progs/tls/build';

const LOCK_WAIT_MS = 300_000;

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** withFileLock runs fn while holding the lock file `<tmpdir>/rtev-test-<name>.lock`. */
export function withFileLock<T>(name: string, fn: () => T): T {
  const lock = path.join(os.tmpdir(), `rtev-test-${name}.lock`);
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      fs.writeFileSync(lock, String(process.pid), { flag: 'wx' });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let holder = NaN;
    try {
      holder = Number(fs.readFileSync(lock, 'utf8'));
    } catch {
      continue; // released meanwhile
    }
    if (Number.isInteger(holder) && holder > 0 && !alive(holder)) {
      // the holder died without releasing: take it over (rename is atomic, one taker wins)
      try {
        const stale = `${lock}.stale-${process.pid}`;
        fs.renameSync(lock, stale);
        if (Number(fs.readFileSync(stale, 'utf8')) === holder) fs.rmSync(stale);
        else fs.renameSync(stale, lock); // someone else's fresh lock: put it back
      } catch {
        // another process took it over first
      }
      continue;
    }
    if (Date.now() > deadline) throw new Error(`waited ${LOCK_WAIT_MS / 1000} s for ${lock} (held by pid ${holder})`);
    sleepMs(100);
  }
  try {
    return fn();
  } finally {
    fs.rmSync(lock, { force: true });
  }
}

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

function imageExists(name: string): boolean {
  try {
    sh('podman', ['image', 'exists', name]);
    return true;
  } catch {
    return false;
  }
}

/** bbox: a busybox-static root (sh, cat, sleep, nc, true) imported as an image: no registry needed. */
function buildBbox(name: string): void {
  if (!fs.existsSync('/bin/busybox')) throw new Error('/bin/busybox is missing: install busybox-static (make deps)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-bbox-'));
  try {
    fs.mkdirSync(path.join(dir, 'root/bin'), { recursive: true });
    fs.copyFileSync('/bin/busybox', path.join(dir, 'root/bin/busybox'));
    fs.chmodSync(path.join(dir, 'root/bin/busybox'), 0o755);
    for (const a of ['sh', 'cat', 'sleep', 'nc', 'true']) fs.symlinkSync('busybox', path.join(dir, 'root/bin', a));
    sh('tar', ['-C', path.join(dir, 'root'), '-cf', path.join(dir, 'root.tar'), '.']);
    sh('podman', ['import', path.join(dir, 'root.tar'), name]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** gotls: the static Go crypto/tls test program (test/progs/tls/gotls) alone at /gotls. */
function buildGotls(name: string): void {
  const built = buildGoTls();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-gotls-img-'));
  try {
    fs.mkdirSync(path.join(dir, 'root'));
    fs.copyFileSync(built.normal, path.join(dir, 'root/gotls'));
    fs.chmodSync(path.join(dir, 'root/gotls'), 0o755);
    sh('tar', ['-C', path.join(dir, 'root'), '-cf', path.join(dir, 'root.tar'), '.']);
    sh('podman', ['import', path.join(dir, 'root.tar'), name]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(path.dirname(built.normal), { recursive: true, force: true });
  }
}

const RECIPES: Record<string, (name: string) => void> = {
  'localhost/bbox:1': buildBbox,
  'localhost/gotls:1': buildGotls,
};

export type TestImage = keyof typeof RECIPES;

/** ensureImage makes the podman image `name` unless it exists; idempotent and safe in parallel. */
export function ensureImage(name: 'localhost/bbox:1' | 'localhost/gotls:1'): void {
  const recipe = RECIPES[name];
  if (recipe === undefined) throw new Error(`no recipe for test image ${name}`);
  if (imageExists(name)) return;
  withFileLock('podman-images', () => {
    if (!imageExists(name)) recipe(name);
  });
}
