import * as http from 'node:http';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { UsageError } from '../errors';

/**
 * Prometheus metrics (prom-client) for `collect`, `ship` and `ingest --metrics ADDR`.
 * Names follow https://prometheus.io/docs/practices/naming: the `rtev_` prefix, `_total`
 * on counters, base units, no host label (Prometheus adds `instance`).
 */

export class Metrics {
  readonly registry = new Registry();
  readonly events = new Counter({ name: 'rtev_events_total', help: 'Records written, per probe', labelNames: ['probe'], registers: [this.registry] });
  readonly dropped = new Counter({ name: 'rtev_dropped_total', help: 'Records lost or removed, per probe and reason (ring_full, rejected, shed, filtered)', labelNames: ['probe', 'reason'], registers: [this.registry] });
  readonly chunksSealed = new Counter({ name: 'rtev_chunks_sealed_total', help: 'Evidence chunks sealed and signed', registers: [this.registry] });
  readonly shipPending = new Gauge({ name: 'rtev_ship_pending_chunks', help: 'Sealed chunks not yet acknowledged by the fleet transport', registers: [this.registry] });
  readonly shipChunks = new Counter({ name: 'rtev_ship_chunks_total', help: 'Chunks acknowledged by JetStream, by result (stored, duplicate)', labelNames: ['result'], registers: [this.registry] });
  readonly shipBytes = new Counter({ name: 'rtev_ship_bytes_total', help: 'Chunk body bytes shipped', registers: [this.registry] });
  readonly shipRetries = new Counter({ name: 'rtev_ship_retries_total', help: 'Failed ship attempts that were retried', registers: [this.registry] });
  readonly ingestChunks = new Counter({ name: 'rtev_ingest_chunks_total', help: 'Chunks handled by ingest, by result (indexed, duplicate, rejected, deferred, error)', labelNames: ['result'], registers: [this.registry] });
  readonly ingestRecords = new Counter({ name: 'rtev_ingest_records_total', help: 'Records committed to PostgreSQL', registers: [this.registry] });
  readonly ingestRowBuilds = new Counter({ name: 'rtev_ingest_row_builds_total', help: 'Chunks whose records went to the database as binary COPY rows (binary) or, for a body that path does not take, as text COPY rows (text)', labelNames: ['by'], registers: [this.registry] });
  readonly ingestLinesParsed = new Counter({ name: 'rtev_ingest_lines_parsed_total', help: 'Record lines the canonical-line scanner did not read exactly and ingest read with JSON.parse instead (same rows; non-canonical lines from a host)', registers: [this.registry] });
  readonly ingestLag = new Gauge({ name: 'rtev_ingest_lag_seconds', help: 'Seconds from the seal of the last indexed chunk to its commit', registers: [this.registry] });
  readonly buildInfo = new Gauge({ name: 'rtev_build_info', help: 'rtev version', labelNames: ['version'], registers: [this.registry] });

  constructor(version: string) {
    collectDefaultMetrics({ register: this.registry, prefix: 'rtev_' });
    this.buildInfo.set({ version }, 1);
  }
}

/** the cumulative ledger fields counted as drops, by reason label */
const DROP_REASONS = [['ring_full', 'kernel', 'ringFull'], ['rejected', 'user', 'rejected'], ['shed', 'user', 'shed'], ['filtered', 'user', 'filtered']] as const;

/**
 * CollectMetrics turns the collector's cumulative ledger (reported about once a second) into
 * counter increments: rtev_events_total{probe} counts written records,
 * rtev_dropped_total{probe,reason} lost (ring_full, rejected, shed) and filtered ones.
 */
export class CollectMetrics {
  readonly #seen = new Map<string, bigint>();
  #sealed = 0;

  constructor(readonly metrics: Metrics) {}

  update(ledger: Record<string, { kernel: Record<string, bigint>; user: Record<string, bigint> }>, chunksSealed: number): void {
    for (const [probe, l] of Object.entries(ledger)) {
      this.#add(`${probe}\0events`, l.user['written'] ?? 0n, (d) => this.metrics.events.inc({ probe }, d));
      for (const [reason, side, field] of DROP_REASONS) {
        this.#add(`${probe}\0${reason}`, l[side][field] ?? 0n, (d) => this.metrics.dropped.inc({ probe, reason }, d));
      }
    }
    if (chunksSealed > this.#sealed) this.metrics.chunksSealed.inc(chunksSealed - this.#sealed);
    this.#sealed = chunksSealed;
  }

  #add(key: string, total: bigint, inc: (delta: number) => void): void {
    const before = this.#seen.get(key);
    // a zero is exported too, so that every probe's series exists from the start
    if (before === undefined || total > before) inc(Number(total - (before ?? 0n)));
    this.#seen.set(key, total);
  }
}

/** parseListenAddr accepts PORT, :PORT, HOST:PORT or [V6]:PORT. */
export function parseListenAddr(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:]+)\]|([^:[\]]*))?:?(\d{1,5})$/.exec(text.trim());
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || !(port >= 0 && port <= 65535)) throw new UsageError(`--metrics: '${text}' is not an address`, 'use e.g. 127.0.0.1:9464 or :9464');
  return { host: m[1] ?? (m[2] !== undefined && m[2] !== '' ? m[2] : '127.0.0.1'), port };
}

/** serveMetrics answers GET /metrics on ADDR; returns the server (close it on exit). */
export async function serveMetrics(addr: string, metrics: Metrics): Promise<http.Server> {
  const { host, port } = parseListenAddr(addr);
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url !== '/metrics' && req.url !== '/')) {
      res.writeHead(404).end();
      return;
    }
    metrics.registry.metrics().then((text) => {
      res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(text);
    }, () => res.writeHead(500).end());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new UsageError(`--metrics: cannot listen on ${addr}: ${(err as Error).message}`)));
    server.listen(port, host, () => resolve());
  });
  server.unref();
  return server;
}
