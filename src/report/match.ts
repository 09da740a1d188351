import type { Skip } from './input';
import { evaluateAffected, type AffectedFunction, type OsvAffected, type OsvRecord, type RangeVerdict } from './osv';
import { osvName, purlEcosystem } from './purl';
import type { SbomComponent } from './sbom';
import { VersionError } from './version';

/**
 * Joins SBOM components with OSV affected entries. Debian OSV records name *source*
 * packages (`openssl`) while SBOMs list binary packages (`libssl3`): a deb component matches
 * by its own name and by its source, from the purl's `upstream=` qualifier or the dpkg
 * `Source:` map given by the caller. A `Debian:N` entry only matches a component of release
 * N (`distro=debian-N`); a component without a distro qualifier matches any release.
 */

export interface Finding {
  component: SbomComponent;
  vuln: OsvRecord;
  affected: OsvAffected;
  version: string;
  verdict: RangeVerdict;
  /** the functions the advisory names for this package (may be empty) */
  functions: AffectedFunction[];
  /** how the package was matched: `name` or `source:<src>` */
  matchedBy: string;
}

export interface MatchResult {
  findings: Finding[];
  skipped: Skip[];
  /** components that could be looked up (purl with a known ecosystem and a version) */
  matchable: number;
}

export interface MatchOptions {
  /** Debian binary package → source package (dpkg `Source:`), used when the purl has no upstream= */
  debSources?: ReadonlyMap<string, string>;
}

/** VulnIndex holds OSV affected entries by `family\0name`. */
export class VulnIndex {
  readonly byKey = new Map<string, Array<{ vuln: OsvRecord; affected: OsvAffected }>>();

  constructor(records: readonly OsvRecord[]) {
    for (const vuln of records) {
      for (const affected of vuln.affected) {
        const key = `${affected.family}\0${osvName(affected.family, affected.name)}`;
        let list = this.byKey.get(key);
        if (list === undefined) this.byKey.set(key, (list = []));
        list.push({ vuln, affected });
      }
    }
  }
}

export function matchComponents(components: readonly SbomComponent[], index: VulnIndex, opts: MatchOptions = {}): MatchResult {
  const findings: Finding[] = [];
  const skipped: Skip[] = [];
  let matchable = 0;
  for (const c of components) {
    const eco = purlEcosystem(c.parsed);
    if (typeof eco === 'string') {
      skipped.push({ what: `component ${c.purl}`, reason: eco });
      continue;
    }
    const version = c.parsed.version ?? c.version;
    if (version === undefined || version === '') {
      skipped.push({ what: `component ${c.purl}`, reason: 'no version' });
      continue;
    }
    matchable++;
    const keys: Array<[string, string]> = [[eco.name, 'name']];
    const source = eco.source ?? opts.debSources?.get(eco.name);
    if (eco.family === 'Debian' && source !== undefined && source !== eco.name) keys.push([source, `source:${source}`]);
    // one finding per (component, vulnerability): the most severe verdict over its entries
    const best = new Map<string, Finding>();
    for (const [name, how] of keys) {
      for (const { vuln, affected } of index.byKey.get(`${eco.family}\0${osvName(eco.family, name)}`) ?? []) {
        if (eco.family === 'Debian' && affected.release !== '' && eco.release !== '' && affected.release !== eco.release) continue;
        let verdict: RangeVerdict;
        try {
          verdict = evaluateAffected(affected, version);
        } catch (err) {
          if (!(err instanceof VersionError)) throw err;
          skipped.push({ what: `component ${c.purl} × ${vuln.id}`, reason: err.message });
          continue;
        }
        const f: Finding = { component: c, vuln, affected, version, verdict, functions: affected.functions, matchedBy: how };
        const prev = best.get(vuln.id);
        if (prev === undefined || rank(f.verdict) > rank(prev.verdict)) best.set(vuln.id, f);
      }
    }
    findings.push(...best.values());
  }
  return { findings, skipped, matchable };
}

function rank(v: RangeVerdict): number {
  return v.status === 'affected' ? 2 : v.status === 'fixed' ? 1 : 0;
}
