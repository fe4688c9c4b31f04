// Cloud Storage: 3.4 deletes MLflow's artifacts bucket (optional), and its compensation brings it
// back. GCS soft delete is what makes that possible: a deleted bucket and its deleted object
// versions stay restorable for the bucket's retention (7 days by default), so the step refuses a
// bucket whose soft delete is off. The listing saved before the delete says which versions to restore.
import type { Bucket } from '@google-cloud/storage';
import { ErrorType, fail } from '../../errors';
import type { CheckResult, PlannedAction, StepContext } from '../../types';
import { assertLabels, hasLabels, heartbeat, saveSnapshot, snapshotUri, type CloudDeps, type CloudKind } from './common';
import { describe, gcpCall, gcpGet, isNotFound, rethrowTransient } from '../../adapters/gcp/calls';
import { defineStep } from '../step';

const ROLE = 'roles/storage.admin';
const BACKUP_PERMISSIONS = ['storage.objects.create', 'storage.objects.get', 'storage.objects.list', 'storage.objects.delete'];
const ARTIFACTS_PERMISSIONS = ['storage.buckets.delete', 'storage.buckets.restore', 'storage.objects.list', 'storage.objects.delete', 'storage.objects.restore'];
/** A plan lists every version it would delete up to this many, then one line for the rest. */
const PLAN_LIST_LIMIT = 100;

type BucketMeta = Record<string, any>;
interface VersionEntry {
  name: string;
  generation: string;
  size: number;
  md5Hash?: string;
  crc32c?: string;
  /** Set on noncurrent versions. */
  timeDeleted?: string;
}
export interface BucketSnapshot {
  takenAt: string;
  bucket: BucketMeta;
  objects: VersionEntry[];
}

export function createStorageActivities(deps: CloudDeps): CloudKind<ReturnType<typeof activities>> {
  const { storage } = deps.gcp;

  const missingPermissions = async (bucket: string, wanted: string[]): Promise<string[]> => {
    const [granted] = await gcpCall(`testing permissions on gs://${bucket}`, ROLE, () => storage.bucket(bucket).iam.testPermissions(wanted));
    return wanted.filter((p) => !granted[p]);
  };
  const getBucket = (name: string): Promise<BucketMeta | undefined> => gcpGet(`reading bucket gs://${name}`, ROLE, async () => (await storage.bucket(name).getMetadata())[0] as BucketMeta);

  /** Every version, live and noncurrent: GCS keeps a bucket with noncurrent versions from being deleted. */
  const listVersions = async (bucket: Bucket): Promise<VersionEntry[]> => {
    const [files] = await gcpCall(`listing objects in gs://${bucket.name}`, ROLE, () => bucket.getFiles({ versions: true, autoPaginate: true }));
    return files.map((f) => ({
      name: f.name,
      generation: String(f.metadata.generation),
      size: Number(f.metadata.size ?? 0),
      md5Hash: f.metadata.md5Hash,
      crc32c: f.metadata.crc32c,
      ...(f.metadata.timeDeleted ? { timeDeleted: String(f.metadata.timeDeleted) } : {}),
    }));
  };

  const skipReason = (ctx: StepContext): string | undefined => {
    if (!ctx.target.buckets.artifacts) return 'no artifacts bucket is configured (buckets.artifacts); nothing to delete';
    if (!ctx.target.buckets.deleteArtifacts) return `buckets.deleteArtifacts is false, so gs://${ctx.target.buckets.artifacts} is kept`;
    return undefined;
  };

  return {
    activities: activities(),
    async preflight(ctx) {
      const checks: CheckResult[] = [];
      const backup = ctx.target.buckets.backup;
      // testIamPermissions, not a probe write: preflight also runs in a dry run, which writes nothing.
      try {
        if (!(await getBucket(backup))) {
          checks.push({ name: `backup bucket gs://${backup}`, ok: false, detail: `gs://${backup} does not exist: create it (it holds the snapshots and exports) or fix buckets.backup` });
        } else {
          const missing = await missingPermissions(backup, BACKUP_PERMISSIONS);
          checks.push({
            name: `backup bucket gs://${backup}`,
            ok: missing.length === 0,
            detail: missing.length ? `the worker lacks ${missing.join(', ')} on it: grant roles/storage.objectAdmin on the bucket` : 'exists; the worker may write, read, list and delete objects in it',
          });
        }
      } catch (err) {
        rethrowTransient(err);
        checks.push({ name: `backup bucket gs://${backup}`, ok: false, detail: `cannot check it: ${describe(err)}. Grant ${ROLE} (or roles/storage.objectAdmin on the bucket) to the worker.` });
      }
      const artifacts = ctx.target.buckets.artifacts;
      if (artifacts) {
        try {
          const meta = await getBucket(artifacts);
          if (!meta) {
            checks.push({ name: `artifacts bucket gs://${artifacts}`, ok: true, detail: 'already gone (warning: check buckets.artifacts names the right bucket)' });
          } else {
            const missing = ctx.target.buckets.deleteArtifacts ? await missingPermissions(artifacts, ARTIFACTS_PERMISSIONS) : [];
            const labelled = hasLabels(meta.labels, ctx);
            const retention = Number(meta.softDeletePolicy?.retentionDurationSeconds ?? 0);
            const problems = [
              ...(ctx.target.buckets.deleteArtifacts && !labelled ? [`it lacks the labels ${labelText(ctx)}, so 3.4 will refuse it`] : []),
              ...(ctx.target.buckets.deleteArtifacts && retention === 0 ? ['soft delete is off, so 3.4 will refuse it (a delete could not be undone)'] : []),
              ...(missing.length ? [`the worker lacks ${missing.join(', ')}: grant ${ROLE} on the bucket`] : []),
            ];
            checks.push({ name: `artifacts bucket gs://${artifacts}`, ok: problems.length === 0, detail: problems.length ? problems.join('; ') : `readable${ctx.target.buckets.deleteArtifacts ? `, labelled, soft delete ${retention / 86_400} days` : ' (kept: deleteArtifacts is false)'}` });
          }
        } catch (err) {
          rethrowTransient(err);
          checks.push({ name: `artifacts bucket gs://${artifacts}`, ok: false, detail: `cannot read it: ${describe(err)}` });
        }
      }
      return checks;
    },
    async remaining(ctx) {
      const left = new Set<string>();
      const artifacts = ctx.target.buckets.artifacts;
      if (artifacts && ctx.target.buckets.deleteArtifacts && (await getBucket(artifacts))) left.add(`gs://${artifacts}`);
      const [buckets] = await gcpCall(`listing buckets in ${ctx.target.gcp.project}`, ROLE, () => storage.getBuckets({ project: ctx.target.gcp.project, autoPaginate: true }));
      for (const b of buckets) {
        // The backup bucket holds the snapshots and exports: it outlives the migration by design. So does
        // an artifacts bucket the config chose to keep (deleteArtifacts false).
        const kept = b.name === ctx.target.buckets.backup || (b.name === artifacts && !ctx.target.buckets.deleteArtifacts);
        if (!kept && hasLabels(b.metadata.labels as Record<string, string> | undefined, ctx)) left.add(`gs://${b.name}`);
      }
      return [...left];
    },
  };

  function activities() {
    // 3.4
    const deleteArtifactsBucket = defineStep({
      requiresGate: 'phase-2',
      async plan(ctx) {
        if (skipReason(ctx)) return [];
        const name = ctx.target.buckets.artifacts!;
        if (!(await getBucket(name))) return [];
        const versions = await listVersions(storage.bucket(name));
        const actions: PlannedAction[] = [
          { call: 'storage.buckets.get', resource: `gs://${name}`, description: `check gs://${name} carries ${labelText(ctx)}` },
          { call: 'storage.objects.insert', resource: snapshotUri(ctx, 'bucket', name), description: `save the bucket's metadata and its listing of ${versions.length} object version(s) for rollback` },
          ...versions.slice(0, PLAN_LIST_LIMIT).map((v) => ({ call: 'storage.objects.delete', resource: `gs://${name}/${v.name}#${v.generation}`, description: `delete version ${v.generation} of ${v.name} (soft-deleted, restorable)`, destructive: true })),
        ];
        if (versions.length > PLAN_LIST_LIMIT) {
          actions.push({ call: 'storage.objects.delete', resource: `gs://${name}/**`, description: `… and ${versions.length - PLAN_LIST_LIMIT} more object version(s)`, destructive: true });
        }
        actions.push({ call: 'storage.buckets.delete', resource: `gs://${name}`, description: `delete the artifacts bucket gs://${name} (soft-deleted, restorable within its retention)`, destructive: true });
        return actions;
      },
      async run(ctx) {
        const skip = skipReason(ctx);
        if (skip) return { summary: `skipped: ${skip}`, actions: [] };
        const name = ctx.target.buckets.artifacts!;
        const snapshot = snapshotUri(ctx, 'bucket', name);
        const meta = await getBucket(name);
        if (!meta) {
          const saved = await deps.objects.stat(snapshot);
          return { summary: `gs://${name} is already gone`, actions: [], facts: { bucket: name, ...(saved ? { snapshot, deletedAt: saved.updated } : {}) } };
        }
        assertLabels(`bucket gs://${name}`, meta.labels, ctx);
        const retention = Number(meta.softDeletePolicy?.retentionDurationSeconds ?? 0);
        if (retention === 0) {
          fail(
            ErrorType.PreconditionFailed,
            `gs://${name} has soft delete turned off, so deleting it could never be undone. Turn it on (gcloud storage buckets update gs://${name} --soft-delete-duration=7d) and retry, or skip 3.4 to keep the bucket.`,
          );
        }
        const bucket = storage.bucket(name);
        const versions = await listVersions(bucket);
        // A retry after a partial delete sees only what is left: merge with the earlier listing so the
        // snapshot still names every version this step deleted.
        const earlier = await deps.objects.read(snapshot);
        const known = earlier ? (JSON.parse(earlier.toString('utf8')) as BucketSnapshot).objects : [];
        const listed = new Set(versions.map((v) => `${v.name}#${v.generation}`));
        const objects = [...versions, ...known.filter((v) => !listed.has(`${v.name}#${v.generation}`))];
        await saveSnapshot(deps.objects, snapshot, { takenAt: new Date().toISOString(), bucket: meta, objects } satisfies BucketSnapshot);
        let deleted = 0;
        for (const v of versions) {
          try {
            await gcpCall(`deleting gs://${name}/${v.name}#${v.generation}`, ROLE, () => bucket.file(v.name, { generation: Number(v.generation) }).delete());
          } catch (err) {
            if (!isNotFound(err)) throw err;
          }
          deleted++;
          if (deleted % 100 === 0) heartbeat({ bucket: name, deleted, total: versions.length });
        }
        heartbeat({ bucket: name, deleted, total: versions.length });
        try {
          await gcpCall(`deleting bucket gs://${name}`, ROLE, () => bucket.delete());
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
        const deletedAt = new Date().toISOString();
        return {
          summary: `deleted gs://${name} and its ${objects.length} object version(s); restorable for ${Math.round(retention / 86_400)} day(s); listing saved at ${snapshot}`,
          actions: [
            { call: 'storage.objects.insert', resource: snapshot, description: 'saved the bucket metadata and object listing' },
            { call: 'storage.objects.delete', resource: `gs://${name}/**`, description: `deleted ${versions.length} object version(s)`, destructive: true },
            { call: 'storage.buckets.delete', resource: `gs://${name}`, description: 'deleted the bucket', destructive: true },
          ],
          facts: { bucket: name, snapshot, objectVersions: objects.length, deletedAt },
        };
      },
    });

    // Compensation for 3.4: restore the soft-deleted bucket, then the object versions the snapshot lists.
    const restoreArtifactsBucket = defineStep({
      async plan(ctx) {
        const name = ctx.target.buckets.artifacts;
        if (!name) return [];
        const actions: PlannedAction[] = [{ call: 'storage.objects.get', resource: snapshotUri(ctx, 'bucket', name), description: 'read the saved object listing' }];
        if (!(await getBucket(name))) {
          actions.push({ call: 'storage.buckets.restore', resource: `gs://${name}`, description: `restore the newest soft-deleted generation of gs://${name}` });
        }
        actions.push({ call: 'storage.objects.restore', resource: `gs://${name}/**`, description: 'restore each soft-deleted object version the snapshot lists' });
        return actions;
      },
      async run(ctx) {
        const name = ctx.target.buckets.artifacts;
        if (!name) return { summary: 'no artifacts bucket is configured; nothing to restore', actions: [] };
        const snapshotAt = snapshotUri(ctx, 'bucket', name);
        const raw = await deps.objects.read(snapshotAt);
        const actions: PlannedAction[] = [];
        let restoredBucket = false;
        if (!(await getBucket(name))) {
          // No snapshot: 3.4 never got as far as deleting (it saves the listing first).
          if (!raw) return { summary: `gs://${name} does not exist and 3.4 saved no snapshot, so it deleted nothing; nothing to restore`, actions: [] };
          const generation = await newestRestorable(ctx, name);
          if (!generation) {
            fail(
              ErrorType.CannotRestore,
              `cannot restore gs://${name}: no soft-deleted generation is left within its retention. Its metadata and object listing are in ${snapshotAt}; recreate the bucket from them (and your infrastructure code), then skip this compensation.`,
            );
          }
          await gcpCall(`restoring bucket gs://${name}`, ROLE, () => storage.bucket(name).restore({ generation }));
          restoredBucket = true;
          actions.push({ call: 'storage.buckets.restore', resource: `gs://${name}`, description: `restored generation ${generation}` });
        }
        if (!raw) return { summary: `gs://${name} exists; no snapshot, so no object to restore`, actions };
        const saved = JSON.parse(raw.toString('utf8')) as BucketSnapshot;
        const bucket = storage.bucket(name);
        const [softDeleted] = await gcpCall(`listing soft-deleted objects in gs://${name}`, ROLE, () => bucket.getFiles({ softDeleted: true, versions: true, autoPaginate: true }));
        const restorable = new Set(softDeleted.map((f) => `${f.name}#${f.metadata.generation}`));
        // Oldest first, so the newest version of each name ends up live again.
        const wanted = [...saved.objects].sort((a, b) => (BigInt(a.generation) < BigInt(b.generation) ? -1 : 1)).filter((v) => restorable.has(`${v.name}#${v.generation}`));
        let restored = 0;
        for (const v of wanted) {
          await gcpCall(`restoring gs://${name}/${v.name}#${v.generation}`, ROLE, () => bucket.file(v.name).restore({ generation: Number(v.generation) }));
          restored++;
          if (restored % 100 === 0) heartbeat({ bucket: name, restored, total: wanted.length });
        }
        if (restored) actions.push({ call: 'storage.objects.restore', resource: `gs://${name}/**`, description: `restored ${restored} object version(s)` });
        const missing = saved.objects.length - restored;
        return {
          summary: `${restoredBucket ? 'restored' : 'kept'} gs://${name}; restored ${restored} of ${saved.objects.length} object version(s) listed in ${snapshotAt}${missing ? ` (${missing} were not soft-deleted: still present, or past retention)` : ''}`,
          actions,
          facts: { bucket: name, restoredObjects: restored, listedObjects: saved.objects.length },
        };
      },
    });

    return { deleteArtifactsBucket, restoreArtifactsBucket };
  }

  /** The newest soft-deleted generation of a bucket that is still within its retention. */
  async function newestRestorable(ctx: StepContext, name: string): Promise<string | undefined> {
    const [buckets] = await gcpCall(`listing soft-deleted buckets in ${ctx.target.gcp.project}`, ROLE, () =>
      storage.getBuckets({ project: ctx.target.gcp.project, softDeleted: true, prefix: name, autoPaginate: true }),
    );
    const now = Date.now();
    return buckets
      .map((b) => b.metadata as BucketMeta)
      .filter((m) => m.name === name && (!m.hardDeleteTime || Date.parse(m.hardDeleteTime) > now))
      .sort((a, b) => (BigInt(a.generation) < BigInt(b.generation) ? 1 : -1))[0]?.generation;
  }
}

function labelText(ctx: StepContext): string {
  return Object.entries(ctx.target.labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
}
