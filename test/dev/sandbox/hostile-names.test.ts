// Names are data (issue 9 item 1): every name Google accepts comes back from the sandbox exactly as
// it was given, and every name Google refuses is refused the same way. Through the real clients.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Sandbox } from '../../../dev/sandbox/server';
import { createGcpClients } from '../../../src/adapters/gcp/clients';
import { storageService } from '../../../dev/sandbox/services/storage';
import { bucketAllows, grantBucket, seedBucket } from '../../../dev/sandbox/services/storage';
import { LABEL_KEYS, OBJECT_NAMES } from '../../support/hostile-names';
import { useSandbox } from '../../support/cloud';

const cloud = useSandbox('demo-project');
const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: { code?: number; message?: string }) => e);
/** A label map with these keys; Object.fromEntries defines `__proto__` as a key, where a literal would set the prototype. */
const labelsWith = (keys: string[]): Record<string, string> => Object.fromEntries(keys.map((k) => [k, `v-${k.length}`]));

describe('Cloud Storage object names', () => {
  it('every hostile name round-trips through upload, list, download, delete, soft-deleted list and restore', async () => {
    seedBucket(cloud.sandbox, { name: 'names-bucket', project: 'demo-project' });
    const bucket = cloud.gcp.storage.bucket('names-bucket');
    for (const [i, name] of OBJECT_NAMES.entries()) {
      // Half through one multipart request, half through a resumable session: both carry the name differently.
      await bucket.file(name).save(Buffer.from(`body of ${i}`), { resumable: i % 2 === 1, validation: 'crc32c' });
    }
    const [listed] = await bucket.getFiles();
    expect(listed.map((f) => f.name).sort()).toEqual([...OBJECT_NAMES].sort());
    for (const [i, name] of OBJECT_NAMES.entries()) {
      const [data] = await bucket.file(name).download();
      expect(data.toString()).toBe(`body of ${i}`);
      const [meta] = await bucket.file(name).getMetadata();
      expect(meta.name).toBe(name);
    }

    const generations = new Map(listed.map((f) => [f.name, String(f.metadata.generation)]));
    for (const name of OBJECT_NAMES) await bucket.file(name).delete();
    expect((await bucket.getFiles())[0]).toEqual([]);
    const [soft] = await bucket.getFiles({ softDeleted: true });
    expect(soft.map((f) => f.name).sort()).toEqual([...OBJECT_NAMES].sort());

    for (const name of OBJECT_NAMES) await bucket.file(name).restore({ generation: Number(generations.get(name)) });
    const [back] = await bucket.getFiles();
    expect(back.map((f) => f.name).sort()).toEqual([...OBJECT_NAMES].sort());
    for (const [i, name] of OBJECT_NAMES.entries()) expect((await bucket.file(name).download())[0].toString()).toBe(`body of ${i}`);
  });

  it('a prefix listing with a delimiter treats a name as data', async () => {
    seedBucket(cloud.sandbox, { name: 'prefix-bucket', project: 'demo-project', objects: new Map([['__proto__/a', 'a'], ['__proto__/b', 'b'], ['constructor', 'c']]) });
    const [files, , api] = await cloud.gcp.storage.bucket('prefix-bucket').getFiles({ prefix: '', delimiter: '/', autoPaginate: false });
    expect(files.map((f) => f.name)).toEqual(['constructor']);
    expect((api as { prefixes?: string[] }).prefixes).toEqual(['__proto__/']);
  });

  it('refuses what Cloud Storage refuses: CR, LF, "." and "..", the ACME prefix, over 1024 bytes', async () => {
    seedBucket(cloud.sandbox, { name: 'refusing-bucket', project: 'demo-project' });
    const bucket = cloud.gcp.storage.bucket('refusing-bucket');
    for (const name of ['line\nfeed', 'carriage\rreturn', '.', '..', '.well-known/acme-challenge/token', 'é'.repeat(513)]) {
      for (const resumable of [false, true]) {
        const err = await failure(bucket.file(name).save('x', { resumable }));
        expect(err?.code, JSON.stringify(name)).toBe(400);
      }
    }
    // 1024 bytes is still a name.
    await bucket.file('é'.repeat(512)).save('x', { resumable: false });
    expect((await bucket.getFiles())[0].map((f) => f.name)).toEqual(['é'.repeat(512)]);
  });
});

describe('the GCS object store adapter', () => {
  it('writes, stats, reads and lists every hostile name under a prefix', async () => {
    seedBucket(cloud.sandbox, { name: 'adapter-bucket', project: 'demo-project' });
    for (const name of OBJECT_NAMES) await cloud.objects.write(`gs://adapter-bucket/p/${name}`, `body ${name}`);
    for (const name of OBJECT_NAMES) {
      expect((await cloud.objects.read(`gs://adapter-bucket/p/${name}`))?.toString()).toBe(`body ${name}`);
      expect((await cloud.objects.stat(`gs://adapter-bucket/p/${name}`))?.uri).toBe(`gs://adapter-bucket/p/${name}`);
    }
    expect((await cloud.objects.list('gs://adapter-bucket/p/')).map((o) => o.uri).sort()).toEqual(OBJECT_NAMES.map((n) => `gs://adapter-bucket/p/${n}`).sort());
  });
});

describe('Cloud Storage buckets', () => {
  it('a bucket named "constructor" is created, read, deleted and restored like any other', async () => {
    const storage = cloud.gcp.storage;
    const [created] = await storage.createBucket('constructor', { softDeletePolicy: { retentionDurationSeconds: 7 * 86_400 } });
    expect(created.name).toBe('constructor');
    expect((await storage.bucket('constructor').getMetadata())[0].name).toBe('constructor');
    const [buckets] = await storage.getBuckets({ prefix: 'constructor' });
    expect(buckets.map((b) => b.name)).toEqual(['constructor']);
    await storage.bucket('constructor').delete();
    expect((await failure(storage.bucket('constructor').getMetadata()))?.code).toBe(404);
    const [gone] = await storage.getBuckets({ prefix: 'constructor', softDeleted: true });
    await storage.bucket('constructor').restore({ generation: String(gone[0]!.metadata.generation) });
    expect((await storage.bucket('constructor').getMetadata())[0].name).toBe('constructor');
  });

  it('after a restart from the state file, a bucket named "constructor" is still free to create', async () => {
    const stateFile = join(mkdtempSync(join(tmpdir(), 'names-')), 'state.json');
    const first = await new Sandbox({ stateFile, services: [storageService] }).start();
    seedBucket(first, { name: 'first-bucket', project: 'demo-project' });
    await first.stop();
    const again = await new Sandbox({ stateFile, services: [storageService] }).start();
    const gcp = createGcpClients({ apiEndpoint: again.url, project: 'demo-project' });
    try {
      expect((await failure(gcp.storage.bucket('constructor').getMetadata()))?.code).toBe(404);
      await gcp.storage.createBucket('constructor');
      expect((await gcp.storage.getBuckets())[0].map((b) => b.name).sort()).toEqual(['constructor', 'first-bucket']);
    } finally {
      await gcp.close();
      await again.stop();
    }
  });

  it('refuses bucket names Cloud Storage refuses', async () => {
    // "Bucket names can only contain lowercase letters, numeric characters, dashes, underscores, and dots … must start and end with a number or letter" (https://cloud.google.com/storage/docs/buckets#naming).
    for (const name of ['__proto__', 'toString', 'ab', '-dash', 'UPPER']) {
      const err = await failure(cloud.gcp.storage.createBucket(name));
      expect(err?.code, name).toBe(400);
    }
  });

  it('label keys such as "constructor" are set, read and removed; "__proto__" is refused as Google refuses it', async () => {
    seedBucket(cloud.sandbox, { name: 'labelled-bucket', project: 'demo-project' });
    const bucket = cloud.gcp.storage.bucket('labelled-bucket');
    await bucket.setMetadata({ labels: labelsWith(LABEL_KEYS) });
    expect((await bucket.getMetadata())[0].labels).toEqual(labelsWith(LABEL_KEYS));
    await bucket.setMetadata({ labels: { constructor: null } });
    expect((await bucket.getMetadata())[0].labels).toEqual(labelsWith(LABEL_KEYS.filter((k) => k !== 'constructor')));
    const err = await failure(bucket.setMetadata({ labels: labelsWith(['__proto__']) }));
    expect(err?.code).toBe(400);
    expect((await bucket.getMetadata())[0].labels).toEqual(labelsWith(LABEL_KEYS.filter((k) => k !== 'constructor')));
  });

  it('a binding whose role is named like an Object.prototype member grants nothing, and breaks nothing', () => {
    seedBucket(cloud.sandbox, { name: 'policy-bucket', project: 'demo-project' });
    grantBucket(cloud.sandbox, 'policy-bucket', 'user:a@example.com', 'constructor');
    grantBucket(cloud.sandbox, 'policy-bucket', 'user:b@example.com', 'roles/storage.objectViewer');
    expect(bucketAllows(cloud.sandbox, 'policy-bucket', 'user:a@example.com', 'storage.objects.get')).toBe(false);
    expect(bucketAllows(cloud.sandbox, 'policy-bucket', 'user:b@example.com', 'storage.objects.get')).toBe(true);
  });
});
