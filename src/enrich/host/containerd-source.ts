import type * as Http2 from 'node:http2';
import type * as Net from 'node:net';
import {
  decodeGetContainerResponse,
  decodeGetImageResponse,
  decodeListNamespacesResponse,
  encodeStringField,
  grpcFrame,
  grpcUnframe,
} from '../protobuf';
import { isDigest, type ContainerRuntime, type DigestResult } from '../types';
import { SourceError, failure, type ContainerSource } from './source';

/** gRPC status codes used here (https://grpc.github.io/grpc/core/md_doc_statuscodes.html). */
const GRPC_NOT_FOUND = 5;

/**
 * A response body larger than this is refused (counted as `response_too_large`): gRPC's own
 * default receive limit, far above containerd's answers here (a container record with its OCI
 * spec is a few KiB to a few hundred KiB).
 */
export const CONTAINERD_MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

/**
 * ContainerdSource asks containerd's gRPC API over its unix socket, with hand-written
 * protobuf for three calls (no gRPC library): Containers.Get for the container's image name,
 * Images.Get for that image's target descriptor (its manifest or index digest: what
 * `ctr images ls` shows and what CRI reports as the repo digest), and Namespaces.List when
 * no namespace is known. The namespace travels in the `containerd-namespace` header.
 */
export class ContainerdSource implements ContainerSource {
  readonly name = 'containerd';
  readonly runtimes: readonly ContainerRuntime[] = ['containerd'];
  readonly #socket: string;
  readonly #timeoutMs: number;
  readonly #namespaces: string[] | undefined;
  readonly #maxResponseBytes: number;

  /** `namespaces` limits the search; undefined asks containerd for its namespaces. */
  constructor(socketPath: string, timeoutMs: number, namespaces?: string[], maxResponseBytes = CONTAINERD_MAX_RESPONSE_BYTES) {
    this.#socket = socketPath;
    this.#timeoutMs = timeoutMs;
    this.#namespaces = namespaces;
    this.#maxResponseBytes = maxResponseBytes;
  }

  async resolve(id: string, hint: { namespace?: string }): Promise<DigestResult> {
    try {
      const namespaces = hint.namespace !== undefined ? [hint.namespace] : await this.#listNamespaces();
      for (const ns of namespaces) {
        const body = await this.#call(ns, '/containerd.services.containers.v1.Containers/Get', encodeStringField(1, id));
        if (body === null) continue;
        const c = decodeGetContainerResponse(body);
        const r = await this.#imageDigest(ns, c.image);
        return r.ok ? { ...r, image: { names: c.image === '' ? [] : [c.image] } } : r;
      }
      return { ok: false, reason: 'container_not_found' };
    } catch (err) {
      return failure(err, 'socket_error');
    }
  }

  async #imageDigest(ns: string, image: string): Promise<DigestResult> {
    if (image === '') return { ok: false, reason: 'no_digest', detail: 'container has no image' };
    const body = await this.#call(ns, '/containerd.services.images.v1.Images/Get', encodeStringField(1, image));
    if (body === null) {
      // the image was removed after the container was created: only a pinned reference is certain
      const pinned = /@(sha256:[a-f0-9]{64})$/.exec(image);
      return pinned !== null
        ? { ok: true, digest: pinned[1]!, basis: 'manifest' }
        : { ok: false, reason: 'image_not_found', detail: image };
    }
    const img = decodeGetImageResponse(body);
    if (!isDigest(img.targetDigest)) return { ok: false, reason: 'metadata_malformed', detail: `image ${image} target digest` };
    return { ok: true, digest: img.targetDigest, basis: 'manifest' };
  }

  async #listNamespaces(): Promise<string[]> {
    if (this.#namespaces !== undefined) return this.#namespaces;
    const body = await this.#call('', '/containerd.services.namespaces.v1.Namespaces/List', Buffer.alloc(0));
    return body === null ? [] : decodeListNamespacesResponse(body);
  }

  /**
   * call performs one unary gRPC call; returns null on NOT_FOUND. It never throws from an event
   * listener: whatever goes wrong in one (a malformed header, a body over the cap) rejects the
   * call, which resolve() turns into a counted failure.
   */
  #call(ns: string, method: string, request: Buffer): Promise<Buffer | null> {
    return new Promise((resolve, reject) => {
      let settled = false;
      // node:http2 is compiled on the first containerd call, not at every collector start
      const http2 = require('node:http2') as typeof Http2;
      const session = http2.connect('http://localhost', {
        createConnection: () => (require('node:net') as typeof Net).connect(this.#socket),
      });
      const done = (err: Error | null, value?: Buffer | null): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        session.destroy();
        if (err !== null) reject(err);
        else resolve(value ?? null);
      };
      const timer = setTimeout(() => {
        done(new SourceError('socket_timeout', `containerd ${method}: no answer within ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
      const connectionError = (err: Error): void => {
        done(new SourceError(socketReason(err), `containerd ${this.#socket} ${method}: ${err.message}`));
      };
      /** guarded: an exception inside an event listener settles the call instead of escaping */
      const guarded = <A extends unknown[]>(fn: (...args: A) => void) => (...args: A): void => {
        try {
          fn(...args);
        } catch (err) {
          done(err instanceof Error ? err : new Error(String(err)));
        }
      };
      session.on('error', connectionError);
      const headers: Http2.OutgoingHttpHeaders = {
        ':method': 'POST',
        ':path': method,
        'content-type': 'application/grpc',
        te: 'trailers',
      };
      if (ns !== '') headers['containerd-namespace'] = ns;
      const stream = session.request(headers);
      const chunks: Buffer[] = [];
      let received = 0;
      let status: number | undefined;
      let message = '';
      const takeStatus = guarded((h: Http2.IncomingHttpHeaders): void => {
        if (h['grpc-status'] !== undefined) status = Number(h['grpc-status']);
        if (typeof h['grpc-message'] === 'string') message = percentDecode(h['grpc-message']);
      });
      stream.on('response', takeStatus); // trailers-only responses carry the status here
      stream.on('trailers', takeStatus);
      stream.on('data', guarded((c: Buffer) => {
        received += c.length;
        if (received > this.#maxResponseBytes) {
          done(new SourceError('response_too_large', `containerd ${method}: response larger than ${this.#maxResponseBytes} bytes`));
          return;
        }
        chunks.push(c);
      }));
      stream.on('error', connectionError);
      // a stream reset or closed without its end (a no-op once the call settled)
      stream.on('close', () => done(new SourceError('socket_error', `containerd ${method}: stream closed before the response ended`)));
      stream.on('end', guarded(() => {
        if (status === GRPC_NOT_FOUND) return done(null, null);
        if (status !== 0) return done(new SourceError('socket_error', `containerd ${method}: grpc-status ${status} ${message}`));
        done(null, grpcUnframe(Buffer.concat(chunks)));
      }));
      stream.end(grpcFrame(request));
    });
  }
}

/** percentDecode decodes grpc-message; a malformed escape leaves the text as sent. */
function percentDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** socketReason tells "nothing listens there" (source_unavailable) from other socket failures. */
function socketReason(err: Error): 'source_unavailable' | 'socket_error' {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ECONNREFUSED') return 'source_unavailable';
  }
  return 'socket_error';
}
