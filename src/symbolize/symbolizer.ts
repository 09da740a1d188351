import type { Runtime } from '../model/record';
import { canonicalSymbol, splitGoSymbol } from './canonical';
import { ComponentResolver } from './component';
import { SymbolizeError } from './errors';
import { nodeHost, type Host } from './host';
import { computeNodeHash } from './node-hash';
import { fileOffsetToVaddr, loadObject, lookupFunc, type ObjectInfo, type SymbolSource } from './object-file';
import { DEFAULT_PERF_MAP_LIMITS, PerfMap, perfMapKind, type PerfMapLimits } from './perf-map';
import { fileOffsetOf, findMapping, isFileBacked, nsPidFromStatus, parseMaps, type Mapping } from './proc';
import { Lru } from '../util/lru';
import { detectRuntime, type RuntimeDecision } from './runtime-detect';
import { errorMessage } from '../errors';

/** SymbolizedFrame is one stack frame as the human view (`rtev query --frames`) shows it. */
export interface SymbolizedFrame {
  addr: string;
  /** symbol is the canonical name for the frame's kind, or the perf-map text for JIT frames. */
  symbol?: string;
  /** offset is `addr − function start` (hex) when the function is known. */
  offset?: string;
  library?: string;
  kind: Runtime | 'unknown';
  source: SymbolSource;
}

/** StackQuality documents how far the frame-pointer walk got (docs/format.md). */
export type StackQuality = 'complete' | 'partial' | 'truncated';

/** CallDescription is the function_call fields for one event plus diagnostics. */
export interface CallDescription {
  addr: string;
  symbol?: string;
  library?: string;
  runtime: Runtime;
  stack: string[];
  node_hash?: string;
  frames: SymbolizedFrame[];
  stackQuality: StackQuality;
  /** component and kind are the node_hash pre-image parts, so a verifier can recompute it. */
  component?: string;
  kind?: Runtime;
  /** failures explains frames or fields that could not be resolved (counted, never thrown). */
  failures: string[];
}

export interface SymbolizerCounters {
  frames: number;
  framesResolved: number;
  framesUnresolved: number;
  noMapping: number;
  objectErrors: number;
  perfMapFrames: number;
  processGone: number;
  mapsReads: number;
  /** calls whose function address the process's maps no longer put in the called file (exec'd or pid reused since) */
  imageChanged: number;
}

export interface SymbolizerOptions {
  host?: Host;
  procRoot?: string;
  debugDirs?: string[];
  maxProcesses?: number;
  maxObjects?: number;
  maxCachedAddrs?: number;
  /** maxStackDepth is the BPF side's frame limit: a stack this long is `truncated`. */
  maxStackDepth?: number;
  /**
   * mapsRefreshLookups: a lookup miss re-reads /proc/PID/maps; the first miss after a read always
   * does (a library mapped since, or the process gone), later ones once per this many frame
   * lookups of the process. Counted in lookups, not time, so the same events give the same
   * records however fast the host is.
   */
  mapsRefreshLookups?: number;
  perfMapLimits?: PerfMapLimits;
  maxDebugInfoBytes?: number;
  components?: ComponentResolver;
}

interface ProcState {
  pid: number;
  root: string;
  maps: Mapping[];
  /** frame lookups since the maps were last read */
  lookupsSinceRead: number;
  /** a miss re-reads the maps once lookupsSinceRead reaches this (0 after the first read) */
  rereadAfter: number;
  gone: boolean;
  runtime?: RuntimeDecision;
  perfMap?: PerfMap;
  perfMapPath?: string;
}

interface AddrInfo {
  name: string;
  start: bigint;
  vaddr: bigint;
  kind: Runtime;
  source: SymbolSource;
  goPkg?: string;
}

/** A stack ending in one of these reached the thread's first frame: it is complete. */
const THREAD_ROOTS = /^(_start|__libc_start_main|__libc_start_call_main|start_thread|clone|clone3|__clone|runtime\.goexit|runtime\.mstart|runtime\.rt0_go)$/;

/**
 * Symbolizer turns (pid, function address, raw stack) from a function-entry uprobe into the
 * function_call record fields. Caches are bounded LRUs: processes, objects (by dev:inode)
 * and resolved addresses; `forgetProcess` drops a process at exit.
 *
 * @example
 *   const s = new Symbolizer();
 *   const d = s.describeCall(pid, undefined, ip, stack);
 *   event.symbol = d.symbol; event.node_hash = d.node_hash;
 */
export class Symbolizer {
  readonly counters: SymbolizerCounters = {
    frames: 0, framesResolved: 0, framesUnresolved: 0, noMapping: 0, objectErrors: 0, perfMapFrames: 0, processGone: 0, mapsReads: 0,
    imageChanged: 0,
  };
  readonly host: Host;
  readonly procRoot: string;
  readonly components: ComponentResolver;
  #opts: Required<Omit<SymbolizerOptions, 'host' | 'procRoot' | 'components'>>;
  #procs: Lru<number, ProcState>;
  #objects: Lru<string, ObjectInfo | SymbolizeError>;
  #addrs: Lru<string, AddrInfo | null>;
  #hashes = new Lru<string, { component: string; hash: string }>(16384);

  constructor(opts: SymbolizerOptions = {}) {
    this.host = opts.host ?? nodeHost;
    this.procRoot = opts.procRoot ?? '/proc';
    this.components = opts.components ?? new ComponentResolver(this.host);
    this.#opts = {
      debugDirs: opts.debugDirs ?? ['/usr/lib/debug'],
      maxProcesses: opts.maxProcesses ?? 1024,
      maxObjects: opts.maxObjects ?? 128,
      maxCachedAddrs: opts.maxCachedAddrs ?? 65536,
      maxStackDepth: opts.maxStackDepth ?? 127,
      mapsRefreshLookups: opts.mapsRefreshLookups ?? 256,
      perfMapLimits: opts.perfMapLimits ?? DEFAULT_PERF_MAP_LIMITS,
      maxDebugInfoBytes: opts.maxDebugInfoBytes ?? 256 * 1024 * 1024,
    };
    this.#procs = new Lru(this.#opts.maxProcesses);
    this.#objects = new Lru(this.#opts.maxObjects);
    this.#addrs = new Lru(this.#opts.maxCachedAddrs);
  }

  /** cacheStats reports hit/miss counts of the address cache (for the benchmark). */
  cacheStats(): { hits: number; misses: number; size: number; objects: number; processes: number } {
    return { hits: this.#addrs.hits, misses: this.#addrs.misses, size: this.#addrs.size, objects: this.#objects.size, processes: this.#procs.size };
  }

  /**
   * describeCall builds the record fields. `stack` is innermost first; when `stack[0]` is
   * not `funcAddr` the function address is put first, and `entryReturnAddr` (the `*(u64*)sp`
   * read at the entry probe) is spliced in as frame 1 when the kernel's walk missed it.
   * `calledFile` is the file the probe is attached in (a uprobe's target): when the maps do not
   * put `funcAddr` in that file (by inode or path), they are not the image that made the call
   * (it exec'd, or the pid was reused, after the call); they are read once more, and if they
   * still disagree no frame is symbolized from them (counted in imageChanged).
   */
  describeCall(pid: number, tgidRoot: string | undefined, funcAddr: bigint, stack: readonly bigint[],
    opts: { entryReturnAddr?: bigint; calledFile?: { ino: bigint; path: string } } = {}): CallDescription {
    const failures: string[] = [];
    let proc = this.#proc(pid, tgidRoot);
    const called = opts.calledFile;
    if (called !== undefined && !holdsFile(proc.maps, funcAddr, called)) {
      if (!proc.gone) this.#readMaps(proc);
      if (!holdsFile(proc.maps, funcAddr, called)) {
        this.counters.imageChanged++;
        failures.push(`the maps of pid ${pid} no longer put ${hex(funcAddr)} in ${called.path}: it exec'd or exited since the call`);
        proc = { pid, root: proc.root, maps: [], lookupsSinceRead: 0, rereadAfter: Infinity, gone: true };
      }
    }
    const frames = [...stack];
    if (frames[0] !== funcAddr) frames.unshift(funcAddr);
    const ret = opts.entryReturnAddr;
    if (ret !== undefined && ret !== 0n && frames[1] !== ret) frames.splice(1, 0, ret);
    const runtime = this.#runtime(proc, failures);
    const out: CallDescription = { addr: hex(funcAddr), runtime, stack: frames.map(hex), frames: [], stackQuality: 'partial', failures };
    for (let i = 0; i < frames.length; i++) out.frames.push(this.#frame(proc, frames[i]!, i > 0, failures));
    const top = out.frames[0]!;
    if (top.symbol !== undefined && top.source !== 'perfmap') {
      out.symbol = top.symbol;
      out.kind = top.kind === 'unknown' ? 'native' : top.kind;
    }
    if (top.library !== undefined) out.library = top.library;
    this.#hash(proc, funcAddr, out, failures);
    out.stackQuality = this.#quality(stack.length, out.frames);
    if (out.stackQuality !== 'complete') out.stack.push('0x0');
    return out;
  }

  /** symbolizeFrame names one address of a process (no node_hash). */
  symbolizeFrame(pid: number, addr: bigint, tgidRoot?: string): SymbolizedFrame {
    return this.#frame(this.#proc(pid, tgidRoot), addr, false, []);
  }

  /** runtimeOf returns the process's detected runtime and the rule that fired. */
  runtimeOf(pid: number, tgidRoot?: string): RuntimeDecision {
    const failures: string[] = [];
    const proc = this.#proc(pid, tgidRoot);
    this.#runtime(proc, failures);
    return proc.runtime ?? { runtime: 'native', evidence: failures.join('; ') || 'unknown' };
  }

  /** forgetProcess drops a process's maps, runtime and perf map (call on exit). */
  forgetProcess(pid: number): void {
    this.#procs.delete(pid);
  }

  #proc(pid: number, tgidRoot: string | undefined): ProcState {
    let p = this.#procs.get(pid);
    if (p === undefined) {
      p = { pid, root: tgidRoot ?? processRoot(this.host, this.procRoot, pid), maps: [], lookupsSinceRead: 0, rereadAfter: 0, gone: false };
      this.#procs.set(pid, p);
      this.#readMaps(p);
    }
    return p;
  }

  #readMaps(p: ProcState): void {
    p.lookupsSinceRead = 0;
    this.counters.mapsReads++;
    try {
      const { text } = this.host.readText(`${this.procRoot}/${p.pid}/maps`, 64 * 1024 * 1024);
      if (text === '' && p.maps.length > 0) return;
      p.maps = parseMaps(text).mappings;
    } catch {
      // Keep the last snapshot: late symbolization of an exited process still works.
      if (!p.gone) this.counters.processGone++;
      p.gone = true;
    }
  }

  #mapping(p: ProcState, addr: bigint): Mapping | undefined {
    p.lookupsSinceRead++;
    let m = findMapping(p.maps, addr);
    if (m === undefined && !p.gone && p.lookupsSinceRead > p.rereadAfter) {
      p.rereadAfter = this.#opts.mapsRefreshLookups;
      this.#readMaps(p);
      m = findMapping(p.maps, addr);
    }
    return m;
  }

  #runtime(p: ProcState, failures: string[]): Runtime {
    if (p.runtime !== undefined) return p.runtime.runtime;
    let exe = '';
    try {
      exe = this.host.readlink(`${this.procRoot}/${p.pid}/exe`);
    } catch {
      exe = p.maps.find((m) => isFileBacked(m) && m.offset === 0n)?.path ?? '';
    }
    let isGo = false;
    const exeMap = p.maps.find((m) => m.path === exe.replace(/ \(deleted\)$/, '') && isFileBacked(m));
    const obj = exeMap !== undefined ? this.#object(p, exeMap) : undefined;
    if (obj instanceof SymbolizeError) failures.push(`exe: ${errorMessage(obj)}`);
    else if (obj !== undefined) isGo = obj.isGo;
    p.runtime = detectRuntime(exe, isGo, p.maps.filter(isFileBacked).map((m) => m.path));
    return p.runtime.runtime;
  }

  #object(p: ProcState, m: Mapping): ObjectInfo | SymbolizeError {
    const key = `${devFromMaps(m.dev)}:${m.inode}`;
    const hit = this.#objects.get(key);
    if (hit !== undefined) return hit;
    let obj: ObjectInfo | SymbolizeError;
    const direct = `${p.root}${m.path}`;
    const viaMapFiles = `${this.procRoot}/${p.pid}/map_files/${m.start.toString(16)}-${m.end.toString(16)}`;
    try {
      let open = m.deleted ? viaMapFiles : direct;
      if (!m.deleted) {
        try {
          if (this.host.stat(direct).ino !== m.inode) open = viaMapFiles;
        } catch {
          open = viaMapFiles;
        }
      }
      obj = loadObject(open, m.path, { host: this.host, root: p.root, debugDirs: this.#opts.debugDirs, maxDebugInfoBytes: this.#opts.maxDebugInfoBytes });
    } catch (err) {
      this.counters.objectErrors++;
      obj = err instanceof SymbolizeError ? err : new SymbolizeError('IO', `load ${m.path}`, { cause: err });
    }
    this.#objects.set(key, obj);
    return obj;
  }

  #frame(p: ProcState, addr: bigint, isReturn: boolean, failures: string[]): SymbolizedFrame {
    this.counters.frames++;
    const frame: SymbolizedFrame = { addr: hex(addr), kind: 'unknown', source: 'none' };
    const m = this.#mapping(p, addr);
    if (m !== undefined && isFileBacked(m)) {
      frame.library = m.path;
      const info = this.#addrInfo(p, m, addr, isReturn, failures);
      if (info !== null) {
        frame.symbol = info.name;
        frame.offset = hex(info.vaddr - info.start);
        frame.kind = info.kind;
        frame.source = info.source;
        this.counters.framesResolved++;
        return frame;
      }
    } else if (m === undefined || m.path === '' || m.path.startsWith('[anon')) {
      // Anonymous memory is JIT code (V8 also lists code in rw- pages under --perf-basic-prof).
      if (m === undefined) this.counters.noMapping++;
      const e = this.#perfMap(p)?.lookup(addr);
      if (e !== undefined) {
        frame.symbol = e.name;
        frame.offset = hex(addr - e.start);
        frame.kind = perfMapKind(e.name) ?? 'unknown';
        frame.source = 'perfmap';
        frame.library = p.perfMapPath?.slice(p.root.length);
        this.counters.perfMapFrames++;
        this.counters.framesResolved++;
        return frame;
      }
    } else frame.library = m.path;
    this.counters.framesUnresolved++;
    return frame;
  }

  #addrInfo(p: ProcState, m: Mapping, addr: bigint, isReturn: boolean, failures: string[]): AddrInfo | null {
    const obj = this.#object(p, m);
    if (obj instanceof SymbolizeError) {
      failures.push(`${m.path}: ${errorMessage(obj)}`);
      return null;
    }
    const off = fileOffsetOf(m, addr);
    const key = `${obj.dev}:${obj.ino}@${off}${isReturn ? 'r' : ''}`;
    const hit = this.#addrs.get(key);
    if (hit !== undefined) return hit;
    const vaddr = fileOffsetToVaddr(obj.segments, off);
    let info: AddrInfo | null = null;
    // A return address can point just past a call at a function's end: look up addr − 1.
    const f = vaddr === undefined ? undefined : lookupFunc(obj.funcs, isReturn ? vaddr - 1n : vaddr);
    if (f !== undefined && vaddr !== undefined) {
      const kind: Runtime = f.go ? 'go' : 'native';
      info = { name: canonicalSymbol(kind, f.name), start: f.start, vaddr, kind, source: f.source };
      if (kind === 'go') info.goPkg = splitGoSymbol(f.name).pkg;
    }
    this.#addrs.set(key, info);
    return info;
  }

  #hash(p: ProcState, funcAddr: bigint, out: CallDescription, failures: string[]): void {
    if (out.symbol === undefined || out.kind === undefined) {
      failures.push(`no symbol for function address ${out.addr}`);
      return;
    }
    const m = findMapping(p.maps, funcAddr);
    if (m === undefined) return;
    const obj = this.#object(p, m);
    if (obj instanceof SymbolizeError) return;
    const key = `${obj.dev}:${obj.ino}:${out.kind}:${out.symbol}`;
    let h = this.#hashes.get(key);
    if (h === undefined) {
      try {
        const goPkg = out.kind === 'go' ? splitGoSymbol(out.symbol).pkg : undefined;
        const component = this.components.componentFor(obj, m.path, p.root, out.kind, goPkg);
        h = { component, hash: computeNodeHash(out.kind, component, out.symbol) };
        this.#hashes.set(key, h);
      } catch (err) {
        failures.push(`component of ${m.path}: ${errorMessage(err)}`);
        return;
      }
    }
    out.component = h.component;
    out.node_hash = h.hash;
  }

  #perfMap(p: ProcState): PerfMap | undefined {
    if (p.perfMapPath === undefined) {
      let nspid = p.pid;
      try {
        nspid = nsPidFromStatus(this.host.readText(`${this.procRoot}/${p.pid}/status`, 65536).text) ?? p.pid;
      } catch {
        // process gone: try the host pid
      }
      p.perfMapPath = `${p.root}/tmp/perf-${nspid}.map`;
    }
    const lim = this.#opts.perfMapLimits;
    p.perfMap ??= new PerfMap(lim);
    const pm = p.perfMap;
    // Read what was appended since last time, within the file-size cap.
    try {
      if (!this.host.exists(p.perfMapPath)) return pm.size > 0 ? pm : undefined;
      const src = this.host.open(p.perfMapPath);
      try {
        const end = Math.min(src.size, lim.maxFileBytes);
        if (src.size > lim.maxFileBytes && pm.bytesRead < end) pm.counters.truncatedFiles++;
        if (end > pm.bytesRead) pm.append(src.read(pm.bytesRead, end - pm.bytesRead).toString('latin1'));
      } finally {
        src.close();
      }
    } catch {
      // unreadable perf map: keep what we have
    }
    return pm;
  }

  #quality(rawDepth: number, frames: SymbolizedFrame[]): StackQuality {
    if (rawDepth >= this.#opts.maxStackDepth) return 'truncated';
    for (let i = frames.length - 1; i >= Math.max(0, frames.length - 3); i--) {
      const s = frames[i]!.symbol;
      if (s !== undefined && THREAD_ROOTS.test(s)) return 'complete';
    }
    return 'partial';
  }

  /** perfMapCounters exposes the perf-map rejection counters of a process. */
  perfMapCounters(pid: number): PerfMap['counters'] | undefined {
    return this.#procs.get(pid)?.perfMap?.counters;
  }
}

/** hex renders an address as the schema wants it (`0x` + lowercase hex). */
export function hex(v: bigint): string {
  return '0x' + v.toString(16);
}

/** holdsFile: the mapping at addr is the file (same inode, or same path when overlayfs reports another inode). */
function holdsFile(maps: Mapping[], addr: bigint, file: { ino: bigint; path: string }): boolean {
  const m = findMapping(maps, addr);
  return m !== undefined && (m.inode === file.ino || m.path.replace(/ \(deleted\)$/, '') === file.path);
}

/** devFromMaps turns maps' `major:minor` (hex) into glibc's makedev() number, as stat reports it. */
export function devFromMaps(dev: string): bigint {
  const [ma, mi] = dev.split(':');
  const major = BigInt('0x' + (ma ?? '0'));
  const minor = BigInt('0x' + (mi ?? '0'));
  return ((major & 0xfffff000n) << 32n) | ((major & 0xfffn) << 8n) | ((minor & 0xffffff00n) << 12n) | (minor & 0xffn);
}

/**
 * processRoot: the root a process's files are read through. A process in the collector's own
 * mount namespace with the collector's root sees the same files, so they are read through ours
 * (''): a short-lived process may exit while its package database is still being read through
 * /proc/PID/root, which then fails part-way (its library attributed by build id instead of its
 * package), and every such process would have its own copy of the database read.
 */
export function processRoot(host: Host, procRoot: string, pid: number): string {
  const root = `${procRoot}/${pid}/root`;
  const same = (a: string, b: string): boolean => {
    const x = host.stat(a);
    const y = host.stat(b);
    return x.dev === y.dev && x.ino === y.ino;
  };
  try {
    if (same(`${procRoot}/${pid}/ns/mnt`, `${procRoot}/self/ns/mnt`) && same(root, `${procRoot}/self/root`)) return '';
  } catch {
    // a process already gone, or a /proc without these entries: its own root
  }
  return root;
}
