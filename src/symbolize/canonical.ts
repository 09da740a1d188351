import type { Runtime } from '../model/record';

/**
 * canonicalNativeSymbol is the native identity rule of docs/format.md: the ELF linkage name
 * with `@VER`/`@@VER` removed and GCC clone suffixes folded (`.isra.N`, `.constprop.N`,
 * `.part.N`, `.cold`, `.lto_priv.N`, `.localalias`, …), repeatedly: `f.isra.0.cold` → `f`.
 * A leading `.` or a name made only of suffixes is kept as is.
 */
export function canonicalNativeSymbol(name: string): string {
  let s = name;
  const at = s.indexOf('@');
  if (at > 0) s = s.slice(0, at);
  for (let i = 0; i < 8; i++) {
    const m = /\.(?:isra|constprop|part|lto_priv|clone|specialized|llvm)\.\d+$|\.(?:cold|hot|localalias|unlikely)(?:\.\d+)?$/.exec(s);
    if (m === null || m.index === 0) break;
    s = s.slice(0, m.index);
  }
  return s;
}

/** GoName is a Go runtime function name split the way govulncheck splits it. */
export interface GoName {
  pkg: string;
  /** canonical is `importpath.Func` or `importpath.Recv.Method`. */
  canonical: string;
}

/**
 * canonicalGoSymbol converts a runtime name (`golang.org/x/net/http2.(*Framer).ReadFrame`) to
 * govulncheck's form (`golang.org/x/net/http2.Framer.ReadFrame`): package path URL-unescaped,
 * receiver's `(*` `)` removed, type parameters `[...]` removed, closures (`.func1`) kept.
 */
export function splitGoSymbol(name: string): GoName {
  const noTypeArgs = stripBrackets(name);
  // The package path ends at the first '.' after the last '/' (debug/gosym Sym.PackageName).
  const slash = noTypeArgs.lastIndexOf('/');
  const dot = noTypeArgs.indexOf('.', slash + 1);
  if (dot < 0) return { pkg: '', canonical: noTypeArgs };
  let pkg = noTypeArgs.slice(0, dot);
  try {
    pkg = decodeURIComponent(pkg);
  } catch {
    // keep the escaped form when it is not valid percent-encoding
  }
  const rest = noTypeArgs.slice(dot + 1).replace(/^\(\*([^)]*)\)/, '$1').replace(/^\(([^)]*)\)/, '$1');
  return { pkg, canonical: `${pkg}.${rest}` };
}

export function canonicalGoSymbol(name: string): string {
  return splitGoSymbol(name).canonical;
}

function stripBrackets(s: string): string {
  if (!s.includes('[')) return s;
  let out = '';
  let depth = 0;
  for (const c of s) {
    if (c === '[') depth++;
    else if (c === ']') depth = Math.max(0, depth - 1);
    else if (depth === 0) out += c;
  }
  return out;
}

/** canonicalSymbol dispatches on the function's kind; kinds without a rule pass through NFC. */
export function canonicalSymbol(kind: Runtime, raw: string): string {
  switch (kind) {
    case 'native':
      return canonicalNativeSymbol(raw);
    case 'go':
      return canonicalGoSymbol(raw);
    default:
      return raw.normalize('NFC');
  }
}
