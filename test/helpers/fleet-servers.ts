import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * Real servers for the fleet tests, started and stopped by the tests themselves: a
 * JetStream cluster of nats-server processes on loopback ports chosen free at start (never
 * the Debian service's 4222), and a throwaway PostgreSQL 15 cluster (initdb as the postgres
 * user in a temp dir, unix socket only, never the system cluster's 5432).
 */

export const NATS_SERVER = '/usr/sbin/nats-server';
export const PG_BIN = '/usr/lib/postgresql/15/bin';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export interface NatsNode {
  name: string;
  clientPort: number;
  clusterPort: number;
  monitorPort: number;
  conf: string;
  dataDir: string;
  proc: ChildProcess | undefined;
  log: string;
}

export interface NatsCluster {
  root: string;
  nodes: NatsNode[];
  /** comma-separated client URLs */
  urls: string;
  start(i: number): Promise<void>;
  /** SIGKILL one node (or another signal: SIGTERM is a clean shutdown that flushes the store) */
  kill(i: number, signal?: NodeJS.Signals): Promise<void>;
  stopAll(signal?: NodeJS.Signals): Promise<void>;
  /** wait until JetStream has a meta leader (healthz?js-enabled-only) on every running node */
  ready(): Promise<void>;
}

/**
 * startNatsCluster starts N nodes (N=1: a plain JetStream server). `accounts` is an optional
 * nats-server config fragment (accounts { ... } and system_account) put in every node.
 */
export async function startNatsCluster(n: number, accounts = ''): Promise<NatsCluster> {
  // a port chosen free can be taken by another process before nats-server binds it (other test
  // runs on the machine pick ports the same way): a node that exits at start means new ports
  for (let attempt = 1; ; attempt++) {
    try {
      return await startNatsClusterOnce(n, accounts);
    } catch (err) {
      if (!(err instanceof PortTaken) || attempt >= 5) throw err;
    }
  }
}

class PortTaken extends Error {}

async function startNatsClusterOnce(n: number, accounts: string): Promise<NatsCluster> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-nats-'));
  const nodes: NatsNode[] = [];
  for (let i = 0; i < n; i++) {
    nodes.push({ name: `n${i + 1}`, clientPort: await freePort(), clusterPort: await freePort(), monitorPort: await freePort(), conf: path.join(root, `n${i + 1}.conf`), dataDir: path.join(root, `data-n${i + 1}`), proc: undefined, log: path.join(root, `n${i + 1}.log`) });
  }
  for (const node of nodes) {
    const cluster = n > 1 ? `cluster {\n  name: rtev-test\n  listen: 127.0.0.1:${node.clusterPort}\n  routes: [\n${nodes.map((o) => `    nats-route://127.0.0.1:${o.clusterPort}`).join('\n')}\n  ]\n}\n` : '';
    fs.writeFileSync(node.conf, `server_name: ${node.name}\nlisten: 127.0.0.1:${node.clientPort}\nhttp: 127.0.0.1:${node.monitorPort}\nmax_payload: 8MB\njetstream {\n  store_dir: "${node.dataDir}"\n  max_memory_store: 64MB\n  max_file_store: 4GB\n}\n${cluster}${accounts}\n`);
  }
  const c: NatsCluster = {
    root, nodes, urls: nodes.map((o) => `nats://127.0.0.1:${o.clientPort}`).join(','),
    async start(i) {
      const node = nodes[i]!;
      const out = fs.openSync(node.log, 'a');
      const proc = spawn(NATS_SERVER, ['-c', node.conf], { stdio: ['ignore', out, out] });
      node.proc = proc;
      fs.closeSync(out);
      await waitFor(`${node.name} to listen`, () => {
        if (proc.exitCode !== null) {
          const log = fs.readFileSync(node.log, 'utf8');
          if (/address already in use/.test(log)) throw new PortTaken(`${node.name}: ${log.slice(-300)}`);
          throw new Error(`${node.name} exited ${proc.exitCode} at start: ${log.slice(-500)}`);
        }
        return canConnect(node.clientPort);
      });
    },
    async kill(i, signal = 'SIGKILL') {
      const p = nodes[i]!.proc;
      if (p === undefined || p.exitCode !== null) return;
      const exited = new Promise((r) => p.once('exit', r));
      p.kill(signal);
      await exited;
      nodes[i]!.proc = undefined;
    },
    async stopAll(signal = 'SIGKILL') {
      await Promise.all(nodes.map((_, i) => c.kill(i, signal)));
    },
    async ready() {
      await waitFor('a JetStream meta leader', async () => {
        for (const node of nodes) {
          if (node.proc === undefined) continue;
          const ok = await fetch(`http://127.0.0.1:${node.monitorPort}/healthz?js-enabled-only=true`).then((r) => r.ok, () => false);
          if (!ok) return false;
          if (n > 1) {
            const js = await fetch(`http://127.0.0.1:${node.monitorPort}/jsz`).then((r) => r.json() as Promise<{ meta_cluster?: { leader?: string } }>, () => undefined);
            if (js?.meta_cluster?.leader === undefined || js.meta_cluster.leader === '') return false;
          }
        }
        return true;
      }, 30_000);
    },
  };
  try {
    await Promise.all(nodes.map((_, i) => c.start(i)));
    await c.ready();
  } catch (err) {
    // nothing started here outlives a failed start
    await c.stopAll();
    fs.rmSync(root, { recursive: true, force: true });
    throw err;
  }
  return c;
}

export interface Postgres {
  dir: string;
  port: number;
  /** connection URL for a role (unix socket in dir) */
  url(user?: string, db?: string): string;
  psql(sql: string, user?: string): string;
  stop(): void;
}

/** startPostgres runs initdb + pg_ctl as the postgres user in a temp dir (unix socket only). */
export async function startPostgres(): Promise<Postgres> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-pg-'));
  fs.chmodSync(dir, 0o755);
  spawnSync('chown', ['postgres:postgres', dir]);
  const port = await freePort();
  const as = (args: string[]): void => {
    const r = spawnSync('runuser', ['-u', 'postgres', '--', ...args], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}${r.stdout}`);
  };
  as([`${PG_BIN}/initdb`, '-D', `${dir}/data`, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-locale', '--no-sync']);
  as([`${PG_BIN}/pg_ctl`, '-D', `${dir}/data`, '-l', `${dir}/log`, '-w', '-o',
    `-k ${dir} -p ${port} -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=256MB -c max_wal_size=2GB`, 'start']);
  const pg: Postgres = {
    dir, port,
    url: (user = 'postgres', db = 'postgres') => `postgresql://${user}@localhost/${db}?host=${encodeURIComponent(dir)}&port=${port}`,
    psql: (sql, user = 'postgres') => {
      const r = spawnSync('psql', ['-X', '-q', '-At', '-h', dir, '-p', String(port), '-U', user, '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-c', sql], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`psql: ${r.stderr}`);
      return r.stdout.trim();
    },
    stop: () => {
      spawnSync('runuser', ['-u', 'postgres', '--', `${PG_BIN}/pg_ctl`, '-D', `${dir}/data`, '-m', 'immediate', 'stop'], { stdio: 'ignore' });
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return pg;
}
