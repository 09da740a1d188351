import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** REPO is the checkout under test (dist/test/helpers -> repo root). */
export const REPO = path.resolve(__dirname, '..', '..', '..');
export const RTEV = path.join(REPO, 'bin', 'rtev');

export interface RunResult {
  /** the pid of the rtev process */
  pid: number;
  code: number;
  stdout: string;
  stderr: string;
  /** parsed NDJSON lines of stdout that look like records */
  records: Record<string, any>[];
  /** the raw record lines, for exact-byte checks */
  lines: string[];
}

/** runRtev runs bin/rtev with args and collects its output. */
export function runRtev(args: string[], options: { timeoutMs?: number; cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RTEV, ...args], { cwd: options.cwd ?? REPO, env: options.env ?? process.env });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      const lines = stdout.split('\n').filter((l) => l.startsWith('{"'));
      resolve({
        pid: child.pid ?? -1,
        code: code ?? 128 + (signal ? (os.constants.signals as Record<string, number>)[signal] ?? 0 : 0),
        stdout,
        stderr: Buffer.concat(err).toString('utf8'),
        records: lines.map((l) => JSON.parse(l)),
        lines,
      });
    });
  });
}

/** compileC builds a test program from test/progs into a temp dir. */
export function compileC(source: string, extraArgs: string[] = []): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-prog-'));
  const out = path.join(dir, path.basename(source, '.c'));
  execFileSync('gcc', ['-O1', '-Wall', '-o', out, path.join(REPO, 'test', 'progs', source), ...extraArgs]);
  return out;
}

export function tempDir(prefix = 'rtev-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** requireRoot fails (in CI) or skips with a printed reason when not root. */
export function rootOrSkip(t: { skip(message?: string): void }): boolean {
  if (process.getuid?.() === 0) return true;
  if (process.env['CI'] === 'true') throw new Error('kernel tests must run as root in CI');
  const reason = 'needs root (run: sudo make test)';
  console.log(`skipped: ${reason}`);
  t.skip(reason);
  return false;
}

/**
 * uprobeFiles lists the files a process holds uprobes on, in either attach mode: uprobe_multi
 * links (their /proc/PID/fdinfo names the path) and perf-event uprobes (bpftool perf show).
 */
export function uprobeFiles(pid: number): string[] {
  const files = new Set<string>();
  let fds: string[] = [];
  try {
    fds = fs.readdirSync(`/proc/${pid}/fdinfo`);
  } catch {
    return [];
  }
  for (const fd of fds) {
    try {
      const info = fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
      if (!/^link_type:\s*uprobe_multi$/m.test(info)) continue;
      const m = /^path:\s*(.+)$/m.exec(info);
      if (m) files.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  try {
    const links = JSON.parse(execFileSync('bpftool', ['perf', 'show', '-j'], { encoding: 'utf8' })) as
      { pid: number; fd_type: string; filename?: string }[];
    for (const l of links) if (l.pid === pid && /uprobe/.test(l.fd_type) && l.filename) files.add(l.filename);
  } catch {
    // no bpftool output: the fdinfo part stands
  }
  return [...files];
}
