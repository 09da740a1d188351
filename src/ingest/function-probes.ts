import type { RawFunctionCall } from '../decode/decode';
import { RtevError, UsageError, errorMessage } from '../errors';
import type { EvidenceRecord, FunctionCallEvent } from '../model/record';
import type { CallDescription, FunctionCallCount, FirstSeenFilter, ResolvedTarget, Symbolizer } from '../symbolize';
import type { FunctionCallTotal } from '../store/sink';
import type { BpfSession, Link } from './session';

/** FunctionMode is the volume control of function_call records (docs/function-calls.md). */
export type FunctionMode = 'all' | 'first-seen';
export const FUNCTION_MODES: readonly FunctionMode[] = ['all', 'first-seen'];
export const DEFAULT_FUNCTION_MODE: FunctionMode = 'first-seen';

/** The entry program (bpf/function_call.h) and the BPF side's stack limit (RTEV_STACK_MAX). */
export const FUNCTION_ENTRY_PROGRAM = 'handle_function_entry';
export const FUNCTION_STACK_MAX = 32;

export interface FunctionProbeStats {
  targets: number;
  attached: number;
  attachFailures: number;
  /** calls whose cookie named no target (never expected) */
  unknownTarget: number;
  /** first-seen keys that did not fit in memory (those records were let through) */
  overflow: number;
}

export interface FunctionProbesOptions {
  specs: string[];
  mode?: FunctionMode;
  warn?: (message: string) => void;
  debugDirs?: string[];
}

/**
 * FunctionProbes attaches the function_call entry uprobe at every resolved `--function`
 * target (all processes; the kernel-side pid/cgroup filters apply), with the target's index
 * as the bpf cookie, and turns the raw records into `function_call` evidence. It keeps exact
 * call counts per target for the whole run (`counts()`, `totals()`), whatever the mode; the
 * chunk writer turns them into per-chunk counts and rotates the first-seen window at each
 * seal (`rotateWindow()`, docs/function-calls.md "Windows").
 *
 * @example
 *   const fp = await FunctionProbes.create(session, { specs: ['libssl.so.3:SSL_read'] });
 *   new Pipeline({ ..., buildFunctionCall: (c) => fp.build(c) });
 *   // ... at the end, before session.detachAll():
 *   fp.close();
 */
/**
 * symbolize: the symbolizer modules, loaded by the first run with function targets (19 modules a
 * run without --function does not compile: docs/benchmarks.md, "Session 4 (h22)").
 */
function symbolize(): typeof import('../symbolize') & Pick<typeof import('../symbolize/host'), 'nodeHost'> {
  return { ...(require('../symbolize') as typeof import('../symbolize')), nodeHost: (require('../symbolize/host') as typeof import('../symbolize/host')).nodeHost };
}

export class FunctionProbes {
  readonly mode: FunctionMode;
  readonly targets: ResolvedTarget[];
  readonly stats: FunctionProbeStats;
  readonly symbolizer: Symbolizer;
  readonly #session: BpfSession;
  readonly #links: Link[] = [];
  readonly #labels: string[];
  readonly #counts: FunctionCallCount[];
  readonly #filter: FirstSeenFilter | undefined;

  private constructor(session: BpfSession, targets: ResolvedTarget[], mode: FunctionMode, symbolizer: Symbolizer) {
    this.#session = session;
    this.targets = targets;
    this.mode = mode;
    this.symbolizer = symbolizer;
    this.#labels = targets.map((t) => `${t.path}:${t.symbol}`);
    this.#counts = this.#labels.map((label) => ({ function: label, calls: 0, emitted: 0, suppressed: 0 }));
    this.#filter = mode === 'first-seen' ? new (symbolize().FirstSeenFilter)() : undefined;
    this.stats = { targets: targets.length, attached: 0, attachFailures: 0, unknownTarget: 0, overflow: 0 };
  }

  /**
   * create resolves the specs (a spec matching nothing is a usage error) and attaches the
   * entry probe at each target. Throws BPF_ATTACH when no target could be attached.
   */
  static async create(session: BpfSession, opts: FunctionProbesOptions): Promise<FunctionProbes> {
    if (opts.specs.length === 0) throw new UsageError('no function targets', 'give --function BINARY:SYMBOL or --functions FILE');
    const warn = opts.warn ?? (() => {});
    const { ComponentResolver, Symbolizer, nodeHost, resolveTargets } = symbolize();
    const components = new ComponentResolver(nodeHost);
    const debugDirs = opts.debugDirs ?? ['/usr/lib/debug'];
    const { targets, warnings } = await resolveTargets(opts.specs, { components, debugDirs });
    for (const w of warnings) warn(w);
    const symbolizer = new Symbolizer({ components, debugDirs, maxStackDepth: FUNCTION_STACK_MAX });
    const fp = new FunctionProbes(session, targets, opts.mode ?? DEFAULT_FUNCTION_MODE, symbolizer);
    fp.#attach(warn);
    return fp;
  }

  #attach(warn: (message: string) => void): void {
    const session = this.#session;
    const failed = (t: ResolvedTarget, err: unknown): void => {
      this.stats.attachFailures++;
      warn(`function_call: cannot attach to ${t.symbol} in ${t.openPath} (${errorMessage(err)})`);
    };
    if (this.#session.uprobeMode === 'session') {
      // one uprobe_multi link per file (the target's index is its cookie): attached, and above all
      // detached, with one kernel call per file instead of one per function (docs/function-calls.md)
      const byFile = new Map<string, number[]>();
      this.targets.forEach((t, i) => byFile.set(t.openPath, [...(byFile.get(t.openPath) ?? []), i]));
      for (const [file, indexes] of byFile) {
        const attachMulti = (ids: number[]): Link => session.attachUprobeMulti(FUNCTION_ENTRY_PROGRAM, 'uprobe_multi', file,
          ids.map((i) => this.targets[i]!.fileOffset), ids.map((i) => BigInt(i)), -1);
        try {
          this.#links.push(attachMulti(indexes));
          this.stats.attached += indexes.length;
        } catch {
          // the kernel takes all of a link's offsets or none: find the ones it refuses, one by one
          for (const i of indexes) {
            try {
              this.#links.push(attachMulti([i]));
              this.stats.attached++;
            } catch (err) {
              failed(this.targets[i]!, err);
            }
          }
        }
      }
    } else {
      this.targets.forEach((t, i) => {
        try {
          this.#links.push(session.attachUprobe(FUNCTION_ENTRY_PROGRAM, false, -1, t.openPath, t.fileOffset, BigInt(i)));
          this.stats.attached++;
        } catch (err) {
          failed(t, err);
        }
      });
    }
    if (this.stats.attached === 0) {
      throw new RtevError('BPF_ATTACH', `function_call: no target could be attached (${this.targets.length} resolved)`, {
        hint: 'check the warnings above',
      });
    }
    this.#session.markAttached('function_call');
  }

  /**
   * build turns a raw record into evidence, or undefined when first-seen mode suppresses it
   * (the call is still counted). The leaf's symbol, library and node_hash fall back to the
   * target's when the process is gone before its maps could be read.
   */
  build(call: RawFunctionCall): EvidenceRecord | undefined {
    const index = call.targetId < BigInt(this.targets.length) ? Number(call.targetId) : -1;
    const target = index >= 0 ? this.targets[index] : undefined;
    if (target === undefined) this.stats.unknownTarget++;
    const counts = target !== undefined ? this.#counts[index] : undefined;
    if (counts !== undefined) counts.calls++;
    if (this.#filter !== undefined) {
      const fn = target !== undefined ? this.#labels[index]! : `?${call.targetId}`;
      const raw = [call.ip, ...call.stack].map((a) => a.toString(16));
      const before = this.#filter.overflow;
      const pass = this.#filter.offer(call.header.pid, fn, raw);
      this.stats.overflow += this.#filter.overflow - before;
      if (!pass) {
        if (counts !== undefined) counts.suppressed++;
        return undefined;
      }
    }
    if (counts !== undefined) counts.emitted++;
    const entryReturnAddr = call.stack[0];
    const d = this.symbolizer.describeCall(call.header.pid, undefined, call.ip, call.stack, {
      ...(entryReturnAddr === undefined ? {} : { entryReturnAddr }),
      ...(target === undefined ? {} : { calledFile: { ino: target.ino, path: target.path } }),
    });
    const event: FunctionCallEvent = { type: 'function_call', addr: d.addr, runtime: d.runtime, stack: d.stack };
    const symbol = d.symbol ?? target?.symbol;
    const library = d.library ?? target?.path;
    const nodeHash = d.node_hash ?? target?.nodeHash;
    if (symbol !== undefined) event.symbol = symbol;
    if (library !== undefined) event.library = library;
    if (nodeHash !== undefined) event.node_hash = nodeHash;
    const h = call.header;
    const record: EvidenceRecord = { ts_ns: h.ts_ns, src: 'uprobe:function_entry', pid: h.pid, tid: h.tid!, cgroup_id: h.cgroup_id!, comm: h.comm, event };
    this.onFrames?.(record, d);
    return record;
  }

  /** onFrames, when set, receives every emitted record with its symbolized frames (collect --frames). */
  onFrames: ((record: EvidenceRecord, description: CallDescription) => void) | undefined;

  /** counts returns the exact per-target call counts of the run so far. */
  counts(): FunctionCallCount[] {
    return this.#counts.map((c) => ({ ...c }));
  }

  /**
   * totals gives the cumulative counts per target in the form of the chunk predicate's
   * provider (OutputContext.functionCalls): `FILE:SYMBOL`, canonical symbol and node_hash.
   */
  totals(): FunctionCallTotal[] {
    return this.#counts.map((c, i) => {
      const t = this.targets[i]!;
      return { function: c.function, symbol: t.symbol, node_hash: t.nodeHash, calls: BigInt(c.calls), emitted: BigInt(c.emitted), suppressed: BigInt(c.suppressed) };
    });
  }

  /**
   * rotateWindow starts a new first-seen window: every (pid, function, stack) gives a record
   * again. The chunk writer calls it when it seals a chunk (OutputContext.onSeal), so the
   * window is the chunk's. A no-op in `all` mode. Counts are cumulative and not reset.
   */
  rotateWindow(): void {
    this.#filter?.rotateWindow();
  }

  /** summary is one line for the collect summary: `function_call: SYMBOL calls=N emitted=M; ...`. */
  summary(): string {
    const parts = this.#counts.map((c) => `${c.function} calls=${c.calls} emitted=${c.emitted}`);
    return `function_call (${this.mode}): ${parts.join('; ')}`;
  }

  /**
   * onExit drops a process's cached maps when its image ends. collect calls it for each
   * process_exec record (exec replaces every mapping; the ring carries no exit record): the
   * exec is in the same ring as the function calls, so calls of the new image that follow it
   * are symbolized against fresh maps. Calls whose maps were read too late (after an exec or a
   * pid reuse the ring had not shown yet) are caught by describeCall's calledFile check.
   */
  onExit(pid: number): void {
    this.symbolizer.forgetProcess(pid);
  }

  /** close detaches the probes; records already in the ring are still delivered. */
  close(): void {
    this.#session.closeLinks(this.#links.splice(0));
  }
}

/** parseFunctionMode validates `--function-mode`. */
export function parseFunctionMode(text: string | undefined): FunctionMode {
  if (text === undefined) return DEFAULT_FUNCTION_MODE;
  if (!(FUNCTION_MODES as readonly string[]).includes(text)) {
    throw new UsageError(`--function-mode: unknown mode '${text}'`, `valid modes: ${FUNCTION_MODES.join(', ')}`);
  }
  return text as FunctionMode;
}
