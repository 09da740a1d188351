import * as fs from 'node:fs';
import * as path from 'node:path';
import { UsageError, errorMessage } from '../../errors';
import { parseArgs, parseInteger, usageText, type OptionSpec } from '../args';
import { ExitCode } from '../exit-codes';
import type { CliIO, Command } from '../io';

const OPTIONS: OptionSpec[] = [
  { name: 'type', kind: 'list', value: 'TYPE', help: 'only records of this event type (repeatable)' },
  { name: 'pid', kind: 'list', value: 'PID', help: 'only records of this process (repeatable)' },
  { name: 'symbol', kind: 'string', value: 'TEXT', help: 'only function_call records whose symbol contains TEXT' },
  { name: 'frames', kind: 'string', value: 'FILE', help: 'show symbolized stacks from a collect --frames file' },
  { name: 'json', kind: 'flag', help: 'print the matching records as they are (NDJSON)' },
];

export const queryCommand: Command = {
  summary: 'show records of an evidence directory or NDJSON file, for humans',
  usage: usageText('usage: rtev query DIR|FILE [--type TYPE] [--pid PID] [--symbol TEXT] [--frames FILE] [--json]', OPTIONS),
  async run(args: string[], io: CliIO): Promise<number> {
    const parsed = parseArgs(args, OPTIONS, 1);
    const source = parsed.positionals[0];
    if (source === undefined) throw new UsageError('query needs an evidence directory or an NDJSON file');
    const types = new Set(parsed.lists.get('type') ?? []);
    const pids = new Set((parsed.lists.get('pid') ?? []).map((p) => parseInteger(p, 'pid', 1, 4194304)));
    const symbol = parsed.values.get('symbol');
    const framesFile = parsed.values.get('frames');
    const frames = framesFile === undefined ? undefined : readFrames(framesFile);
    let shown = 0;
    for (const file of recordFiles(source)) {
      for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
        if (line.length === 0) continue;
        let record: any;
        try {
          record = JSON.parse(line);
        } catch {
          continue; // rtev validate and rtev verify report malformed lines
        }
        const event = record?.event;
        if (typeof event !== 'object' || event === null) continue;
        if (types.size > 0 && !types.has(event.type)) continue;
        if (pids.size > 0 && !pids.has(record.pid)) continue;
        if (symbol !== undefined && !(event.type === 'function_call' && String(event.symbol ?? '').includes(symbol))) continue;
        shown++;
        if (parsed.flags.has('json')) {
          io.stdout.write(line + '\n');
          continue;
        }
        io.stdout.write(describe(record, exactTs(line)) + '\n');
        const stack = frames?.get(`${exactTs(line)}:${record.tid ?? record.pid}`);
        if (stack !== undefined) io.stdout.write(stack + '\n');
      }
    }
    io.stderr.write(`rtev: ${shown} records\n`);
    return ExitCode.OK;
  },
};

function recordFiles(source: string): string[] {
  let st: fs.Stats;
  try {
    st = fs.statSync(source);
  } catch (err) {
    throw new UsageError(`cannot read ${source}: ${errorMessage(err)}`);
  }
  if (!st.isDirectory()) return [source];
  return fs.readdirSync(source).filter((n) => /^chunk-\d+\.ndjson$/.test(n)).sort().map((n) => path.join(source, n));
}

/** exactTs takes ts_ns from the line's text: JSON.parse would round it beyond 2^53. */
function exactTs(line: string): string {
  return /"ts_ns":(\d+)/.exec(line)?.[1] ?? '?';
}

function describe(r: any, ts: string): string {
  const e = r.event;
  const who = `${r.comm}[${r.pid}${r.tid !== undefined && r.tid !== r.pid ? '/' + r.tid : ''}]`;
  const where = r.container_id !== undefined ? ` ${String(r.container_id).slice(0, 24)}` : '';
  let what: string;
  switch (e.type) {
    case 'file_open': what = `open ${e.access ?? ''} ${JSON.stringify(e.path)}`; break;
    case 'process_exec': what = `exec ${JSON.stringify(e.filename)} argv0=${JSON.stringify(e.argv0 ?? '')} ppid=${e.ppid}`; break;
    case 'tcp_state': what = `tcp ${e.oldstate}->${e.newstate} ${e.saddr}:${e.sport} -> ${e.daddr}:${e.dport}`; break;
    case 'net_connect': what = `${r.src} ${e.addr}:${e.port} fd=${e.fd} ${e.success ? 'ok' : `error=${e.error}`}`; break;
    case 'ssl_op': what = `ssl ${e.operation} ${e.bytes} bytes ssl=${e.ssl_ptr}`; break;
    case 'function_call': what = `call ${e.symbol ?? e.addr} in ${e.library ?? '?'} (${e.runtime ?? '?'}) ${e.node_hash ?? ''}`; break;
    default: what = String(e.type);
  }
  return `${ts} ${who}${where} ${what}`;
}

/** readFrames indexes a --frames file by "ts_ns:tid"; each value is the rendered stack. */
function readFrames(file: string): Map<string, string> {
  const map = new Map<string, string>();
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read --frames file ${file}: ${errorMessage(err)}`);
  }
  for (const line of text.split('\n')) {
    if (line.length === 0) continue;
    try {
      const f = JSON.parse(line);
      const rows = (f.frames as any[]).map((fr, i) => {
        const name = fr.symbol === undefined ? '??' : fr.offset === undefined ? fr.symbol : `${fr.symbol}+${fr.offset}`;
        return `    #${i} ${fr.addr} ${name}${fr.library ? ` (${fr.library})` : ''} [${fr.kind} ${fr.source}]`;
      });
      if (f.stack_quality !== 'complete') rows.push(`    (stack ${f.stack_quality})`);
      map.set(`${exactTs(line)}:${f.tid}`, rows.join('\n'));
    } catch {
      // a damaged line only loses its stack
    }
  }
  return map;
}
