// Cloud Storage: 3.4 deletes MLflow's artifacts bucket (optional), and its compensation brings it
// back. GCS soft delete is what makes that possible: a deleted bucket and its deleted object
// versions stay restorable for the bucket's retention (7 days by default), so the step refuses a
// bucket whose soft delete is off. The listing saved before the delete says which versions to restore.
//
// A rollback may be asked for at the closure gate, after the bake period: 3.4 raises the bucket's
// retention to cover the bake period plus a margin before deleting (recording the old value), and
// the undo puts the old value back. Preflight says when it will.
//
// 3.4 is in storage-delete.ts, its undo in storage-restore.ts, what they share in storage-bucket.ts.
import type { CheckResult } from '../../types';
import { hasLabels, type CloudDeps, type CloudKind } from './common';
import { describe, gcpCall, rethrowTransient } from '../../adapters/gcp/calls';
import { createBucketReader, days, labelText, MAX_RETENTION_SECONDS, retentionNeeded, ROLE, ROLLBACK_MARGIN_SECONDS } from './storage-bucket';
import { createDeleteBucketStep } from './storage-delete';
import { createRestoreBucketStep } from './storage-restore';

const BACKUP_PERMISSIONS = ['storage.objects.create', 'storage.objects.get', 'storage.objects.list', 'storage.objects.delete'];
const ARTIFACTS_PERMISSIONS = ['storage.buckets.delete', 'storage.buckets.update', 'storage.objects.list', 'storage.objects.delete', 'storage.objects.create'];

export function createStorageActivities(deps: CloudDeps): CloudKind<ReturnType<typeof activities>> {
  const { storage } = deps.gcp;
  const buckets = createBucketReader(deps);
  const { missingPermissions, getBucket } = buckets;

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
          // Undoing 3.2 from an export grants the recreated instance's new service account read on this bucket.
          const missing = await missingPermissions(backup, [...BACKUP_PERMISSIONS, ...(ctx.target.cloudSql.restoreFrom === 'export' ? ['storage.buckets.getIamPolicy', 'storage.buckets.setIamPolicy'] : [])]);
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
            const needed = retentionNeeded(ctx);
            const deleting = ctx.target.buckets.deleteArtifacts;
            const problems = [
              ...(deleting && !labelled ? [`it lacks the labels ${labelText(ctx)}, so 3.4 will refuse it`] : []),
              ...(deleting && retention === 0 ? ['soft delete is off, so 3.4 will refuse it (a delete could not be undone)'] : []),
              ...(deleting && needed > MAX_RETENTION_SECONDS ? [`the bake period ${ctx.target.bakePeriod} plus ${days(ROLLBACK_MARGIN_SECONDS)} for the closure gate is longer than the 90 days soft delete can keep a bucket: shorten the bake period or keep the bucket`] : []),
              ...(missing.length ? [`the worker lacks ${missing.join(', ')}: grant ${ROLE} on the bucket`] : []),
            ];
            const retentionText =
              retention >= needed
                ? `soft delete keeps it ${days(retention)}, enough for the bake period ${ctx.target.bakePeriod} plus ${days(ROLLBACK_MARGIN_SECONDS)} to decide at the closure gate`
                : `soft delete keeps it ${days(retention)}, less than the bake period ${ctx.target.bakePeriod} plus ${days(ROLLBACK_MARGIN_SECONDS)}: 3.4 raises it to ${days(needed)} before deleting, and undo puts ${days(retention)} back`;
            checks.push({ name: `artifacts bucket gs://${artifacts}`, ok: problems.length === 0, detail: problems.length ? problems.join('; ') : `readable${deleting ? `, labelled; ${retentionText}` : ' (kept: deleteArtifacts is false)'}` });
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
    return { ...createDeleteBucketStep(deps, buckets), ...createRestoreBucketStep(deps, buckets) };
  }
}
