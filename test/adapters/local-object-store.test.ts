// The file:// ObjectStore for teams without a bucket: an object appears whole or not at all, and
// lists by prefix as GCS does.
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { checkWritableLocation, createLocalObjectStore } from '../../src/adapters/local-object-store';
import { objectStoreByScheme } from '../../src/adapters/object-stores';
import { MemoryObjectStore } from '../support/memory-object-store';

describe('local object store', () => {
  const dir = mkdtempSync(join(tmpdir(), 'objects-'));
  const root = pathToFileURL(dir).href;
  const store = createLocalObjectStore();

  it('writes, reads, stats and lists by prefix, like a bucket', async () => {
    await store.write(`${root}/m1/dump/manifest.json`, '{"a":1}');
    await pipeline(Readable.from([Buffer.from('x'.repeat(70_000)), Buffer.from('y')]), store.writeStream(`${root}/m1/dump/data/runs.copy.gz`));
    await store.write(`${root}/m10/other.json`, 'x');
    expect((await store.read(`${root}/m1/dump/manifest.json`))!.toString()).toBe('{"a":1}');
    expect((await store.stat(`${root}/m1/dump/data/runs.copy.gz`))!.size).toBe(70_001);
    expect(await store.stat(`${root}/m1/none`)).toBeUndefined();
    expect(await store.read(`${root}/m1/none`)).toBeUndefined();
    expect((await store.list(`${root}/m1/`)).map((o) => o.uri.slice(root.length))).toEqual(['/m1/dump/data/runs.copy.gz', '/m1/dump/manifest.json']);
    // A prefix, not a folder: m1 matches m10 too, as in GCS.
    expect((await store.list(`${root}/m1`)).length).toBe(3);
  });

  it('a stream that fails leaves no object and no partial file behind', async () => {
    const failing = new Readable({
      read() {
        this.push(Buffer.from('half'));
        this.destroy(new Error('connection cut'));
      },
    });
    await expect(pipeline(failing, store.writeStream(`${root}/m2/broken.gz`))).rejects.toThrow('connection cut');
    expect(await store.stat(`${root}/m2/broken.gz`)).toBeUndefined();
    expect(readdirSync(join(dir, 'm2'))).toEqual([]);
  });

  it('preflight tells a location the worker cannot write', async () => {
    expect(await checkWritableLocation(`${root}/not/yet/there`)).toBe(true);
    const file = join(dir, 'a-file');
    writeFileSync(file, '');
    expect(await checkWritableLocation(pathToFileURL(join(file, 'below')).href)).toMatch(/a-file is a file, not a directory/);
  });

  it('the worker’s store sends gs:// and file:// to their stores and refuses anything else', async () => {
    const gcs = new MemoryObjectStore();
    await gcs.write('gs://b/o', 'gcs');
    const routed = objectStoreByScheme({ gs: gcs, file: store });
    expect((await routed.read('gs://b/o'))!.toString()).toBe('gcs');
    expect((await routed.read(`${root}/m1/dump/manifest.json`))!.toString()).toBe('{"a":1}');
    await expect(routed.read('s3://b/o')).rejects.toThrow(/unsupported object URI "s3:\/\/b\/o"/);
  });
});
