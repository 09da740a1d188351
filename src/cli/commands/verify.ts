import * as fs from 'node:fs';
import * as path from 'node:path';
import { RtevError, UsageError } from '../../errors';
import { defaultKeyDir, DEFAULT_KEY_NAME, loadVerifyKeyFile, publicKeyPath } from '../../sign/key-files';
import type { VerifyKey } from '../../sign/keys';
import { evidenceDirProblem, verifyEvidence, type VerifyReport } from '../../verify';
import { parseArgs, usageText, type OptionSpec } from '../args';
import { ExitCode } from '../exit-codes';
import type { CliIO, Command } from '../io';

const OPTIONS: OptionSpec[] = [
  { name: 'pubkey', kind: 'list', value: 'FILE', help: 'trusted Ed25519 public key (PEM); repeat for a chain signed by several keys (default: the .pub of the default signing key)' },
  { name: 'json', kind: 'flag', help: 'print the report as JSON instead of text' },
];

const USAGE = usageText(`usage: rtev verify DIR [--pubkey FILE]... [--json]

Checks an evidence directory written by 'rtev collect --out DIR': every chunk digest and
signature, sequence and previous-envelope continuity, record schema validity, that each
chunk agrees with its signed predicate, and the drop ledger. The default public key is
($RTEV_KEY_DIR, /var/lib/rtev/keys or $XDG_STATE_HOME/rtev/keys)/signing.key.pub.

exit codes: 0 valid and complete; 10 valid but with recorded gaps, drops or an unsealed
tail; 11 invalid or tampered; 2 usage, or DIR is not an evidence directory.
docs/format.md describes every check.`, OPTIONS);

/** verifyCommand implements `rtev verify`. */
export const verifyCommand: Command = {
  summary: 'verify a signed evidence directory offline',
  usage: USAGE,
  async run(args: string[], io: CliIO): Promise<number> {
    const { dir, pubkeys, json } = parseVerifyArgs(args);
    const keys: VerifyKey[] = pubkeys.map((f) => loadVerifyKeyFile(f));
    const report = verifyEvidence(dir, keys);
    io.stdout.write(json ? renderJson(report) : renderText(report, pubkeys));
    return report.status === 'valid' ? ExitCode.OK : report.status === 'incomplete' ? ExitCode.VERIFY_INCOMPLETE : ExitCode.VERIFY_INVALID;
  },
};

function parseVerifyArgs(args: string[]): { dir: string; pubkeys: string[]; json: boolean } {
  const parsed = parseArgs(args, OPTIONS, 1);
  const dir = parsed.positionals[0];
  const pubkeys = [...(parsed.lists.get('pubkey') ?? [])];
  const json = parsed.flags.has('json');
  if (dir === undefined) throw new UsageError('no evidence directory given', 'rtev verify DIR [--pubkey FILE]');
  const notEvidence = evidenceDirProblem(dir);
  if (notEvidence !== undefined) throw new RtevError('NOT_EVIDENCE', notEvidence);
  if (pubkeys.length === 0) {
    const fallback = publicKeyPath(path.join(defaultKeyDir(), DEFAULT_KEY_NAME));
    if (!fs.existsSync(fallback)) throw new UsageError('no public key given and no default key exists', `pass --pubkey FILE (the .pub file next to the key given to 'rtev collect --key')`);
    pubkeys.push(fallback);
  }
  return { dir, pubkeys, json };
}

/** renderText prints the auditor's summary: verdict, chain, records, ledger, gaps, problems. */
export function renderText(r: VerifyReport, pubkeys: readonly string[]): string {
  const out: string[] = [];
  const verdict = r.status === 'valid' ? 'VALID and complete' : r.status === 'incomplete' ? 'VALID, with recorded gaps or drops' : `INVALID: ${r.problems.length} problem(s)`;
  out.push(`rtev verify ${r.dir}: ${verdict}`);
  out.push(`  trusted keys: ${pubkeys.join(', ')}${r.keyids.length > 0 ? ` (signatures by sha256:${r.keyids.map((k) => k.slice(0, 16) + '...').join(', ')})` : ''}`);
  if (r.firstSeq !== null) out.push(`  chain ${r.chainId ?? '?'}: seq ${r.firstSeq}..${r.lastSeq}, ${r.chunks} chunk(s) checked, ${r.runs} collector run(s)`);
  if (r.hosts.length > 0) out.push(`  host: ${r.hosts.join('; ')}`);
  const types = Object.entries(r.byType).filter(([, n]) => n > 0n).map(([t, n]) => `${t} ${n}`).join(', ');
  out.push(`  records: ${r.records}${types !== '' ? ` (${types})` : ''}${r.minTs !== null ? `, ts_ns ${r.minTs}..${r.maxTs}` : ''}`);
  const probes = Object.keys(r.ledger).sort();
  if (probes.length > 0) {
    const unseen = r.notObserved.map((n) => `${n.probe} ${n.sources.join('/')}`).join(', ');
    const lostText = r.lost === 0n ? (unseen === '' ? 'nothing lost' : 'nothing lost of what was observed') : `${r.lost} record(s) LOST`;
    out.push(`  drop ledger (sum over chunks): ${lostText}${unseen !== '' ? `; NOT OBSERVED (not recorded, not counted): ${unseen}` : ''}`);
    out.push(`    ${'probe'.padEnd(14)} ${['submitted', 'k_filtered', 'ring_full', 'skipped', 'truncated', 'written', 'u_filtered', 'dedup', 'rejected', 'shed', 'in_flight'].map((h) => h.padStart(10)).join(' ')}`);
    for (const p of probes) {
      const l = r.ledger[p]!;
      const cols = ['kernel.submitted', 'kernel.filtered', 'kernel.ring_full', 'kernel.skipped', 'kernel.truncated', 'in_chunk', 'user.filtered', 'user.deduplicated', 'user.rejected', 'user.shed', 'in_flight_end'];
      out.push(`    ${p.padEnd(14)} ${cols.map((c) => String(l[c] ?? 0n).padStart(10)).join(' ')}`);
    }
  }
  if (r.functionCalls.length > 0) {
    out.push('  function calls (exact, sum over chunks):');
    for (const f of r.functionCalls) out.push(`    ${f.function} calls=${f.calls} emitted=${f.emitted} suppressed=${f.suppressed}`);
  }
  if (r.tlsNotObservable !== null) {
    const t = r.tlsNotObservable;
    out.push(`  ssl_op coverage: TLS not observable in ${t.pairs} process/library pair(s)${t.examples.length > 0 ? `: ${t.examples.join(', ')}` : ''}`);
  }
  section(out, 'problems (tampering or invalid content)', r.problems);
  section(out, 'gaps and drops (recorded, authentic)', r.gaps);
  section(out, 'notes', r.notes);
  return out.join('\n') + '\n';
}

function section(out: string[], title: string, findings: VerifyReport['problems']): void {
  if (findings.length === 0) return;
  out.push(`  ${title}:`);
  for (const f of findings) out.push(`    ${f.file}: ${f.reason}`);
}

function renderJson(r: VerifyReport): string {
  return JSON.stringify(r, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n';
}
