import * as fs from 'node:fs';
import { UsageError } from '../../errors';
import { hostRoot } from '../../packages/host/root';
import { LayersRoot, storageLayerChain } from '../../packages/host/layers';
import { packagePath } from '../../platform/paths';
import { inspectImage } from '../../report/host';
import { generateSbom, toCycloneDxSbom, toSpdxSbom } from '../../report/sbom-gen';
import { parseArgs, usageText, type OptionSpec } from '../args';
import { ExitCode } from '../exit-codes';
import type { CliIO, Command } from '../io';
import { writeOut } from './report-inputs';

const OPTIONS: OptionSpec[] = [
  { name: 'host', kind: 'flag', help: "the host's packages (the default)" },
  { name: 'image', kind: 'string', value: 'REF', help: "a podman image's packages, read from its layers in containers-storage" },
  { name: 'binary', kind: 'list', value: 'FILE', help: 'also read the Go build info of this executable (repeatable; /usr/bin and friends are read anyway)' },
  { name: 'format', kind: 'string', value: 'FORMAT', help: 'cyclonedx (1.6, default) or spdx (2.3)' },
  { name: 'out', kind: 'string', value: 'FILE', help: 'write the SBOM here (default: stdout)' },
  { name: 'storage', kind: 'string', value: 'DIR', help: 'containers-storage root (default /var/lib/containers/storage)' },
];

const USAGE = usageText(`usage: rtev sbom [--host | --image REF] [--binary FILE]... [--format cyclonedx|spdx] [--out FILE]

An SBOM of the host or of one image from its package databases: dpkg, Python dist-info,
npm package.json and Go build info, through the same readers as the collector's package
attribution. Feed it to 'rtev plan' and 'rtev report' (docs/reachability.md).`, OPTIONS);

export const sbomCommand: Command = {
  summary: 'SBOM (CycloneDX or SPDX) of the host or an image from its package databases',
  usage: USAGE,
  async run(args: string[], io: CliIO): Promise<number> {
    const a = parseArgs(args, OPTIONS);
    const format = a.values.get('format') ?? 'cyclonedx';
    if (format !== 'cyclonedx' && format !== 'spdx') throw new UsageError(`--format ${format}: choose cyclonedx or spdx`);
    const imageRef = a.values.get('image');
    if (imageRef !== undefined && a.flags.has('host')) throw new UsageError('--host and --image describe different products: make one SBOM each');
    let sbom;
    if (imageRef === undefined) {
      const root = hostRoot();
      try {
        const name = fs.readFileSync('/etc/hostname', 'utf8').trim() || 'host';
        sbom = await generateSbom(root, { name, kind: 'host' }, a.lists.get('binary') ?? []);
      } finally {
        root.close();
      }
    } else {
      const img = inspectImage(imageRef);
      const dirs = await storageLayerChain(a.values.get('storage') ?? '/var/lib/containers/storage', img.id);
      if (dirs === undefined) throw new UsageError(`--image ${imageRef}: its layers are not in containers-storage`, 'run as root, or give --storage DIR');
      const root = new LayersRoot(dirs);
      try {
        sbom = await generateSbom(root, { name: img.names[0] ?? imageRef, purl: img.product.id, kind: 'image' }, a.lists.get('binary') ?? []);
      } finally {
        root.close();
      }
    }
    const version = (JSON.parse(fs.readFileSync(packagePath('package.json'), 'utf8')) as { version: string }).version;
    const text = format === 'spdx' ? toSpdxSbom(sbom, { version }, new Date()) : toCycloneDxSbom(sbom, { version }, new Date());
    const out = a.values.get('out');
    if (out === undefined) await writeOut(io.stdout, text);
    else fs.writeFileSync(out, text);
    const by = new Map<string, number>();
    for (const c of sbom.components) by.set(c.kind, (by.get(c.kind) ?? 0) + 1);
    io.stderr.write(`rtev sbom: ${sbom.components.length} component(s) (${[...by].map(([k, n]) => `${k} ${n}`).join(', ') || 'none'})${out === undefined ? '' : `; wrote ${out}`}\n`);
    for (const n of sbom.notes) io.stderr.write(`  note: ${n}\n`);
    return ExitCode.OK;
  },
};
