// The GCS adapter against something no one here wrote: gcp-storage-emulator from PyPI, through
// the same client setup the worker uses. Skipped, saying why, where it is not installed.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../../dev/postgres';
import { findExecutable } from '../../../dev/temporal';
import { createGcpClients, type GcpClients } from '../../../src/adapters/gcp/clients';
import { createGcsObjectStore } from '../../../src/adapters/gcp/gcs-object-store';

const emulator = findExecutable('gcp-storage-emulator');
if (!emulator) console.warn('gcp-storage-emulator test skipped: not installed (pip install gcp-storage-emulator)');

describe.skipIf(!emulator)('GCS object store against gcp-storage-emulator', () => {
  let child: ChildProcess;
  let gcp: GcpClients;

  beforeAll(async () => {
    const port = await freePort();
    child = spawn(emulator!, ['start', '--host', '127.0.0.1', '--port', String(port), '--in-memory', '--default-bucket', 'emu-backups'], { stdio: 'ignore' });
    const url = `http://127.0.0.1:${port}`;
    for (let i = 0; ; i++) {
      if (await fetch(`${url}/storage/v1/b`).then((r) => r.ok, () => false)) break;
      if (i > 100) throw new Error('gcp-storage-emulator did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
    gcp = createGcpClients({ apiEndpoint: url, project: 'demo-project' });
  });
  afterAll(async () => {
    await gcp?.close();
    child?.kill();
  });

  it('writes, reads, stats and lists objects', async () => {
    const store = createGcsObjectStore(gcp.storage);
    expect(await store.write('gs://emu-backups/run/a.json', '{"a":1}', 'application/json')).toMatchObject({ uri: 'gs://emu-backups/run/a.json', size: 7 });
    await store.write('gs://emu-backups/run/nested/b.txt', Buffer.from('bee'));
    await store.write('gs://emu-backups/other/c.txt', 'sea');
    expect((await store.read('gs://emu-backups/run/a.json'))?.toString()).toBe('{"a":1}');
    expect(await store.read('gs://emu-backups/run/missing.json')).toBeUndefined();
    expect(await store.stat('gs://emu-backups/run/missing.json')).toBeUndefined();
    expect(await store.stat('gs://emu-backups/run/nested/b.txt')).toMatchObject({ size: 3 });
    expect((await store.list('gs://emu-backups/run/')).map((o) => o.uri).sort()).toEqual(['gs://emu-backups/run/a.json', 'gs://emu-backups/run/nested/b.txt']);
    const chunks: Buffer[] = [];
    for await (const c of store.readStream('gs://emu-backups/other/c.txt')) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('sea');
  });

  it('streams a multi-MB body up and reads back the same bytes', async () => {
    const store = createGcsObjectStore(gcp.storage, { chunkSize: 1024 * 1024 });
    const body = randomBytes(3 * 1024 * 1024 + 12_345);
    await pipeline(Readable.from([body]), store.writeStream('gs://emu-backups/big/export.csv.gz', 'application/gzip'));
    expect((await store.stat('gs://emu-backups/big/export.csv.gz'))?.size).toBe(body.length);
    expect((await store.read('gs://emu-backups/big/export.csv.gz'))?.equals(body)).toBe(true);
  });
});
