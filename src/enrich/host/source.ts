import { promises as fsp } from 'node:fs';
import type { ContainerRuntime, DigestResult, EnrichReason } from '../types';

/**
 * ContainerSource is one place that knows containers of some runtimes: containers-storage
 * (podman, CRI-O), Docker state files, the Docker API, the containerd API. `resolve` never
 * throws: failures come back as `{ ok: false, reason }` so the Enricher can count them.
 */
export interface ContainerSource {
  /** stable name used in warnings and counters (`containers-storage`, `docker-api`, ...) */
  readonly name: string;
  /** runtimes whose containers this source can know */
  readonly runtimes: readonly ContainerRuntime[];
  /** resolve finds a container by full id; `container_not_found` means "not mine" */
  resolve(id: string, hint: { namespace?: string }): Promise<DigestResult>;
}

/** SourceError carries a counter reason through async code inside a source. */
export class SourceError extends Error {
  readonly reason: EnrichReason;
  constructor(reason: EnrichReason, message: string) {
    super(message);
    this.reason = reason;
  }
}

/** failure converts anything thrown inside a source into a DigestResult. */
export function failure(err: unknown, fallback: EnrichReason): DigestResult {
  if (err instanceof SourceError) return { ok: false, reason: err.reason, detail: err.message };
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') return { ok: false, reason: 'container_not_found', detail: String(err) };
  if (code === 'EACCES' || code === 'EPERM' || code === 'EISDIR') {
    return { ok: false, reason: 'metadata_unreadable', detail: String(err) };
  }
  if (err instanceof SyntaxError || err instanceof TypeError || err instanceof RangeError) {
    return { ok: false, reason: 'metadata_malformed', detail: err.message };
  }
  return { ok: false, reason: fallback, detail: String(err) };
}

/**
 * JsonFileCache re-reads and re-parses a JSON file only when its mtime or size changed, so
 * resolving many containers costs one parse of containers.json/images.json.
 */
export class JsonFileCache<T> {
  readonly #parse: (json: unknown) => T;
  readonly #maxBytes: number;
  #entries = new Map<string, { mtimeNs: bigint; size: bigint; value: T }>();

  constructor(parse: (json: unknown) => T, maxBytes = 64 * 1024 * 1024) {
    this.#parse = parse;
    this.#maxBytes = maxBytes;
  }

  /** read returns the parsed file; throws ENOENT/EACCES errors, SyntaxError or the parser's TypeError. */
  async read(file: string): Promise<T> {
    const st = await fsp.stat(file, { bigint: true });
    const hit = this.#entries.get(file);
    if (hit !== undefined && hit.mtimeNs === st.mtimeNs && hit.size === st.size) return hit.value;
    if (st.size > BigInt(this.#maxBytes)) throw new SourceError('metadata_malformed', `${file} is larger than ${this.#maxBytes} bytes`);
    const value = this.#parse(JSON.parse(await fsp.readFile(file, 'utf8')));
    this.#entries.set(file, { mtimeNs: st.mtimeNs, size: st.size, value });
    return value;
  }
}
