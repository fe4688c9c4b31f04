// What the Cloud Storage steps share: reading a bucket and listing its versions, the snapshot 3.4
// saves, and the soft delete retention that keeps a deleted bucket restorable until the closure gate.
import type { Bucket } from '@google-cloud/storage';
import { durationMs } from '../../config/schema';
import type { StepContext } from '../../types';
import type { CloudDeps } from './common';
import { gcpCall, gcpGet } from '../../adapters/gcp/calls';

export const ROLE = 'roles/storage.admin';
/** Time for a human to ask for a rollback at the closure gate, after the bake period ends. */
export const ROLLBACK_MARGIN_SECONDS = 7 * 86_400;
/** Soft delete retention is 0, or between 7 and 90 days (https://cloud.google.com/storage/docs/soft-delete#retention-duration). */
export const MIN_RETENTION_SECONDS = 7 * 86_400;
export const MAX_RETENTION_SECONDS = 90 * 86_400;

export type BucketMeta = Record<string, any>;
export interface VersionEntry {
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
  return Math.max(MIN_RETENTION_SECONDS, Math.ceil(durationMs(ctx.target.bakePeriod) / 1000) + ROLLBACK_MARGIN_SECONDS);
}

export const days = (seconds: number) => `${Math.round((seconds / 86_400) * 10) / 10} day(s)`;

export function labelText(ctx: StepContext): string {
  return Object.entries(ctx.target.labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
}

export function createBucketReader(deps: CloudDeps) {
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

  return { missingPermissions, getBucket, listVersions };
}

export type BucketReader = ReturnType<typeof createBucketReader>;
