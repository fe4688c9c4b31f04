// The undo of Cloud Storage 3.4: restores the soft-deleted bucket, then each name's versions the
// snapshot lists, oldest first (a restore is a new copy, so what an earlier attempt restored is
// recognised by content), and puts the soft delete retention 3.4 raised back.
import { ErrorType, fail } from '../../errors';
import type { PlannedAction, StepContext } from '../../types';
import { heartbeat, snapshotUri, type CloudDeps } from './common';
import { gcpCall } from '../../adapters/gcp/calls';
import { defineStep } from '../step';
import { days, ROLE, type BucketMeta, type BucketReader, type BucketSnapshot, type VersionEntry } from './storage-bucket';

export function createRestoreBucketStep(deps: CloudDeps, buckets: BucketReader) {
  const { storage } = deps.gcp;
  const { getBucket } = buckets;

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
            bucket.file(object).restore({ generation: Number(v.generation), ifGenerationMatch: live ? Number(live) : 0 }),
          )) as unknown as { generation?: string | number };
          live = String(copy.generation);
          restored++;
          if (restored % 100 === 0) heartbeat({ bucket: name, restored, total: saved.objects.length });
        }
        // A name whose every version was noncurrent before 3.4 had no live object: the last restore made one, so it goes back to noncurrent.
        if (versioned && live && !all.some((v) => !v.timeDeleted)) {
          await gcpCall(`making gs://${name}/${object} noncurrent again`, ROLE, () => bucket.file(object).delete({ ifGenerationMatch: Number(live) }));
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

  return { restoreArtifactsBucket };
}
