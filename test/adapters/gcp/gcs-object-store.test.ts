// The GCS adapter against the sandbox, through the real @google-cloud/storage client.
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGcpClients, type GcpClients } from '../../../src/adapters/gcp/clients';
import { createGcsObjectStore } from '../../../src/adapters/gcp/gcs-object-store';
import { Sandbox } from '../../../dev/sandbox/server';
import { seedBucket, storageService } from '../../../dev/sandbox/services/storage';

describe('GCS object store', () => {
  const stateFile = join(mkdtempSync(join(tmpdir(), 'gcs-store-')), 'state.json');
  let sandbox: Sandbox;
  let gcp: GcpClients;

  const start = async () => {
    sandbox = await new Sandbox({ stateFile, services: [storageService] }).start();
    gcp = createGcpClients({ apiEndpoint: sandbox.url, project: 'demo-project' });
    return createGcsObjectStore(gcp.storage, { chunkSize: 1024 * 1024 });
  };
  const stop = async () => {
    await gcp.close();
    await sandbox.stop();
  };

  beforeAll(async () => {
    await start();
    seedBucket(sandbox, { name: 'demo-backups' });
  });
  afterAll(stop);

  it('writes, reads, stats and lists objects', async () => {
    const store = createGcsObjectStore(gcp.storage);
    const info = await store.write('gs://demo-backups/run/a.json', '{"a":1}', 'application/json');
    expect(info).toMatchObject({ uri: 'gs://demo-backups/run/a.json', size: 7 });
    expect(info.md5Hash).toBeTruthy();
    await store.write('gs://demo-backups/run/nested/b.txt', Buffer.from('bee'));
    await store.write('gs://demo-backups/other/c.txt', 'sea');

    expect((await store.read('gs://demo-backups/run/a.json'))?.toString()).toBe('{"a":1}');
    expect(await store.read('gs://demo-backups/run/missing.json')).toBeUndefined();
    expect(await store.stat('gs://demo-backups/run/missing.json')).toBeUndefined();
    expect(await store.stat('gs://demo-backups/run/nested/b.txt')).toMatchObject({ size: 3 });

    const listed = await store.list('gs://demo-backups/run/');
    expect(listed.map((o) => o.uri).sort()).toEqual(['gs://demo-backups/run/a.json', 'gs://demo-backups/run/nested/b.txt']);

    const chunks: Buffer[] = [];
    for await (const c of store.readStream('gs://demo-backups/other/c.txt')) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('sea');
  });

  it('uploads a multi-MB body through a resumable session, chunk by chunk', async () => {
    const store = createGcsObjectStore(gcp.storage, { chunkSize: 1024 * 1024 });
    const body = randomBytes(3 * 1024 * 1024 + 12_345);
    const before = sandbox.calls.length;
    const uploads = (method: string) => sandbox.calls.slice(before).filter((c) => c.method === method && c.path === '/upload/storage/v1/b/demo-backups/o');
    await pipeline(Readable.from([body.subarray(0, 1_000_000), body.subarray(1_000_000)]), store.writeStream('gs://demo-backups/exports/big.csv.gz', 'application/gzip'));
    // One session, four chunks: three acknowledged with 308 Resume Incomplete, then the object.
    expect(uploads('POST')).toHaveLength(1);
    expect(uploads('PUT').map((c) => c.status)).toEqual([308, 308, 308, 200]);
    const back = await store.read('gs://demo-backups/exports/big.csv.gz');
    expect(back?.equals(body)).toBe(true);
    expect(await store.stat('gs://demo-backups/exports/big.csv.gz')).toMatchObject({ size: body.length });
  });

  it('keeps objects across a sandbox restart with the same state file', async () => {
    await stop();
    const store = await start();
    expect((await store.read('gs://demo-backups/run/a.json'))?.toString()).toBe('{"a":1}');
    expect((await store.stat('gs://demo-backups/exports/big.csv.gz'))?.size).toBe(3 * 1024 * 1024 + 12_345);
  });
});
