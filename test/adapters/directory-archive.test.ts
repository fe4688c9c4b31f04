// The artifacts directory as one tar.gz: listed with a sha256 per file, read back entry by entry
// (so a damaged archive is caught before anything is removed), unpacked equal.
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync, createWriteStream, createReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { emptyDirectory, listFiles, packDirectory, readArchive, unpackArchive } from '../../src/adapters/directory-archive';

describe('directory archive', () => {
  const base = mkdtempSync(join(tmpdir(), 'archive-'));
  const src = join(base, 'artifacts');
  mkdirSync(join(src, '1/abc/artifacts/model'), { recursive: true });
  writeFileSync(join(src, '1/abc/artifacts/model/MLmodel'), 'artifact_path: model\n');
  writeFileSync(join(src, '1/abc/artifacts/weights.bin'), Buffer.alloc(200_000, 7));
  writeFileSync(join(src, 'épochs.txt'), 'δ\n');
  const archive = join(base, 'a.tar.gz');

  it('packs, reads back the same files, and unpacks them equal', async () => {
    const files = await listFiles(src);
    expect(files.map((f) => f.path)).toEqual(['1/abc/artifacts/model/MLmodel', '1/abc/artifacts/weights.bin', 'épochs.txt']);
    await packDirectory(src, files.map((f) => f.path), createWriteStream(archive));
    expect(await readArchive(createReadStream(archive))).toEqual(files);
    await unpackArchive(createReadStream(archive), join(base, 'out'));
    expect(await listFiles(join(base, 'out'))).toEqual(files);
  });

  it('planted fault: a byte changed inside the archive shows in the read-back sha256', async () => {
    const tar = gunzipSync(readFileSync(archive));
    const at = tar.indexOf(Buffer.from('artifact_path'));
    tar[at] = 'A'.charCodeAt(0);
    writeFileSync(join(base, 'bad.tar.gz'), gzipSync(tar));
    const back = await readArchive(createReadStream(join(base, 'bad.tar.gz')));
    expect(back).not.toEqual(await listFiles(src));
  });

  it('refuses a symlink (its target is not the directory’s to archive), and empties a directory but keeps it', async () => {
    const dir = join(base, 'with-link');
    mkdirSync(dir);
    symlinkSync('/etc/hostname', join(dir, 'link'));
    await expect(listFiles(dir)).rejects.toThrow(/not a regular file or directory/);
    await emptyDirectory(dir);
    expect(await listFiles(dir)).toEqual([]);
  });
});
