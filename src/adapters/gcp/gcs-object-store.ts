// ObjectStore over @google-cloud/storage: activities write snapshots and exports through this,
// never through the SDK.
import type { Readable, Writable } from 'node:stream';
import type { File, Storage } from '@google-cloud/storage';
import { parseGsUri, type ObjectInfo, type ObjectStore } from '../../ports';
import { isNotFound } from './clients';

export interface GcsObjectStoreOptions {
  /**
   * Bytes per resumable-upload request (a multiple of 256 KiB). Each chunk is acknowledged by the
   * server, so a dropped connection resends one chunk, not the whole export. Default 8 MiB.
   */
  chunkSize?: number;
}

export function createGcsObjectStore(storage: Storage, opts: GcsObjectStoreOptions = {}): ObjectStore {
  const chunkSize = opts.chunkSize ?? 8 * 1024 * 1024;
  const file = (uri: string): File => {
    const { bucket, name } = parseGsUri(uri);
    if (!name) throw new Error(`expected an object URI gs://bucket/name, got "${uri}"`);
    return storage.bucket(bucket).file(name);
  };
  const info = (f: File): ObjectInfo => ({
    uri: `gs://${f.bucket.name}/${f.name}`,
    size: Number(f.metadata.size ?? 0),
    updated: f.metadata.updated,
    md5Hash: f.metadata.md5Hash ?? f.metadata.crc32c,
  });

  return {
    async write(uri, body, contentType = 'application/octet-stream') {
      const f = file(uri);
      // Small bodies: one multipart request, checksummed by the client against the server's md5/crc32c.
      await f.save(typeof body === 'string' ? Buffer.from(body, 'utf8') : body, { resumable: false, contentType, validation: 'crc32c' });
      return info(f);
    },

    writeStream(uri, contentType = 'application/octet-stream'): Writable {
      return file(uri).createWriteStream({ resumable: true, chunkSize, contentType, validation: 'crc32c' });
    },

    async read(uri) {
      try {
        const [data] = await file(uri).download();
        return data;
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },

    readStream(uri): Readable {
      return file(uri).createReadStream();
    },

    async stat(uri) {
      const f = file(uri);
      try {
        await f.getMetadata();
        return info(f);
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },

    async list(prefixUri) {
      const { bucket, name: prefix } = parseGsUri(prefixUri);
      const [files] = await storage.bucket(bucket).getFiles({ prefix, autoPaginate: true });
      return files.map(info);
    },
  };
}
