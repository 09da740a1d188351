import { spawn, type ChildProcess } from 'node:child_process';
import * as os from 'node:os';
import { TRACE_TREE, type BpfSession } from './session';

/** How long an observed command may take to exit after it was signalled before it is killed. */
export const DEFAULT_STOP_GRACE_MS = 5000;

/**
 * ObservedCommand runs `-- CMD` so that it is traced from its first instruction: a shell waits
 * on fd 3 until the collector has put its pid in the traced set, then execs CMD. The command is
 * always signalled and reaped: stop() sends SIGTERM and, after a grace period, SIGKILL, and
 * resolves with its exit status; if rtev exits any other way (an uncaught error), an exit hook
 * kills it. Only a SIGKILL of rtev itself can leave it running.
 */
export class ObservedCommand {
  readonly #child: ChildProcess;
  /** the command's exit code, 128+N when killed by signal N, 127 when it could not start */
  readonly exit: Promise<number>;
  #exited = false;
  #killTimer: NodeJS.Timeout | undefined;
  readonly #onProcessExit = (): void => {
    if (!this.#exited) this.#child.kill('SIGKILL');
  };

  private constructor(child: ChildProcess) {
    this.#child = child;
    this.exit = new Promise<number>((resolve) => {
      child.on('error', () => {
        this.#done();
        resolve(127);
      });
      child.on('exit', (code, signal) => {
        this.#done();
        resolve(code ?? 128 + signalNumber(signal));
      });
    });
    process.on('exit', this.#onProcessExit);
  }

  /**
   * start spawns the command. `stdout` is where its standard output goes: inherited, or a file
   * descriptor (rtev's stderr under --stdout, or --command-stdout FILE).
   */
  static start(command: string[], session: BpfSession, stdout: 'inherit' | number = 'inherit'): ObservedCommand {
    const gate = 'read _ <&3; exec 3<&-; exec "$@"';
    const child = spawn('/bin/sh', ['-c', gate, 'rtev-gate', ...command], { stdio: ['inherit', stdout, 'inherit', 'pipe'] });
    const observed = new ObservedCommand(child);
    if (child.pid !== undefined) {
      session.traceProcess(child.pid, TRACE_TREE);
      const gatePipe = child.stdio[3] as NodeJS.WritableStream | null;
      gatePipe?.end('go\n');
    }
    return observed;
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  get running(): boolean {
    return !this.#exited && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /**
   * signal passes a signal on (the terminal may have sent it to the command too); the command
   * then has `graceMs` to exit before SIGKILL. A second signal kills it at once.
   */
  signal(signal: NodeJS.Signals, graceMs = DEFAULT_STOP_GRACE_MS): void {
    if (!this.running) return;
    if (this.#killTimer !== undefined) {
      this.#child.kill('SIGKILL');
      return;
    }
    this.#child.kill(signal);
    this.#killTimer = setTimeout(() => { if (this.running) this.#child.kill('SIGKILL'); }, graceMs);
  }

  /** stop ends the command (SIGTERM, then SIGKILL after graceMs) and resolves once it is reaped. */
  async stop(graceMs = DEFAULT_STOP_GRACE_MS): Promise<number> {
    if (this.running && this.#killTimer === undefined) this.signal('SIGTERM', graceMs);
    return this.exit;
  }

  #done(): void {
    this.#exited = true;
    if (this.#killTimer !== undefined) clearTimeout(this.#killTimer);
    process.off('exit', this.#onProcessExit);
  }
}

function signalNumber(signal: NodeJS.Signals | null): number {
  if (signal === null) return 0;
  return (os.constants.signals as Record<string, number>)[signal] ?? 0;
}
