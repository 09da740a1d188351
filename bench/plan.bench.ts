/**
 * rtev plan on a synthetic SBOM of N components and M OSV records (default 2,000 and 5,000;
 * a third of the components vulnerable by version, each advisory naming two functions in a
 * file that is not present): parse, match, plan. `node dist/bench/plan.bench.js [N] [M]`.
 */
import { hostProduct, ProductFiles } from '../src/report/host';
import { parseOsvText } from '../src/report/osv';
import { buildPlan } from '../src/report/plan';
import { parseSbomText } from '../src/report/sbom';

const N = Number(process.argv[2] ?? 2000);
const M = Number(process.argv[3] ?? 5000);
const t0 = process.hrtime.bigint();
const sbomText = JSON.stringify({ bomFormat: 'CycloneDX', specVersion: '1.6', version: 1, components: Array.from({ length: N }, (_, i) => ({
  type: 'library', 'bom-ref': `c${i}`, name: `pkg${i}`, version: `1.${i % 7}.${i % 13}-1~deb12u1`, purl: `pkg:deb/debian/pkg${i}@1.${i % 7}.${i % 13}-1~deb12u1?arch=amd64&distro=debian-12&upstream=src${i % 1500}`,
})) });
const osvText = JSON.stringify(Array.from({ length: M }, (_, i) => ({ id: `SYN-${i}`, affected: [{ package: { ecosystem: 'Debian:12', name: `src${i % 1500}` },
  ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: i % 3 === 0 ? '9.0-1' : '1.0-1' }] }],
  ecosystem_specific: { imports: [{ path: `libsrc${i % 1500}.so.1`, symbols: [`f${i}`, `g${i}`] }] } }] })));
const t1 = process.hrtime.bigint();
const sbom = parseSbomText(sbomText, 'bench-sbom.json');
const vulns = parseOsvText(osvText, 'bench-osv.json');
const t2 = process.hrtime.bigint();
const host = hostProduct('bench', 'bench');
const files = new ProductFiles();
files.add(host, '/nonexistent-root', sbom);
const plan = buildPlan([{ product: host, sbom }], vulns.records, files);
const t3 = process.hrtime.bigint();
const ms = (a: bigint, b: bigint): string => (Number(b - a) / 1e6).toFixed(0);
console.log(`plan bench: ${N} components, ${M} OSV records (${(sbomText.length + osvText.length) >> 10} KiB JSON): generate ${ms(t0, t1)} ms, parse ${ms(t1, t2)} ms, match+plan ${ms(t2, t3)} ms; ${plan.vulnerable} vulnerable pairs, ${plan.unprobeable.length} unprobeable, ${plan.functions.length} targets`);
