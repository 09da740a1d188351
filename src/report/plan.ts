import * as path from 'node:path/posix';
import type { Skip } from './input';
import { matchComponents, VulnIndex, type Finding, type MatchOptions } from './match';
import type { AffectedFunction, OsvRecord } from './osv';
import { fileMatches, type Product } from './verdict';
import type { Sbom, SbomComponent } from './sbom';

/**
 * `rtev plan`: the affected functions of the vulnerable components present in each product,
 * as targets of `rtev collect --functions FILE` (docs/function-calls.md), and for every
 * function that cannot be probed, why (docs/reachability.md, "Plan").
 */

/** PlanHost answers questions about the files of a product (host I/O lives behind it). */
export interface PlanHost {
  /** files of the component in the product, paths inside the product's root */
  componentFiles(product: Product, c: SbomComponent): string[];
  /** where the product's root is on this host ('' for the host itself) */
  rootPrefix(product: Product): string;
  exists(product: Product, file: string): boolean;
  /** one path per distinct file (symlinks and hard links collapsed; a regular file's own path preferred) */
  distinctFiles(product: Product, files: readonly string[]): string[];
  /** canonical function names in the file's symbol tables (native and Go), or the reason they cannot be read */
  symbols(hostPath: string): ReadonlySet<string> | string;
}

export interface PlanTarget {
  binary: string;
  symbol: string;
  product: string;
  component: string;
  vulnerabilities: string[];
}

export interface Unprobeable {
  product: string;
  vulnerability: string;
  component: string;
  kind: AffectedFunction['kind'];
  path: string;
  symbol: string;
  reason: string;
}

export interface Plan {
  functions: PlanTarget[];
  unprobeable: Unprobeable[];
  /** vulnerable (by version) component × vulnerability pairs per product */
  vulnerable: number;
  /** of those, pairs whose advisory names no function (component-level evidence only) */
  withoutFunctions: number;
  skipped: Skip[];
}

export function buildPlan(inputs: ReadonlyArray<{ product: Product; sbom: Sbom }>, vulns: readonly OsvRecord[], host: PlanHost, opts: MatchOptions = {}): Plan {
  const index = new VulnIndex(vulns);
  const targets = new Map<string, PlanTarget>();
  const unprobeable = new Map<string, Unprobeable>();
  const skipped: Skip[] = [];
  let vulnerable = 0;
  let withoutFunctions = 0;
  for (const { product, sbom } of inputs) {
    skipped.push(...sbom.skipped.map((s) => ({ what: `${sbom.source}: ${s.what}`, reason: s.reason })));
    const m = matchComponents(sbom.components, index, opts);
    skipped.push(...m.skipped);
    const files = new Map<string, string[]>();
    for (const f of m.findings) {
      if (f.verdict.status !== 'affected') continue;
      vulnerable++;
      if (f.functions.length === 0) withoutFunctions++;
      for (const fn of f.functions) {
        const res = planFunction(product, f, fn, host, files);
        if (typeof res === 'string') {
          const key = `${product.id}\0${f.vuln.id}\0${f.component.purl}\0${fn.symbol}`;
          unprobeable.set(key, { product: product.id, vulnerability: f.vuln.id, component: f.component.purl, kind: fn.kind, path: fn.path, symbol: fn.symbol, reason: res });
          continue;
        }
        for (const binary of res) {
          const key = `${binary}\0${fn.symbol}`;
          const t = targets.get(key);
          if (t === undefined) targets.set(key, { binary, symbol: fn.symbol, product: product.id, component: f.component.purl, vulnerabilities: [f.vuln.id] });
          else if (!t.vulnerabilities.includes(f.vuln.id)) t.vulnerabilities.push(f.vuln.id);
        }
      }
    }
  }
  const sortBy = <T>(xs: T[], k: (x: T) => string): T[] => xs.sort((a, b) => (k(a) < k(b) ? -1 : k(a) > k(b) ? 1 : 0));
  return {
    functions: sortBy([...targets.values()], (t) => `${t.binary}\0${t.symbol}`),
    unprobeable: sortBy([...unprobeable.values()], (u) => `${u.product}\0${u.vulnerability}\0${u.symbol}`),
    vulnerable, withoutFunctions, skipped,
  };
}

/** planFunction returns the host paths to probe, or why the function cannot be probed. */
function planFunction(product: Product, f: Finding, fn: AffectedFunction, host: PlanHost, cache: Map<string, string[]>): string[] | string {
  if (fn.kind === 'rust') return 'runtime not supported: Rust functions are named by crate path (mangled in binaries); name the binary and its symbol with the native imports[] convention';
  if (fn.kind === 'native' && (f.affected.family === 'npm' || f.affected.family === 'PyPI') && !fn.path.includes('.so') && !fn.path.startsWith('/')) {
    return `runtime not supported: ${f.affected.family} functions run in an interpreter (only native shared objects and executables are probed)`;
  }
  let owned = cache.get(f.component.ref);
  if (owned === undefined) cache.set(f.component.ref, (owned = host.componentFiles(product, f.component)));
  const candidates = fn.kind === 'go'
    ? owned
    : fn.path.startsWith('/')
      ? (host.exists(product, fn.path) ? [fn.path] : [])
      : owned.filter((p) => fileMatches(fn.path, p));
  if (candidates.length === 0) {
    return fn.kind === 'go'
      ? `file not present: the SBOM names no executable containing ${f.component.name} (an SBOM from 'rtev sbom' does)`
      : `file not present: no file ${fn.path} of ${f.component.name} in ${product.name}`;
  }
  const out: string[] = [];
  const reasons: string[] = [];
  for (const file of host.distinctFiles(product, candidates)) {
    const hostPath = host.rootPrefix(product) + file;
    const syms = host.symbols(hostPath);
    if (typeof syms === 'string') reasons.push(`${file}: ${syms}`);
    else if (syms.has(fn.symbol)) out.push(hostPath);
    else reasons.push(`${file}`);
  }
  if (out.length > 0) return [...new Set(out)];
  const unreadable = reasons.filter((r) => r.includes(': '));
  if (unreadable.length === reasons.length) return `file not readable: ${unreadable.join('; ')}`;
  return `not in any symbol table of ${reasons.filter((r) => !r.includes(': ')).map((r) => path.basename(r)).join(', ')} (an internal or stripped symbol: install the package's debug symbols, or the name is wrong)`;
}

/** planFile renders the `--functions FILE` JSON (rtev collect reads `functions`; the rest is for people). */
export function planFile(p: Plan): string {
  return JSON.stringify({
    functions: p.functions.map((t) => ({ binary: t.binary, symbol: t.symbol, component: t.component, product: t.product, vulnerabilities: t.vulnerabilities })),
    unprobeable: p.unprobeable,
    summary: { targets: p.functions.length, unprobeable: p.unprobeable.length, vulnerable: p.vulnerable, without_functions: p.withoutFunctions, skipped: p.skipped.length },
    skipped: p.skipped,
  }, null, 2) + '\n';
}
