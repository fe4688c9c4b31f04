// Seed 002, step 3.1: the artifacts volume is archived as one tar.gz with a manifest, proven from the
// archive's own bytes file by file, and only then emptied (the directory stays: it may be a mount
// point). The undo unpacks it into an empty directory and checks every file's sha256.
import { stat } from 'node:fs/promises';
import { emptyDirectory, listFiles, packDirectory, readArchive, unpackArchive, type ArchivedFile } from '../../adapters/directory-archive';
import type { Target } from '../../config/schema';
import { ErrorType, fail } from '../../errors';
import type { ObjectStore } from '../../ports';
import { backupUri } from '../../shapes';
import { cancellationSignal, heartbeat } from '../heartbeat';
import { defineShapeStep } from '../step';
import { readJson } from './mlflow-tables';
import { selfHosted, type ArtifactsManifest, type SelfHostedContext } from './self-hosted-server';

const archiveUri = (ctx: SelfHostedContext) => backupUri(ctx, 'artifacts/artifacts.tar.gz');
const artifactsManifestUri = (ctx: SelfHostedContext) => backupUri(ctx, 'artifacts/manifest.json');

export function createArtifactsDirectorySteps(objects: ObjectStore) {
  const archiveArtifactsDirectory = defineShapeStep<Target>({
    requiresGate: 'phase-2',
    async plan(raw) {
      const ctx = selfHosted(raw);
      const dir = ctx.target.mlflow.artifactsDirectory;
      if (!dir) return [];
      const files = await listFiles(dir).catch(() => []);
      const bytes = files.reduce((n, f) => n + f.size, 0);
      return [
        { call: 'objects.write', resource: archiveUri(ctx), description: `archive ${dir} (${files.length} files, ${bytes} bytes) as one tar.gz, read it back against a sha256 per file` },
        { call: 'objects.write', resource: artifactsManifestUri(ctx), description: 'write the manifest (path, size, sha256 of every file)' },
        { call: 'fs.remove', resource: `file://${dir}`, description: `empty ${dir} (the directory itself stays: it may be a mount point)`, destructive: true },
      ];
    },
    async run(raw) {
      const ctx = selfHosted(raw);
      const dir = ctx.target.mlflow.artifactsDirectory;
      if (!dir) return { summary: 'skipped: no artifacts directory is configured (mlflow.artifactsDirectory)', actions: [] };
      const existing = await readJson<ArtifactsManifest>(objects, artifactsManifestUri(ctx));
      const files = await listFiles(dir, (n) => n % 500 === 0 && heartbeat({ listed: n }));
      if (existing && !files.length) {
        return { summary: `${dir} was already archived (${existing.files.length} files) and emptied`, actions: [], facts: { manifest: artifactsManifestUri(ctx), files: existing.files.length } };
      }
      heartbeat({ archiving: dir });
      await packDirectory(dir, files.map((f) => f.path), objects.writeStream(archiveUri(ctx), 'application/gzip'), cancellationSignal());
      // Proven from the archive's own bytes before a single file is removed.
      const inArchive = await readArchive(objects.readStream(archiveUri(ctx)));
      const key = (f: ArchivedFile) => `${f.path} ${f.size} ${f.sha256}`;
      const missing = files.map(key).filter((k) => !inArchive.map(key).includes(k));
      if (missing.length || inArchive.length !== files.length) {
        fail(ErrorType.VerificationFailed, `the archive ${archiveUri(ctx)} does not hold ${dir} as listed (${missing.slice(0, 5).join('; ') || `${inArchive.length} entries for ${files.length} files`}): nothing was removed. Retry.`);
      }
      const info = (await objects.stat(archiveUri(ctx)))!;
      const manifest: ArtifactsManifest = { takenAt: new Date().toISOString(), directory: dir, archive: archiveUri(ctx), archiveBytes: info.size, files };
      await objects.write(artifactsManifestUri(ctx), JSON.stringify(manifest, null, 2), 'application/json');
      await emptyDirectory(dir);
      const bytes = files.reduce((n, f) => n + f.size, 0);
      return {
        summary: `archived ${files.length} files (${bytes} bytes) of ${dir} to ${archiveUri(ctx)}, verified file by file, then emptied ${dir}; manifest at ${artifactsManifestUri(ctx)}`,
        actions: [],
        facts: { snapshot: artifactsManifestUri(ctx), files: files.length, bytes },
      };
    },
  });

  const restoreArtifactsDirectory = defineShapeStep<Target>({
    async plan(raw) {
      const ctx = selfHosted(raw);
      return ctx.target.mlflow.artifactsDirectory ? [{ call: 'fs.write', resource: `file://${ctx.target.mlflow.artifactsDirectory}`, description: `unpack ${archiveUri(ctx)} into it and check every file's sha256` }] : [];
    },
    async run(raw) {
      const ctx = selfHosted(raw);
      const dir = ctx.target.mlflow.artifactsDirectory;
      const manifest = await readJson<ArtifactsManifest>(objects, artifactsManifestUri(ctx));
      if (!dir || !manifest) return { summary: '3.1 wrote no manifest, so it removed nothing; nothing to restore', actions: [] };
      const exists = await stat(dir).then(() => true, () => false);
      const present = exists ? await listFiles(dir) : [];
      const key = (f: ArchivedFile) => `${f.path} ${f.size} ${f.sha256}`;
      const want = manifest.files.map(key);
      if (present.length && present.map(key).join('\n') === want.join('\n')) return { summary: `${dir} already holds its ${want.length} files`, actions: [] };
      if (present.length) fail(ErrorType.CannotRestore, `${dir} is not empty and does not match the archive's manifest: move what is there aside, then retry (the archive is ${manifest.archive}).`);
      await unpackArchive(objects.readStream(manifest.archive), dir);
      const restored = (await listFiles(dir)).map(key);
      const wrong = want.filter((k) => !restored.includes(k));
      if (wrong.length || restored.length !== want.length) fail(ErrorType.CannotRestore, `unpacked ${manifest.archive} into ${dir} but ${wrong.length} file(s) differ from the manifest (e.g. ${wrong[0] ?? 'extra files'})`);
      return { summary: `restored ${want.length} files into ${dir} from ${manifest.archive}, each with its sha256`, actions: [] };
    },
  });

  return { archiveArtifactsDirectory, restoreArtifactsDirectory };
}
