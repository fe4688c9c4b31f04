// A directory on the worker as one tar.gz (node-tar does the format): the self-hosted MLflow's
// artifacts volume (seed 002) is listed with a sha256 per file, packed, read back entry by entry,
// unpacked on rollback, and emptied once the archive is proven.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, readdir, rm } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar';

export interface ArchivedFile {
  /** Relative to the directory, with forward slashes. */
  path: string;
  size: number;
  sha256: string;
}

async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

/** Every regular file under `dir`, sorted. A symlink or special file is refused: its target is not the directory's to archive. */
export async function listFiles(dir: string, onFile?: (done: number) => void): Promise<ArchivedFile[]> {
  const out: ArchivedFile[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        out.push({ path: relative(dir, p).split(sep).join('/'), size: (await lstat(p)).size, sha256: await hashFile(p) });
        onFile?.(out.length);
      } else throw new Error(`${p} is not a regular file or directory (a symlink or device): move it out of the artifacts directory, then retry`);
    }
  };
  await walk(dir);
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Packs `files` (paths relative to `dir`) as gzip tar into `sink`. */
export async function packDirectory(dir: string, files: string[], sink: Writable, signal?: AbortSignal): Promise<void> {
  const pack = tar.create({ gzip: true, cwd: dir, portable: true, noDirRecurse: true }, files);
  await pipeline(Readable.from(pack as AsyncIterable<Buffer>), sink, { signal });
}

/** The archive's regular files with their sizes and sha256, read from its bytes. */
export async function readArchive(source: Readable): Promise<ArchivedFile[]> {
  const out: ArchivedFile[] = [];
  const pending: Promise<void>[] = [];
  const parser = new tar.Parser({
    onReadEntry(entry) {
      if (entry.type !== 'File') {
        entry.resume();
        return;
      }
      const hash = createHash('sha256');
      let size = 0;
      pending.push(
        new Promise((done, fail) => {
          entry.on('data', (b: Buffer) => {
            hash.update(b);
            size += b.length;
          });
          entry.on('end', () => {
            out.push({ path: entry.path.replace(/^\.\//, ''), size, sha256: hash.digest('hex') });
            done();
          });
          entry.on('error', fail);
        }),
      );
    },
  });
  await feed(source, parser);
  await Promise.all(pending);
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Unpacks the archive into `dir` (created if missing), keeping file modes. */
export async function unpackArchive(source: Readable, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await feed(source, new tar.Unpack({ cwd: dir, strict: true }));
}

/** Removes what is in `dir` and keeps `dir` itself (a volume's mount point stays). */
export async function emptyDirectory(dir: string): Promise<void> {
  for (const name of await readdir(dir)) await rm(join(dir, name), { recursive: true, force: true });
}

/** node-tar's streams are minipass streams: write with backpressure, end, wait for them to finish. */
async function feed(source: Readable, sink: tar.Parser | tar.Unpack): Promise<void> {
  const finished = new Promise<void>((done, fail) => {
    sink.on('close', () => done());
    sink.on('error', fail);
  });
  for await (const chunk of source) {
    if (!sink.write(chunk as Buffer)) await new Promise((r) => sink.once('drain', r));
  }
  sink.end();
  await finished;
}
