import { CHUNK_BUCKET, ENVELOPE_STREAM, envelopeSubject, isHostId } from './names';

/**
 * nats-server configuration for a fleet account, with nkey users (not the legacy
 * `authorization` block, see CVE-2023-47090): one user per host that may publish only on
 * its own envelope subject (and use the chunk bucket), one for ingest, and a system account.
 */

export interface AccountsInput {
  ingestNkey: string;
  hosts: { hostId: string; nkey: string }[];
  /** system account user (monitoring); optional */
  systemNkey?: string;
}

const NKEY_USER = /^U[A-Z2-7]{55}$/;

export function renderAccounts(a: AccountsInput): string {
  for (const k of [a.ingestNkey, ...a.hosts.map((h) => h.nkey), ...(a.systemNkey !== undefined ? [a.systemNkey] : [])]) {
    if (!NKEY_USER.test(k)) throw new Error(`not an nkey user public key: ${k.slice(0, 60)}`);
  }
  for (const h of a.hosts) if (!isHostId(h.hostId)) throw new Error(`not a host id: ${h.hostId.slice(0, 60)}`);
  const q = (s: string): string => JSON.stringify(s);
  const objStream = `OBJ_${CHUNK_BUCKET}`;
  const hostUser = (h: { hostId: string; nkey: string }): string => `      { nkey: ${h.nkey}, permissions: {
          publish: { allow: [${[envelopeSubject(h.hostId), `$O.${CHUNK_BUCKET}.>`, '$JS.API.INFO', `$JS.API.STREAM.INFO.${objStream}`, `$JS.API.STREAM.INFO.${ENVELOPE_STREAM}`,
    `$JS.API.STREAM.MSG.GET.${objStream}`, `$JS.API.DIRECT.GET.${objStream}.>`, `$JS.API.STREAM.PURGE.${objStream}`, `$JS.API.STREAM.NAMES`].map(q).join(', ')}] }
          subscribe: { allow: ["_INBOX.>"] } } }`;
  return `accounts {
  RTEV {
    jetstream: enabled
    users: [
      { nkey: ${a.ingestNkey}, permissions: {
          publish: { allow: ["$JS.API.>", "$JS.ACK.${ENVELOPE_STREAM}.>", "$JS.ACK.${objStream}.>", "$O.${CHUNK_BUCKET}.>"] }
          subscribe: { allow: ["_INBOX.>"] } } }
${a.hosts.map(hostUser).join('\n')}
    ]
  }
  SYS {${a.systemNkey !== undefined ? ` users: [ { nkey: ${a.systemNkey} } ] ` : ''}}
}
system_account: SYS
`;
}
