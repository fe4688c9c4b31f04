// The worker's one ObjectStore: gs:// URIs go to Cloud Storage, file:// URIs to a directory on
// the worker, so a target's backup location (and a trainer's artifacts path) can be either.
import type { ObjectStore } from '../ports';

export function objectStoreByScheme(stores: { gs: ObjectStore; file: ObjectStore }): ObjectStore {
  const pick = (uri: string): ObjectStore => {
    if (uri.startsWith('gs://')) return stores.gs;
    if (uri.startsWith('file://')) return stores.file;
    throw new Error(`unsupported object URI "${uri}": expected gs://bucket/name or file:///path`);
  };
  return {
    write: async (uri, body, contentType) => pick(uri).write(uri, body, contentType),
    writeStream: (uri, contentType) => pick(uri).writeStream(uri, contentType),
    read: async (uri) => pick(uri).read(uri),
    readStream: (uri) => pick(uri).readStream(uri),
    stat: async (uri) => pick(uri).stat(uri),
    list: async (prefixUri) => pick(prefixUri).list(prefixUri),
  };
}
