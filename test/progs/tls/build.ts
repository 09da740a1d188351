/**
 * Builds test/progs/tls/gotls (Go crypto/tls client and server) with the Debian golang-go
 * toolchain, normally and stripped (-ldflags='-s -w'), statically (CGO_ENABLED=0) so the same
 * binary runs in a scratch container image. Used by test/e2e/tls-go.e2e.test.ts,
 * test/e2e/tls-go-decode.e2e.test.ts, test/helpers/images.ts and bench/go-tls.bench.ts.
 */
import { execFileSync, type ExecFileSyncOptions } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const GOTLS_SRC = path.resolve(__dirname, '../../../../test/progs/tls/gotls');

export interface GoTlsBuild {
  normal: string;
  stripped: string;
  goVersion: string;
}

/** buildGoTls builds both variants into a new temp dir (a Go build cache shared between calls). */
export function buildGoTls(): GoTlsBuild {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-gotls-'));
  const cache = path.join(os.tmpdir(), 'rtev-test-gocache');
  const env = {
    ...process.env, CGO_ENABLED: '0', GOFLAGS: '-mod=mod', GOCACHE: cache, GOPATH: path.join(dir, 'gopath'),
    GOPROXY: 'off', GO111MODULE: 'on', GOTOOLCHAIN: 'local',
  };
  const normal = path.join(dir, 'gotls');
  const stripped = path.join(dir, 'gotls-s');
  const opts: ExecFileSyncOptions = { cwd: GOTLS_SRC, env, stdio: ['ignore', 'pipe', 'pipe'] };
  execFileSync('go', ['build', '-buildvcs=false', '-o', normal, '.'], opts);
  execFileSync('go', ['build', '-buildvcs=false', '-ldflags=-s -w', '-o', stripped, '.'], opts);
  const goVersion = execFileSync('go', ['version'], { env, encoding: 'utf8' }).trim();
  return { normal, stripped, goVersion };
}
