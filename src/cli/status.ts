import { probeLost, type Ledger } from '../model/ledger';

/** StatusLine redraws one line on a terminal: events/s per type, drops, output size. */
export class StatusLine {
  readonly #out: NodeJS.WritableStream;
  readonly #enabled: boolean;
  #previous = new Map<string, bigint>();
  #previousAt = 0;
  #drawn = false;

  constructor(out: NodeJS.WritableStream, enabled: boolean) {
    this.#out = out;
    this.#enabled = enabled;
  }

  update(ledger: Ledger, bytes: number, elapsedMs: number): void {
    if (!this.#enabled) return;
    const seconds = Math.max(0.001, (elapsedMs - this.#previousAt) / 1000);
    const rates: string[] = [];
    let lost = 0n;
    for (const [probe, l] of Object.entries(ledger)) {
      const before = this.#previous.get(probe) ?? 0n;
      rates.push(`${probe} ${formatRate(Number(l.user.written - before) / seconds)}/s`);
      this.#previous.set(probe, l.user.written);
      lost += probeLost(l);
    }
    this.#previousAt = elapsedMs;
    this.#out.write(`\r\x1b[K${rates.join('  ')}  lost ${lost}  ${formatBytes(bytes)}`);
    this.#drawn = true;
  }

  clear(): void {
    if (this.#drawn) this.#out.write('\r\x1b[K');
    this.#drawn = false;
  }
}

function formatRate(n: number): string {
  return n >= 1000 ? `${(n / 1000).toFixed(1)}k` : n.toFixed(0);
}

function formatBytes(n: number): string {
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}
