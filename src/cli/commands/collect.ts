import { readBoundedText } from '../../platform/lines';
import { RtevError, UsageError, errorMessage } from '../../errors';
import { Collector, type CollectResult, type CollectorConfig, type CollectorReady } from '../../ingest/collector';
import { parseFunctionMode } from '../../ingest/function-probes';
import { parseFileOpenMode } from '../../ingest/pipeline';
import { DEFAULT_ORDER_WINDOW_MS } from '../../ingest/order';
import { resolveCgroupId } from '../../ingest/host';
import { DEFAULT_PROBES, selectProbes } from '../../ingest/probes';
import { isEmptySelector, validateSelector, type ContainerSelector, type EnricherOptions } from '../../enrich';
import { DEFAULT_FLUSH_INTERVAL_MS } from '../../store/stream-sink';
import type { OutputOptions } from '../../store/sink';
import { checkCommand, MAX_TIMER_MS, parseArgs, parseDuration, parseInteger, parseSize, refuseWith, usageText, type OptionSpec, type ParsedArgs } from '../args';
import { configArgs } from '../config-file';
import type { CliIO, Command } from '../io';
import { ExitCode } from '../exit-codes';
import { StatusLine, lossWarning, summaryLine, tlsCoverageLine } from '../status';

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
  { name: 'file-open-mode', kind: 'string', value: 'MODE', help: 'all (default) or first-seen: one file_open per cgroup, pid, path and access per chunk' },
  { name: 'function', kind: 'list', value: 'TARGET', help: 'record calls of BINARY:SYMBOL or PURL:SYMBOL (glob; repeatable; implies function_call)' },
  { name: 'frames', kind: 'string', value: 'FILE', help: 'write the symbolized stack of every function_call to FILE (read with rtev query --frames)' },
  { name: 'functions', kind: 'string', value: 'FILE', help: 'JSON list of function targets (docs/function-calls.md)' },
  { name: 'function-mode', kind: 'string', value: 'MODE', help: 'first-seen (default: one record per pid, function and stack, every call counted) or all' },
  { name: 'ring-size', kind: 'string', value: 'BYTES', help: 'kernel ring for file opens (default 16M; power of 2)' },
  { name: 'rare-ring-size', kind: 'string', value: 'BYTES', help: 'kernel ring for other events (default 4M; power of 2)' },
  { name: 'key', kind: 'string', value: 'FILE', help: 'Ed25519 private key to sign chunks with' },
  { name: 'chunk-size', kind: 'string', value: 'BYTES', help: 'seal a chunk at this size (default 16M, at most 63M)' },
  { name: 'chunk-age', kind: 'string', value: 'D', help: 'seal a chunk at this age' },
  { name: 'retain-size', kind: 'string', value: 'BYTES', help: 'remove the oldest chunks beyond this total size' },
  { name: 'retain-age', kind: 'string', value: 'D', help: 'remove chunks older than this' },
  { name: 'retain-unshipped', kind: 'flag', help: 'retention may remove chunks rtev ship has not had acknowledged (the signed checkpoint names them)' },
  { name: 'flush-interval', kind: 'string', value: 'D', help: `--stdout: write a record at most D after it was put in time order (default ${DEFAULT_FLUSH_INTERVAL_MS}ms)` },
  { name: 'order-window', kind: 'string', value: 'D', help: `merge the two kernel rings in ts_ns order, holding records up to 3 x D (default ${DEFAULT_ORDER_WINDOW_MS}ms; 0: no hold)` },
  { name: 'command-stdout', kind: 'string', value: 'FILE', help: "write CMD's standard output to FILE (with --stdout it goes to rtev's stderr by default)" },
  { name: 'fail-on-loss', kind: 'flag', help: `exit ${ExitCode.LOSS} when any record was lost (and CMD, if any, succeeded)` },
  { name: 'metrics', kind: 'string', value: 'ADDR', help: 'serve Prometheus metrics on ADDR (e.g. 127.0.0.1:9464; docs/fleet.md)' },
  { name: 'quiet', kind: 'flag', help: 'no status line and no summary' },
  { name: 'verbose', kind: 'flag', help: 'print libbpf and verifier messages, a line once collection is ready, and the container, uprobe and order counters at the end' },
];

export const collectCommand: Command = {
  summary: 'record evidence with eBPF probes (system-wide, or one command and its children)',
  usage: usageText('usage: rtev collect [--out DIR | --stdout] [--duration D] [--probes LIST] [--config FILE] [-- CMD ARGS...]', OPTIONS),
  run: runCollect,
};

/** runCollect: the options, one Collector run (src/ingest/collector.ts), and its summary. */
async function runCollect(args: string[], io: CliIO): Promise<number> {
  const { config, quiet, failOnLoss, metricsAddr } = planFromArgs(args);
  // an observed command sharing the terminal would write into the middle of a status line
  const status = new StatusLine(io.stderr, !quiet && io.stderr.isTTY === true && config.command.length === 0);
  const metrics = metricsAddr === undefined ? undefined : await startCollectMetrics(metricsAddr);
  const collector = new Collector(config, {
    warn: (m) => { status.clear(); io.stderr.write(`rtev: warning: ${m}\n`); },
    notice: (m) => { status.clear(); io.stderr.write(`rtev: ${m}\n`); },
    onProgress: (p) => {
      status.update(p.ledger, p.bytesWritten, p.elapsedMs);
      metrics?.update(p.ledger as never, p.chunksSealed);
    },
    // (tests wait for this line before they measure the collector: test/reliability/process-churn.test.ts)
    ...(config.verbose ? {
      onReady: (r: CollectorReady) => {
        status.clear();
        io.stderr.write(`rtev: ready after ${r.startupMs} ms: ${r.probes.length} probes attached, rings running${r.packageDatabases ? ', package databases read' : ''}\n`);
      },
    } : {}),
  });
  let result: CollectResult;
  try {
    result = await collector.run();
  } finally {
    status.clear();
  }
  // the reader of --stdout went away (`| head`): quietly, with the status `rtev query | head` gives
  // (docs/cli.md, "Pipes"); the observed command, if any, was signalled and reaped already
  if (result.outputClosed) return ExitCode.PIPE_CLOSED;
  const loss = lossWarning(result.ledger, {
    bulkRingBytes: config.bulkRingBytes, rareRingBytes: config.rareRingBytes, stdout: config.output.stdout, unwritten: result.unwritten ?? 0n,
  });
  if (!quiet) {
    io.stderr.write(summaryLine(result.ledger, result.bytesWritten, result.elapsedMs, config.output.stdout ? 'stdout' : config.output.outDir!) + orderNote(result.order) + '\n');
    if (result.functions !== undefined) io.stderr.write(`rtev: ${result.functions}\n`);
    if (result.uprobes !== undefined && config.probes.includes('ssl_op')) io.stderr.write(tlsCoverageLine(result.uprobes) + '\n');
    if (config.verbose && result.enrichment !== undefined) io.stderr.write(enrichmentLine(result.enrichment) + '\n');
    if (config.verbose && result.order !== undefined) {
      const o = result.order;
      io.stderr.write(`rtev: order: at most ${o.maxRecords} records, ${formatBytes(o.maxBytes)} held for ts_ns order; ${o.late} written late (out of order), ${o.forced} released early by the size bound\n`);
    }
    if (config.verbose && result.uprobes !== undefined) io.stderr.write(`rtev: uprobes: ${JSON.stringify(result.uprobes)}\n`);
  }
  if (loss !== undefined) io.stderr.write(`rtev: warning: ${loss}\n`);
  if (result.exitCode === 0 && failOnLoss && loss !== undefined) return ExitCode.LOSS;
  return result.exitCode;
}

/**
 * orderNote: the end of the summary line when the ts_ns merge wrote records out of order or
 * released some before their time (empty otherwise; --verbose has the merge's whole line).
 * These counts are not in the chunk predicates: a chunk's records.first_ts_ns/min_ts_ns and
 * last_ts_ns/max_ts_ns differ when it holds records out of order (docs/format.md, "Record order").
 */
export function orderNote(order: CollectResult['order']): string {
  if (order === undefined || (order.late === 0 && order.forced === 0)) return '';
  const parts: string[] = [];
  if (order.late > 0) parts.push(`${order.late} written out of ts_ns order (later than the --order-window)`);
  if (order.forced > 0) parts.push(`${order.forced} released early (the merge's size bound)`);
  return `; ${parts.join(', ')}`;
}

/** startCollectMetrics serves /metrics (prom-client, loaded only when asked for). */
async function startCollectMetrics(addr: string): Promise<{ update(ledger: never, sealed: number): void }> {
  const m = require('../../fleet/metrics') as typeof import('../../fleet/metrics');
  const metrics = new m.Metrics(require('../../platform/paths').packageVersion());
  await m.serveMetrics(addr, metrics);
  return new m.CollectMetrics(metrics);
}

/** planFromArgs validates the command line (and config file) into a plan. */
function planFromArgs(args: string[]): { config: CollectorConfig; quiet: boolean; failOnLoss: boolean; metricsAddr: string | undefined } {
  let parsed = parseArgs(args, OPTIONS);
  const configFile = parsed.values.get('config');
  if (configFile !== undefined) parsed = parseArgs([...configArgs(configFile, OPTIONS), ...args], OPTIONS);
  const functions = functionTargets(parsed);
  const probes = selectProbes(parsed.values.get('probes'), functions.length > 0);
  if (parsed.flags.has('stdout') && parsed.values.has('out')) {
    throw new UsageError('--out and --stdout exclude each other', 'use --out DIR for signed evidence, or --stdout for plain NDJSON records');
  }
  refuseWith(parsed, 'stdout', ['key', 'chunk-size', 'chunk-age', 'retain-size', 'retain-age'], 'records on standard output are neither signed nor chunked',
    'drop them, or write signed evidence with --out DIR');
  checkCommand(parsed.command);
  const output: OutputOptions = { stdout: parsed.flags.has('stdout') };
  if (!output.stdout) output.outDir = parsed.values.get('out') ?? 'rtev-evidence';
  setIf(parsed, 'key', (v) => { output.keyFile = v; });
  setIf(parsed, 'chunk-size', (v) => { output.chunkMaxBytes = parseSize(v, 'chunk-size'); });
  setIf(parsed, 'chunk-age', (v) => { output.chunkMaxAgeMs = parseDuration(v, 'chunk-age'); });
  setIf(parsed, 'retain-size', (v) => { output.retainMaxBytes = parseSize(v, 'retain-size'); });
  setIf(parsed, 'retain-age', (v) => { output.retainMaxAgeMs = parseDuration(v, 'retain-age'); });
  if (parsed.flags.has('retain-unshipped')) output.retainUnshipped = true;
  setIf(parsed, 'flush-interval', (v) => {
    if (!output.stdout) throw new UsageError('--flush-interval applies to --stdout only', 'under --out, records reach the chunk file at least once a second');
    output.flushIntervalMs = parseDuration(v, 'flush-interval');
    if (!(output.flushIntervalMs >= 1 && output.flushIntervalMs <= 60_000)) throw new UsageError(`--flush-interval: ${v} must be from 1ms to 60s`);
  });
  const duration = parsed.values.get('duration');
  const config: CollectorConfig = {
    probes,
    output,
    durationMs: duration === undefined ? undefined : parseDuration(duration, 'duration', MAX_TIMER_MS),
    command: parsed.command,
    pids: (parsed.lists.get('pid') ?? []).map((p) => parseInteger(p, 'pid', 1, 4194304)),
    trees: (parsed.lists.get('tree') ?? []).map((p) => parseInteger(p, 'tree', 1, 4194304)),
    cgroups: (parsed.lists.get('cgroup') ?? []).map(resolveCgroupId),
    pathFilter: { include: parsed.lists.get('include-path') ?? [], exclude: parsed.lists.get('exclude-path') ?? [] },
    recordFailedOpens: parsed.flags.has('include-failed-opens'),
    recordEmptySsl: parsed.flags.has('include-empty-ssl'),
    functions,
    functionMode: parseFunctionMode(parsed.values.get('function-mode')),
    fileOpenMode: parseFileOpenMode(parsed.values.get('file-open-mode')),
    containers: containerSelector(parsed, (parsed.lists.get('cgroup') ?? []).length > 0),
    enrich: !parsed.flags.has('no-enrich'),
    enricherOptions: enricherOptions(parsed),
    framesFile: parsed.values.get('frames'),
    bulkRingBytes: ringSize(parsed.values.get('ring-size'), 16 << 20, 'ring-size'),
    rareRingBytes: ringSize(parsed.values.get('rare-ring-size'), 4 << 20, 'rare-ring-size'),
    verbose: parsed.flags.has('verbose'),
  };
  setIf(parsed, 'command-stdout', (v) => { config.commandStdout = v; });
  setIf(parsed, 'order-window', (v) => {
    const ms = v === '0' ? 0 : parseDuration(v, 'order-window');
    if (!(ms >= 0 && ms <= 10_000)) throw new UsageError(`--order-window: ${v} must be from 0 to 10s`, 'e.g. --order-window 250ms (docs/format.md, "Record order")');
    config.orderWindowMs = ms;
  });
  if (config.commandStdout !== undefined && config.command.length === 0) throw new UsageError('--command-stdout needs a command', 'add -- CMD ARGS...');
  return { config, quiet: parsed.flags.has('quiet'), failOnLoss: parsed.flags.has('fail-on-loss'), metricsAddr: parsed.values.get('metrics') };
}

function containerSelector(parsed: ParsedArgs, cgroupFilter: boolean): ContainerSelector {
  const selector: ContainerSelector = {};
  const containers = parsed.lists.get('container');
  const images = parsed.lists.get('image');
  if (containers) selector.containers = containers;
  if (images) selector.images = images;
  if (parsed.flags.has('containers-only')) selector.containersOnly = true;
  if (parsed.flags.has('host-only')) selector.hostOnly = true;
  validateSelector(selector); // a SelectError: a usage error with its own fix (src/errors.ts)
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

function enrichmentLine(e: NonNullable<CollectResult['enrichment']>): string {
  const c = e.counters;
  const errors = Object.entries(c.errors).map(([k, v]) => `${k} ${v}`).join(', ');
  return `rtev: containers: ${c.resolved} resolved, ${c.resolvedNoDigest} without image digest, ${c.unresolved} unresolved cgroups; ` +
    `${e.unattributed} records written before attribution finished${errors ? `; errors: ${errors}` : ''}; ` +
    `hold: at most ${e.hold.maxRecords} records, ${formatBytes(e.hold.maxBytes)}, ${e.hold.maxMs} ms; ${e.hold.expired} past the time bound, ${e.hold.evicted} past the size bound` +
    (e.selection === undefined ? '' : `; selection: ${e.selection.kept} cgroups kept, ${e.selection.dropped} dropped (${e.selection.denied} in the kernel${e.selection.denyFull > 0 ? `, ${e.selection.denyFull} not: its filter map is full` : ''}; ${e.selection.pruned} gone and pruned from it${e.selection.pruneSkipped > 0 ? `, ${e.selection.pruneSkipped} prune passes skipped: the cgroup tree is too big to list` : ''})`);
}

function formatBytes(n: number): string {
  return n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / (1 << 20)).toFixed(1)} MiB`;
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
      text = readBoundedText(file, 16 << 20, '--functions file');
    } catch (err) {
      if (err instanceof RtevError) throw err; // a device or an oversized file: its own line and fix
      throw new UsageError(`--functions: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`);
    }
    const { parseFunctionsFile } = require('../../symbolize') as typeof import('../../symbolize');
    specs.push(...parseFunctionsFile(text));
  }
  if (file !== undefined && specs.length === 0) throw new UsageError(`--functions: ${file} lists no function`);
  return specs;
}

function ringSize(text: string | undefined, fallback: number, option: string): number {
  if (text === undefined) return fallback;
  const size = parseSize(text, option);
  if (size < 4096 || (size & (size - 1)) !== 0 || size > 1 << 30) {
    throw new UsageError(`--${option}: ${text} must be a power of two from 4K to 1G`, `e.g. --${option} 16M (4K, 8K, ... 512M, 1G)`);
  }
  return size;
}
