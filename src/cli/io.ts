/** CliIO is what a command may touch of the terminal; tests pass their own. */
export interface CliIO {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  stdin: NodeJS.ReadableStream;
}

export function processIO(): CliIO {
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin };
}

/** A Command is one `rtev <name>` subcommand. */
export interface Command {
  summary: string;
  usage: string;
  run(args: string[], io: CliIO): Promise<number>;
}
