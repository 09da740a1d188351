/** Public surface of src/symbolize: target resolution, symbolization, node_hash, volume control. */
export { resolveTargets, parseTargetSpec, parseFunctionsFile, type ResolvedTarget, type ResolveOptions, type TargetSpec } from './targets';
export { Symbolizer, type CallDescription, type SymbolizedFrame, type SymbolizerOptions, type StackQuality, type SymbolizerCounters } from './symbolizer';
export { computeNodeHash, RUNTIMES } from './node-hash';
export { canonicalSymbol, canonicalNativeSymbol, canonicalGoSymbol } from './canonical';
export { FirstSeenFilter, type FunctionCallCount } from './first-seen';
export { ComponentResolver } from './component';
export { detectRuntime, type RuntimeDecision } from './runtime-detect';
export { SymbolizeError, type SymbolizeErrorCode } from './errors';
export { formatFrames } from './format';
