import { spawn, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createUser } from '@nats-io/nkeys';
import { RTEV, runRtev } from './collector';

/**
 * Simulated fleet hosts on one machine: each collector runs in its own UTS and mount
 * namespace (unshare) with its own hostname and a bind-mounted /etc/machine-id, signs with
 * its own key, and has its own NATS nkey user.
 */

export interface FleetHost {
  name: string;
  machineId: string;
  root: string;
  dir: string;
  key: string;
  /** nkey seed file for --nats-creds */
  creds: string;
  nkeyPublic: string;
}

export async function makeHost(base: string, name: string): Promise<FleetHost> {
  const root = path.join(base, name);
  fs.mkdirSync(root, { recursive: true, mode: 0o700 });
  const machineId = crypto.randomBytes(16).toString('hex');
  fs.writeFileSync(path.join(root, 'machine-id'), machineId + '\n');
  const key = path.join(root, 'signing.key');
  const r = await runRtev(['keygen', '--out', key]);
  if (r.code !== 0) throw new Error(`keygen: ${r.stderr}`);
  const kp = createUser();
  const creds = path.join(root, 'nats.nk');
  fs.writeFileSync(creds, new TextDecoder().decode(kp.getSeed()) + '\n', { mode: 0o600 });
  return { name, machineId, root, dir: path.join(root, 'evidence'), key, creds, nkeyPublic: kp.getPublicKey() };
}

/**
 * collectOn starts `rtev collect --out DIR -- sh -c WORKLOAD` inside the host's own
 * namespaces. The returned child exits when the workload does.
 */
export function collectOn(h: FleetHost, workload: string, extra: string[] = []): ChildProcess & { done: Promise<number> } {
  const inner = `mount --bind ${shq(path.join(h.root, 'machine-id'))} /etc/machine-id && hostname ${shq(h.name)} && exec ${shq(process.execPath)} ${shq(RTEV)} collect --quiet --out ${shq(h.dir)} --key ${shq(h.key)} --probes process_exec ${extra.map(shq).join(' ')} -- sh -c ${shq(workload)}`;
  const child = spawn('unshare', ['--uts', '--mount', '--fork', 'sh', '-c', inner], { stdio: ['ignore', 'ignore', 'pipe'] }) as ChildProcess & { done: Promise<number> };
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  child.done = new Promise((resolve) => child.on('close', (code) => {
    if (code !== 0) process.stderr.write(`collect on ${h.name} exited ${code}: ${err}\n`);
    resolve(code ?? -1);
  }));
  return child;
}

export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** hostLines returns the host's sealed chunk lines, in chunk order. */
export function hostLines(dir: string): string[] {
  const out: string[] = [];
  for (const n of fs.readdirSync(dir).filter((x) => /^chunk-\d{12}\.ndjson$/.test(x)).sort()) {
    if (!fs.existsSync(path.join(dir, n.replace('.ndjson', '.dsse.json')))) continue;
    for (const l of fs.readFileSync(path.join(dir, n), 'utf8').split('\n')) if (l !== '') out.push(l);
  }
  return out;
}

export function sealedCount(dir: string): number {
  return fs.readdirSync(dir).filter((x) => /^chunk-\d{12}\.dsse\.json$/.test(x)).length;
}

/** the local engine's order: ts_ns (exact), then chunk order */
export function byTs(lines: string[]): string[] {
  const ts = (l: string): bigint => BigInt(/"ts_ns":(\d+)/.exec(l)![1]!);
  return lines.map((l, i) => ({ l, i, t: ts(l) })).sort((a, b) => (a.t < b.t ? -1 : a.t > b.t ? 1 : a.i - b.i)).map((x) => x.l);
}
