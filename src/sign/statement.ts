import { canonicalize, type CanonicalValue } from '../encode/canonical';

/** The in-toto Statement v1 (https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md). */
export const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
/** The DSSE payload type of an in-toto statement. */
export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
/** Predicate type of one sealed evidence chunk (docs/format.md). */
export const CHUNK_PREDICATE_TYPE = 'https://rtev.dev/attestation/evidence-chunk/v1';
/** Predicate type of a retention checkpoint (docs/format.md). */
export const CHECKPOINT_PREDICATE_TYPE = 'https://rtev.dev/attestation/evidence-checkpoint/v1';

export interface Subject {
  name: string;
  digest: { sha256: string };
}

/** statementBytes builds the canonical JSON bytes of a Statement with one subject. */
export function statementBytes(subject: Subject, predicateType: string, predicate: CanonicalValue): Buffer {
  return Buffer.from(canonicalize({
    _type: STATEMENT_TYPE,
    predicate,
    predicateType,
    subject: [{ digest: { sha256: subject.digest.sha256 }, name: subject.name }],
  }));
}
