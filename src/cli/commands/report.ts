import * as fs from 'node:fs';
import { RtevError, UsageError } from '../../errors';
import { toCycloneDx } from '../../report/cyclonedx';
import { toHtml } from '../../report/html';
import { functionKey } from '../../report/verdict';
import { buildReport, toJson, type ReportModel } from '../../report/report';
import { indexObservations } from '../../report/index-observations';
import type { Observations } from '../../report/observations';
import { openEvidenceIndex } from '../../index/index';
import { toOpenVex } from '../../report/openvex';
import { toTable } from '../../report/table';
import { packagePath } from '../../platform/paths';
import { parseArgs, usageText, type OptionSpec } from '../args';
import { ExitCode } from '../exit-codes';
import type { CliIO, Command } from '../io';
import { trustedKeys } from './evidence-args';
import { loadReportInputs, writeOut } from './report-inputs';

const FORMATS = ['table', 'json', 'openvex', 'cyclonedx', 'html'] as const;

const OPTIONS: OptionSpec[] = [
  { name: 'sbom', kind: 'list', value: 'FILE', help: 'CycloneDX 1.4-1.6 or SPDX 2.2/2.3 JSON SBOM (repeatable: one per product)' },
  { name: 'vulns', kind: 'list', value: 'PATH', help: 'OSV JSON: a record, an array, {"vulns":[...]}, or a directory (repeatable)' },
  { name: 'image', kind: 'list', value: 'REF', help: 'a podman image as a product (repeatable): pkg:oci/NAME@sha256:...' },
  { name: 'host', kind: 'flag', help: 'the host as a product too (the default when no --image is given)' },
  { name: 'format', kind: 'string', value: 'FORMAT', help: `${FORMATS.join('|')} (default table)` },
  { name: 'out', kind: 'string', value: 'FILE', help: 'write the report here (default: stdout)' },
  { name: 'pubkey', kind: 'list', value: 'FILE', help: 'trusted Ed25519 public key (repeatable; default: the default signing key\'s .pub)' },
  { name: 'plan', kind: 'string', value: 'FILE', help: "the 'rtev plan' output used for the collection: its unprobeable reasons go into the notes" },
  { name: 'not-observed-as-not-affected', kind: 'flag', help: 'opt-in: with complete coverage, "probed and never called" or "never loaded" becomes not_affected/vulnerable_code_not_in_execute_path' },
  { name: 'allow-unverified', kind: 'flag', help: 'use evidence that fails verification; every evidence-based verdict is then at most under_investigation' },
  { name: 'index', kind: 'string', value: 'PATH', help: 'evidence index file (default: $RTEV_INDEX_DIR, /var/cache/rtev/index or ~/.cache/rtev/index)' },
  { name: 'rebuild-index', kind: 'flag', help: 'drop the evidence index and build it again from the chunks' },
  { name: 'db', kind: 'string', value: 'URL', help: 'read the evidence from the fleet index in PostgreSQL (rtev ingest) instead of a directory' },
  { name: 'db-host', kind: 'list', value: 'NAME|MACHINE_ID', help: 'with --db: only the evidence of this host (repeatable; default: every host)' },
];

const USAGE = usageText(`usage: rtev report DIR --sbom FILE --vulns PATH [--image REF]... [--format table|json|openvex|cyclonedx|html] [--out FILE]
       rtev report --db postgresql://... [--db-host NAME] --sbom FILE --vulns PATH [...]

One verdict per vulnerability × product from the SBOM, the OSV advisories and the signed
evidence in DIR: fixed / not_affected by version; affected when a vulnerable function ran
(with evidence references) or, component-level, when the component was loaded without
function data; otherwise under_investigation (docs/reachability.md, "Verdicts").

exit codes: 0 report written; 11 the evidence fails verification (unless --allow-unverified); 2 usage.`, OPTIONS);

export const reportCommand: Command = {
  summary: 'VEX/HTML report: which vulnerable components and functions ran',
  usage: USAGE,
  async run(args: string[], io: CliIO): Promise<number> {
    const a = parseArgs(args, OPTIONS, 1);
    const dir = a.positionals[0];
    const db = a.values.get('db');
    if (db !== undefined && dir !== undefined) throw new UsageError('report takes an evidence directory or --db, not both');
    if (db === undefined && a.lists.has('db-host')) throw new UsageError('--db-host needs --db');
    if (db === undefined && dir === undefined) throw new UsageError('no evidence directory given', 'rtev report DIR --sbom FILE --vulns PATH');
    if (dir !== undefined && (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory())) throw new UsageError(`${dir} is not an evidence directory`);
    const format = a.values.get('format') ?? 'table';
    if (!(FORMATS as readonly string[]).includes(format)) throw new UsageError(`--format ${format}: choose one of ${FORMATS.join(', ')}`);
    const allowUnverified = a.flags.has('allow-unverified');
    // the report reads the evidence index of DIR (verified once per chunk, reused across runs),
    // or the fleet index in PostgreSQL (verified at ingest: src/fleet/observations.ts)
    let observations: Observations;
    let close: () => Promise<void>;
    if (db !== undefined) {
      const { FleetIndex } = require('../../fleet/query') as typeof import('../../fleet/query');
      const { fleetObservations } = require('../../fleet/observations') as typeof import('../../fleet/observations');
      const fleet = await FleetIndex.open(db, 'rtev-report');
      observations = fleetObservations(fleet, a.lists.get('db-host') ?? []);
      close = () => fleet.close();
    } else {
      const index = await openEvidenceIndex({
        source: dir!, keys: trustedKeys(a), allowUnverified, rebuild: a.flags.has('rebuild-index'),
        ...(a.values.get('index') !== undefined ? { indexPath: a.values.get('index')! } : {}),
        onNotice: (line) => io.stderr.write(line + '\n'),
      });
      observations = indexObservations(index);
      close = () => index.close();
    }
    const source = db !== undefined ? 'the fleet index' : dir!;
    let model: ReportModel;
    try {
      const cov = await observations.coverage();
      let unverified: string | undefined;
      if (cov.failures.length > 0) {
        const what = `${cov.failures.length} chunk(s) fail verification, first: ${cov.failures[0]}`;
        if (!allowUnverified) throw new RtevError('VERIFY_INVALID', `evidence in ${source} fails verification (${what})`, { hint: "check it with 'rtev verify'; --allow-unverified reports at most under_investigation" });
        unverified = `evidence failed verification (${what})`;
      }
      const h = cov.hosts[0];
      const inputs = loadReportInputs(a, { mountImages: true, ...(h !== undefined && h.machineId !== '' ? { machineId: h.machineId, hostname: h.hostname } : {}) });
      model = await buildReport(inputs.products, inputs.vulns, observations, inputs.files, {
        notObservedAsNotAffected: a.flags.has('not-observed-as-not-affected'), unverified, allowUnverified,
        unprobeable: readPlan(a.values.get('plan')), version: (JSON.parse(fs.readFileSync(packagePath('package.json'), 'utf8')) as { version: string }).version, now: new Date(),
      });
    } finally {
      await close();
    }
    const text = render(model, format);
    const out = a.values.get('out');
    if (out === undefined) await writeOut(io.stdout, text);
    else {
      fs.writeFileSync(out, text);
      io.stderr.write(`rtev report: wrote ${format} to ${out}\n`);
    }
    return ExitCode.OK;
  },
};

function render(m: ReportModel, format: string): string {
  switch (format) {
    case 'json': return toJson(m);
    case 'openvex': return toOpenVex(m);
    case 'cyclonedx': return toCycloneDx(m);
    case 'html': return toHtml(m);
    default: return toTable(m);
  }
}

function readPlan(file: string | undefined): Map<string, string> | undefined {
  if (file === undefined) return undefined;
  let doc: { unprobeable?: Array<{ kind: 'go' | 'native' | 'rust'; path: string; symbol: string; reason: string }> };
  try {
    doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`--plan ${file}: ${(err as Error).message}`);
  }
  const m = new Map<string, string>();
  for (const u of doc.unprobeable ?? []) if (typeof u?.symbol === 'string') m.set(functionKey({ kind: u.kind, path: u.path, symbol: u.symbol }), u.reason);
  return m;
}
