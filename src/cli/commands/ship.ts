import { UsageError } from '../../errors';
import { Metrics, serveMetrics } from '../../fleet/metrics';
import { Shipper } from '../../fleet/ship';
import { packageVersion } from '../../platform/paths';
import { parseArgs, parseDuration, parseInteger, usageText, type OptionSpec } from '../args';
import { ExitCode } from '../exit-codes';
import type { CliIO, Command } from '../io';

const OPTIONS: OptionSpec[] = [
  { name: 'nats', kind: 'string', value: 'URL[,URL...]', help: 'NATS servers (no password in the URL: use --nats-creds)' },
  { name: 'nats-creds', kind: 'string', value: 'FILE', help: 'NATS user credentials (.creds) or nkey seed file (mode 0600)' },
  { name: 'follow', kind: 'flag', help: 'keep shipping chunks as they are sealed (until SIGINT/SIGTERM)' },
  { name: 'poll', kind: 'string', value: 'D', help: 'with --follow, how often to look for new chunks (default 500ms)' },
  { name: 'resend-from', kind: 'string', value: 'SEQ', help: 'ship the chunks from SEQ on again, under new message ids (after rtev fleet accept-chain, or to fill gaps a crash of every NATS node left)' },
  { name: 'metrics', kind: 'string', value: 'ADDR', help: 'serve Prometheus metrics on ADDR (e.g. 127.0.0.1:9465)' },
  { name: 'quiet', kind: 'flag', help: 'no progress lines on stderr' },
];

export const shipCommand: Command = {
  summary: 'ship sealed evidence chunks to the fleet (NATS JetStream)',
  usage: usageText(`usage: rtev ship DIR --nats URL[,URL...] [--follow] [--nats-creds FILE]

Ships every sealed chunk of DIR not yet acknowledged: the body to the JetStream Object
Store, the signed envelope to the host's subject (a repeat is a duplicate). Progress is kept
in DIR/.rtev-ship.json. Without --follow it exits 0 once every sealed chunk is acknowledged.`, OPTIONS),
  async run(args: string[], io: CliIO): Promise<number> {
    const parsed = parseArgs(args, OPTIONS, 1);
    const dir = parsed.positionals[0];
    if (dir === undefined) throw new UsageError('ship needs an evidence directory', 'rtev ship DIR --nats URL');
    const servers = parsed.values.get('nats');
    if (servers === undefined) throw new UsageError('ship needs --nats URL', 'e.g. --nats nats://127.0.0.1:4222');
    const quiet = parsed.flags.has('quiet');
    const log = (line: string): void => {
      if (!quiet) io.stderr.write(`rtev: ${line}\n`);
    };
    const metrics = new Metrics(packageVersion());
    const server = parsed.values.has('metrics') ? await serveMetrics(parsed.values.get('metrics')!, metrics) : undefined;
    const abort = new AbortController();
    const stop = (): void => abort.abort();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      const shipper = new Shipper({
        dir, follow: parsed.flags.has('follow'), signal: abort.signal, log,
        nats: { servers, credsFile: parsed.values.get('nats-creds'), name: 'rtev-ship' },
        ...(parsed.values.has('poll') ? { pollMs: parseDuration(parsed.values.get('poll')!, 'poll') } : {}),
        ...(parsed.values.has('resend-from') ? { resendFrom: parseInteger(parsed.values.get('resend-from')!, 'resend-from', 1, Number.MAX_SAFE_INTEGER) } : {}),
        hooks: {
          pending: (n) => metrics.shipPending.set(n),
          shipped: (bytes, dup) => {
            metrics.shipChunks.inc({ result: dup ? 'duplicate' : 'stored' });
            metrics.shipBytes.inc(bytes);
          },
          retry: () => metrics.shipRetries.inc(),
        },
      });
      const r = await shipper.run();
      log(`ship: ${r.shipped} chunk(s) shipped, ${r.duplicates} already there, ${r.bytes} bytes; acknowledged through seq ${r.ackedSeq}`);
      return ExitCode.OK;
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      server?.close();
    }
  },
};
