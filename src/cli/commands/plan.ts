import * as fs from 'node:fs';
import { buildPlan, planFile } from '../../report/plan';
import { parseArgs, usageText, type OptionSpec } from '../args';
import { ExitCode } from '../exit-codes';
import type { CliIO, Command } from '../io';
import { loadReportInputs, writeOut } from './report-inputs';

const OPTIONS: OptionSpec[] = [
  { name: 'sbom', kind: 'list', value: 'FILE', help: 'CycloneDX 1.4-1.6 or SPDX 2.2/2.3 JSON SBOM (repeatable: one per product)' },
  { name: 'vulns', kind: 'list', value: 'PATH', help: 'OSV JSON: a record, an array, {"vulns":[...]}, or a directory (repeatable)' },
  { name: 'image', kind: 'list', value: 'REF', help: 'a podman image to plan for (repeatable); its files are read from `podman image mount`' },
  { name: 'host', kind: 'flag', help: 'plan for the host too (the default when no --image is given)' },
  { name: 'out', kind: 'string', value: 'FILE', help: "write the plan here (default: stdout); use it with 'rtev collect --functions FILE'" },
];

const USAGE = usageText(`usage: rtev plan --sbom FILE --vulns PATH [--image REF]... [--host] [--out FILE]

Writes the affected functions of the vulnerable components present on the host and in the
images as a probe plan for 'rtev collect --functions FILE', and lists every function that
cannot be probed with the reason (not in any symbol table, file not present, runtime not
supported). Then: rtev collect --functions FILE --out ev; rtev report ev ... (docs/reachability.md).`, OPTIONS);

export const planCommand: Command = {
  summary: 'write a function probe plan from an SBOM and OSV advisories',
  usage: USAGE,
  async run(args: string[], io: CliIO): Promise<number> {
    const a = parseArgs(args, OPTIONS);
    const inputs = loadReportInputs(a, { mountImages: true });
    const plan = buildPlan(inputs.products, inputs.vulns.records, inputs.files);
    const text = planFile(plan);
    const out = a.values.get('out');
    if (out === undefined) await writeOut(io.stdout, text);
    else fs.writeFileSync(out, text);
    io.stderr.write(`rtev plan: ${plan.functions.length} target(s), ${plan.unprobeable.length} unprobeable function(s), ${plan.vulnerable} vulnerable component×advisory pair(s) (${plan.withoutFunctions} without named functions), ${inputs.vulns.records.length} advisories read, ${plan.skipped.length + inputs.vulns.skipped.length} input element(s) skipped${out === undefined ? '' : `; wrote ${out}`}\n`);
    for (const u of plan.unprobeable.slice(0, 20)) io.stderr.write(`  unprobeable ${u.vulnerability} ${u.symbol}: ${u.reason}\n`);
    return ExitCode.OK;
  },
};
