// An in-memory ObjectStore for activity tests: objects by gs:// URI, with GCS-like md5 metadata.
import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import type { ObjectInfo, ObjectStore } from '../../src/ports';

export class MemoryObjectStore implements ObjectStore {
  readonly objects = new Map<string, { body: Buffer; contentType?: string; updated: string }>();

  private info(uri: string): ObjectInfo | undefined {
    const o = this.objects.get(uri);
    if (!o) return undefined;
    return { uri, size: o.body.length, updated: o.updated, md5Hash: createHash('md5').update(o.body).digest('base64') };
  }

  async write(uri: string, body: string | Buffer, contentType?: string): Promise<ObjectInfo> {
    this.objects.set(uri, { body: Buffer.from(body), contentType, updated: new Date().toISOString() });
    return this.info(uri)!;
  }

  writeStream(uri: string, contentType?: string): Writable {
    const chunks: Buffer[] = [];
    return new Writable({
      write: (chunk, _enc, cb) => {
        chunks.push(Buffer.from(chunk));
        cb();
      },
      final: (cb) => {
        this.objects.set(uri, { body: Buffer.concat(chunks), contentType, updated: new Date().toISOString() });
        cb();
      },
    });
  }

  async read(uri: string): Promise<Buffer | undefined> {
    return this.objects.get(uri)?.body;
  }

  readStream(uri: string): Readable {
    const o = this.objects.get(uri);
    if (!o) throw new Error(`no object ${uri}`);
    return Readable.from([o.body]);
  }

  async stat(uri: string): Promise<ObjectInfo | undefined> {
    return this.info(uri);
  }

  async list(prefixUri: string): Promise<ObjectInfo[]> {
    return [...this.objects.keys()].filter((u) => u.startsWith(prefixUri)).sort().map((u) => this.info(u)!);
  }
}
