/**
 * verify/: reading evidence back (docs/format.md, "Verification"). Everything here treats
 * its input as hostile: it never throws for bad content, and every finding names its file.
 */
export { evidenceDirProblem, verifyEvidence, type Finding, type Status, type VerifyReport } from './evidence';
export { checkContentAgainstPredicate, checkLedgerIdentity, MAX_LINE_BYTES, scanChunk, type ChunkContent } from './chunk';
export {
  checkFunctionCalls, checkTlsCoverage, parsePredicate, probeField, PROBE_FIELDS,
  type FunctionCallEntry, type TlsCoverageEntry, type PredicateParse, type ProbeField, type SignedChain, type SignedLedger, type SignedPredicate, type SignedRecords,
} from './predicate';
export { checkLine, type LineCheck } from './record-check';
