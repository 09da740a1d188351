import * as fs from 'node:fs';
import { Client } from 'pg';
import { createUser } from '@nats-io/nkeys';
import { UsageError } from '../../errors';
import { clusterSize, connectNats, ensureTopology } from '../../fleet/nats';
import { acceptChain } from '../../fleet/accept';
import { initSchema } from '../../fleet/pg-schema';
import { checkNoPassword } from '../../fleet/secrets';
import { fleetStatus, renderStatus } from '../../fleet/status';
import { parseArgs, parseInteger, usageText, type OptionSpec } from '../args';
import { ExitCode } from '../exit-codes';
import type { CliIO, Command } from '../io';

const OPTIONS: OptionSpec[] = [
  { name: 'db', kind: 'string', value: 'URL', help: 'postgresql://USER@HOST/DB (password from PGPASSWORD or ~/.pgpass)' },
  { name: 'json', kind: 'flag', help: 'status: print JSON' },
  { name: 'ingest-role', kind: 'string', value: 'NAME', help: 'init: the role ingest logs in as (default rtev_ingest)' },
  { name: 'reader-role', kind: 'string', value: 'NAME', help: 'init: the read-only role for queries (default rtev_reader)' },
  { name: 'nats', kind: 'string', value: 'URL[,URL...]', help: 'init: also create the JetStream stream, bucket and consumer' },
  { name: 'nats-creds', kind: 'string', value: 'FILE', help: 'NATS credentials file' },
  { name: 'replicas', kind: 'string', value: 'N', help: 'init: JetStream replicas (default: cluster size, at most 3)' },
  { name: 'out', kind: 'string', value: 'FILE', help: 'nkey: where to write the seed (0600)' },
  { name: 'host', kind: 'string', value: 'NAME|ID', help: 'accept-chain: the host (hostname or host id)' },
  { name: 'chain', kind: 'string', value: 'ID', help: 'accept-chain: the new chain id (from fleet status)' },
  { name: 'reason', kind: 'string', value: 'TEXT', help: 'accept-chain: why (recorded)' },
];

const USAGE = usageText(`usage: rtev fleet status --db URL [--json]
       rtev fleet init --db URL [--ingest-role NAME] [--reader-role NAME] [--nats URL [--replicas N]]
       rtev fleet accept-chain --db URL --host NAME|ID --chain ID --reason TEXT
       rtev fleet nkey --out FILE

status: per host, the last chunk, lag, the chain account, gaps (open, filled, or deleted
        by retention (checkpointed)), retention checkpoints, drops, rejected chunks
        with reasons, keys.
init:   create the fleet schema and least-privilege roles (run once as the database owner).
accept-chain: accept a host's new chain after its evidence was deleted and rewritten
        (recorded with who, when and why; run as the database owner), then ship the
        host's directory again with 'rtev ship DIR --resend-from 1'.
nkey:   create an nkey user seed for a host or ingest (prints the public key for the
        NATS server configuration).`, OPTIONS);

export const fleetCommand: Command = {
  summary: 'fleet status, database initialisation and NATS nkeys',
  usage: USAGE,
  async run(args: string[], io: CliIO): Promise<number> {
    const [sub, ...rest] = args;
    const parsed = parseArgs(rest, OPTIONS, 0);
    if (sub === 'nkey') {
      const out = parsed.values.get('out');
      if (out === undefined) throw new UsageError('fleet nkey needs --out FILE');
      const kp = createUser();
      const fd = fs.openSync(out, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
      try {
        fs.writeSync(fd, new TextDecoder().decode(kp.getSeed()) + '\n');
      } finally {
        fs.closeSync(fd);
      }
      io.stdout.write(`${kp.getPublicKey()}\n`);
      return ExitCode.OK;
    }
    if (sub !== 'status' && sub !== 'init' && sub !== 'accept-chain') throw new UsageError(`fleet: unknown subcommand '${sub ?? ''}'`, 'rtev fleet status|init|accept-chain|nkey');
    const url = parsed.values.get('db');
    if (url === undefined) throw new UsageError(`fleet ${sub} needs --db URL`);
    checkNoPassword(url, 'db', 'put the password in PGPASSWORD or ~/.pgpass');
    const db = new Client({ connectionString: url, application_name: `rtev-fleet-${sub}` });
    await db.connect().catch((err: Error) => {
      throw new UsageError(`cannot connect to the fleet database: ${err.message}`);
    });
    try {
      if (sub === 'init') {
        for (const line of await initSchema(db, { ingest: parsed.values.get('ingest-role') ?? 'rtev_ingest', reader: parsed.values.get('reader-role') ?? 'rtev_reader' })) io.stdout.write(line + '\n');
        const servers = parsed.values.get('nats');
        if (servers !== undefined) {
          const nc = await connectNats({ servers, credsFile: parsed.values.get('nats-creds'), name: 'rtev-fleet-init' }, undefined, (m) => io.stderr.write(`rtev: ${m}\n`));
          const replicas = parsed.values.has('replicas') ? parseInteger(parsed.values.get('replicas')!, 'replicas', 1, 5) : clusterSize(nc);
          await ensureTopology(nc, replicas, 30_000);
          await nc.drain();
          io.stdout.write(`jetstream stream, bucket and consumer ready (${replicas} replica(s))\n`);
        }
        return ExitCode.OK;
      }
      if (sub === 'accept-chain') {
        const need = (n: string): string => {
          const v = parsed.values.get(n);
          if (v === undefined) throw new UsageError(`fleet accept-chain needs --${n}`);
          return v;
        };
        const a = await acceptChain(db, need('host'), need('chain'), need('reason'));
        io.stdout.write(`accepted chain ${a.newChainId} for ${a.hostname} [${a.hostId}] (replaces chain ${a.oldChainId} at seq ${a.oldHeadSeq}; ${a.rejectedChunks} chunk(s) of it were rejected), by ${a.acceptedBy} at ${a.at}\n`);
        io.stdout.write(`ship that host's evidence directory again: rtev ship DIR --resend-from 1\n`);
        return ExitCode.OK;
      }
      const list = await fleetStatus(db);
      io.stdout.write(parsed.flags.has('json') ? JSON.stringify(list, null, 2) + '\n' : renderStatus(list));
      return ExitCode.OK;
    } finally {
      await db.end().catch(() => undefined);
    }
  },
};
