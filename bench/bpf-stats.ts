/** Kernel run statistics of the BPF programs a process holds, for the benchmarks (needs kernel.bpf_stats_enabled=1). */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';

export interface ProgStat { runTimeNs: number; runCnt: number }

/**
 * programStats: the BPF programs whose fds process `pid` holds (found through /proc/PID/fdinfo
 * prog_id, so other processes' programs of the same name do not count), by program name.
 */
export function programStats(pid: number): Map<string, ProgStat> {
  const ids = new Set<number>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`) !== 'anon_inode:bpf-prog') continue;
      const m = /prog_id:\s*(\d+)/.exec(fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
      if (m) ids.add(Number(m[1]));
    } catch {
      // fd closed meanwhile
    }
  }
  const out = new Map<string, ProgStat>();
  const all = JSON.parse(execFileSync('bpftool', ['prog', 'show', '-j'], { encoding: 'utf8', maxBuffer: 64 << 20 })) as
    { id: number; name: string; run_time_ns?: number; run_cnt?: number }[];
  for (const p of all) {
    if (!ids.has(p.id)) continue;
    const s = out.get(p.name) ?? { runTimeNs: 0, runCnt: 0 };
    s.runTimeNs += p.run_time_ns ?? 0;
    s.runCnt += p.run_cnt ?? 0;
    out.set(p.name, s);
  }
  return out;
}
