/**
 * Bounds on everything read from a package database. A container controls its own
 * /var/lib/dpkg, site-packages and node_modules, so every size and count is capped; what
 * exceeds a cap is counted and its files are attributed as unknown (`db_too_large`).
 */
export interface PackageLimits {
  /** bytes of /var/lib/dpkg/status (or of all status.d files together) */
  maxStatusBytes: number;
  /** stanzas read from a status file */
  maxPackages: number;
  /** fields of one stanza, and bytes of one field value */
  maxFieldsPerStanza: number;
  maxFieldBytes: number;
  /** info/*.list files read, bytes of one list, owned paths in all lists together */
  maxListFiles: number;
  maxListBytes: number;
  maxOwnedPaths: number;
  /** bytes of one RECORD, METADATA, package.json, os-release or MANIFEST.MF */
  maxSmallFileBytes: number;
  /** dist-info directories looked at in one site-packages directory */
  maxDistInfos: number;
  /** directory levels walked up from a file looking for node_modules or site-packages */
  maxWalkUp: number;
  /** entries of one directory listing */
  maxDirEntries: number;
  /** zip central directory: entries and bytes */
  maxZipEntries: number;
  maxZipDirectoryBytes: number;
  /** symlinks followed while resolving one path inside a root */
  maxSymlinks: number;
}

export const DEFAULT_PACKAGE_LIMITS: PackageLimits = {
  maxStatusBytes: 64 * 1024 * 1024,
  maxPackages: 100_000,
  maxFieldsPerStanza: 256,
  maxFieldBytes: 1024 * 1024,
  maxListFiles: 50_000,
  maxListBytes: 16 * 1024 * 1024,
  maxOwnedPaths: 4_000_000,
  maxSmallFileBytes: 4 * 1024 * 1024,
  maxDistInfos: 10_000,
  maxWalkUp: 32,
  maxDirEntries: 100_000,
  maxZipEntries: 200_000,
  maxZipDirectoryBytes: 64 * 1024 * 1024,
  maxSymlinks: 40,
};

/** TooLargeError says a bound was hit; callers turn it into `db_too_large`. */
export class TooLargeError extends Error {
  readonly code = 'TOO_LARGE';
}

/** MalformedError says input could not be parsed; callers turn it into `db_malformed`. */
export class MalformedError extends Error {
  readonly code = 'MALFORMED';
}
