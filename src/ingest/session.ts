import * as fs from 'node:fs';
import * as path from 'node:path';
import { addonError, RtevError, UsageError, errorMessage } from '../errors';
import { COUNTER_STRIDE, Counter, PROBE_NAMES, type ProbeName } from '../decode/layout';
import { emptyKernelCounters, type KernelProbeCounters, type NotObservedClass } from '../model/ledger';
import type { ListenerOwner } from './listeners';
import {
  isNativeError, lastVerifierLines, loadBinding, type NativeBinding, type ObjectHandle, type RingHandle, type UprobeMultiKind,
} from './native';
import { FastPath, type FastPathOptions } from './fast-path';
import { KERNEL_PROBES, SUPPORT_PROGRAMS, type ProbeGroup, type ProbeSpec, type UprobeMode } from './probes';
import { mark } from './startup-trace';

/** Settings written into the BPF object's `cfg` before load (struct rtev_config). */
export interface KernelConfig {
  selfTgid: number;
  filterPids: boolean;
  /** 'allow': only listed cgroups; 'deny': all but listed cgroups */
  cgroupFilter: 'off' | 'allow' | 'deny';
  recordFailedOpens: boolean;
  /** record SSL calls that moved no bytes (ssl_op) */
  recordEmptySslOps?: boolean;
  bulkRingBytes: number;
  rareRingBytes: number;
}

/** bit 63 of a cgroup_filter key: a v1 memory cgroup id (bpf/common.h, cgroup_filter_key) */
export const CGROUP_V1_KEY = 1n << 63n;

/**
 * cgroupFilterKey: the cgroup_filter key of a cgroup as the pipeline keys attribution (the v2 id,
 * or for tasks in the v2 root the v1 memory cgroup id with bit 63 set); what the kernel computes
 * in deny mode (bpf/common.h, cgroup_filter_key).
 */
export function cgroupFilterKey(id: bigint, hierarchy: 'v2' | 'v1'): bigint {
  return hierarchy === 'v1' ? id | CGROUP_V1_KEY : id;
}

export const TRACE_SELF = 1;
export const TRACE_TREE = 2;

/** struct rtev_config of bpf/common.h (checked against the object's BTF in test/unit/layout.test.ts) */
export const RtevConfig = {
  self_tgid: 0, filter_pids: 4, filter_cgroups: 8, record_failed_opens: 12, record_empty_ssl_ops: 16,
  wakeup_bytes_bulk: 24, wakeup_bytes_rare: 32, SIZE: 40,
} as const;

export function encodeKernelConfig(c: KernelConfig): Buffer {
  const b = Buffer.alloc(RtevConfig.SIZE);
  b.writeUInt32LE(c.selfTgid, RtevConfig.self_tgid);
  b.writeUInt32LE(c.filterPids ? 1 : 0, RtevConfig.filter_pids);
  b.writeUInt32LE(c.cgroupFilter === 'allow' ? 1 : c.cgroupFilter === 'deny' ? 2 : 0, RtevConfig.filter_cgroups);
  b.writeUInt32LE(c.recordFailedOpens ? 1 : 0, RtevConfig.record_failed_opens);
  b.writeUInt32LE(c.recordEmptySslOps === true ? 1 : 0, RtevConfig.record_empty_ssl_ops);
  // wake the consumer at a quarter full (at most 256 KiB): docs/benchmarks.md, "wake-up policy"
  b.writeBigUInt64LE(BigInt(Math.min(256 << 10, c.bulkRingBytes / 4)), RtevConfig.wakeup_bytes_bulk);
  b.writeBigUInt64LE(BigInt(Math.min(64 << 10, c.rareRingBytes / 4)), RtevConfig.wakeup_bytes_rare);
  return b;
}

/**
 * chooseUprobeMode: sessions where the kernel has them, unless RTEV_UPROBE_MODE=classic asks
 * for the perf-event uprobes (for comparison, or to work around a kernel bug).
 */
export function chooseUprobeMode(kernel: Pick<NativeBinding, 'uprobeSessionSupported'>, env: NodeJS.ProcessEnv = process.env): UprobeMode {
  const asked = env.RTEV_UPROBE_MODE;
  if (asked !== undefined && asked !== '' && asked !== 'session' && asked !== 'classic') {
    throw new UsageError(`RTEV_UPROBE_MODE must be session or classic, not ${JSON.stringify(asked)}`, 'unset it to let rtev choose');
  }
  const supported = kernel.uprobeSessionSupported();
  if (asked === 'session' && !supported) {
    throw new UsageError('RTEV_UPROBE_MODE=session: this kernel has no uprobe sessions (they need Linux 6.13)', 'unset RTEV_UPROBE_MODE');
  }
  return asked === 'classic' || !supported ? 'classic' : 'session';
}

/**
 * usesUprobes: whether a selected probe has uprobe programs (whose attach mode depends on the
 * kernel's uprobe sessions); file_open, process_exec and tcp_state have none.
 */
export function usesUprobes(specs: readonly ProbeSpec[], probes: readonly ProbeName[]): boolean {
  return specs.some((s) => probes.includes(s.name) && s.programs.some((p) => p.uprobe === true || p.multiAttach !== undefined));
}

/** the kernel as runs without uprobe programs see it: their mode is 'classic' (nothing is attached
 * in it); RTEV_UPROBE_MODE is still checked (a bad value stays a usage error; 'session' asks the kernel) */
const NO_UPROBE_SESSIONS: Pick<NativeBinding, 'uprobeSessionSupported'> = { uprobeSessionSupported: () => false };

/** What the load plan needs to know of the running kernel and of the object. */
export interface KernelFacts {
  /** the programs the BPF object holds */
  programs: string[];
  uprobeMode: UprobeMode;
  /** whether a tracepoint (e.g. 'syscalls/sys_enter_openat') exists on this kernel */
  tracepointExists(tracepoint: string): boolean;
}

/** One group of programs attached together: all of them, or none (the probe is then disabled). */
export interface AttachStep {
  /** the probe the group enables; undefined for the support programs every run needs */
  probe: ProbeName | undefined;
  label: string;
  programs: string[];
  /** per program: the tracepoint it is attached to explicitly (ProbeSpec `explicit`), else undefined (by section) */
  tracepoints?: (string | undefined)[];
  /** for a group of a probe (ProbeGroup): what is not observed when it cannot be attached; the
   * rest of the probe stays attached */
  unobserved?: string;
  /** the group, for the ledger's not_observed when it cannot be attached */
  group?: ProbeGroup;
}

/** A class of a probe's events the run does not observe (ledger `not_observed`, docs/format.md). */
export interface ProbeNotObserved extends NotObservedClass {
  probe: ProbeName;
}

function notObservedOf(probe: ProbeName, group: ProbeGroup, reason: string): ProbeNotObserved {
  return { probe, class: group.class, sources: [...group.sources], reason };
}

/** groupsOf lists a probe's program groups (ProbeGroup), each with its programs. */
function groupsOf(spec: ProbeSpec): { group: ProbeGroup; programs: ProbeSpec['programs'] }[] {
  const groups = new Map<ProbeGroup, ProbeSpec['programs']>();
  for (const p of spec.programs) {
    if (p.group === undefined) continue;
    const list = groups.get(p.group) ?? [];
    list.push(p);
    groups.set(p.group, list);
  }
  return [...groups].map(([group, programs]) => ({ group, programs }));
}

/**
 * LoadPlan is everything BpfSession does to the object before and right after load, computed
 * without touching the kernel (test/unit/session.test.ts checks it without root).
 */
export interface LoadPlan {
  uprobeMode: UprobeMode;
  /** the `cfg` global (struct rtev_config) */
  config: Buffer;
  mapMaxEntries: { map: string; entries: number }[];
  /** programs attached with uprobe_multi links (session mode) must declare it before load */
  expectedAttachTypes: { program: string; kind: UprobeMultiKind }[];
  /** every program of the object, and whether it is loaded */
  autoload: { program: string; load: boolean }[];
  /** attached in this order right after load; uprobes (per library) and iterators are not here */
  attach: AttachStep[];
  warnings: string[];
  /** the groups not loaded because the kernel lacks a tracepoint of theirs */
  notObserved: ProbeNotObserved[];
}

/** planLoad computes the load plan from the options and the kernel facts. Pure. */
export function planLoad(config: KernelConfig, probes: readonly ProbeName[], facts: KernelFacts,
  specs: readonly ProbeSpec[] = KERNEL_PROBES): LoadPlan {
  const { uprobeMode } = facts;
  const warnings: string[] = [];
  const notObserved: ProbeNotObserved[] = [];
  const expectedAttachTypes: LoadPlan['expectedAttachTypes'] = [];
  const wanted = new Set<string>(SUPPORT_PROGRAMS.map((p) => p.name));
  for (const spec of specs) {
    if (!probes.includes(spec.name)) continue;
    for (const program of spec.programs) {
      if (program.uprobeMode !== undefined && program.uprobeMode !== uprobeMode) continue;
      if (uprobeMode === 'session' && program.multiAttach !== undefined) expectedAttachTypes.push({ program: program.name, kind: program.multiAttach });
      if (program.group !== undefined) continue; // below: the whole group or none of it
      if (program.tracepoint === undefined || facts.tracepointExists(program.tracepoint)) wanted.add(program.name);
      else if (!program.optional) warnings.push(`tracepoint ${program.tracepoint} is missing: probe ${spec.name} disabled`);
    }
    for (const group of groupsOf(spec)) {
      const missing = group.programs.filter((p) => p.tracepoint !== undefined && !facts.tracepointExists(p.tracepoint));
      if (missing.length > 0) {
        const reason = `this kernel has no tracepoint ${missing.map((p) => p.tracepoint).join(', ')}`;
        warnings.push(`${spec.name}: ${group.group.unobserved} (${reason})`);
        notObserved.push(notObservedOf(spec.name, group.group, reason));
      } else {
        for (const p of group.programs) wanted.add(p.name);
      }
    }
  }
  const attach: AttachStep[] = [];
  for (const spec of specs) {
    if (!probes.includes(spec.name)) continue;
    // uprobe programs are attached per library by src/ingest/uprobes (UprobeManager); iterators are run once
    const entries = spec.programs.filter((p) => wanted.has(p.name) && p.uprobe !== true && p.iterator !== true && p.group === undefined
      && (p.explicit !== true || facts.tracepointExists(p.tracepoint!)));
    const programs = entries.map((p) => p.name);
    if (programs.length > 0) {
      const tracepoints = entries.map((p) => (p.explicit === true ? p.tracepoint : undefined));
      attach.push({ probe: spec.name, label: spec.name, programs, ...(tracepoints.some((t) => t !== undefined) ? { tracepoints } : {}) });
    }
    for (const group of groupsOf(spec)) {
      const names = group.programs.filter((p) => wanted.has(p.name)).map((p) => p.name);
      if (names.length > 0) attach.push({ probe: spec.name, label: `${spec.name} (${group.group.name})`, programs: names, unobserved: group.group.unobserved, group: group.group });
    }
  }
  for (const program of SUPPORT_PROGRAMS) attach.push({ probe: undefined, label: 'process tracking', programs: [program.name] });
  return {
    uprobeMode,
    config: encodeKernelConfig(config),
    mapMaxEntries: [{ map: 'events_bulk', entries: config.bulkRingBytes }, { map: 'events_rare', entries: config.rareRingBytes }],
    expectedAttachTypes,
    autoload: facts.programs.map((program) => ({ program, load: wanted.has(program) })),
    attach,
    warnings,
    notObserved,
  };
}

export type BatchHandler = (ring: 'bulk' | 'rare', batch: Buffer, used: number) => void;

/** Options of BpfSession.open; the binding is injectable (test/helpers/fake-binding.ts). */
export interface SessionOptions {
  verbose?: boolean;
  binding?: NativeBinding;
  env?: NodeJS.ProcessEnv;
  tracepointExists?: (tracepoint: string) => boolean;
  /** the probe table (default KERNEL_PROBES; kernel tests give one naming a missing tracepoint) */
  specs?: readonly ProbeSpec[];
}

/** The kinds of link, in the order close() tears them down: uprobes first, then tracepoints. */
export type LinkKind = 'uprobe' | 'probe';

/**
 * Link is one attachment in the kernel. Its id never leaves the session: close() it (or let
 * the session's detach/close do it). Closing twice is a no-op.
 */
export class Link {
  readonly kind: LinkKind;
  readonly #close: (link: Link) => void;
  #open = true;

  /** @internal constructed by BpfSession only */
  constructor(kind: LinkKind, close: (link: Link) => void) {
    this.kind = kind;
    this.#close = close;
  }

  get open(): boolean {
    return this.#open;
  }

  close(): void {
    if (!this.#open) return;
    this.#open = false;
    this.#close(this);
  }

  /** @internal marks the link closed without a kernel call (the session detached it) */
  markClosed(): void {
    this.#open = false;
  }
}

/**
 * BpfSession owns the loaded BPF object and is the only module that holds the addon:
 * attachments (as Link objects), filter maps, ring consumers and the kernel-side counters.
 * It is the edge between the kernel and the pure pipeline.
 */
export class BpfSession {
  readonly #native: NativeBinding;
  readonly #handle: ObjectHandle;
  readonly #links = new Map<Link, number>();
  readonly #rings: { handle: RingHandle; done: Promise<void> }[] = [];
  readonly warnings: string[] = [];
  /** classes of the selected probes' events this session does not observe (ledger `not_observed`) */
  readonly notObserved: ProbeNotObserved[] = [];
  readonly #attached: ProbeName[] = [];
  readonly #cpus: number;
  /** how the libc and OpenSSL uprobe programs were loaded, and must be attached */
  readonly uprobeMode: UprobeMode;
  /** the load plan this session was loaded with */
  readonly plan: LoadPlan;

  private constructor(native: NativeBinding, handle: ObjectHandle, plan: LoadPlan) {
    this.#native = native;
    this.#handle = handle;
    this.#cpus = native.numPossibleCpus();
    this.uprobeMode = plan.uprobeMode;
    this.plan = plan;
  }

  /** open plans and loads the object with the configuration; only the selected probes' programs are loaded. */
  static open(objectPath: string, config: KernelConfig, probes: ProbeName[], options: SessionOptions = {}): BpfSession {
    try {
      return BpfSession.#open(objectPath, config, probes, options);
    } catch (err) {
      throw addonError(err, `loading ${path.basename(objectPath)} failed`); // the addon's codes into the error table
    }
  }

  static #open(objectPath: string, config: KernelConfig, probes: ProbeName[], options: SessionOptions): BpfSession {
    if (!fs.existsSync(objectPath)) {
      throw new RtevError('ADDON_LOAD', `BPF object ${objectPath} is missing`, { hint: "build it with 'make build'" });
    }
    const native = options.binding ?? loadBinding();
    mark('addon loaded (dlopen)');
    const specs = options.specs ?? KERNEL_PROBES;
    // the kernel's uprobe sessions matter only to probes with uprobe programs: asking parses the
    // vmlinux BTF once more (15 ms; docs/benchmarks.md, "Session 4 (h22)"), so runs without them do not ask
    const asked = (options.env ?? process.env).RTEV_UPROBE_MODE;
    const uprobeMode = usesUprobes(specs, probes) || asked === 'session' ? chooseUprobeMode(native, options.env) : chooseUprobeMode(NO_UPROBE_SESSIONS, options.env);
    mark('uprobe mode');
    const handle = native.openObject(objectPath);
    mark('bpf_object__open');
    const plan = planLoad(config, probes, {
      programs: native.programs(handle).map((p) => p.name), uprobeMode, tracepointExists: options.tracepointExists ?? tracepointExists,
    }, specs);
    const session = new BpfSession(native, handle, plan);
    session.warnings.push(...plan.warnings);
    session.notObserved.push(...plan.notObserved);
    native.setGlobal(handle, 'cfg', plan.config);
    for (const { map, entries } of plan.mapMaxEntries) native.setMapMaxEntries(handle, map, entries);
    for (const { program, kind } of plan.expectedAttachTypes) native.setExpectedAttachType(handle, program, kind);
    for (const { program, load } of plan.autoload) native.setAutoload(handle, program, load);
    try {
      native.load(handle, options.verbose === true);
      mark('bpf_object__load (BTF, verifier)');
    } catch (err) {
      if (isNativeError(err)) {
        const why = lastVerifierLines(err.libbpfLog).join(' | ');
        throw new RtevError('BPF_LOAD', `the kernel refused the BPF programs (${why})`, {
          cause: err, hint: 'run with --verbose for the whole verifier log; rtev needs Linux >= 5.11 with BTF',
        });
      }
      throw err;
    }
    const disabled = new Set<ProbeName>();
    for (const step of plan.attach) {
      // a group of a probe (io_uring) goes with its probe: not attached when the probe's own programs failed
      // (the probe is then absent from the ledger altogether)
      if (step.unobserved !== undefined && step.probe !== undefined && disabled.has(step.probe)) continue;
      if (session.#attachStep(step)) {
        if (step.probe !== undefined) session.markAttached(step.probe);
      } else if (step.unobserved === undefined && step.probe !== undefined) {
        disabled.add(step.probe);
      }
    }
    mark('attach');
    return session;
  }

  #attachStep(step: AttachStep): boolean {
    const links: Link[] = [];
    try {
      step.programs.forEach((program, i) => {
        const tp = step.tracepoints?.[i];
        const native = this.#native;
        const id = tp !== undefined && native.attachTracepoint !== undefined ? native.attachTracepoint(this.#handle, program, tp) : native.attach(this.#handle, program);
        links.push(this.#track('probe', id));
      });
    } catch (err) {
      for (const link of links) link.close();
      if (step.unobserved !== undefined) {
        this.warnings.push(`cannot attach ${step.label} (${errorMessage(err)}): ${step.unobserved}`);
        if (step.probe !== undefined && step.group !== undefined) this.notObserved.push(notObservedOf(step.probe, step.group, `cannot attach: ${errorMessage(err)}`));
      } else this.warnings.push(`cannot attach ${step.label} (${errorMessage(err)}): probe disabled`);
      return false;
    }
    return true;
  }

  #track(kind: LinkKind, id: number): Link {
    const link = new Link(kind, (l) => {
      const linkId = this.#links.get(l);
      if (linkId === undefined) return;
      this.#links.delete(l);
      this.#native.detach(this.#handle, linkId);
    });
    this.#links.set(link, id);
    return link;
  }

  /** the probes that record something: attached at load, or since by the uprobe and function managers */
  get attachedProbes(): readonly ProbeName[] {
    return this.#attached;
  }

  /** markAttached notes that a probe's uprobes were attached (by UprobeManager or FunctionProbes). */
  markAttached(probe: ProbeName): void {
    if (!this.#attached.includes(probe)) this.#attached.push(probe);
  }

  /** attachUprobe attaches a program at one offset of a file (pid <= 0: every process). */
  attachUprobe(program: string, retprobe: boolean, pid: number, binary: string, fileOffset: bigint, cookie: bigint): Link {
    return this.#track('uprobe', this.#native.attachUprobe(this.#handle, program, retprobe, pid, binary, fileOffset, cookie));
  }

  /** attachUprobeMulti attaches one program to several offsets of one file with one uprobe_multi link. */
  attachUprobeMulti(program: string, kind: UprobeMultiKind, binary: string, fileOffsets: bigint[], cookies: bigint[], pid: number): Link {
    return this.#track('uprobe', this.#native.attachUprobeMulti(this.#handle, program, kind, binary, fileOffsets, cookies, pid));
  }

  /**
   * closeLinks detaches several links with one addon call (parallel threads: faster for uprobe
   * links, docs/probes-network.md, "Stopping"). Links already closed are skipped.
   */
  closeLinks(links: Iterable<Link>): void {
    const ids: number[] = [];
    for (const link of links) {
      const id = this.#links.get(link);
      if (id === undefined) continue;
      this.#links.delete(link);
      link.markClosed();
      ids.push(id);
    }
    if (ids.length > 0) this.#native.detachMany(this.#handle, ids);
  }

  /** the number of links still attached, per kind */
  linkCount(kind?: LinkKind): number {
    let n = 0;
    for (const link of this.#links.keys()) if (kind === undefined || link.kind === kind) n++;
    return n;
  }

  /** traceProcess adds a tgid to the pid filter (TRACE_TREE follows its future children). */
  traceProcess(tgid: number, mode: number): void {
    const key = Buffer.alloc(4);
    key.writeUInt32LE(tgid);
    this.#native.mapUpdate(this.#handle, 'traced_tgids', key, Buffer.from([mode]));
  }

  /** isTraced: the tgid is in the pid filter (traced_tgids), as the kernel's filtered_out() checks it. */
  isTraced(tgid: number): boolean {
    const key = Buffer.alloc(4);
    key.writeUInt32LE(tgid);
    return this.#native.mapLookup(this.#handle, 'traced_tgids', key) !== null;
  }

  /** cgroupListed: the key (a v2 id, or cgroupFilterKey in deny mode) is in the cgroup filter set. */
  cgroupListed(key: bigint): boolean {
    const k = Buffer.alloc(8);
    k.writeBigUInt64LE(key);
    return this.#native.mapLookup(this.#handle, 'cgroup_filter', k) !== null;
  }

  /** setCgroupFilter replaces the cgroup filter set. */
  setCgroupFilter(ids: Iterable<bigint>, previous: Iterable<bigint> = []): void {
    const key = Buffer.alloc(8);
    for (const id of previous) {
      key.writeBigUInt64LE(id);
      this.#native.mapDelete(this.#handle, 'cgroup_filter', key);
    }
    for (const id of ids) {
      key.writeBigUInt64LE(id);
      this.#native.mapUpdate(this.#handle, 'cgroup_filter', key, Buffer.from([1]));
    }
  }

  /**
   * filterCgroup adds one key (cgroupFilterKey) to the cgroup filter set; false when the map is
   * full (16384 entries): the cgroup's records then keep reaching user space, which drops them.
   */
  filterCgroup(key: bigint): boolean {
    const k = Buffer.alloc(8);
    k.writeBigUInt64LE(key);
    try {
      this.#native.mapUpdate(this.#handle, 'cgroup_filter', k, Buffer.from([1]));
      return true;
    } catch {
      return false;
    }
  }

  /** unfilterCgroup removes one key from the cgroup filter set (a pruned cgroup: it is gone). */
  unfilterCgroup(key: bigint): void {
    const k = Buffer.alloc(8);
    k.writeBigUInt64LE(key);
    this.#native.mapDelete(this.#handle, 'cgroup_filter', k);
  }

  /**
   * seedSocketOwners tells the tcp_state probe who holds the TCP sockets that exist already: the
   * listening ones from /proc (listen_owners is keyed by port), the others with a BPF iterator over
   * every task's files (sock_owners is keyed by the kernel's struct sock *, which only BPF sees).
   * The probe is attached first, so a socket created meanwhile gets its owner from its own transition.
   */
  seedSocketOwners(warn: (message: string) => void, given?: ListenerOwner[]): void {
    // (loaded here: a run that does not seed, `-- CMD` only, does not compile it)
    const { encodeListenerOwner, findListenerOwners } = require('./listeners') as typeof import('./listeners');
    const owners = given ?? findListenerOwners();
    for (const owner of owners) {
      const { key, value } = encodeListenerOwner(owner);
      this.#native.mapUpdate(this.#handle, 'listen_owners', key, value);
    }
    try {
      this.#native.runIterator(this.#handle, 'seed_socket_owners');
    } catch (err) {
      warn(`tcp_state: the owners of existing TCP connections are unknown (${errorMessage(err)}): their changes in softirq are skipped`);
    }
  }

  /**
   * createFastPath: the addon's encoder for the bulk ring (src/ingest/fast-path.ts), or
   * undefined when the binding has none, file_open is not collected or a path filter is active.
   */
  createFastPath(options: FastPathOptions): FastPath | undefined {
    return FastPath.create(this.#native, options);
  }

  /**
   * startRings starts one consumer thread per ring. With a fast path, the bulk ring's thread
   * encodes the records it can itself (segments in the batches: src/decode/segment.ts).
   */
  startRings(onBatch: BatchHandler, fastPath?: FastPath): void {
    for (const [map, ring] of [['events_bulk', 'bulk'], ['events_rare', 'rare']] as const) {
      let finish: () => void = () => {};
      const done = new Promise<void>((resolve) => { finish = resolve; });
      // the slot goes back from setImmediate so that the event loop turns between batches
      // (timers, file I/O) even when the rings never run dry
      const encoder = ring === 'bulk' && fastPath !== undefined ? FastPath.handleOf(fastPath) : undefined;
      const handle: RingHandle = this.#native.startRing(this.#handle, map, (batch, used, slot) => {
        if (batch === null || used === null || slot === null) {
          finish();
          return;
        }
        try {
          onBatch(ring, batch, used);
        } finally {
          setImmediate(() => this.#native.releaseSlot(handle, slot));
        }
      }, encoder);
      this.#rings.push({ handle, done });
    }
  }

  /**
   * detachAll stops new events; what is already in the rings is still delivered. Uprobe links
   * go first (one parallel detachMany), then the tracepoint links in attach order.
   */
  detachAll(): void {
    const links = [...this.#links.keys()];
    this.closeLinks(links.filter((l) => l.kind === 'uprobe'));
    for (const link of links) if (link.kind === 'probe') link.close();
  }

  /** drain stops the consumers after they delivered everything left in the rings. */
  async drain(): Promise<void> {
    for (const ring of this.#rings) this.#native.stopRing(ring.handle);
    await Promise.all(this.#rings.map((r) => r.done));
    this.#rings.length = 0;
  }

  /** close tears down in order: every link (uprobes first), then the rings after they drained. */
  async close(): Promise<void> {
    this.detachAll();
    await this.drain();
  }

  /** counters reads the per-CPU stats map and sums it over CPUs, per probe. */
  counters(): Record<ProbeName, KernelProbeCounters> {
    const result = {} as Record<ProbeName, KernelProbeCounters>;
    const key = Buffer.alloc(4);
    const read = (probe: number, counter: number): bigint => {
      key.writeUInt32LE(probe * COUNTER_STRIDE + counter);
      const values = this.#native.mapLookup(this.#handle, 'stats', key);
      let sum = 0n;
      if (values !== null) for (let cpu = 0; cpu < this.#cpus; cpu++) sum += values.readBigUInt64LE(cpu * 8);
      return sum;
    };
    PROBE_NAMES.forEach((name, i) => {
      const c = emptyKernelCounters();
      c.submitted = read(i, Counter.SUBMITTED);
      c.filtered = read(i, Counter.FILTERED);
      c.ringFull = read(i, Counter.RING_FULL);
      c.skipped = read(i, Counter.SKIPPED);
      c.truncated = read(i, Counter.TRUNCATED);
      result[name] = c;
    });
    return result;
  }
}

const TRACEFS = '/sys/kernel/tracing';

function tracepointExists(tracepoint: string): boolean {
  return fs.existsSync(`${TRACEFS}/events/${tracepoint}`);
}
