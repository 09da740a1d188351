import { ElfFile } from '../../symbolize/elf';
import { SymbolizeError } from '../../symbolize/errors';
import { isGoBinary, readGoBuildInfo, readGoPclntab } from '../../symbolize/go';
import { nodeHost } from '../../symbolize/host';
import { X86DecodeError, retOffsets } from './x86';

/**
 * Go crypto/tls probes (docs/probes-network.md, "Go crypto/tls"): the entry of
 * `crypto/tls.(*Conn).Read` and `(*Conn).Write`, and each of their RET instructions, found through
 * the function table (.gopclntab, kept by -ldflags='-s -w') and a linear decode of the function's
 * bytes. No uretprobe: Go moves goroutine stacks, and a return address replaced by the kernel's
 * trampoline breaks the copy and the unwinder. The BPF side (bpf/ssl_op.h, rtev_go_tls) reads the
 * register ABI (ABIInternal, Go >= 1.17 on amd64): the *Conn in RAX at entry, n in RAX at RET, the
 * goroutine (g) in R14 pairs the two.
 */

export const GO_TLS_FUNCS = [
  { name: 'crypto/tls.(*Conn).Read', op: 9 },
  { name: 'crypto/tls.(*Conn).Write', op: 10 },
] as const;

/** attach cookie flag: this offset is a RET (the cookie's low byte is the enum ssl_fn) */
export const GO_TLS_AT_RET = 0x100n;

/** the oldest Go with the register ABI on amd64 */
export const GO_MIN_MINOR = 17;
const EM_X86_64 = 62;
/** a Read/Write body larger than this is not what the Go compiler makes of crypto/tls: refuse */
const MAX_FUNC_BYTES = 64 * 1024;

export interface GoTlsProbe {
  /** file offset and attach cookie of each probe point (entries and RETs) */
  offsets: bigint[];
  cookies: bigint[];
  goVersion: string;
  /** RET instructions found, per function */
  rets: Record<string, number>;
}

/** Why a Go executable that uses crypto/tls is not probed: it is counted as TLS not observable. */
export type GoTlsRefusal = 'go_version' | 'go_arch' | 'go_decode';

export type GoTlsResolution =
  | { kind: 'not_go' }
  | { kind: 'no_tls'; goVersion: string }
  | { kind: 'probe'; probe: GoTlsProbe }
  | { kind: 'uncovered'; reason: GoTlsRefusal; goVersion: string; detail: string };

/** goMinor reads the minor version of a `go1.N[.M]` toolchain string (devel builds: the base release). */
export function goMinor(version: string): number | undefined {
  const m = /go1\.(\d+)/.exec(version);
  return m === null ? undefined : Number(m[1]);
}

/** resolveGoTls inspects one executable file. Throws on unreadable or malformed ELF. */
export function resolveGoTls(file: string): GoTlsResolution {
  const src = nodeHost.open(file);
  try {
    return resolveGoTlsElf(ElfFile.parse(src));
  } finally {
    src.close();
  }
}

export function resolveGoTlsElf(elf: ElfFile): GoTlsResolution {
  if (!isGoBinary(elf)) return { kind: 'not_go' };
  let goVersion = '';
  try {
    goVersion = readGoBuildInfo(elf)?.goVersion ?? '';
  } catch (err) {
    if (!(err instanceof SymbolizeError)) throw err;
  }
  const funcs = readGoPclntab(elf);
  if (funcs === undefined) return { kind: 'not_go' };
  const wanted = new Map<string, number>(GO_TLS_FUNCS.map((f) => [f.name, f.op]));
  const found = funcs.filter((f) => wanted.has(f.name));
  if (found.length === 0) return { kind: 'no_tls', goVersion };
  if (elf.machine !== EM_X86_64) {
    return { kind: 'uncovered', reason: 'go_arch', goVersion, detail: `ELF machine ${elf.machine}: the RET decoder and register reads are amd64 only` };
  }
  const minor = goMinor(goVersion);
  if (minor === undefined || minor < GO_MIN_MINOR) {
    return { kind: 'uncovered', reason: 'go_version', goVersion, detail: `${goVersion || 'unknown Go version'}: before go1.17 amd64 has no register ABI` };
  }
  const probe: GoTlsProbe = { offsets: [], cookies: [], goVersion, rets: {} };
  for (const f of found) {
    const op = BigInt(wanted.get(f.name)!);
    const size = f.end - f.entry;
    const entryOff = elf.vaddrToFileOffset(f.entry);
    if (size <= 0n || size > BigInt(MAX_FUNC_BYTES) || entryOff === undefined || elf.vaddrToFileOffset(f.end - 1n) !== entryOff + size - 1n) {
      return { kind: 'uncovered', reason: 'go_decode', goVersion, detail: `${f.name}: extent 0x${f.entry.toString(16)}-0x${f.end.toString(16)} not in one segment` };
    }
    const bytes = elf.src.read(Number(entryOff), Number(size));
    let rets: number[];
    try {
      // the extent runs to the next entry: the INT3 (0xCC) padding between functions decodes as 1-byte instructions
      rets = retOffsets(bytes);
    } catch (err) {
      if (!(err instanceof X86DecodeError)) throw err;
      return { kind: 'uncovered', reason: 'go_decode', goVersion, detail: `${f.name}: ${err.message}` };
    }
    if (rets.length === 0) return { kind: 'uncovered', reason: 'go_decode', goVersion, detail: `${f.name}: no RET instruction` };
    probe.rets[f.name] = rets.length;
    probe.offsets.push(entryOff);
    probe.cookies.push(op);
    for (const r of rets) {
      probe.offsets.push(entryOff + BigInt(r));
      probe.cookies.push(op | GO_TLS_AT_RET);
    }
  }
  return { kind: 'probe', probe };
}
