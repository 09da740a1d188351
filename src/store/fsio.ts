/** File I/O helpers live in src/platform/fsio.ts (shared by sign/ and store/); re-exported for store's modules. */
export * from '../platform/fsio';
