import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RawFunctionCall } from '../decode/decode';
import type { ProbeName } from '../decode/layout';
import { canonicalize } from '../encode/canonical';
import { RtevError, errorMessage } from '../errors';
import { Enricher, isEmptySelector, type CgroupSelection, type ContainerSelector, type EnrichCounters, type EnricherOptions } from '../enrich';
import { emptyUserCounters, type Ledger } from '../model/ledger';
import type { DpkgCache } from '../packages/dpkg-cache';
import { openOutput } from '../store/output';
import type { OutputOptions, ProducerInfo, RecordSink } from '../store/sink';
import type { FunctionMode, FunctionProbes } from './function-probes';
import { processTree } from './host';
import { ObservedCommand } from './observed';
import type { NativeBinding } from './native';
import { PathFilter } from './path-filter';
import { FirstSeenOpens, Pipeline, type FileOpenMode, type HoldStats } from './pipeline';
import type { CgroupGate, GateStats } from './cgroup-gate';
import { DEFAULT_ORDER_WINDOW_MS, OrderedSink, orderBounds, type OrderStats } from './order';
import { cgroup2Mount } from '../platform/cgroup2';
import { bpfObjectPath, packageVersion } from '../platform/paths';
import { BTF_PATH, preflight } from './preflight';
import type { ProbeSpec } from './probes';
import { BpfSession, TRACE_SELF, TRACE_TREE, cgroupFilterKey, type KernelConfig } from './session';
import { UprobeManager, type UprobeStats } from './uprobes/manager';
import { mark } from './startup-trace';
import { ObservedScope } from './uprobes/scope';

/** CollectorConfig is the validated configuration of one run (rtev collect parses it from options). */
export interface CollectorConfig {
  probes: ProbeName[];
  output: OutputOptions;
  durationMs: number | undefined;
  /** the command to observe (`-- CMD ARGS`); empty: none */
  command: string[];
  /** where the command's standard output goes (default: inherited; under --stdout, rtev's stderr) */
  commandStdout?: string;
  pids: number[];
  trees: number[];
  cgroups: bigint[];
  pathFilter: { include: string[]; exclude: string[] };
  recordFailedOpens: boolean;
  recordEmptySsl: boolean;
  functions: string[];
  framesFile: string | undefined;
  functionMode: FunctionMode;
  /** --file-open-mode (default 'all') */
  fileOpenMode?: FileOpenMode;
  containers: ContainerSelector;
  enrich: boolean;
  enricherOptions: EnricherOptions;
  bulkRingBytes: number;
  rareRingBytes: number;
  verbose: boolean;
  /** attribute files to packages in the evidence (`attribution` in chunk predicates); default true with --out */
  attribution?: boolean;
  /** --order-window: the merge of the two rings in ts_ns order (default 250 ms; 0: arrival order) */
  orderWindowMs?: number;
}

/** What the collector reports while it runs (rtev collect draws its status line from it). */
export interface CollectorProgress {
  ledger: Ledger;
  bytesWritten: number;
  elapsedMs: number;
  /** chunks sealed so far in this run (evidence directory output) */
  chunksSealed: number;
}

/**
 * CollectorHost is the collector's edge to its surroundings. Everything has a default for a
 * real run; tests inject a fake addon binding, skip the privilege checks and stop the run.
 */
export interface CollectorHost {
  /** one-line warnings (without the `rtev: warning: ` prefix) */
  warn(message: string): void;
  /** one-line notices (key fingerprint, resumed chain) */
  notice(message: string): void;
  /** called about once a second while the run lasts */
  onProgress?(progress: CollectorProgress): void;
  /**
   * called once when collection runs: probes attached, output open, rings started, the observed
   * command started, and the host's package databases read (rtev collect --verbose prints it)
   */
  onReady?(ready: CollectorReady): void;
  /** the addon binding (default: the real one) */
  binding?: NativeBinding;
  /** privilege and kernel checks; returns warnings (default: preflight of src/ingest/preflight.ts) */
  preflight?(probes: readonly ProbeName[]): string[];
  /** the BPF object (default: build/rtev.bpf.o, or RTEV_BPF_OBJECT) */
  objectPath?: string;
  /** the BTF whose digest goes into the producer facts (default /sys/kernel/btf/vmlinux) */
  btfPath?: string;
  /** stop on SIGINT and SIGTERM (default true) */
  handleSignals?: boolean;
  env?: NodeJS.ProcessEnv;
  tracepointExists?(tracepoint: string): boolean;
  /** the probe table (default KERNEL_PROBES) */
  probeSpecs?: readonly ProbeSpec[];
}

/** What the collector says once it is ready (CollectorHost.onReady). */
export interface CollectorReady {
  /** from Collector.run() to ready */
  startupMs: number;
  probes: readonly ProbeName[];
  /** the host's package databases were read (package attribution runs: --out) */
  packageDatabases: boolean;
}

/** CollectResult is what a finished run gives back (rtev collect prints its summary from it). */
export interface CollectResult {
  /** the observed command's exit code (128+N when killed by signal N), else 0 */
  exitCode: number;
  ledger: Ledger;
  bytesWritten: number;
  elapsedMs: number;
  /** the reader of --stdout went away: the run stopped early and the sink was not closed */
  outputClosed: boolean;
  /** container attribution counters, when attribution ran; the hold for attribution; the selection's decisions */
  enrichment?: { counters: EnrichCounters; unattributed: number; hold: HoldStats; selection?: GateStats };
  uprobes?: UprobeStats;
  /** one line of per-function call counts, when functions were probed */
  functions?: string;
  /** --stdout: records that could not be written (a stalled or closed reader); in the ledger as shed */
  unwritten?: bigint;
  /** the merge of the two rings in ts_ns order (src/ingest/order.ts) */
  order?: OrderStats;
}

/**
 * Collector owns one run's lifecycle, in this order:
 *   preflight → load the BPF object (BpfSession) → set filters, seed socket owners →
 *   container selection and warm-up (Enricher) → attach uprobes and function probes →
 *   open the output → start the rings → run until the duration ends, the command exits,
 *   a signal arrives or the output fails → detach every link → drain the rings →
 *   wait for records held for attribution → seal with the final ledger.
 *
 * @example
 *   const result = await new Collector(config, { warn, notice }).run();
 */
export class Collector {
  readonly #config: CollectorConfig;
  readonly #host: CollectorHost;
  #stopRequested: (() => void) | undefined;
  #stopEarly = false;
  #startedAt = 0;

  constructor(config: CollectorConfig, host: CollectorHost) {
    this.#config = config;
    this.#host = host;
  }

  /** stop ends the run as SIGTERM would (an observed command is signalled and awaited). */
  stop(): void {
    if (this.#stopRequested !== undefined) this.#stopRequested();
    else this.#stopEarly = true;
  }

  async run(): Promise<CollectResult> {
    this.#startedAt = Date.now();
    const host = this.#host;
    const warn = (m: string): void => host.warn(m);
    // a stop signal while loading ends the run as soon as it runs (instead of killing rtev unsealed)
    const early = (): void => { this.#stopEarly = true; };
    if (host.handleSignals !== false) for (const signal of STOP_SIGNALS) process.on(signal, early);
    try {
      return await this.#run(warn);
    } finally {
      for (const signal of STOP_SIGNALS) process.off(signal, early);
    }
  }

  async #run(warn: (message: string) => void): Promise<CollectResult> {
    const config = this.#config;
    const host = this.#host;
    mark('collector: configured');
    for (const warning of (host.preflight ?? preflight)(config.probes)) warn(warning);
    mark('preflight');
    // RTEV_BPF_OBJECT: another build of the BPF object (A/B benchmarks); its sha256 goes into the evidence
    const env = host.env ?? process.env;
    const objectPath = host.objectPath ?? bpfObjectPath(env);
    const enricher = config.enrich || !isEmptySelector(config.containers) ? new Enricher({ ...config.enricherOptions, warn }) : undefined;
    let gate: CgroupGate | undefined;
    let session: BpfSession;
    try {
      if (enricher !== undefined && isNarrowing(config.containers)) {
        // decided before the probes attach: the kernel denies the cgroups that exist from the first event on
        const e = enricher;
        gate = new (gateModule().CgroupGate)({ selector: config.containers, facts: (id) => e.containerFacts(id) });
        const first = await enricher.selectCgroups(config.containers); // resolves every cgroup of the v2 tree
        for (const entry of first.unmatched) warn(`no running container matches '${entry}' yet; it is picked up when it starts`);
        await seedGate(enricher, gate, config.enricherOptions.cgroupV1Mount);
      }
      session = BpfSession.open(objectPath, kernelConfig(config), config.probes, {
        verbose: config.verbose, env,
        ...(host.binding !== undefined ? { binding: host.binding } : {}),
        ...(host.tracepointExists !== undefined ? { tracepointExists: host.tracepointExists } : {}),
        ...(host.probeSpecs !== undefined ? { specs: host.probeSpecs } : {}),
      });
    } catch (err) {
      enricher?.close();
      throw err;
    }
    // what is opened below is closed by `teardown` when a later step fails
    let containerWatch: { close(): void } | undefined;
    let uprobes: UprobeManager | undefined;
    let functions: FunctionProbes | undefined;
    const teardown = async (): Promise<void> => {
      uprobes?.close();
      functions?.close();
      containerWatch?.close();
      await session.close();
      enricher?.close();
    };
    try {
      for (const warning of session.warnings) warn(warning);
      for (const pid of config.pids) session.traceProcess(pid, TRACE_SELF);
      for (const pid of config.trees) for (const member of processTree(pid)) session.traceProcess(member, TRACE_TREE);
      session.setCgroupFilter(config.cgroups);
      // the owners of TCP sockets that exist now (a /proc scan and a BPF iterator, 20-35 ms of CPU): a
      // run that observes only `-- CMD` has none of its own yet (docs/probes.md, "tcp_state")
      if (session.attachedProbes.includes('tcp_state') && !commandOnly(config)) session.seedSocketOwners(warn);
      gate?.connect((key) => session.filterCgroup(key), (key) => session.unfilterCgroup(key));
      containerWatch = enricher ? await selectContainers(enricher, config.containers, session, gate !== undefined, warn) : undefined;
      mark('session filters, container watch');
      if (enricher && config.enrich) await enricher.warmUp();
      mark('enricher warm-up (cgroup walk)');
      // the TLS coverage names only the processes this run observes (docs/probes-network.md, "Counted coverage")
      uprobes = new UprobeManager(session, config.probes, warn, {}, observedScope(config, session, gate));
      await uprobes.start();
      mark('uprobe manager');
      if (config.functions.length > 0) {
        // (function probes, and the symbolizer they load, are compiled by runs that ask for them)
        functions = await (require('./function-probes') as typeof import('./function-probes')).FunctionProbes.create(session, { specs: config.functions, mode: config.functionMode, warn });
      }
      if (session.attachedProbes.length === 0) {
        throw new RtevError('BPF_ATTACH', 'no probe could be attached', { hint: 'check the warnings above; is tracefs mounted?' });
      }
    } catch (err) {
      await teardown();
      throw err;
    }
    const framesFd = config.framesFile !== undefined && functions !== undefined ? openFramesFile(config.framesFile) : undefined;
    try {
      if (framesFd !== undefined && functions !== undefined) {
        const fp = functions;
        fp.onFrames = (record, d) => writeFrames(framesFd, record, d);
      }
      return await this.#collect(session, { enricher, gate, uprobes: uprobes!, functions, containerWatch, objectPath, teardown });
    } finally {
      if (framesFd !== undefined) fs.closeSync(framesFd);
    }
  }

  /** collect runs from opening the output to sealing it; the probes are attached. */
  async #collect(session: BpfSession, parts: {
    enricher: Enricher | undefined; gate: CgroupGate | undefined; uprobes: UprobeManager; functions: FunctionProbes | undefined;
    containerWatch: { close(): void } | undefined; objectPath: string; teardown: () => Promise<void>;
  }): Promise<CollectResult> {
    const config = this.#config;
    const host = this.#host;
    const { enricher, uprobes, functions } = parts;
    let pipeline: Pipeline | undefined;
    /** --file-open-mode first-seen: the deduplication after the ts_ns merge */
    let opensFirstSeen: FirstSeenOpens | undefined;
    let sink: RecordSink | undefined;
    let sinkFailure: (err: unknown) => void = () => {};
    const ledger = (): Ledger => buildLedger(session, pipeline, sink?.unwritten?.());
    let sealed = 0;
    // package attribution runs beside the evidence directory (docs/format.md, "Attribution")
    const attributor = !config.output.stdout && config.attribution !== false
      // (src/packages is loaded by runs that attribute: --out; a --stdout run does not compile its 13 modules)
      ? new (require('../packages/attributor') as typeof import('../packages/attributor')).Attributor({
        ...(enricher !== undefined ? { containerFacts: (id: string) => enricher.containerFacts(id) } : {}),
        // the host's dpkg index as the last run left it, when the database did not change (RTEV_CACHE_DIR; src/packages/dpkg-cache.ts)
        ...dpkgCacheOption(env(host)),
      })
      : undefined;
    const warmed = attributor?.warm();
    try {
      // (the producer facts go into chunk predicates: --stdout does not hash the BTF and the object, 15-20 ms)
      let producer: ProducerInfo | undefined;
      const facts = (): ProducerInfo => (producer ??= producerInfo(parts.objectPath, host.btfPath ?? BTF_PATH, config, session.attachedProbes));
      sink = await openOutput(config.output, {
        get producer() { return facts(); },
        ledger, notice: (m) => host.notice(m), onError: (err) => sinkFailure(err),
        // exact per-function counts in each chunk predicate; first-seen windows rotate per chunk
        ...(functions !== undefined ? { functionCalls: () => functions.totals() } : {}),
        // which processes map TLS that ssl_op does not observe (docs/probes-network.md, "Counted coverage")
        ...(config.probes.includes('ssl_op') ? { tlsCoverage: () => uprobes.tlsCoverage() } : {}),
        // the first-seen windows (function calls, file opens) rotate at each seal
        onSeal: () => {
          sealed++;
          functions?.rotateWindow();
          pipeline?.rotateWindow();
          opensFirstSeen?.rotateWindow();
        },
        ...(attributor !== undefined ? { attribution: attributor } : {}),
      });
    } catch (err) {
      await parts.teardown();
      throw err;
    }
    mark('output opened (producer facts)');
    const stop = new StopSignal();
    this.#stopRequested = () => stop.stop();
    let sinkError: unknown;
    const pathFilter = new PathFilter(config.pathFilter.include, config.pathFilter.exclude);
    // attribution adds container fields, and decides a container selection (even with --no-enrich)
    const attribute = enricher !== undefined && (config.enrich || !isEmptySelector(config.containers));
    // file_open records encoded in the consumer thread (docs/benchmarks.md, "Fast path")
    const firstSeen = config.fileOpenMode === 'first-seen';
    // (first-seen deduplicates decoded records: it takes the reference path)
    const fastPath = firstSeen ? undefined : session.createFastPath({ fileOpen: session.attachedProbes.includes('file_open'), attribute, pathFilter: pathFilter.active });
    // the two rings merged in ts_ns order (bounded hold; docs/format.md, "Record order")
    // A function first-seen window rotates at each seal, and its counts go into that chunk's
    // predicate: a record still held by the merge at a seal would land in the next chunk and break
    // the exact per-chunk accounting. So runs with function probes in first-seen mode (the default)
    // write in arrival order. File opens under --file-open-mode first-seen are deduplicated after
    // the merge instead, next to the chunk writer (FirstSeenOpens), and keep the ts_ns order.
    const functionWindows = functions !== undefined && config.functionMode === 'first-seen';
    const window = functionWindows ? 0 : config.orderWindowMs ?? DEFAULT_ORDER_WINDOW_MS;
    opensFirstSeen = firstSeen ? new FirstSeenOpens(sink, (probe, outcome) => pipeline?.countReleased(probe, outcome)) : undefined;
    const ordered = new OrderedSink(opensFirstSeen ?? sink, window > 0
      ? { ...orderBounds(window), floor: () => pipeline?.oldestHeldTs, onError: (err) => sinkFailure(err) }
      : { quietMs: 0, slackMs: 0, lagMs: 0, maxHoldMs: 0, onError: (err) => sinkFailure(err) });
    pipeline = new Pipeline({
      sink: ordered, pathFilter,
      ...(fastPath !== undefined ? { fastPath } : {}),
      ...(firstSeen ? { fileOpenMode: 'first-seen' as const, firstSeenAtOutput: true } : {}),
      onRecord: (r) => {
        if (r.event.type === 'process_exec') {
          uprobes.onExec(r.pid);
          functions?.onExit(r.pid); // the old image's maps are gone
        }
      },
      ...(functions !== undefined ? { buildFunctionCall: (c: RawFunctionCall) => functions.build(c) } : {}),
      ...(enricher && attribute ? { containers: enricher } : {}),
      ...(parts.gate !== undefined ? { select: parts.gate } : {}),
      addFields: config.enrich,
      dropContainerRecords: config.containers.hostOnly === true,
      onError: (err) => { sinkError ??= err; stop.stop(); },
    });
    const activePipeline = pipeline;
    sinkFailure = (err) => { sinkError ??= err; stop.stop(); };
    session.startRings((ring, batch, used) => {
      if (sinkError !== undefined) return;
      try {
        ordered.beginBatch(ring);
        activePipeline.handleBatch(batch, used);
        // a batch that filled half its slot or more: the ring has more waiting (a backlog)
        ordered.endBatch(used >= batch.length / 2);
      } catch (err) {
        sinkError ??= err; // e.g. disk full: stop cleanly below
        stop.stop();
      }
    }, fastPath);

    mark('pipeline, rings started');
    const started = Date.now();
    const timer = config.durationMs !== undefined ? setTimeout(() => stop.stop(), config.durationMs) : undefined;
    const pruner = parts.gate !== undefined ? startPruning(parts.gate, config.enricherOptions.cgroupV1Mount, env(host), (m) => host.warn(m)) : undefined;
    const ticker = setInterval(() => host.onProgress?.({ ledger: ledger(), bytesWritten: sink.bytesWritten, elapsedMs: Date.now() - started, chunksSealed: sealed }), 1000);

    let command: ObservedCommand | undefined;
    let commandStdout: number | undefined;
    const onSignal = (signal: NodeJS.Signals): void => {
      // with a command, the terminal may have signalled it too: it has a grace period to exit
      if (command?.running === true) command.signal(signal);
      else stop.stop();
    };
    const handleSignals = host.handleSignals !== false;
    if (handleSignals) for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
    try {
      if (config.command.length > 0) {
        commandStdout = config.commandStdout !== undefined ? openCommandStdout(config.commandStdout) : undefined;
        // under --stdout, standard output carries records only: the command's goes to rtev's stderr
        const stdout = commandStdout ?? (config.output.stdout ? 2 : 'inherit');
        command = ObservedCommand.start(config.command, session, stdout);
        void command.exit.then(() => stop.stop());
      }
      this.#stopRequested = () => onSignal('SIGTERM');
      if (this.#stopEarly) onSignal('SIGTERM');
      let stopped = false;
      void stop.stopped.then(() => { stopped = true; });
      void Promise.resolve(warmed).then(() => {
        if (!stopped) host.onReady?.({ startupMs: Date.now() - this.#startedAt, probes: [...session.attachedProbes], packageDatabases: warmed !== undefined });
      });
      mark('command started');
      await stop.stopped;
      mark('command exited');
    } finally {
      if (timer) clearTimeout(timer);
      clearInterval(ticker);
      if (pruner !== undefined) clearInterval(pruner);
    }
    // whatever stopped the run, the command is signalled and reaped before the probes go
    const exitCode = command !== undefined ? await command.stop() : 0;
    if (commandStdout !== undefined) fs.closeSync(commandStdout);

    // detach, then drain: every record submitted before detaching reaches the sink
    parts.uprobes.close();
    functions?.close();
    parts.containerWatch?.close();
    mark('command reaped');
    await session.close();
    mark('detach, rings drained');
    await activePipeline.idle();
    enricher?.close();
    const summary = (closed: boolean): CollectResult => ({
      exitCode, ledger: ledger(), bytesWritten: sink.bytesWritten, elapsedMs: Date.now() - started, outputClosed: closed,
      ...(enricher && attribute ? {
        enrichment: {
          counters: enricher.counters(), unattributed: activePipeline.unattributed, hold: { ...activePipeline.hold },
          ...(parts.gate !== undefined ? { selection: { ...parts.gate.stats } } : {}),
        },
      } : {}),
      ...(uprobes.active ? { uprobes: uprobes.stats() } : {}),
      ...(functions !== undefined ? { functions: functions.summary() } : {}),
      ...(sink.unwritten !== undefined ? { unwritten: sumOf(sink.unwritten()) } : {}),
      order: { ...ordered.stats },
    });
    try {
      // the reader of --stdout went away (rtev collect --stdout | head): stop quietly, like other tools
      if (sinkError instanceof RtevError && sinkError.code === 'OUTPUT_CLOSED') return summary(true);
      if (sinkError !== undefined) throw sinkError;
      await attributor?.idle(10_000);
      await ordered.close(ledger);
      attributor?.close();
      mark('output closed');
      return summary(false);
    } finally {
      if (handleSignals) for (const signal of STOP_SIGNALS) process.off(signal, onSignal);
    }
  }
}

/** The signals that end a run cleanly (sealed, command reaped). SIGHUP: the terminal went away. */
const STOP_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function sumOf(counts: Map<string, bigint>): bigint {
  let n = 0n;
  for (const v of counts.values()) n += v;
  return n;
}

/** openCommandStdout creates the --command-stdout file. */
function openCommandStdout(file: string): number {
  try {
    return fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_NOFOLLOW, 0o644);
  } catch (err) {
    throw new RtevError('OUTPUT', `cannot write --command-stdout file ${file}`, { cause: err });
  }
}

/** the container gate's module: loaded by runs with a container selection only */
function gateModule(): typeof import('./cgroup-gate') {
  return require('./cgroup-gate') as typeof import('./cgroup-gate');
}

/**
 * commandOnly: the run observes `-- CMD` and its descendants only (no --pid, no --tree): no process
 * it observes existed before it started, so no socket that exists at start is theirs (one passed
 * to them later over a unix socket is the exception: its softirq changes count as `skipped`).
 */
function commandOnly(config: CollectorConfig): boolean {
  return config.command.length > 0 && config.pids.length === 0 && config.trees.length === 0;
}

function kernelConfig(config: CollectorConfig): KernelConfig {
  return {
    selfTgid: process.pid,
    filterPids: config.pids.length + config.trees.length > 0 || config.command.length > 0,
    // a container selection denies the cgroups known not to match; new ones reach user space (CgroupGate)
    cgroupFilter: config.cgroups.length > 0 ? 'allow' : isEmptySelector(config.containers) ? 'off' : 'deny',
    recordFailedOpens: config.recordFailedOpens,
    recordEmptySslOps: config.recordEmptySsl,
    bulkRingBytes: config.bulkRingBytes,
    rareRingBytes: config.rareRingBytes,
  };
}

/**
 * observedScope: the processes whose events the run records, decided from the same kernel maps
 * as bpf/common.h filtered_out() (pid filter, cgroup allow/deny list) and the container gate.
 */
function observedScope(config: CollectorConfig, session: BpfSession, gate: CgroupGate | undefined): ObservedScope {
  const k = kernelConfig(config);
  let v2 = '/sys/fs/cgroup';
  try {
    v2 = cgroup2Mount();
  } catch {
    // keep the conventional place
  }
  const v1 = config.enricherOptions.cgroupV1Mount ?? '/sys/fs/cgroup/memory';
  return new ObservedScope({
    ...(k.filterPids ? { traced: (tgid: number) => session.isTraced(tgid) } : {}),
    ...(k.cgroupFilter === 'allow' ? { allowCgroups: new Set(config.cgroups) } : {}),
    ...(k.cgroupFilter === 'deny' ? {
      keepCgroup: ({ v2: id2, v1: id1 }: { v2: bigint; v1: bigint }) => {
        const inV1 = id2 === 1n && id1 !== 0n;
        if (session.cgroupListed(inV1 ? cgroupFilterKey(id1, 'v1') : id2)) return false; // denied in the kernel
        return gate?.decided(inV1 ? `v1:${id1}` : `v2:${id2}`);
      },
    } : {}),
  }, { cgroup2: v2, ...(v2 !== '/sys/fs/cgroup' ? { memoryV1: v1 } : {}) });
}

/** isNarrowing: the selector keeps some containers only (--container, --image, --containers-only). */
function isNarrowing(selector: ContainerSelector): boolean {
  return !isEmptySelector(selector) && selector.hostOnly !== true;
}

/**
 * selectContainers prepares the kernel's cgroup filter before collection starts.
 * --host-only: the container cgroups are denied, and kept current (a container started later is
 * dropped in user space until then). A narrowing selection (--container, --image,
 * --containers-only): every cgroup that exists now is decided (CgroupGate) and those that do not
 * match are denied; cgroups made later reach user space and are decided on their first records.
 */
async function selectContainers(enricher: Enricher, selector: ContainerSelector, session: BpfSession, gated: boolean,
  warn: (message: string) => void): Promise<{ close(): void }> {
  // (no selection: the watch only keeps answers warm for containers started later; the ones that
  // exist now are resolved by Enricher.warmUp right after this, so its first walk waits 2 s)
  if (isEmptySelector(selector)) return enricher.watchSelection({}, () => {}, { intervalMs: 2000, immediate: false });
  if (gated) {
    // the gate was seeded before the probes attached (Collector.#run); this keeps the answers warm (a container started later is resolved before its records ask)
    return enricher.watchSelection(selector, () => {}, {
      intervalMs: 2000,
      onError: (err) => warn(`container selection not refreshed: ${errorMessage(err)}`),
    });
  }
  let current: bigint[] = [];
  const apply = (selection: CgroupSelection): void => {
    session.setCgroupFilter(selection.cgroupIds, current);
    current = selection.cgroupIds;
  };
  const first = await enricher.selectCgroups(selector);
  apply(first);
  for (const entry of first.unmatched) warn(`no running container matches '${entry}' yet; it is picked up when it starts`);
  return enricher.watchSelection(selector, apply, {
    intervalMs: 1000,
    onError: (err) => warn(`container selection not refreshed: ${errorMessage(err)}`),
  });
}

/**
 * seedGate decides on the cgroups that exist at start (v2, and the v1 memory hierarchy whose
 * cgroups key tasks in the v2 root on hybrid hosts), so the kernel denies them from the first event.
 */
async function seedGate(enricher: Enricher, gate: CgroupGate, v1Mount: string | undefined): Promise<void> {
  const settle = async (id: bigint, hierarchy: 'v2' | 'v1'): Promise<void> => {
    const info = await enricher.whenSettled(id, 3000, hierarchy);
    if (info !== 'pending') gate.keep(`${hierarchy}:${id}`, id, hierarchy, info);
  };
  const { v2, v1 } = gateHierarchies(v1Mount);
  const jobs: Promise<void>[] = [];
  const { listCgroups } = gateModule();
  if (v2 !== undefined) for (const id of listCgroups(v2)) jobs.push(settle(id, 'v2'));
  if (v1 !== undefined) for (const id of listCgroups(v1)) jobs.push(settle(id, 'v1'));
  await Promise.all(jobs);
}

/** The hierarchies a container selection decides on: the v2 tree, and the v1 memory one on hybrid hosts. */
function gateHierarchies(v1Mount: string | undefined): { v2: string | undefined; v1: string | undefined } {
  let v2: string | undefined;
  try {
    v2 = cgroup2Mount();
  } catch {
    v2 = undefined;
  }
  const v1 = v1Mount ?? '/sys/fs/cgroup/memory';
  return { v2, v1: v2 !== '/sys/fs/cgroup' && fs.existsSync(path.join(v1, 'cgroup.procs')) ? v1 : undefined };
}

/** How often the kernel's cgroup deny list is pruned of gone cgroups (RTEV_CGROUP_PRUNE_MS: tests). */
const DEFAULT_PRUNE_MS = 10_000;

/**
 * startPruning lists the cgroups that exist every few seconds (while some cgroup is denied) and
 * removes the gone ones from the kernel's deny list (CgroupGate.prune).
 */
function startPruning(gate: CgroupGate, v1Mount: string | undefined, env: NodeJS.ProcessEnv, warn: (message: string) => void): NodeJS.Timeout {
  const fromEnv = Number(env['RTEV_CGROUP_PRUNE_MS']);
  const every = Number.isInteger(fromEnv) && fromEnv >= 10 && fromEnv <= 3_600_000 ? fromEnv : DEFAULT_PRUNE_MS;
  const { v2, v1 } = gateHierarchies(v1Mount);
  let warned = false;
  const timer = setInterval(() => {
    if (gate.deniedCount === 0) return;
    try {
      gate.prune(gateModule().presentCgroupKeys(v2, v1));
    } catch (err) {
      if (!warned) warn(`cgroup deny list not pruned: ${errorMessage(err)}`);
      warned = true;
    }
  }, every);
  timer.unref();
  return timer;
}

/** openFramesFile creates the --frames side file (not evidence: unsigned, for humans and rtev query). */
function openFramesFile(file: string): number {
  try {
    return fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_NOFOLLOW, 0o600);
  } catch (err) {
    throw new RtevError('OUTPUT', `cannot write --frames file ${file}`, { cause: err });
  }
}

function writeFrames(fd: number, record: Parameters<NonNullable<FunctionProbes['onFrames']>>[0],
  d: Parameters<NonNullable<FunctionProbes['onFrames']>>[1]): void {
  const line = canonicalize({
    ts_ns: record.ts_ns, pid: record.pid, tid: record.tid ?? record.pid, addr: d.addr, stack_quality: d.stackQuality,
    frames: d.frames.map((f) => ({ addr: f.addr, symbol: f.symbol, offset: f.offset, library: f.library, kind: f.kind, source: f.source })),
  });
  fs.writeSync(fd, line + '\n');
}

function dpkgCacheOption(environment: NodeJS.ProcessEnv): { dpkgCache?: DpkgCache } {
  const cache = (require('../packages/dpkg-cache') as typeof import('../packages/dpkg-cache')).DpkgCache.fromEnv(environment);
  return cache !== undefined ? { dpkgCache: cache } : {};
}

function env(host: CollectorHost): NodeJS.ProcessEnv {
  return host.env ?? process.env;
}

class StopSignal {
  stop: () => void = () => {};
  readonly stopped = new Promise<void>((resolve) => { this.stop = resolve; });
}

/** buildLedger: the kernel's counters and the pipeline's; records the sink never wrote count as shed. */
function buildLedger(session: BpfSession, pipeline: Pipeline | undefined, unwritten?: Map<string, bigint>): Ledger {
  const kernel = session.counters();
  const ledger: Ledger = {};
  for (const probe of session.attachedProbes) {
    const user = pipeline ? { ...pipeline.user[probe] } : emptyUserCounters();
    const lost = unwritten?.get(probe) ?? 0n;
    user.written -= lost;
    user.shed += lost;
    const notObserved = session.notObserved.filter((n) => n.probe === probe).map(({ class: c, sources, reason }) => ({ class: c, sources, reason }));
    ledger[probe] = { kernel: kernel[probe], user, ...(notObserved.length > 0 ? { notObserved } : {}) };
  }
  return ledger;
}

function sha256File(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function producerInfo(objectPath: string, btfPath: string, config: CollectorConfig, probes: readonly ProbeName[]): ProducerInfo {
  const filters = {
    pids: config.pids, trees: config.trees, cgroups: config.cgroups.map(String), command: config.command.length > 0,
    include_paths: config.pathFilter.include, exclude_paths: config.pathFilter.exclude, include_failed_opens: config.recordFailedOpens,
    // signed with the chunks: a reader knows file opens were deduplicated per chunk
    ...(config.fileOpenMode === 'first-seen' ? { file_open_mode: 'first-seen' } : {}),
  };
  const kernel = { probes, filters, ring_bytes: config.bulkRingBytes, rare_ring_bytes: config.rareRingBytes };
  return {
    collectorVersion: packageVersion(),
    bpfObjectSha256: sha256File(objectPath),
    btf: { path: btfPath, sha256: sha256File(btfPath) },
    filters,
    configSha256: createHash('sha256').update(canonicalize(kernel)).digest('hex'),
    // the session's list: probes whose uprobes attach later (a library mapped later) appear too
    probes: probes as string[],
  };
}
