/**
 * Package attribution (issue 14): which package owns each file, library and program the
 * evidence names. Pure parsers here, host I/O in host/; the rules are in docs/format.md
 * ("Attribution") and the API in /work/coord/iface-packages.md.
 */
export { debPurl, formatPurl, golangPurl, mavenPurl, npmPurl, parsePurl, pypiName, pypiPurl, samePurl } from './purl';
export type { Purl, DebPurlInput } from './purl';
export { DpkgIndex, parseDpkgList, parseDpkgStatus, pyToSource, usrMergeAliases } from './dpkg';
export type { DpkgPackage, DpkgStatus } from './dpkg';
export { parseOsRelease, isDebianLike } from './os-release';
export type { OsRelease } from './os-release';
export { parseRecord, parseWheelMetadata, distInfoDirName, sitePackagesOf } from './python';
export type { RecordRow } from './python';
export { parsePackageJson, npmPackageDir } from './npm';
export { readJarCoordinates, parseManifest, parseProperties } from './jar';
export type { JarCoordinates } from './jar';
export { DEFAULT_PACKAGE_LIMITS, TooLargeError, MalformedError } from './limits';
export type { PackageLimits } from './limits';
export { PackageResolver } from './resolver';
export type { PathAttribution, PathKind, ResolverCounters } from './resolver';
export { hostRoot, procRoot, DirRoot } from './host/root';
export type { RootFs, RootKind } from './host/root';
export { LayersRoot, storageLayerChain } from './host/layers';
export * from './evidence';
export { readGoBuildInfo } from '../symbolize/go';
export type { GoBuildInfo, GoModule } from '../symbolize/go';
export { Attributor } from './attributor';
export type { AttributorOptions, AttributorCounters, AttributionTicket, AttributedRecord } from './attributor';
