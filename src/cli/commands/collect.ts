import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RawFunctionCall } from '../../decode/decode';
import { PROBE_NAMES, type ProbeName } from '../../decode/layout';
import { canonicalize } from '../../encode/canonical';
import { RtevError, UsageError, errorMessage } from '../../errors';
import { encodeListenerOwner, findListenerOwners } from '../../ingest/listeners';
import { PathFilter } from '../../ingest/path-filter';
import { Pipeline } from '../../ingest/pipeline';
import { BTF_PATH, preflight } from '../../ingest/preflight';
import { DEFAULT_PROBES, KERNEL_PROBES } from '../../ingest/probes';
import { BpfSession, TRACE_SELF, TRACE_TREE, type KernelConfig } from '../../ingest/session';
import { UprobeManager } from '../../ingest/uprobes';
import { FunctionProbes, parseFunctionMode, type FunctionMode } from '../../ingest/function-probes';
import { parseFunctionsFile } from '../../symbolize';
import { Enricher, isEmptySelector, validateSelector, type CgroupSelection, type ContainerSelector, type EnricherOptions } from '../../enrich';
import type { Ledger } from '../../model/ledger';
import { openOutput } from '../../store/output';
import type { OutputOptions, ProducerInfo, RecordSink } from '../../store/sink';
import { parseArgs, parseDuration, parseInteger, parseSize, usageText, type OptionSpec, type ParsedArgs } from '../args';
import { ExitCode } from '../exit-codes';
import type { CliIO, Command } from '../io';
import { StatusLine } from '../status';
import { bpfObjectPath, packageVersion } from '../../platform/paths';

const OPTIONS: OptionSpec[] = [
  { name: 'out', kind: 'string', value: 'DIR', help: 'write evidence into DIR (default ./rtev-evidence)' },
  { name: 'stdout', kind: 'flag', help: 'write NDJSON records to stdout instead' },
  { name: 'duration', kind: 'string', value: 'D', help: 'stop after D (10s, 5m, ...); default: until SIGINT/SIGTERM or CMD exits' },
  { name: 'probes', kind: 'string', value: 'LIST', help: `comma-separated probes (default ${DEFAULT_PROBES.join(',')})` },
  { name: 'config', kind: 'string', value: 'FILE', help: 'read options from a JSON file (command line wins)' },
  { name: 'pid', kind: 'list', value: 'PID', help: 'only this process (repeatable)' },
  { name: 'tree', kind: 'list', value: 'PID', help: 'this process and all its descendants (repeatable)' },
  { name: 'cgroup', kind: 'list', value: 'PATH|ID', help: 'only processes in this cgroup v2 (repeatable)' },
  { name: 'include-path', kind: 'list', value: 'GLOB', help: 'record only file opens matching GLOB (repeatable)' },
  { name: 'exclude-path', kind: 'list', value: 'GLOB', help: 'do not record file opens matching GLOB (repeatable)' },
  { name: 'container', kind: 'list', value: 'ID|NAME', help: 'only this container (id, id prefix or name; repeatable)' },
  { name: 'image', kind: 'list', value: 'DIGEST', help: 'only containers of this image (sha256:...; repeatable)' },
  { name: 'containers-only', kind: 'flag', help: 'only processes in containers' },
  { name: 'host-only', kind: 'flag', help: 'only processes outside containers' },
  { name: 'no-enrich', kind: 'flag', help: 'do not add container_id and image_digest' },
  { name: 'docker-socket', kind: 'string', value: 'PATH', help: 'Docker API socket (default /var/run/docker.sock)' },
  { name: 'containerd-socket', kind: 'string', value: 'PATH', help: 'containerd socket (default /run/containerd/containerd.sock)' },
  { name: 'storage-root', kind: 'list', value: 'DIR', help: 'containers-storage root for podman/CRI-O (default /var/lib/containers/storage)' },
  { name: 'include-failed-opens', kind: 'flag', help: 'also record opens that failed (src ends with :failed:ERRNO)' },
  { name: 'include-empty-ssl', kind: 'flag', help: 'also record SSL calls that transferred no bytes (ssl_op)' },
  { name: 'function', kind: 'list', value: 'TARGET', help: 'record calls of BINARY:SYMBOL or PURL:SYMBOL (glob; repeatable; implies function_call)' },
  { name: 'frames', kind: 'string', value: 'FILE', help: 'write the symbolized stack of every function_call to FILE (read with rtev query --frames)' },
  { name: 'functions', kind: 'string', value: 'FILE', help: 'JSON list of function targets (docs/function-calls.md)' },
  { name: 'function-mode', kind: 'string', value: 'MODE', help: 'first-seen (default: one record per pid, function and stack, every call counted) or all' },
  { name: 'ring-size', kind: 'string', value: 'BYTES', help: 'kernel ring for file opens (default 16M; power of 2)' },
  { name: 'rare-ring-size', kind: 'string', value: 'BYTES', help: 'kernel ring for other events (default 4M; power of 2)' },
  { name: 'key', kind: 'string', value: 'FILE', help: 'Ed25519 private key to sign chunks with' },
  { name: 'chunk-size', kind: 'string', value: 'BYTES', help: 'seal a chunk at this size' },
  { name: 'chunk-age', kind: 'string', value: 'D', help: 'seal a chunk at this age' },
  { name: 'retain-size', kind: 'string', value: 'BYTES', help: 'remove the oldest chunks beyond this total size' },
  { name: 'retain-age', kind: 'string', value: 'D', help: 'remove chunks older than this' },
  { name: 'quiet', kind: 'flag', help: 'no status line and no summary' },
  { name: 'verbose', kind: 'flag', help: 'print libbpf and verifier messages' },
];

export const collectCommand: Command = {
  summary: 'record evidence with eBPF probes (system-wide, or one command and its children)',
  usage: usageText('usage: rtev collect [--out DIR | --stdout] [--duration D] [--probes LIST] [--config FILE] [-- CMD ARGS...]', OPTIONS),
  run: runCollect,
};

/** CollectPlan is the validated configuration of one run. */
interface CollectPlan {
  probes: ProbeName[];
  output: OutputOptions;
  durationMs: number | undefined;
  command: string[];
  pids: number[];
  trees: number[];
  cgroups: bigint[];
  pathFilter: { include: string[]; exclude: string[] };
  recordFailedOpens: boolean;
  recordEmptySsl: boolean;
  functions: string[];
  framesFile: string | undefined;
  functionMode: FunctionMode;
  containers: ContainerSelector;
  enrich: boolean;
  enricherOptions: EnricherOptions;
  bulkRingBytes: number;
  rareRingBytes: number;
  quiet: boolean;
  verbose: boolean;
}

async function runCollect(args: string[], io: CliIO): Promise<number> {
  const plan = planFromArgs(args);
  for (const warning of preflight(plan.probes)) io.stderr.write(`rtev: warning: ${warning}\n`);
  // RTEV_BPF_OBJECT: another build of the BPF object (A/B benchmarks); its sha256 goes into the evidence
  const objectPath = bpfObjectPath();
  const kernelConfig: KernelConfig = {
    selfTgid: process.pid,
    filterPids: plan.pids.length + plan.trees.length > 0 || plan.command.length > 0,
    cgroupFilter: plan.cgroups.length > 0 ? 'allow' : isEmptySelector(plan.containers) ? 'off' : plan.containers.hostOnly ? 'deny' : 'allow',
    recordFailedOpens: plan.recordFailedOpens,
    recordEmptySslOps: plan.recordEmptySsl,
    bulkRingBytes: plan.bulkRingBytes,
    rareRingBytes: plan.rareRingBytes,
  };
  const session = BpfSession.open(objectPath, kernelConfig, plan.probes, plan.verbose);
  for (const warning of session.warnings) io.stderr.write(`rtev: warning: ${warning}\n`);
  for (const pid of plan.pids) session.traceProcess(pid, TRACE_SELF);
  for (const pid of plan.trees) for (const member of processTree(pid)) session.traceProcess(member, TRACE_TREE);
  session.setCgroupFilter(plan.cgroups);
  if (session.attachedProbes.includes('tcp_state')) seedSocketOwners(session, (m) => io.stderr.write(`rtev: warning: ${m}\n`));
  const enricher = plan.enrich || !isEmptySelector(plan.containers)
    ? new Enricher({ ...plan.enricherOptions, warn: (m) => io.stderr.write(`rtev: warning: ${m}\n`) })
    : undefined;
  const containerWatch = enricher ? await selectContainers(enricher, plan.containers, session, io) : undefined;
  if (enricher && plan.enrich) await warmUp(enricher);
  const uprobes = new UprobeManager(session, plan.probes, (m) => io.stderr.write(`rtev: warning: ${m}\n`));
  await uprobes.start();
  const functions = plan.functions.length > 0
    ? await FunctionProbes.create(session, { specs: plan.functions, mode: plan.functionMode, warn: (m) => io.stderr.write(`rtev: warning: ${m}\n`) })
    : undefined;
  const framesFd = plan.framesFile !== undefined && functions !== undefined ? openFramesFile(plan.framesFile) : undefined;
  if (framesFd !== undefined && functions !== undefined) {
    functions.onFrames = (record, d) => {
      const line = canonicalize({
        ts_ns: record.ts_ns, pid: record.pid, tid: record.tid ?? record.pid, addr: d.addr, stack_quality: d.stackQuality,
        frames: d.frames.map((f) => ({ addr: f.addr, symbol: f.symbol, offset: f.offset, library: f.library, kind: f.kind, source: f.source })),
      });
      fs.writeSync(framesFd, line + '\n');
    };
  }
  if (session.attachedProbes.length === 0) {
    throw new RtevError('BPF_ATTACH', 'no probe could be attached', { hint: 'check the warnings above; is tracefs mounted?' });
  }

  const producer = producerInfo(objectPath, plan, session.attachedProbes);
  let pipeline: Pipeline | undefined;
  const ledger = (): Ledger => buildLedger(session, pipeline);
  const sink = await openOutput(plan.output, {
    producer, ledger, notice: (m) => io.stderr.write(`rtev: ${m}\n`),
    // exact per-function counts in each chunk predicate; first-seen windows rotate per chunk
    ...(functions !== undefined ? { functionCalls: () => functions.totals(), onSeal: () => functions.rotateWindow() } : {}),
  });
  const stopSignal = new StopSignal();
  let sinkError: unknown;
  pipeline = new Pipeline({
    sink, pathFilter: new PathFilter(plan.pathFilter.include, plan.pathFilter.exclude),
    onRecord: (r) => { if (r.event.type === 'process_exec') uprobes.onExec(r.pid); },
    ...(functions !== undefined ? { buildFunctionCall: (c: RawFunctionCall) => functions.build(c) } : {}),
    ...(enricher && plan.enrich ? { containers: enricher } : {}),
    dropContainerRecords: plan.containers.hostOnly === true,
    onError: (err) => { sinkError ??= err; stopSignal.stop(); },
  });
  const activePipeline = pipeline;
  session.startRings((_ring, batch, used) => {
    if (sinkError !== undefined) return;
    try {
      activePipeline.handleBatch(batch, used);
    } catch (err) {
      sinkError = err; // e.g. disk full: stop cleanly below
      stopSignal.stop();
    }
  });

  const status = new StatusLine(io.stderr, !plan.quiet && io.stderr.isTTY === true);
  const started = Date.now();
  const timer = plan.durationMs !== undefined ? setTimeout(() => stopSignal.stop(), plan.durationMs) : undefined;
  const ticker = setInterval(() => status.update(ledger(), sink.bytesWritten, Date.now() - started), 1000);

  let child: ChildProcess | undefined;
  let childExit: Promise<number> | undefined;
  if (plan.command.length > 0) {
    ({ child, exit: childExit } = startObserved(plan.command, session));
    void childExit.then(() => stopSignal.stop());
  }
  const onSignal = (signal: NodeJS.Signals): void => {
    // with a command, the terminal already signalled it too: wait for it to exit
    if (child !== undefined && child.exitCode === null) child.kill(signal);
    else stopSignal.stop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  await stopSignal.stopped;
  if (timer) clearTimeout(timer);
  clearInterval(ticker);
  if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  const exitCode = childExit ? await childExit : ExitCode.OK;

  // detach, then drain: every record submitted before detaching reaches the sink
  uprobes.close();
  functions?.close();
  containerWatch?.close();
  session.detachAll();
  await session.drain();
  await activePipeline.idle();
  enricher?.close();
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  const finalLedger = ledger();
  status.clear();
  // the reader of --stdout went away (rtev collect --stdout | head): stop quietly, like other tools
  if (sinkError instanceof RtevError && sinkError.code === 'OUTPUT_CLOSED') return exitCode;
  if (sinkError !== undefined) throw sinkError;
  await sink.close(finalLedger);
  if (!plan.quiet) io.stderr.write(summaryLine(finalLedger, sink, Date.now() - started, plan.output) + '\n');
  if (!plan.quiet && enricher && plan.enrich) io.stderr.write(enrichmentLine(enricher, activePipeline) + '\n');
  if (!plan.quiet && uprobes.active) io.stderr.write(`rtev: uprobes: ${JSON.stringify(uprobes.stats())}\n`);
  if (framesFd !== undefined) fs.closeSync(framesFd);
  if (!plan.quiet && functions !== undefined) io.stderr.write(`rtev: ${functions.summary()}\n`);
  return exitCode;
}

/** planFromArgs validates the command line (and config file) into a plan. */
function planFromArgs(args: string[]): CollectPlan {
  let parsed = parseArgs(args, OPTIONS);
  const configFile = parsed.values.get('config');
  if (configFile !== undefined) parsed = parseArgs([...configArgs(configFile), ...args], OPTIONS);
  const functions = functionTargets(parsed);
  const probes = parseProbes(parsed.values.get('probes'), functions.length > 0);
  if (parsed.flags.has('stdout') && parsed.values.has('out')) throw new UsageError('--out and --stdout exclude each other');
  const output: OutputOptions = { stdout: parsed.flags.has('stdout') };
  if (!output.stdout) output.outDir = parsed.values.get('out') ?? 'rtev-evidence';
  setIf(parsed, 'key', (v) => { output.keyFile = v; });
  setIf(parsed, 'chunk-size', (v) => { output.chunkMaxBytes = parseSize(v, 'chunk-size'); });
  setIf(parsed, 'chunk-age', (v) => { output.chunkMaxAgeMs = parseDuration(v, 'chunk-age'); });
  setIf(parsed, 'retain-size', (v) => { output.retainMaxBytes = parseSize(v, 'retain-size'); });
  setIf(parsed, 'retain-age', (v) => { output.retainMaxAgeMs = parseDuration(v, 'retain-age'); });
  const duration = parsed.values.get('duration');
  return {
    probes,
    output,
    durationMs: duration === undefined ? undefined : parseDuration(duration, 'duration'),
    command: parsed.command,
    pids: (parsed.lists.get('pid') ?? []).map((p) => parseInteger(p, 'pid', 1, 4194304)),
    trees: (parsed.lists.get('tree') ?? []).map((p) => parseInteger(p, 'tree', 1, 4194304)),
    cgroups: (parsed.lists.get('cgroup') ?? []).map(cgroupId),
    pathFilter: { include: parsed.lists.get('include-path') ?? [], exclude: parsed.lists.get('exclude-path') ?? [] },
    recordFailedOpens: parsed.flags.has('include-failed-opens'),
    recordEmptySsl: parsed.flags.has('include-empty-ssl'),
    functions,
    functionMode: parseFunctionMode(parsed.values.get('function-mode')),
    containers: containerSelector(parsed, (parsed.lists.get('cgroup') ?? []).length > 0),
    enrich: !parsed.flags.has('no-enrich'),
    enricherOptions: enricherOptions(parsed),
    framesFile: parsed.values.get('frames'),
    bulkRingBytes: ringSize(parsed.values.get('ring-size'), 16 << 20, 'ring-size'),
    rareRingBytes: ringSize(parsed.values.get('rare-ring-size'), 4 << 20, 'rare-ring-size'),
    quiet: parsed.flags.has('quiet'),
    verbose: parsed.flags.has('verbose'),
  };
}

/**
 * seedSocketOwners tells the tcp_state probe who holds the TCP sockets that exist already: the
 * listening ones from /proc (listen_owners is keyed by port), the others with a BPF iterator over
 * every task's files (sock_owners is keyed by the kernel's struct sock *, which only BPF sees).
 * The probe is attached first, so a socket created meanwhile gets its owner from its own transition.
 */
function seedSocketOwners(session: BpfSession, warn: (message: string) => void): void {
  for (const owner of findListenerOwners()) {
    const { key, value } = encodeListenerOwner(owner);
    session.native.mapUpdate(session.handle, 'listen_owners', key, value);
  }
  try {
    session.native.runIterator(session.handle, 'seed_socket_owners');
  } catch (err) {
    warn(`tcp_state: the owners of existing TCP connections are unknown (${errorMessage(err)}): their changes in softirq are skipped`);
  }
}

/** openFramesFile creates the --frames side file (not evidence: unsigned, for humans and rtev query). */
function openFramesFile(file: string): number {
  try {
    return fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_NOFOLLOW, 0o600);
  } catch (err) {
    throw new RtevError('OUTPUT', `cannot write --frames file ${file}`, { cause: err });
  }
}

function containerSelector(parsed: ParsedArgs, cgroupFilter: boolean): ContainerSelector {
  const selector: ContainerSelector = {};
  const containers = parsed.lists.get('container');
  const images = parsed.lists.get('image');
  if (containers) selector.containers = containers;
  if (images) selector.images = images;
  if (parsed.flags.has('containers-only')) selector.containersOnly = true;
  if (parsed.flags.has('host-only')) selector.hostOnly = true;
  try {
    validateSelector(selector);
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  if (cgroupFilter && !isEmptySelector(selector)) throw new UsageError('--cgroup cannot be combined with container selection');
  return selector;
}

function enricherOptions(parsed: ParsedArgs): EnricherOptions {
  const options: EnricherOptions = {};
  setIf(parsed, 'docker-socket', (v) => { options.dockerSocket = v; });
  setIf(parsed, 'containerd-socket', (v) => { options.containerdSocket = v; });
  const roots = parsed.lists.get('storage-root');
  if (roots) options.storageRoots = roots;
  return options;
}

/**
 * selectContainers pushes the container selection into the kernel's cgroup filter before
 * collection starts, then keeps it current so containers started later are picked up.
 */
async function selectContainers(enricher: Enricher, selector: ContainerSelector, session: BpfSession, io: CliIO): Promise<{ close(): void } | undefined> {
  if (isEmptySelector(selector)) return enricher.watchSelection({}, () => {}, { intervalMs: 2000 });
  let current: bigint[] = [];
  const apply = (selection: CgroupSelection): void => {
    session.setCgroupFilter(selection.cgroupIds, current);
    current = selection.cgroupIds;
  };
  const first = await enricher.selectCgroups(selector);
  apply(first);
  for (const entry of first.unmatched) io.stderr.write(`rtev: warning: no running container matches '${entry}' yet; it is picked up when it starts\n`);
  return enricher.watchSelection(selector, apply, {
    intervalMs: 1000,
    onError: (err) => io.stderr.write(`rtev: warning: container selection not refreshed: ${err instanceof Error ? err.message : String(err)}\n`),
  });
}

/**
 * warmUp resolves the cgroups that exist now before the rings start, so a burst of events
 * at start does not have to wait for (or overflow the queue of) records held for attribution.
 */
async function warmUp(enricher: Enricher): Promise<void> {
  const ids: bigint[] = [];
  const walk = (dir: string, depth: number): void => {
    if (ids.length >= 256 || depth > 8) return;
    try {
      ids.push(fs.statSync(dir, { bigint: true }).ino);
      for (const d of fs.readdirSync(dir, { withFileTypes: true })) if (d.isDirectory()) walk(path.join(dir, d.name), depth + 1);
    } catch {
      // removed while walking
    }
  };
  walk(fs.existsSync('/sys/fs/cgroup/unified/cgroup.procs') ? '/sys/fs/cgroup/unified' : '/sys/fs/cgroup', 0);
  await Promise.all(ids.map((id) => enricher.whenSettled(id, 3000)));
}

function enrichmentLine(enricher: Enricher, pipeline: Pipeline): string {
  const c = enricher.counters();
  const errors = Object.entries(c.errors).map(([k, v]) => `${k} ${v}`).join(', ');
  return `rtev: containers: ${c.resolved} resolved, ${c.resolvedNoDigest} without image digest, ${c.unresolved} unresolved cgroups; ` +
    `${pipeline.unattributed} records written before attribution finished${errors ? `; errors: ${errors}` : ''}`;
}

function setIf(parsed: ParsedArgs, name: string, apply: (value: string) => void): void {
  const value = parsed.values.get(name);
  if (value !== undefined) apply(value);
}

/** functionTargets collects the --function specs and those of the --functions file. */
function functionTargets(parsed: ParsedArgs): string[] {
  const specs = [...(parsed.lists.get('function') ?? [])];
  const file = parsed.values.get('functions');
  if (file !== undefined) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new UsageError(`--functions: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    specs.push(...parseFunctionsFile(text));
  }
  if (file !== undefined && specs.length === 0) throw new UsageError(`--functions: ${file} lists no function`);
  return specs;
}

/** parseProbes validates --probes; function targets imply function_call, which needs them. */
function parseProbes(list: string | undefined, haveFunctions: boolean): ProbeName[] {
  const chosen = parseProbeList(list);
  if (haveFunctions && !chosen.includes('function_call')) chosen.push('function_call');
  if (!haveFunctions && chosen.includes('function_call')) {
    throw new UsageError('probe function_call needs targets', "give --function BINARY:SYMBOL (e.g. 'libssl.so.3:SSL_read') or --functions FILE");
  }
  return PROBE_NAMES.filter((p) => chosen.includes(p));
}

function parseProbeList(list: string | undefined): ProbeName[] {
  if (list === undefined) return [...DEFAULT_PROBES];
  const available = KERNEL_PROBES.map((p) => p.name);
  const names = list.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  for (const name of names) {
    if (!(available as string[]).includes(name)) {
      throw new UsageError(`unknown probe '${name}'`, `valid probes: ${available.join(', ')}`);
    }
  }
  if (names.length === 0) throw new UsageError('--probes is empty', `valid probes: ${available.join(', ')}`);
  return PROBE_NAMES.filter((p) => names.includes(p));
}

function ringSize(text: string | undefined, fallback: number, option: string): number {
  if (text === undefined) return fallback;
  const size = parseSize(text, option);
  if (size < 4096 || (size & (size - 1)) !== 0 || size > 1 << 30) {
    throw new UsageError(`--${option}: ${text} must be a power of two from 4K to 1G`);
  }
  return size;
}

/** cgroupId accepts a cgroup v2 id or a path (absolute, or relative to the cgroup2 mount). */
function cgroupId(text: string): bigint {
  if (/^\d+$/.test(text)) return BigInt(text);
  const candidates = text.startsWith('/sys/fs/cgroup') ? [text] : [
    path.join('/sys/fs/cgroup/unified', text), path.join('/sys/fs/cgroup', text),
  ];
  for (const candidate of candidates) {
    try {
      const st = fs.statSync(candidate, { bigint: true });
      if (st.isDirectory()) return st.ino;
    } catch {
      // try the next
    }
  }
  throw new UsageError(`--cgroup: no cgroup v2 directory '${text}'`, 'give a path under /sys/fs/cgroup/unified or a numeric cgroup id');
}

/** configArgs turns a JSON config file into option arguments placed before the command line's. */
function configArgs(file: string): string[] {
  let text: string;
  try {
    const st = fs.statSync(file);
    if (!st.isFile() || st.size > 1 << 20) throw new Error('not a regular file under 1 MiB');
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new RtevError('CONFIG', `cannot read config file ${file}`, { cause: err });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new RtevError('CONFIG', `config file ${file} is not valid JSON`, { cause: err });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RtevError('CONFIG', `config file ${file} must hold a JSON object of options`);
  }
  const out: string[] = [];
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    const spec = OPTIONS.find((o) => o.name === key);
    if (spec === undefined || key === 'config') {
      throw new RtevError('CONFIG', `config file ${file}: unknown option '${key}'`, { hint: "use the long option names of 'rtev collect --help'" });
    }
    const bad = (): RtevError => new RtevError('CONFIG', `config file ${file}: option '${key}' has the wrong type`);
    if (spec.kind === 'flag') {
      if (typeof v !== 'boolean') throw bad();
      if (v) out.push(`--${key}`);
    } else if (spec.kind === 'list') {
      const items = Array.isArray(v) ? v : [v];
      for (const item of items) {
        if (typeof item !== 'string' && typeof item !== 'number') throw bad();
        out.push(`--${key}`, String(item));
      }
    } else {
      if (key === 'probes' && Array.isArray(v)) out.push('--probes', v.join(','));
      else if (typeof v === 'string' || typeof v === 'number') out.push(`--${key}`, String(v));
      else throw bad();
    }
  }
  return out;
}

/** processTree lists pid and its current descendants from /proc (children files). */
function processTree(root: number): number[] {
  const result: number[] = [];
  const queue = [root];
  while (queue.length > 0 && result.length < 65536) {
    const pid = queue.shift()!;
    result.push(pid);
    let tasks: string[] = [];
    try {
      tasks = fs.readdirSync(`/proc/${pid}/task`);
    } catch {
      continue; // exited
    }
    for (const tid of tasks) {
      try {
        const children = fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8');
        for (const c of children.split(' ')) if (/^\d+$/.test(c)) queue.push(Number(c));
      } catch {
        // thread exited
      }
    }
  }
  return result;
}

/**
 * startObserved runs CMD so that it is traced from its first instruction: a shell waits on
 * fd 3 until the collector has put its pid in the traced set, then execs CMD.
 */
function startObserved(command: string[], session: BpfSession): { child: ChildProcess; exit: Promise<number> } {
  const gate = 'read _ <&3; exec 3<&-; exec "$@"';
  const child = spawn('/bin/sh', ['-c', gate, 'rtev-gate', ...command], { stdio: ['inherit', 'inherit', 'inherit', 'pipe'] });
  const exit = new Promise<number>((resolve) => {
    child.on('error', () => resolve(127));
    child.on('exit', (code, signal) => resolve(code ?? 128 + signalNumber(signal)));
  });
  if (child.pid !== undefined) {
    session.traceProcess(child.pid, TRACE_TREE);
    const gatePipe = child.stdio[3] as NodeJS.WritableStream | null;
    gatePipe?.end('go\n');
  }
  return { child, exit };
}

function signalNumber(signal: NodeJS.Signals | null): number {
  if (signal === null) return 0;
  return (require('node:os').constants.signals as Record<string, number>)[signal] ?? 0;
}

class StopSignal {
  stop: () => void = () => {};
  readonly stopped = new Promise<void>((resolve) => { this.stop = resolve; });
}

function buildLedger(session: BpfSession, pipeline: Pipeline | undefined): Ledger {
  const kernel = session.counters();
  const ledger: Ledger = {};
  for (const probe of session.attachedProbes) {
    ledger[probe] = {
      kernel: kernel[probe],
      user: pipeline ? { ...pipeline.user[probe] } : { received: 0n, written: 0n, filtered: 0n, rejected: 0n, shed: 0n },
    };
  }
  return ledger;
}

function sha256File(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function producerInfo(objectPath: string, plan: CollectPlan, probes: ProbeName[]): ProducerInfo {
  const filters = {
    pids: plan.pids, trees: plan.trees, cgroups: plan.cgroups.map(String), command: plan.command.length > 0,
    include_paths: plan.pathFilter.include, exclude_paths: plan.pathFilter.exclude, include_failed_opens: plan.recordFailedOpens,
  };
  const config = { probes, filters, ring_bytes: plan.bulkRingBytes, rare_ring_bytes: plan.rareRingBytes };
  return {
    collectorVersion: packageVersion(),
    bpfObjectSha256: sha256File(objectPath),
    btf: { path: BTF_PATH, sha256: sha256File(BTF_PATH) },
    filters,
    configSha256: createHash('sha256').update(canonicalize(config)).digest('hex'),
    probes,
  };
}

function summaryLine(ledger: Ledger, sink: RecordSink, elapsedMs: number, output: OutputOptions): string {
  let written = 0n;
  let lost = 0n;
  const parts: string[] = [];
  for (const [probe, l] of Object.entries(ledger)) {
    written += l.user.written;
    lost += l.kernel.ringFull + l.user.rejected + l.user.shed;
    parts.push(`${probe} ${l.user.written}`);
  }
  const where = output.stdout ? 'stdout' : output.outDir;
  return `rtev: ${written} records (${parts.join(', ')}) in ${(elapsedMs / 1000).toFixed(1)}s, ${lost} lost, ` +
    `${sink.bytesWritten} bytes to ${where}`;
}
