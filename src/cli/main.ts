import { makeCli, type CommandTable } from './run';

/**
 * The command table of `rtev` (bin/rtev runs it as dist/bundle/main.js; `rtev collect` from
 * src/cli/collect-main.ts's bundle, which holds that command alone). Each entry loads its module
 * lazily so `rtev validate` does not pay for loading the BPF addon.
 */
const COMMANDS: CommandTable = {
  collect: () => require('./commands/collect').collectCommand,
  validate: () => require('./commands/validate').validateCommand,
  query: () => require('./commands/query').queryCommand,
  summary: () => require('./commands/summary').summaryCommand,
  verify: () => require('./commands/verify').verifyCommand,
  keygen: () => require('./commands/keygen').keygenCommand,
  'node-hash': () => require('./commands/node-hash').nodeHashCommand,
  plan: () => require('./commands/plan').planCommand,
  report: () => require('./commands/report').reportCommand,
  ship: () => require('./commands/ship').shipCommand,
  ingest: () => require('./commands/ingest').ingestCommand,
  fleet: () => require('./commands/fleet').fleetCommand,
  sbom: () => require('./commands/sbom').sbomCommand,
};

export const { main, runCli, commandNames, commandUsage } = makeCli(COMMANDS);
export { reportError } from './run';
