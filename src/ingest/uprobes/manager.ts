import * as fs from 'node:fs';
import type { ProbeName } from '../../decode/layout';
import type { UprobeMode } from '../probes';
import type { BpfSession, Link } from '../session';
import { errorMessage } from '../../errors';
import type { TlsCoverageTotals, TlsUncovered } from '../../store/sink';
import type { GoTlsProbe, resolveGoTls } from './go';
import type { ObservedScope } from './scope';
import type { Candidate, LibraryKind, ProbeTarget } from './libraries';

/**
 * lib: libraries.ts (and the symbolizer's ELF reader behind it), loaded by the first manager that
 * is active: a run without net_connect or ssl_op does not compile them (docs/benchmarks.md,
 * "Session 4 (h22)").
 */
function lib(): typeof import('./libraries') {
  return require('./libraries') as typeof import('./libraries');
}

/** Bounds (docs/probes-network.md, "bounds"). */
export interface UprobeLimits {
  /** distinct files (device+inode) with probes attached */
  maxFiles: number;
  /** distinct files inspected for symbols (attached or not) */
  maxInspected: number;
  /** processes scanned at start */
  maxStartupProcesses: number;
  /** exec'd processes waiting for their maps to be read */
  maxPending: number;
  /** delays after exec at which the new process's maps are read (ld.so maps libraries meanwhile) */
  execRetryMs: number[];
  /** period of the /proc rescan for processes the exec hook did not report */
  rescanMs: number;
}

export const DEFAULT_UPROBE_LIMITS: UprobeLimits = {
  maxFiles: 256,
  maxInspected: 4096,
  maxStartupProcesses: 8192,
  maxPending: 1024,
  execRetryMs: [5, 30, 100],
  rescanMs: 2000,
};

export interface UprobeStats {
  /** how the probes are attached (src/ingest/probes.ts, UprobeMode) */
  mode: UprobeMode;
  /** files with probes attached, by kind */
  filesAttached: Record<LibraryKind, number>;
  /** uprobe links (session mode: one per library; classic: entry + return per function) */
  links: number;
  /** files not attached because maxFiles was reached */
  filesOverLimit: number;
  /** files inspected but without any target symbol (e.g. BoringSSL without symbols) */
  filesWithoutSymbols: number;
  /** files whose attach failed (unreadable, not ELF, kernel refused) */
  attachFailures: number;
  /** processes whose maps were read */
  processesScanned: number;
  /** processes with a libc/libssl we could not probe, or whose maps could not be read */
  processesUncovered: number;
  /** exec notifications dropped because too many were pending */
  execsDropped: number;
  /** ssl_op: (process, library) pairs where a mapped TLS library is not probed, by kind */
  tlsUncovered: Record<string, number>;
  /** distinct processes among them */
  tlsUncoveredProcesses: number;
  /** the first few of them */
  tlsExamples: { pid: number; comm: string; library: string; kind: string }[];
  /** pairs not counted because the process is outside the run's scope (--pid, --container, -- CMD) */
  tlsOutOfScope: number;
}

interface FileState {
  kind: LibraryKind;
  path: string;
  status: 'attached' | 'failed' | 'nosym' | 'over_limit';
  links: Link[];
  /** what was found (Go: the version and RET counts, or why it is not probed) */
  detail?: string;
  /** an executable without probe targets: the TLS library linked in (null: none seen) */
  staticTls?: string | null;
}

/** bounds of the TLS coverage bookkeeping */
const MAX_TLS_SEEN = 65536;
const MAX_TLS_LOG = 4096;

export type Warn = (message: string) => void;

export type { TlsCoverageTotals, TlsUncovered };

/**
 * UprobeManager attaches the net_connect libc uprobes and the ssl_op OpenSSL uprobes to every
 * libc/libssl that processes map (host and containers, through /proc/PID/root), once per
 * distinct file (device+inode), within fixed bounds. It learns about libraries at start
 * (host locations and a bounded /proc scan), after each exec (onExec), and from a periodic
 * rescan of new pids. close() detaches everything.
 */
export class UprobeManager {
  readonly #session: BpfSession;
  readonly #warn: Warn;
  readonly #limits: UprobeLimits;
  readonly #wantLibc: boolean;
  readonly #wantSsl: boolean;
  readonly #files = new Map<string, FileState>();
  readonly #uncovered = new Set<number>();
  readonly #pending = new Set<number>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #knownPids = new Set<number>();
  #rescan: NodeJS.Timeout | undefined;
  #closed = false;
  #warnedLimit = false;
  readonly #warnedGo = new Set<string>();
  readonly #tlsSeen = new Set<string>();
  readonly #tlsLog: TlsUncovered[] = [];
  readonly #tlsByKind = new Map<string, number>();
  readonly #tlsPids = new Set<number>();
  #tlsTotal = 0;
  readonly #scope: ObservedScope | undefined;
  readonly #outOfScope = new Set<string>();
  #outOfScopeCount = 0;
  readonly #stats: Omit<UprobeStats, 'mode' | 'tlsUncovered' | 'tlsUncoveredProcesses' | 'tlsExamples' | 'tlsOutOfScope'> = {
    filesAttached: { libc: 0, libssl: 0, libgnutls: 0, exe: 0, go: 0 }, links: 0, filesOverLimit: 0, filesWithoutSymbols: 0,
    attachFailures: 0, processesScanned: 0, processesUncovered: 0, execsDropped: 0,
  };

  /**
   * `scope`: the processes the run observes (src/ingest/uprobes/scope.ts); the TLS coverage names
   * only those. Absent: every process (a run without --pid, --cgroup, --container or a command).
   */
  constructor(session: BpfSession, probes: ProbeName[], warn: Warn, limits: Partial<UprobeLimits> = {}, scope?: ObservedScope) {
    this.#session = session;
    this.#scope = scope?.narrowing === true ? scope : undefined;
    this.#warn = warn;
    this.#limits = { ...DEFAULT_UPROBE_LIMITS, ...limits };
    // the libc uprobes need the syscall tracepoints (they supply the errno and the dedup mark)
    this.#wantLibc = probes.includes('net_connect') && session.attachedProbes.includes('net_connect');
    this.#wantSsl = probes.includes('ssl_op');
  }

  get active(): boolean {
    return this.#wantLibc || this.#wantSsl;
  }

  /** start attaches to the host libraries and to those of the processes already running. */
  async start(): Promise<void> {
    if (!this.active) return;
    for (const file of lib().HOST_LIBRARIES) {
      const kind = lib().classify(file);
      if (kind === undefined) continue;
      let st: fs.BigIntStats;
      try {
        st = fs.statSync(file, { bigint: true });
      } catch {
        continue;
      }
      this.#consider({ key: lib().keyOfStat(st), kind, path: file }, file);
    }
    const pids = listPids();
    let scanned = 0;
    for (const pid of pids) {
      if (pid === process.pid) continue;
      if (++scanned > this.#limits.maxStartupProcesses) break;
      this.#scanProcess(pid);
      // yield now and then so a host with many processes does not stall the ring consumer
      if (scanned % 256 === 0) await new Promise((r) => setImmediate(r));
    }
    this.#knownPids = new Set(pids);
    if (this.#wantSsl && this.#kindCount('libssl') + this.#kindCount('libgnutls') + this.#kindCount('exe') === 0) {
      this.#warn('ssl_op: no TLS library (libssl.so.3/1.1, libgnutls.so.30) found: the probe waits until a process maps one');
    }
    if (this.#wantLibc && this.#kindCount('libc') === 0) {
      this.#warn('net_connect: no libc found for uprobes: connects are recorded from the syscall tracepoints only');
    }
    this.#rescan = setInterval(() => this.#rescanNewPids(), this.#limits.rescanMs);
    this.#rescan.unref();
  }

  /** onExec schedules reading a freshly exec'd process's maps (its libraries appear as ld.so maps them). */
  onExec(pid: number): void {
    if (!this.active || this.#closed || pid === process.pid) return;
    if (this.#pending.has(pid)) return;
    if (this.#pending.size >= this.#limits.maxPending) {
      this.#stats.execsDropped++;
      return;
    }
    this.#pending.add(pid);
    const delays = this.#limits.execRetryMs;
    delays.forEach((delay, i) => {
      const t = setTimeout(() => {
        this.#timers.delete(t);
        if (this.#closed) return;
        const last = i === delays.length - 1;
        this.#scanProcess(pid, !last);
        if (last) this.#pending.delete(pid);
      }, delay);
      t.unref();
      this.#timers.add(t);
    });
  }

  stats(): UprobeStats {
    return {
      mode: this.#session.uprobeMode, ...this.#stats, filesAttached: { ...this.#stats.filesAttached },
      processesUncovered: this.#uncovered.size, tlsUncovered: Object.fromEntries([...this.#tlsByKind].sort()),
      tlsUncoveredProcesses: this.#tlsPids.size,
      tlsExamples: this.#tlsLog.slice(0, 5).map((e) => ({ pid: e.pid, comm: e.comm, library: e.library, kind: e.kind })),
      tlsOutOfScope: this.#outOfScopeCount,
    };
  }

  /** files lists the inspected files and what became of them (for tests and --verbose). */
  files(): { key: string; kind: LibraryKind; path: string; status: string; links: number; detail?: string }[] {
    return [...this.#files].map(([key, f]) => ({
      key, kind: f.kind, path: f.path, status: f.status, links: f.links.length, ...(f.detail !== undefined ? { detail: f.detail } : {}),
    }));
  }

  /** close detaches every uprobe; call before session.detachAll(). */
  close(): void {
    this.#closed = true;
    if (this.#rescan) clearInterval(this.#rescan);
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    const links: Link[] = [];
    for (const f of this.#files.values()) links.push(...f.links.splice(0));
    // one call, parallel threads in the addon: ~15% faster than one detach() after another; the
    // kernel serializes most of each teardown (docs/probes-network.md, "Stopping")
    if (links.length > 0) this.#session.closeLinks(links);
  }

  /**
   * considerGo probes a Go executable's crypto/tls (src/ingest/uprobes/go.ts); 'not_go' lets the
   * caller look for OpenSSL symbols instead. A Go program without crypto/tls is not a target.
   */
  #considerGo(c: Candidate, state: FileState, attachPath: string): boolean | undefined | 'not_go' {
    let res: ReturnType<typeof resolveGoTls>;
    try {
      // go.ts (and its x86 decoder) load with the first executable considered, not at every collector start
      res = (require('./go') as typeof import('./go')).resolveGoTls(attachPath);
    } catch {
      return 'not_go'; // not an ELF we can read: the OpenSSL path counts the failure
    }
    if (res.kind === 'not_go') return 'not_go';
    state.kind = 'go';
    if (res.kind === 'no_tls') {
      state.status = 'nosym';
      return undefined;
    }
    if (res.kind === 'uncovered') {
      state.status = 'nosym';
      state.detail = res.detail;
      if (!this.#warnedGo.has(res.reason)) this.#warn(`ssl_op: Go crypto/tls in ${c.path} is not probed (${res.detail})`);
      this.#warnedGo.add(res.reason);
      return false;
    }
    if (!this.#roomForFile()) {
      state.status = 'over_limit';
      return false;
    }
    try {
      state.links.push(...this.#attachGo(attachPath, res.probe));
    } catch (err) {
      for (const link of state.links.splice(0)) link.close();
      this.#stats.attachFailures++;
      this.#warn(`cannot attach uprobes to ${c.path} (${errorMessage(err)})`);
      return false;
    }
    state.status = 'attached';
    state.detail = `${res.probe.goVersion} ${JSON.stringify(res.probe.rets)}`;
    this.#stats.filesAttached.go++;
    this.#stats.links += state.links.length;
    this.#session.markAttached('ssl_op');
    return true;
  }

  #attachGo(file: string, probe: GoTlsProbe): Link[] {
    const links: Link[] = [];
    if (this.#session.uprobeMode === 'session') {
      // a uprobe_multi link takes at most 64 offsets
      for (let i = 0; i < probe.offsets.length; i += 64) {
        links.push(this.#session.attachUprobeMulti('rtev_go_tls_multi', 'uprobe_multi', file,
          probe.offsets.slice(i, i + 64), probe.cookies.slice(i, i + 64), -1));
      }
    } else {
      probe.offsets.forEach((off, i) => links.push(this.#session.attachUprobe('rtev_go_tls', false, -1, file, off, probe.cookies[i]!)));
    }
    return links;
  }

  /** roomForFile: false (counted, warned once) when maxFiles files are attached already. */
  #roomForFile(): boolean {
    const attachedCount = Object.values(this.#stats.filesAttached).reduce((a, b) => a + b, 0);
    if (attachedCount < this.#limits.maxFiles) return true;
    this.#stats.filesOverLimit++;
    if (!this.#warnedLimit) this.#warn(`uprobes: more than ${this.#limits.maxFiles} distinct libraries: further ones are not probed`);
    this.#warnedLimit = true;
    return false;
  }

  #kindCount(kind: LibraryKind): number {
    return this.#stats.filesAttached[kind];
  }

  #rescanNewPids(): void {
    if (this.#closed) return;
    const pids = listPids();
    const next = new Set(pids);
    let n = 0;
    for (const pid of pids) {
      if (this.#knownPids.has(pid) || pid === process.pid) continue;
      if (++n > this.#limits.maxStartupProcesses) break;
      this.#scanProcess(pid);
    }
    for (const pid of this.#uncovered) if (!next.has(pid)) this.#uncovered.delete(pid);
    this.#knownPids = next;
    this.#stats.processesUncovered = this.#uncovered.size;
  }

  /** scanProcess reads one process's maps; `early` scans do not count a failure (retried later). */
  #scanProcess(pid: number, early = false): void {
    const maps = lib().candidatesOf(pid);
    if (maps === undefined) {
      if (!early && fs.existsSync(`/proc/${pid}`)) this.#markUncovered(pid);
      return;
    }
    if (!early) this.#stats.processesScanned++;
    let covered = true;
    for (const c of maps.candidates) {
      const ok = this.#consider(c, `/proc/${pid}/root${c.path}`);
      if (ok === false && c.kind !== 'exe') covered = false;
      if (this.#wantSsl) {
        const gap = this.#tlsGap(c, `/proc/${pid}/root${c.path}`);
        if (gap !== undefined) this.#noteTls(pid, c.key, c.path, gap);
      }
    }
    if (this.#wantSsl) for (const u of maps.uncoveredTls) this.#noteTls(pid, u.key, u.path, u.kind);
    if (!covered && !early) this.#markUncovered(pid);
  }

  /**
   * tlsGap says why a TLS-capable file a process maps is not probed (undefined: probed, or no TLS
   * in it): an OpenSSL/GnuTLS without the symbols, an attach failure, the file limit, a Go
   * crypto/tls we cannot probe, rustls/BoringSSL linked into an executable without symbols.
   */
  #tlsGap(c: Candidate, openPath: string): string | undefined {
    const f = this.#files.get(c.key);
    if (f === undefined || f.status === 'attached' || c.kind === 'libc') return undefined;
    if (c.kind === 'libssl' || c.kind === 'libgnutls') {
      const lib = c.kind === 'libssl' ? 'openssl' : 'gnutls';
      return f.status === 'nosym' ? `${lib}_nosym` : f.status === 'over_limit' ? `${lib}_over_limit` : `${lib}_attach_failed`;
    }
    if (f.kind === 'go') return f.detail !== undefined ? 'go' : undefined;
    if (f.status === 'over_limit') return 'exe_over_limit';
    if (f.staticTls === undefined) {
      try {
        f.staticTls = lib().staticTlsOf(pickPath(c.path, openPath, c.key)) ?? null;
      } catch {
        f.staticTls = null;
      }
    }
    return f.staticTls ?? undefined;
  }

  /** noteTls records once that a process maps TLS rtev does not observe (bounded; beyond, counted). */
  #noteTls(pid: number, key: string, library: string, kind: string): void {
    const id = `${pid}:${key}`;
    if (this.#tlsSeen.has(id)) return;
    // a process the run does not observe is not the run's coverage gap (counted apart, once per pair)
    if (this.#scope !== undefined && !this.#scope.inScope(pid)) {
      if (this.#outOfScope.has(id)) return;
      if (this.#outOfScope.size >= MAX_TLS_SEEN) this.#outOfScope.clear();
      this.#outOfScope.add(id);
      this.#outOfScopeCount++;
      return;
    }
    if (this.#tlsSeen.size >= MAX_TLS_SEEN) this.#tlsSeen.clear(); // bounded memory; a repeat may then be counted twice
    this.#tlsSeen.add(id);
    this.#tlsTotal++;
    if (this.#tlsPids.size < MAX_TLS_SEEN) this.#tlsPids.add(pid);
    this.#tlsByKind.set(kind, (this.#tlsByKind.get(kind) ?? 0) + 1);
    if (this.#tlsLog.length >= MAX_TLS_LOG) return;
    let comm = '';
    let exe = '';
    try {
      comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim().slice(0, 64);
      exe = fs.readlinkSync(`/proc/${pid}/exe`).slice(0, 4096);
    } catch {
      // exited meanwhile: what maps said is still true
    }
    this.#tlsLog.push({ pid, comm, exe, library: library.slice(0, 4096), kind });
  }

  /**
   * tlsCoverage gives the (process, library) pairs found so far where TLS is not observable, in
   * the order found: `total` counts all of them, `entries` holds the first MAX_TLS_LOG.
   */
  tlsCoverage(): TlsCoverageTotals {
    return { total: this.#tlsTotal, entries: this.#tlsLog };
  }

  #markUncovered(pid: number): void {
    this.#uncovered.add(pid);
    this.#stats.processesUncovered = this.#uncovered.size;
  }

  /** consider attaches to a file once; true: probed, false: should be but is not, undefined: not a target. */
  #consider(c: Candidate, openPath: string): boolean | undefined {
    const targets: ProbeTarget[] = targetsOf(c.kind, this.#wantLibc, this.#wantSsl);
    if (targets.length === 0) return undefined;
    const known = this.#files.get(c.key);
    if (known !== undefined) {
      if (known.status === 'attached') return true;
      if (known.kind === 'go') return known.detail === undefined ? undefined : false; // no crypto/tls, or not probed
      return known.kind === 'exe' ? undefined : false;
    }
    if (this.#files.size >= this.#limits.maxInspected) {
      this.#stats.filesOverLimit++;
      return false;
    }
    const state: FileState = { kind: c.kind, path: c.path, status: 'failed', links: [] };
    this.#files.set(c.key, state);
    // a host path is stable; a container's file is reached through the process's root
    const attachPath = pickPath(c.path, openPath, c.key);
    if (c.kind === 'exe' && this.#wantSsl) {
      const go = this.#considerGo(c, state, attachPath);
      if (go !== 'not_go') return go;
    }
    let offsets: Map<string, bigint>;
    try {
      offsets = lib().resolveTargets(attachPath, targets);
    } catch {
      this.#stats.attachFailures++;
      return c.kind === 'exe' ? undefined : false;
    }
    if (offsets.size === 0) {
      state.status = 'nosym';
      if (c.kind !== 'exe') this.#stats.filesWithoutSymbols++;
      return c.kind === 'exe' ? undefined : false;
    }
    if (!this.#roomForFile()) {
      state.status = 'over_limit';
      return false;
    }
    const session = this.#session;
    const found = lib().targetsFound(targets, offsets); // e.g. SSL_read_ex is absent from OpenSSL 1.1.0
    try {
      if (this.#session.uprobeMode === 'session') {
        state.links.push(session.attachUprobeMulti(found[0]!.session, 'uprobe_session', attachPath,
          found.map((t) => offsets.get(t.symbol)!), found.map((t) => t.cookie), -1));
      } else {
        for (const t of found) {
          state.links.push(session.attachUprobe(t.entry, false, -1, attachPath, offsets.get(t.symbol)!, t.cookie));
          state.links.push(session.attachUprobe(t.ret, true, -1, attachPath, offsets.get(t.symbol)!, 0n));
        }
      }
    } catch (err) {
      for (const link of state.links.splice(0)) link.close();
      this.#stats.attachFailures++;
      this.#warn(`cannot attach uprobes to ${c.path} (${errorMessage(err)})`);
      return false;
    }
    state.status = 'attached';
    this.#stats.filesAttached[c.kind]++;
    this.#stats.links += state.links.length;
    const probe: ProbeName = c.kind === 'libc' ? 'net_connect' : 'ssl_op';
    this.#session.markAttached(probe);
    return true;
  }
}

function targetsOf(kind: LibraryKind, wantLibc: boolean, wantSsl: boolean): ProbeTarget[] {
  if (kind === 'libc') return wantLibc ? lib().LIBC_TARGETS : [];
  if (!wantSsl) return [];
  return kind === 'libgnutls' ? lib().GNUTLS_TARGETS : lib().SSL_TARGETS;
}

/** pickPath prefers the path as is when it names the same file in our own mount namespace. */
function pickPath(inProcess: string, viaRoot: string, key: string): string {
  if (inProcess === viaRoot) return inProcess;
  try {
    if (lib().keyOfStat(fs.statSync(inProcess, { bigint: true })) === key) return inProcess;
  } catch {
    // not visible from here: a container's file
  }
  return viaRoot;
}

function listPids(): number[] {
  let names: string[];
  try {
    names = fs.readdirSync('/proc');
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const n of names) if (/^\d+$/.test(n)) out.push(Number(n));
  return out;
}
