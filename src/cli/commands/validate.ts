import * as fs from 'node:fs';
import { UsageError, errorMessage } from '../../errors';
import { createRecordValidator } from '../../encode/validate';
import { parseArgs, usageText, type OptionSpec } from '../args';
import { ExitCode } from '../exit-codes';
import type { CliIO, Command } from '../io';

const OPTIONS: OptionSpec[] = [
  { name: 'max-errors', kind: 'string', value: 'N', help: 'stop listing failures after N (default 20)' },
];

export const validateCommand: Command = {
  summary: 'check every NDJSON line of FILE (or - for stdin) against the record schema',
  usage: usageText('usage: rtev validate FILE|-', OPTIONS),
  async run(args: string[], io: CliIO): Promise<number> {
    const parsed = parseArgs(args, OPTIONS, 1);
    const file = parsed.positionals[0];
    if (file === undefined) throw new UsageError('validate needs a FILE (or - for stdin)');
    const maxErrors = Number(parsed.values.get('max-errors') ?? 20);
    const text = file === '-' ? await readAll(io.stdin) : readFile(file);
    const validate = createRecordValidator();
    const lines = text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    let failures = 0;
    lines.forEach((line, i) => {
      const problem = validate(line);
      if (problem === undefined) return;
      failures++;
      if (failures <= maxErrors) io.stdout.write(`line ${i + 1}: ${problem}\n`);
    });
    if (failures > maxErrors) io.stdout.write(`... and ${failures - maxErrors} more\n`);
    io.stderr.write(`rtev: ${lines.length} records, ${failures} invalid\n`);
    return failures === 0 ? ExitCode.OK : ExitCode.VERIFY_INVALID;
  },
};

function readFile(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${errorMessage(err)}`);
  }
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}
