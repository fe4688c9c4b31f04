// Cloud Storage: 3.4 deletes MLflow's artifacts bucket (optional), and its compensation brings it
// back. GCS soft delete is what makes that possible: a deleted bucket and its deleted object
// versions stay restorable for the bucket's retention (7 days by default), so the step refuses a
// bucket whose soft delete is off. The listing saved before the delete says which versions to restore.
//
// A rollback may be asked for at the closure gate, after the bake period: 3.4 raises the bucket's
// retention to cover the bake period plus a margin before deleting (recording the old value), and
// the undo puts the old value back. Preflight says when it will.
import type { Bucket } from '@google-cloud/storage';
import { msToNumber } from '@temporalio/common/lib/time';
import { ErrorType, fail } from '../errors';
import type { CheckResult, PlannedAction, StepContext } from '../types';
import { assertLabels, hasLabels, heartbeat, saveSnapshot, snapshotUri, type CloudDeps, type CloudKind } from './cloud-common';
import { describe, gcpCall, gcpGet, isNotFound, rethrowTransient } from './gcp-calls';
import { defineStep } from './step';

const ROLE = 'roles/storage.admin';
const BACKUP_PERMISSIONS = ['storage.objects.create', 'storage.objects.get', 'storage.objects.list', 'storage.objects.delete'];
const ARTIFACTS_PERMISSIONS = ['storage.buckets.delete', 'storage.buckets.update', 'storage.objects.list', 'storage.objects.delete', 'storage.objects.create'];
/** Time for a human to ask for a rollback at the closure gate, after the bake period ends. */
const ROLLBACK_MARGIN_SECONDS = 7 * 86_400;
/** Soft delete retention is 0, or between 7 and 90 days (https://cloud.google.com/storage/docs/soft-delete#retention-duration). */
const MIN_RETENTION_SECONDS = 7 * 86_400;
const MAX_RETENTION_SECONDS = 90 * 86_400;
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
  /** The soft delete retention before 3.4 raised it; undo puts it back. */
  retentionBefore?: number;
}

/** Retention that keeps the deleted bucket restorable through the bake period and a margin for the closure gate. */
export function retentionNeeded(ctx: StepContext): number {
  return Math.max(MIN_RETENTION_SECONDS, Math.ceil(msToNumber(ctx.target.bakePeriod as never) / 1000) + ROLLBACK_MARGIN_SECONDS);
}

const days = (seconds: number) => `${Math.round((seconds / 86_400) * 10) / 10} day(s)`;

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
        const [meta] = await gcpCall(`reading gs://${name}`, ROLE, () => bucket.getMetadata());
        // objects.list: "softDeleted and versions cannot be set to true simultaneously" (@google-cloud/storage
        // Bucket#getFiles); softDeleted alone lists every soft-deleted version.
        const [softDeleted] = await gcpCall(`listing soft-deleted objects in gs://${name}`, ROLE, () => bucket.getFiles({ softDeleted: true, autoPaginate: true }));
        const restorable = new Set(softDeleted.map((f) => `${f.name}#${f.metadata.generation}`));
        const [present] = await gcpCall(`listing objects in gs://${name}`, ROLE, () => bucket.getFiles({ versions: true, autoPaginate: true }));
        const versioned = !!(meta as BucketMeta).versioning?.enabled;

        const byName = new Map<string, VersionEntry[]>();
        for (const v of [...saved.objects].sort((a, b) => (BigInt(a.generation) < BigInt(b.generation) ? -1 : 1))) byName.set(v.name, [...(byName.get(v.name) ?? []), v]);
        const presentByName = new Map<string, Array<{ generation: string; crc32c?: string; live: boolean }>>();
        for (const f of [...present].sort((a, b) => (BigInt(a.metadata.generation!) < BigInt(b.metadata.generation!) ? -1 : 1))) {
          presentByName.set(f.name, [...(presentByName.get(f.name) ?? []), { generation: String(f.metadata.generation), crc32c: f.metadata.crc32c, live: !f.metadata.timeDeleted }]);
        }
        let restored = 0;
        let kept = 0;
        let lost = 0;
        let madeNoncurrent = 0;
        for (const [object, all] of byName) {
          // Without Object Versioning a bucket keeps one version per name: only the live one can come back.
          const wanted = versioned ? all : all.filter((v) => !v.timeDeleted).slice(-1);
          // A restore makes a new copy with a new generation (objects.restore), so what an earlier attempt
          // restored is recognised by content, in order: those versions are not restored twice.
          const have = presentByName.get(object) ?? [];
          let done = 0;
          while (done < have.length && done < wanted.length && have[done]!.crc32c === wanted[done]!.crc32c) done++;
          if (done < have.length) {
            fail(
              ErrorType.CannotRestore,
              `gs://${name}/${object} has version(s) that are not the ones 3.4 deleted (written since?), so they are left as they are. Compare them with ${snapshotAt} and restore the rest by hand (gcloud storage restore), then skip this compensation.`,
            );
          }
          kept += done;
          let live = have.at(-1)?.live ? have.at(-1)!.generation : undefined;
          for (const v of wanted.slice(done)) {
            if (!restorable.has(`${object}#${v.generation}`)) {
              lost++;
              continue;
            }
            // The precondition makes a racing second attempt fail instead of adding a version.
            // File#restore resolves to the new object's resource (its JSON), with its new generation.
            const copy = (await gcpCall(`restoring gs://${name}/${object}#${v.generation}`, ROLE, () =>
              bucket.file(object).restore({ generation: Number(v.generation), ifGenerationMatch: live ? Number(live) : 0 } as never),
            )) as unknown as { generation?: string | number };
            live = String(copy.generation);
            restored++;
            if (restored % 100 === 0) heartbeat({ bucket: name, restored, total: saved.objects.length });
          }
          // A name whose every version was noncurrent before 3.4 had no live object: the last restore made one, so it goes back to noncurrent.
          if (versioned && live && !all.some((v) => !v.timeDeleted)) {
            await gcpCall(`making gs://${name}/${object} noncurrent again`, ROLE, () => bucket.file(object).delete({ ifGenerationMatch: Number(live) } as never));
            madeNoncurrent++;
          }
        }
        if (restored) actions.push({ call: 'storage.objects.restore', resource: `gs://${name}/**`, description: `restored ${restored} object version(s)` });
        if (madeNoncurrent) actions.push({ call: 'storage.objects.delete', resource: `gs://${name}/**`, description: `made ${madeNoncurrent} object(s) noncurrent again, as they were before 3.4` });

        // Put back the retention 3.4 raised.
        const retentionNow = Number((meta as BucketMeta).softDeletePolicy?.retentionDurationSeconds ?? 0);
        if (saved.retentionBefore !== undefined && retentionNow !== saved.retentionBefore) {
          await gcpCall(`putting back the soft delete retention of gs://${name}`, ROLE, () => bucket.setMetadata({ softDeletePolicy: { retentionDurationSeconds: saved.retentionBefore } }));
          actions.push({ call: 'storage.buckets.patch', resource: `gs://${name}`, description: `put soft delete retention back to ${days(saved.retentionBefore)}` });
        }
        const back = restored + kept;
        return {
          summary: `${restoredBucket ? 'restored' : 'kept'} gs://${name}; ${back} of ${saved.objects.length} object version(s) listed in ${snapshotAt} are back${kept ? ` (${kept} by an earlier attempt)` : ''}${lost ? `; ${lost} were no longer soft-deleted (past retention)` : ''}${madeNoncurrent ? `; ${madeNoncurrent} noncurrent again as before` : ''}`,
          actions,
          facts: { bucket: name, restoredObjects: back, listedObjects: saved.objects.length },
        };
      },
    });

    return { deleteArtifactsBucket, restoreArtifactsBucket };
  }

  /** The newest soft-deleted generation of a bucket that is still within its retention. */
  async function newestRestorable(ctx: StepContext, name: string): Promise<string | undefined> {
    const [buckets] = await gcpCall(`listing soft-deleted buckets in ${ctx.target.gcp.project}`, ROLE, () =>
      storage.getBuckets({ project: ctx.target.gcp.project, softDeleted: true, prefix: name, autoPaginate: true } as never),
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
