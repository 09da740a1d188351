/**
 * Builders for the function_call test programs (C via gcc/objcopy/strip/xz, Go via the
 * Debian golang-go toolchain) and a runner that reads the `pid=... key=0x...` line they
 * print. Used by test/unit/symbolize-*.test.ts; every build goes to a fresh temp dir.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const SRC_DIR = path.resolve(__dirname, '../../../../test/progs/func');

export function have(tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function tempDir(prefix = 'rtev-sym-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });
}

export interface CVariants {
  pie: string;
  nopie: string;
  /** stripped with a .gnu_debuglink to `<name>.debug` next to it */
  debuglink: string;
  /** stripped; its debug file lives under `<dir>/debugroot/.build-id/xx/yyy.debug` */
  buildIdStripped: string;
  debugRoot: string;
  /** stripped with MiniDebugInfo (.gnu_debugdata), gdb's recipe */
  mini: string;
}

/** buildC compiles vuln.c in every variant the tests use. */
export function buildC(dir: string): CVariants {
  const src = path.join(SRC_DIR, 'vuln.c');
  const cflags = ['-O1', '-g', '-fno-omit-frame-pointer', '-Wl,--build-id'];
  const pie = path.join(dir, 'c_pie');
  const nopie = path.join(dir, 'c_nopie');
  run('gcc', [...cflags, '-fPIE', '-pie', '-o', pie, src]);
  run('gcc', [...cflags, '-fno-pie', '-no-pie', '-o', nopie, src]);
  // .gnu_debuglink: debug file next to the binary, CRC-checked.
  const debuglink = path.join(dir, 'c_debuglink');
  fs.copyFileSync(pie, debuglink);
  run('objcopy', ['--only-keep-debug', debuglink, debuglink + '.debug']);
  run('strip', ['--strip-all', debuglink]);
  run('objcopy', [`--add-gnu-debuglink=${debuglink}.debug`, debuglink], { cwd: dir });
  // build-id debug tree.
  const buildIdStripped = path.join(dir, 'c_buildid');
  fs.copyFileSync(nopie, buildIdStripped);
  const debugRoot = path.join(dir, 'debugroot');
  const id = buildId(nopie);
  fs.mkdirSync(path.join(debugRoot, '.build-id', id.slice(0, 2)), { recursive: true });
  run('objcopy', ['--only-keep-debug', nopie, path.join(debugRoot, '.build-id', id.slice(0, 2), id.slice(2) + '.debug')]);
  run('strip', ['--strip-all', buildIdStripped]);
  // MiniDebugInfo (gdb manual, "MiniDebugInfo").
  const mini = path.join(dir, 'c_mini');
  fs.copyFileSync(pie, mini);
  const dyn = new Set(run('nm', ['-D', '--format=posix', '--defined-only', mini]).split('\n').map((l) => l.split(' ')[0]));
  const funcs = run('nm', ['--format=posix', '--defined-only', mini]).split('\n')
    .map((l) => l.split(' ')).filter((f) => f[1] === 'T' || f[1] === 't').map((f) => f[0]!).filter((n) => !dyn.has(n));
  fs.writeFileSync(path.join(dir, 'keep'), funcs.join('\n') + '\n');
  run('objcopy', ['--only-keep-debug', mini, mini + '.full']);
  run('objcopy', ['-S', '--remove-section', '.gdb_index', '--remove-section', '.comment', `--keep-symbols=${path.join(dir, 'keep')}`, mini + '.full', mini + '.mini']);
  run('strip', ['--strip-all', '-R', '.comment', mini]);
  run('xz', ['-f', mini + '.mini']);
  run('objcopy', ['--add-section', `.gnu_debugdata=${mini}.mini.xz`, mini]);
  return { pie, nopie, debuglink, buildIdStripped, debugRoot, mini };
}

/** buildId reads the GNU build-id with readelf (the oracle, independent of our reader). */
export function buildId(file: string): string {
  const m = /Build ID: ([0-9a-f]+)/.exec(run('readelf', ['-n', file]));
  if (m === null) throw new Error(`no build id in ${file}`);
  return m[1]!;
}

/** buildGo builds goprog normally and with -s -w. */
export function buildGo(dir: string): { normal: string; stripped: string } {
  const env = { ...process.env, GOFLAGS: '-mod=mod', GOCACHE: path.join(dir, 'gocache'), GOPATH: path.join(dir, 'gopath'), GOPROXY: 'off', GO111MODULE: 'on' };
  const normal = path.join(dir, 'goprog');
  const stripped = path.join(dir, 'goprog-s');
  const cwd = path.join(SRC_DIR, 'goprog');
  // -buildvcs=false: the checkout may belong to another user (the unit tier runs as nobody),
  // and git refuses to read such a repository; the main module is "(devel)" either way
  run('go', ['build', '-buildvcs=false', '-o', normal, '.'], { cwd, env });
  run('go', ['build', '-buildvcs=false', '-ldflags=-s -w', '-o', stripped, '.'], { cwd, env });
  return { normal, stripped };
}

export interface Running {
  child: ChildProcess;
  pid: number;
  values: Record<string, bigint>;
  stop(): Promise<void>;
}

/** start runs a test program and waits for its `pid=N key=0x…` line. */
export function start(cmd: string, args: string[] = [], timeoutMs = 20_000): Promise<Running> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} printed no pid line in ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('error', reject);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = /pid=(\d+)[^\n]*\n/.exec(out);
      if (line === null) return;
      clearTimeout(timer);
      const values: Record<string, bigint> = {};
      for (const m of line[0].matchAll(/(\w+)=(0x[0-9a-f]+)/g)) values[m[1]!] = BigInt(m[2]!);
      resolve({
        child, pid: Number(line[1]), values,
        stop: () => new Promise<void>((r) => {
          if (child.exitCode !== null || child.signalCode !== null) return r();
          child.once('exit', () => r());
          child.stdin!.end();
          setTimeout(() => child.kill('SIGKILL'), 2000).unref();
        }),
      });
    });
  });
}

/** runtimeAddr maps a file offset of `file` to its address in a live process (via maps). */
export function runtimeAddr(pid: number, file: string, fileOffset: bigint): bigint {
  const real = fs.realpathSync(file);
  for (const line of fs.readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ ([0-9a-f]+) \S+ \d+\s+(.*)$/.exec(line);
    if (m === null) continue;
    let p = m[4]!;
    try {
      p = fs.realpathSync(p);
    } catch {
      continue;
    }
    if (p !== real) continue;
    const start = BigInt('0x' + m[1]);
    const end = BigInt('0x' + m[2]);
    const off = BigInt('0x' + m[3]);
    if (fileOffset >= off && fileOffset < off + (end - start)) return start + fileOffset - off;
  }
  throw new Error(`offset 0x${fileOffset.toString(16)} of ${file} is not mapped in ${pid}`);
}
