import type { CallDescription } from './symbolizer';

/**
 * formatFrames renders a call's symbolized stack for humans (`rtev query --frames`), one
 * frame per line, innermost first: `#0 0x55…1c0 vuln_func+0x0 (/app/c_pie) [native symtab]`.
 */
export function formatFrames(d: CallDescription): string {
  const lines = d.frames.map((f, i) => {
    const name = f.symbol === undefined ? '??' : f.offset === undefined ? f.symbol : `${f.symbol}+${f.offset}`;
    const lib = f.library === undefined ? '' : ` (${f.library})`;
    return `#${i} ${f.addr} ${name}${lib} [${f.kind} ${f.source}]`;
  });
  if (d.stackQuality !== 'complete') lines.push(`(stack ${d.stackQuality})`);
  return lines.join('\n');
}
