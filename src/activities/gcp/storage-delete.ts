// Cloud Storage 3.4: deletes MLflow's artifacts bucket (when deleteArtifacts is true) after saving
// its metadata and the listing of every version, and raising its soft delete retention to last
// through the bake period (the old value is recorded for the undo).
import { ErrorType, fail } from '../../errors';
import type { PlannedAction, StepContext } from '../../types';
import { assertLabels, heartbeat, saveSnapshot, snapshotUri, type CloudDeps } from './common';
import { gcpCall, isNotFound } from '../../adapters/gcp/calls';
import { throwIfCancelled } from '../heartbeat';
import { defineStep } from '../step';
import { days, labelText, MAX_RETENTION_SECONDS, retentionNeeded, ROLE, ROLLBACK_MARGIN_SECONDS, type BucketReader, type BucketSnapshot } from './storage-bucket';

/** A plan lists every version it would delete up to this many, then one line for the rest. */
const PLAN_LIST_LIMIT = 100;

export function createDeleteBucketStep(deps: CloudDeps, buckets: BucketReader) {
  const { storage } = deps.gcp;
  const { getBucket, listVersions } = buckets;

  const skipReason = (ctx: StepContext): string | undefined => {
    if (!ctx.target.buckets.artifacts) return 'no artifacts bucket is configured (buckets.artifacts); nothing to delete';
    if (!ctx.target.buckets.deleteArtifacts) return `buckets.deleteArtifacts is false, so gs://${ctx.target.buckets.artifacts} is kept`;
    return undefined;
  };

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
      const needed = retentionNeeded(ctx);
      if (needed > MAX_RETENTION_SECONDS) {
        fail(ErrorType.PreconditionFailed, `gs://${name} could not stay restorable through the bake period ${ctx.target.bakePeriod} plus ${days(ROLLBACK_MARGIN_SECONDS)}: soft delete keeps at most 90 days. Shorten the bake period, or skip 3.4 to keep the bucket.`);
      }
      const bucket = storage.bucket(name);
      const versions = await listVersions(bucket);
      // A retry after a partial delete sees only what is left: merge with the earlier listing so the
      // snapshot still names every version this step deleted; the first snapshot's metadata and
      // retention win (a retry sees the retention 3.4 itself raised).
      const raw = await deps.objects.read(snapshot);
      const earlier = raw ? (JSON.parse(raw.toString('utf8')) as BucketSnapshot) : undefined;
      const listed = new Set(versions.map((v) => `${v.name}#${v.generation}`));
      const objects = [...versions, ...(earlier?.objects ?? []).filter((v) => !listed.has(`${v.name}#${v.generation}`))];
      const retentionBefore = earlier?.retentionBefore ?? retention;
      await saveSnapshot(deps.objects, snapshot, { takenAt: earlier?.takenAt ?? new Date().toISOString(), bucket: earlier?.bucket ?? meta, objects, retentionBefore } satisfies BucketSnapshot);
      const actions: PlannedAction[] = [{ call: 'storage.objects.insert', resource: snapshot, description: 'saved the bucket metadata, its soft delete retention and the object listing' }];
      if (retention < needed) {
        // Soft-deleted objects and buckets are kept for the retention in force (https://cloud.google.com/storage/docs/soft-delete).
        await gcpCall(`raising the soft delete retention of gs://${name}`, ROLE, () => bucket.setMetadata({ softDeletePolicy: { retentionDurationSeconds: needed } }));
        actions.push({ call: 'storage.buckets.patch', resource: `gs://${name}`, description: `raised soft delete retention from ${days(retention)} to ${days(needed)}` });
      }
      let deleted = 0;
      for (const v of versions) {
        // A rollback stops the deletions here; its undo restores from the snapshot taken above.
        throwIfCancelled();
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
      const kept = Math.max(retention, needed);
      return {
        summary: `deleted gs://${name} and its ${objects.length} object version(s); restorable for ${days(kept)}${retentionBefore < kept ? ` (soft delete raised from ${days(retentionBefore)}; undo puts it back)` : ''}; listing saved at ${snapshot}`,
        actions: [
          ...actions,
          { call: 'storage.objects.delete', resource: `gs://${name}/**`, description: `deleted ${versions.length} object version(s)`, destructive: true },
          { call: 'storage.buckets.delete', resource: `gs://${name}`, description: 'deleted the bucket', destructive: true },
        ],
        facts: { bucket: name, snapshot, objectVersions: objects.length, deletedAt, softDeleteRetentionSeconds: kept, restorableUntil: new Date(Date.parse(deletedAt) + kept * 1000).toISOString() },
      };
    },
  });

  return { deleteArtifactsBucket };
}
