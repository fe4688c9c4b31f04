// ObjectStore over a directory on the worker, for teams with no bucket (file:///var/backups/…):
// the dump, the raw export, snapshots and the record are files. An object appears whole or not at
// all: it is written beside its final name and renamed into place once flushed to disk.
import { randomUUID } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { access, mkdir, open, readdir, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ObjectInfo, ObjectStore } from '../ports';

const PARTIAL = '.partial-';

function pathOf(uri: string): string {
  if (!uri.startsWith('file:///')) throw new Error(`expected a file:///absolute/path URI, got "${uri}"`);
  return fileURLToPath(uri);
}

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === 'ENOENT' || (err as NodeJS.ErrnoException)?.code === 'ENOTDIR';
}

async function info(path: string): Promise<ObjectInfo | undefined> {
  try {
    const s = await stat(path);
    return s.isFile() ? { uri: pathToFileURL(path).href, size: s.size, updated: s.mtime.toISOString() } : undefined;
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
}

/** Writes to a temporary file beside `path`; `commit` flushes it and renames it into place. */
async function openPartial(path: string): Promise<{ handle: FileHandle; commit(): Promise<void>; abandon(): Promise<void> }> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}${PARTIAL}${randomUUID()}`;
  const handle = await open(tmp, 'wx');
  let closed = false;
  const close = async () => {
    if (!closed) {
      closed = true;
      await handle.close();
    }
  };
  return {
    handle,
    async commit() {
      await handle.sync();
      await close();
      await rename(tmp, path);
    },
    async abandon() {
      await close().catch(() => {});
      await rm(tmp, { force: true });
    },
  };
}

export function createLocalObjectStore(): ObjectStore {
  return {
    async write(uri, body) {
      const path = pathOf(uri);
      const file = await openPartial(path);
      try {
        await file.handle.writeFile(typeof body === 'string' ? Buffer.from(body, 'utf8') : body);
        await file.commit();
      } catch (err) {
        await file.abandon();
        throw err;
      }
      return (await info(path))!;
    },

    writeStream(uri): Writable {
      const path = pathOf(uri);
      let file: Awaited<ReturnType<typeof openPartial>> | undefined;
      let committed = false;
      return new Writable({
        construct(cb) {
          openPartial(path).then((f) => {
            file = f;
            cb();
          }, cb);
        },
        write(chunk: Buffer, _enc, cb) {
          file!.handle.write(chunk).then(() => cb(), cb);
        },
        final(cb) {
          file!.commit().then(() => {
            committed = true;
            cb();
          }, cb);
        },
        destroy(err, cb) {
          // An upload that failed or was cancelled leaves no object behind.
          if (committed || !file) cb(err);
          else file.abandon().then(() => cb(err), () => cb(err));
        },
      });
    },

    async read(uri) {
      try {
        return await readFile(pathOf(uri));
      } catch (err) {
        if (isMissing(err)) return undefined;
        throw err;
      }
    },

    readStream(uri) {
      return createReadStream(pathOf(uri));
    },

    stat(uri) {
      return info(pathOf(uri));
    },

    /** As GCS lists by prefix: every object whose path starts with it, partial writes left out. */
    async list(prefixUri) {
      const prefix = pathOf(prefixUri);
      const root = prefixUri.endsWith('/') ? prefix : dirname(prefix);
      const out: ObjectInfo[] = [];
      const walk = async (dir: string): Promise<void> => {
        let entries;
        try {
          entries = await readdir(dir, { withFileTypes: true });
        } catch (err) {
          if (isMissing(err)) return;
          throw err;
        }
        for (const e of entries) {
          const p = join(dir, e.name);
          if (e.isDirectory()) await walk(p);
          else if (e.isFile() && p.startsWith(prefix) && !e.name.includes(PARTIAL)) out.push((await info(p))!);
        }
      };
      await walk(root);
      return out.sort((a, b) => (a.uri < b.uri ? -1 : a.uri > b.uri ? 1 : 0));
    },
  };
}

/** Preflight for a file:// location: the directory, or the nearest one above it that exists, is writable by the worker. */
export async function checkWritableLocation(uri: string): Promise<true | string> {
  let dir = pathOf(uri);
  for (;;) {
    try {
      await access(dir, constants.W_OK);
      return (await stat(dir)).isDirectory() ? true : `${dir} is a file, not a directory`;
    } catch (err) {
      if (!isMissing(err)) return `${dir} is not writable by the worker (${(err as NodeJS.ErrnoException).code})`;
      if (dir === dirname(dir)) return `no directory of ${uri} exists`;
      dir = dirname(dir);
    }
  }
}
