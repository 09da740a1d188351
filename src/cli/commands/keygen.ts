import { UsageError } from '../../errors';
import { publicKeyPath, writeKeyPair } from '../../sign/key-files';
import { generateSigningKey } from '../../sign/keys';
import { parseArgs, usageText, type OptionSpec } from '../args';
import { ExitCode } from '../exit-codes';
import type { CliIO, Command } from '../io';

const OPTIONS: OptionSpec[] = [
  { name: 'out', kind: 'string', value: 'FILE', help: 'the private key file to create (FILE.pub is created next to it)' },
];

const USAGE = usageText(`usage: rtev keygen --out FILE

Creates an Ed25519 signing key for 'rtev collect --key FILE': FILE holds the private key
(PKCS#8 PEM, mode 0600) and FILE.pub the public key (SPKI PEM) that 'rtev verify --pubkey'
takes. Existing files are never overwritten. Prints the key's fingerprint, the sha256 of
its SPKI DER encoding, which is also the DSSE keyid of every signature it makes.`, OPTIONS);

/** keygenCommand implements `rtev keygen`. */
export const keygenCommand: Command = {
  summary: 'create an Ed25519 key pair for signing evidence',
  usage: USAGE,
  async run(args: string[], io: CliIO): Promise<number> {
    const out = parseArgs(args, OPTIONS).values.get('out');
    if (out === undefined || out === '') throw new UsageError('keygen needs --out FILE', 'e.g. rtev keygen --out key.pem (then rtev collect --key key.pem)');
    const key = generateSigningKey();
    writeKeyPair(out, key);
    io.stdout.write(`private key: ${out} (mode 0600)\npublic key:  ${publicKeyPath(out)}\nfingerprint: sha256:${key.keyid}\n`);
    return ExitCode.OK;
  },
};
