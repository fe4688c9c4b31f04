// What activities need from object storage, in domain words. The GCS adapter implements it;
// activities never see @google-cloud/storage.
import type { Readable, Writable } from 'node:stream';

export interface ObjectInfo {
  /** gs://bucket/name */
  uri: string;
  size: number;
  updated?: string;
  /** base64 MD5 or CRC32C as GCS reports it, for integrity checks. */
  md5Hash?: string;
}

export interface ObjectStore {
  /** Writes a whole object (small JSON snapshots, manifests). */
  write(uri: string, body: string | Buffer, contentType?: string): Promise<ObjectInfo>;
  /** A resumable upload stream for large objects (gzip CSV exports). */
  writeStream(uri: string, contentType?: string): Writable;
  /** The object's bytes, or undefined when it does not exist. */
  read(uri: string): Promise<Buffer | undefined>;
  readStream(uri: string): Readable;
  /** Metadata, or undefined when it does not exist. */
  stat(uri: string): Promise<ObjectInfo | undefined>;
  list(prefixUri: string): Promise<ObjectInfo[]>;
}

export function parseGsUri(uri: string): { bucket: string; name: string } {
  const m = /^gs:\/\/([^/]+)\/?(.*)$/.exec(uri);
  if (!m) throw new Error(`expected a gs://bucket/path URI, got "${uri}"`);
  const [, bucket = '', name = ''] = m;
  return { bucket, name };
}
