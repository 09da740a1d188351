import { UsageError } from '../../errors';
import { boundedLines, fileLines } from '../../platform/lines';
import { createRecordValidator } from '../../encode/validate';
import { parseArgs, parseInteger, usageText, type OptionSpec } from '../args';
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
    if (file === undefined) throw new UsageError('validate needs a FILE (or - for stdin)', 'rtev validate FILE, or rtev validate - < FILE');
    const maxErrorsArg = parsed.values.get('max-errors');
    const maxErrors = maxErrorsArg === undefined ? 20 : parseInteger(maxErrorsArg, 'max-errors', 0, Number.MAX_SAFE_INTEGER);
    // bounded lines: a file without newlines (or /dev/zero) is refused, not read into memory
    const lines = file === '-' ? boundedLines(io.stdin as AsyncIterable<Buffer>, 'standard input') : fileLines(file, 'validate input');
    const validate = createRecordValidator();
    let count = 0;
    let failures = 0;
    for await (const line of lines) {
      count++;
      const problem = validate(line);
      if (problem === undefined) continue;
      failures++;
      if (failures <= maxErrors) io.stdout.write(`line ${count}: ${problem}\n`);
    }
    if (failures > maxErrors) io.stdout.write(`... and ${failures - maxErrors} more\n`);
    io.stderr.write(`rtev: ${count} records, ${failures} invalid\n`);
    return failures === 0 ? ExitCode.OK : ExitCode.VERIFY_INVALID;
  },
};
