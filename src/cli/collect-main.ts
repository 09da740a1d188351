import { makeCli } from './run';

/**
 * `rtev collect` alone: bin/rtev runs this entry's bundle (dist/bundle/collect-main.js) for
 * `rtev collect ...`, so a collector start does not parse the other commands' code (16 ms of CPU per
 * start on Node 20; docs/architecture.md, "The CLI bundle"). Every other invocation runs src/cli/main.ts.
 */
export const { main, runCli } = makeCli({ collect: () => require('./commands/collect').collectCommand });
