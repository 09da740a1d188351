import * as fs from 'node:fs';

/**
 * RTEV_TRACE_STARTUP=1: the fixed cost of a run split into its phases (docs/benchmarks.md,
 * "Session 5 (h28)"). Each `mark` notes the process's CPU (all threads, getrusage) and wall time
 * since the process started; at exit one line per phase goes to stderr, then the CPU of each
 * thread (/proc/self/task: the main thread, V8's compiler and GC helpers, libuv, rtev-ring).
 * Unset, `mark` does nothing.
 */
const ON = process.env['RTEV_TRACE_STARTUP'] !== undefined && process.env['RTEV_TRACE_STARTUP'] !== '0';

interface Mark {
  name: string;
  userUs: number;
  sysUs: number;
  wallMs: number;
}

const marks: Mark[] = [];

function clockTicks(): number {
  return 100; // USER_HZ on Linux
}

/** milliseconds since the process started (its start time in /proc/self/stat against the uptime) */
function sinceStartMs(): number {
  try {
    const stat = fs.readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const startTicks = Number(fields[19]);
    const uptime = Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
    return uptime * 1000 - (startTicks * 1000) / clockTicks();
  } catch {
    return Number.NaN;
  }
}

const wall0 = ON ? performance.now() - sinceStartMs() : 0;

export function mark(name: string): void {
  if (!ON) return;
  const u = process.cpuUsage();
  marks.push({ name, userUs: u.user, sysUs: u.system, wallMs: performance.now() - wall0 });
}

function threads(): string[] {
  const out: string[] = [];
  try {
    for (const tid of fs.readdirSync('/proc/self/task')) {
      const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const user = (Number(f[11]) * 1000) / clockTicks();
      const sys = (Number(f[12]) * 1000) / clockTicks();
      if (user + sys > 0) out.push(`startup-trace: thread ${comm.padEnd(16)} user ${user.toFixed(0)} ms sys ${sys.toFixed(0)} ms`);
    }
  } catch {
    // not Linux
  }
  return out;
}

if (ON) {
  mark('node start (first rtev module)');
  process.on('exit', () => {
    mark('exit');
    const lines: string[] = ['startup-trace: phase (CPU of all threads ms: user sys, delta; wall ms since process start)'];
    let prev: Mark = { name: '', userUs: 0, sysUs: 0, wallMs: 0 };
    for (const m of marks) {
      const du = (m.userUs - prev.userUs) / 1000;
      const ds = (m.sysUs - prev.sysUs) / 1000;
      lines.push(`startup-trace: ${m.name.padEnd(44)} +${(du + ds).toFixed(1).padStart(6)} ms (user ${du.toFixed(1)}, sys ${ds.toFixed(1)})  at ${m.wallMs.toFixed(0)} ms`);
      prev = m;
    }
    const last = marks[marks.length - 1]!;
    lines.push(`startup-trace: total ${((last.userUs + last.sysUs) / 1000).toFixed(1)} ms (user ${(last.userUs / 1000).toFixed(1)}, sys ${(last.sysUs / 1000).toFixed(1)})`);
    lines.push(...threads());
    fs.writeSync(2, lines.join('\n') + '\n');
  });
}
