import * as fs from 'node:fs';
import { UsageError } from '../../errors';
import { Ingester } from '../../fleet/ingest';
import { Metrics, serveMetrics } from '../../fleet/metrics';
import { packageVersion } from '../../platform/paths';
import { parseArgs, parseDuration, parseInteger, usageText, type OptionSpec } from '../args';
import { ExitCode } from '../exit-codes';
import type { CliIO, Command } from '../io';

const OPTIONS: OptionSpec[] = [
  { name: 'nats', kind: 'string', value: 'URL[,URL...]', help: 'NATS servers (no password in the URL: use --nats-creds)' },
  { name: 'nats-creds', kind: 'string', value: 'FILE', help: 'NATS user credentials (.creds) or nkey seed file (mode 0600)' },
  { name: 'db', kind: 'string', value: 'URL', help: 'postgresql://USER@HOST/DB (password from PGPASSWORD or ~/.pgpass)' },
  { name: 'trust', kind: 'string', value: 'DIR', help: 'directory of trusted host public keys (*.pub)' },
  { name: 'once', kind: 'flag', help: 'drain what is queued, then exit' },
  { name: 'replicas', kind: 'string', value: 'N', help: 'JetStream replicas when creating the stream and bucket (default: cluster size, at most 3)' },
  { name: 'ack-wait', kind: 'string', value: 'D', help: 'redeliver a chunk not acknowledged within D (default 30s; set when the consumer is created)' },
  { name: 'gap-wait', kind: 'string', value: 'D', help: 'wait this long for a missing predecessor before recording a gap (default 10s)' },
  { name: 'db-sessions', kind: 'string', value: 'N', help: 'database sessions indexing chunks of different hosts at the same time (default 2)' },
  { name: 'metrics', kind: 'string', value: 'ADDR', help: 'serve Prometheus metrics on ADDR (e.g. 127.0.0.1:9466)' },
  { name: 'quiet', kind: 'flag', help: 'no progress lines on stderr' },
];

export const ingestCommand: Command = {
  summary: 'verify shipped chunks and index them into PostgreSQL (central)',
  usage: usageText(`usage: rtev ingest --nats URL --db postgresql://... --trust DIR [--once]

Consumes the fleet stream (a durable consumer several ingest processes share), verifies each
chunk (trusted signature, signed digest, the host's chain against the head kept in
PostgreSQL), indexes its records with COPY in one transaction per chunk and acknowledges
after the commit. Rejections, gaps and drops are recorded: see 'rtev fleet status'.`, OPTIONS),
  async run(args: string[], io: CliIO): Promise<number> {
    const parsed = parseArgs(args, OPTIONS, 0);
    const need = (name: string): string => {
      const v = parsed.values.get(name);
      if (v === undefined) throw new UsageError(`ingest needs --${name}`, "see 'rtev ingest --help'");
      return v;
    };
    const quiet = parsed.flags.has('quiet');
    const log = (line: string): void => {
      if (!quiet) io.stderr.write(`rtev: ${line}\n`);
    };
    const metrics = new Metrics(packageVersion());
    // RTEV_INGEST_TRACE=FILE: each chunk's steps with their times (bench/fleet.bench.ts reads it)
    const traceFile = process.env['RTEV_INGEST_TRACE'];
    const traced: string[] = [];
    const trace = traceFile !== undefined && traceFile !== '' ? (ev: string, seq: number, slot: number): void => {
      traced.push(`${performance.now().toFixed(2)} ${ev} ${seq} ${slot}`);
    } : undefined;
    const abort = new AbortController();
    const ingester = new Ingester({
      nats: { servers: need('nats'), credsFile: parsed.values.get('nats-creds'), name: 'rtev-ingest' },
      db: need('db'), trustDir: need('trust'), once: parsed.flags.has('once'), signal: abort.signal, log,
      replicas: parsed.values.has('replicas') ? parseInteger(parsed.values.get('replicas')!, 'replicas', 1, 5) : undefined,
      ackWaitMs: parseDuration(parsed.values.get('ack-wait') ?? '30s', 'ack-wait'),
      gapWaitMs: parseDuration(parsed.values.get('gap-wait') ?? '10s', 'gap-wait'),
      dbSessions: parseInteger(parsed.values.get('db-sessions') ?? '2', 'db-sessions', 1, 32),
      ...(trace !== undefined ? { trace } : {}),
      hooks: {
        chunk: (result, records) => {
          metrics.ingestChunks.inc({ result });
          if (records > 0) metrics.ingestRecords.inc(records);
        },
        lagSeconds: (s) => metrics.ingestLag.set(s),
        rowsBuiltBy: (by) => metrics.ingestRowBuilds.inc({ by }),
        linesParsed: (n) => metrics.ingestLinesParsed.inc(n),
      },
    });
    const server = parsed.values.has('metrics') ? await serveMetrics(parsed.values.get('metrics')!, metrics) : undefined;
    const stop = (): void => abort.abort();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      const s = await ingester.run();
      log(`ingest: ${s.indexed} chunk(s) indexed (${s.records} records), ${s.duplicates} duplicate(s), ${s.rejected} rejected`);
      return ExitCode.OK;
    } finally {
      if (trace !== undefined) {
        const elu = performance.eventLoopUtilization();
        traced.push(`${performance.now().toFixed(2)} elu ${(elu.active).toFixed(1)} ${(elu.idle).toFixed(1)}`);
        fs.writeFileSync(traceFile!, traced.join('\n') + '\n', { mode: 0o600 });
      }
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      server?.close();
    }
  },
};
