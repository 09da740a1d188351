import { UsageError } from '../../errors';
import { hostProduct, imageRoot, inspectImage, ProductFiles, type ImageInfo } from '../../report/host';
import { loadOsvPaths, type OsvLoad } from '../../report/osv';
import { parsePurl } from '../../report/purl';
import { loadSbomFile, type Sbom } from '../../report/sbom';
import type { Product } from '../../report/verdict';
import type { ParsedArgs } from '../args';

/**
 * The inputs `rtev plan` and `rtev report` share: SBOMs, OSV paths, products.
 * SBOM → product: an SBOM whose subject is `pkg:oci/...@sha256:D` describes the --image with
 * digest D; any other SBOM describes the host, except when only images were given (no
 * --host): then it describes every --image that has no SBOM of its own.
 */
export interface ReportInputs {
  products: Array<{ product: Product; sbom: Sbom; image?: ImageInfo }>;
  vulns: OsvLoad;
  files: ProductFiles;
}

export function loadReportInputs(a: ParsedArgs, opts: { mountImages: boolean; machineId?: string; hostname?: string }): ReportInputs {
  const sbomPaths = a.lists.get('sbom') ?? [];
  const vulnPaths = a.lists.get('vulns') ?? [];
  if (sbomPaths.length === 0) throw new UsageError('--sbom FILE is required', "make one with 'rtev sbom --host --out sbom.json' (or give a CycloneDX/SPDX JSON file)");
  if (vulnPaths.length === 0) throw new UsageError('--vulns PATH is required', 'give an OSV JSON file or a directory of them');
  const sboms = sbomPaths.map((p) => loadSbomFile(p));
  const vulns = loadOsvPaths(vulnPaths);
  const images = (a.lists.get('image') ?? []).map((r) => inspectImage(r));
  const wantHost = a.flags.has('host') || images.length === 0;
  const products: ReportInputs['products'] = [];
  const byDigest = new Map(images.map((i) => [i.digest, i]));
  const imageSboms = new Map<string, Sbom>();
  const generic: Sbom[] = [];
  for (const s of sboms) {
    const subj = s.subject?.purl === undefined ? undefined : parsePurl(s.subject.purl);
    if (subj?.type === 'oci' && subj.version !== undefined) {
      const img = byDigest.get(subj.version);
      if (img === undefined) throw new UsageError(`--sbom ${s.source} describes image ${subj.version}, which no --image names`, `add --image ${s.subject!.name || subj.name}`);
      imageSboms.set(img.digest, s);
    } else generic.push(s);
  }
  if (generic.length > 1) throw new UsageError(`${generic.length} SBOMs without an image subject (${generic.map((s) => s.source).join(', ')}); give one for the host`, "generate image SBOMs with 'rtev sbom --image REF'");
  const host = hostProduct(opts.machineId, opts.hostname);
  const files = new ProductFiles();
  if (wantHost) {
    if (generic[0] === undefined) throw new UsageError('no SBOM for the host', "add --sbom with 'rtev sbom --host' output, or drop --host");
    products.push({ product: host, sbom: generic[0] });
    files.add(host, '', generic[0]);
  }
  for (const img of images) {
    const sbom = imageSboms.get(img.digest) ?? (wantHost ? undefined : generic[0]);
    if (sbom === undefined) throw new UsageError(`no SBOM for --image ${img.ref}`, `generate one with 'rtev sbom --image ${img.ref}'`);
    products.push({ product: img.product, sbom, image: img });
    files.add(img.product, opts.mountImages ? imageRoot(img) : '', sbom);
  }
  return { products, vulns, files };
}

/** writeOut writes a (large) document to the stream and resolves once it is handed to the OS (a pipe is asynchronous). */
export function writeOut(stream: NodeJS.WritableStream, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(text, (err) => (err ? reject(err) : resolve()));
  });
}
