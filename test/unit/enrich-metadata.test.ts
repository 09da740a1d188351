import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import {
  dockerImageDigest,
  dockerRepoDigestsFromRepositories,
  normalizeRepo,
  parseDockerContainer,
  parseDockerImageRepoDigests,
  parseStorageContainers,
  parseStorageImages,
  storageImageDigest,
} from '../../src/enrich/metadata';
import {
  decodeFields,
  decodeGetContainerResponse,
  decodeGetImageResponse,
  decodeListNamespacesResponse,
  encodeStringField,
  grpcFrame,
  grpcUnframe,
} from '../../src/enrich/protobuf';

const FIX = path.resolve(__dirname, '../../../test/fixtures/containers');
const json = (p: string): unknown => JSON.parse(readFileSync(path.join(FIX, p), 'utf8'));
const PODMAN_ID = '5227d29aeb423f4559012995292aa27581f16436a69a70c6d53fedce77e42b23';
const DOCKER_ID = '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef';
const DOCKER_IMG = 'sha256:aaaabbbbccccddddeeeeffff0000111122223333444455556666777788889999';
const NGINX = 'sha256:b1f2bcd0e9e5a8b2c4c3f0d5e6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f';

test('containers-storage: podman container to the manifest digest podman reports', () => {
  const containers = parseStorageContainers(json('storage/overlay-containers/containers.json'));
  const images = parseStorageImages(json('storage/overlay-images/images.json'));
  const c = containers.get(PODMAN_ID)!;
  assert.deepEqual(c.names, ['rtev-probe']);
  assert.deepEqual(storageImageDigest(images.get(c.imageId)), {
    ok: true, basis: 'manifest', digest: 'sha256:0f8f1fe14d3039596d414fb1bb8a5710b71273f01278287c2b8682677d856d93',
  });
});

test('containers-storage: image without digest falls back to the image id; missing image is an error', () => {
  const containers = parseStorageContainers(json('storage/overlay-containers/containers.json'));
  const images = parseStorageImages(json('storage/overlay-images/images.json'));
  const crafted = containers.get('c0ffee0000000000000000000000000000000000000000000000000000000001')!;
  assert.deepEqual(storageImageDigest(images.get(crafted.imageId)), { ok: true, basis: 'image_id', digest: 'sha256:' + '9'.repeat(64) });
  const orphan = containers.get('c0ffee0000000000000000000000000000000000000000000000000000000002')!;
  assert.deepEqual(storageImageDigest(images.get(orphan.imageId)), { ok: false, reason: 'image_not_found' });
  // several different manifest digests and no `digest`: no pick, the image id
  assert.equal(storageImageDigest({ id: '7'.repeat(64), digests: ['sha256:' + '1'.repeat(64), 'sha256:' + '2'.repeat(64)], names: [] }).ok && 'image_id', 'image_id');
});

test('containers-storage: malformed files throw, bad entries are skipped', () => {
  assert.throws(() => parseStorageContainers({ not: 'an array' }), TypeError);
  assert.throws(() => parseStorageImages(null), TypeError);
  assert.equal(parseStorageContainers([{ id: 'short' }, 42, null, { id: 'F'.repeat(64) }]).size, 0);
  const imgs = parseStorageImages([{ id: '1'.repeat(64), digest: 'md5:abc' }]);
  assert.equal(imgs.get('1'.repeat(64))!.digest, undefined);
});

test('docker state files: config.v2.json plus repositories.json', () => {
  const meta = parseDockerContainer(json(`docker/containers/${DOCKER_ID}/config.v2.json`));
  assert.deepEqual(meta, { id: DOCKER_ID, name: 'web', imageId: DOCKER_IMG, imageRef: 'nginx:1.25' });
  const repo = dockerRepoDigestsFromRepositories(json('docker/image/overlay2/repositories.json'), DOCKER_IMG);
  assert.equal(repo.length, 2);
  // two different repo digests: the one of the repository the container was created from
  assert.deepEqual(dockerImageDigest(meta, repo), { ok: true, basis: 'manifest', digest: NGINX });
  assert.throws(() => dockerRepoDigestsFromRepositories({}, DOCKER_IMG), TypeError);
});

test('docker API bodies give the same answer as the state files', () => {
  const meta = parseDockerContainer(json('docker-api/container-inspect.json'));
  const repo = parseDockerImageRepoDigests(json('docker-api/image-inspect.json'));
  assert.deepEqual(dockerImageDigest(meta, repo), { ok: true, basis: 'manifest', digest: NGINX });
});

test('docker digest rule: pinned reference, unanimous digests, ambiguity, no repo digest', () => {
  const base = { id: DOCKER_ID, name: 'x', imageId: DOCKER_IMG };
  const d1 = 'sha256:' + '1'.repeat(64);
  const d2 = 'sha256:' + '2'.repeat(64);
  assert.equal((dockerImageDigest({ ...base, imageRef: `a/b@${d2}` }, [`a/b@${d1}`, `a/b@${d2}`]) as { digest: string }).digest, d2);
  assert.equal((dockerImageDigest({ ...base, imageRef: 'other' }, [`a@${d1}`, `b@${d1}`]) as { digest: string }).digest, d1);
  assert.deepEqual(dockerImageDigest({ ...base, imageRef: 'other' }, [`a@${d1}`, `b@${d2}`]), { ok: true, basis: 'image_id', digest: DOCKER_IMG });
  assert.deepEqual(dockerImageDigest({ ...base, imageRef: 'built-locally' }, []), { ok: true, basis: 'image_id', digest: DOCKER_IMG });
  assert.equal(normalizeRepo('docker.io/library/nginx:1.25'), 'nginx');
  assert.equal(normalizeRepo('localhost:5000/app@sha256:' + '1'.repeat(64)), 'localhost:5000/app');
});

test('docker: malformed config.v2.json is rejected', () => {
  assert.throws(() => parseDockerContainer([]), TypeError);
  assert.throws(() => parseDockerContainer({ ID: DOCKER_ID, Image: 'nginx' }), TypeError);
  assert.throws(() => parseDockerContainer({ ID: 'abc', Image: DOCKER_IMG }), TypeError);
  assert.throws(() => JSON.parse(readFileSync(path.join(FIX, 'docker/containers/' + 'fedcba9876543210'.repeat(4) + '/config.v2.json'), 'utf8')), SyntaxError);
});

test('containerd protobuf: recorded responses from containerd 1.6.20', () => {
  const c = decodeGetContainerResponse(readFileSync(path.join(FIX, 'containerd/get-container-response.bin')));
  assert.equal(c.id, 'a'.repeat(64));
  assert.equal(c.image, 'localhost/bbox:1');
  const img = decodeGetImageResponse(readFileSync(path.join(FIX, 'containerd/get-image-response.bin')));
  assert.equal(img.name, 'localhost/bbox:1');
  assert.equal(img.targetDigest, 'sha256:9ada15b03aca506b8d4916963d665da941351b73ffe9c51d557f10a2b1b2a00e');
  assert.equal(img.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  assert.deepEqual(decodeListNamespacesResponse(readFileSync(path.join(FIX, 'containerd/list-namespaces-response.bin'))), ['default']);
});

test('protobuf and gRPC framing round trip and reject truncation', () => {
  const m = encodeStringField(1, 'x'.repeat(300));
  assert.equal(decodeFields(m).get(1)![0]!.toString(), 'x'.repeat(300));
  assert.deepEqual(grpcUnframe(grpcFrame(m)), m);
  assert.throws(() => decodeFields(m.subarray(0, 10)), RangeError);
  assert.throws(() => grpcUnframe(Buffer.from([0, 0, 0, 0, 9, 1])), RangeError);
  assert.throws(() => grpcUnframe(Buffer.from([1, 0, 0, 0, 0])), RangeError);
  assert.throws(() => decodeGetContainerResponse(Buffer.alloc(0)), TypeError);
  assert.throws(() => decodeFields(Buffer.from([0x0b])), RangeError); // wire type 3 (groups)
});
