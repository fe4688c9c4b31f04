// The three MLflow deployments the tool removes, and where each keeps what it saves. Pure: the
// workflow bundle imports it to pick a shape's steps.
//   cloud            seed 001: Cloud Run + a dedicated Cloud SQL instance on GCP
//   shared-database  seed 000: MLflow's tables inside the app's own database
//   self-hosted      seed 002: MLflow's own database and role on a shared Postgres server
import type { CloudTarget, Target } from './config/schema';

export const SHAPES = ['cloud', 'shared-database', 'self-hosted'] as const;
export type Shape = (typeof SHAPES)[number];

/**
 * The target's shape. Histories recorded before shapes existed carry `cloud-sql-dedicated` (or
 * nothing) in their loaded target: both are the cloud shape.
 */
export function shapeOf(target: { shape?: string }): Shape {
  return target.shape === 'shared-database' || target.shape === 'self-hosted' ? target.shape : 'cloud';
}

export function isCloud(target: Target): target is CloudTarget {
  return shapeOf(target) === 'cloud';
}

/** gs://bucket/prefix or file:///dir: the root under which each migration run has its folder. */
export function backupRoot(target: Target): string {
  return isCloud(target) ? `gs://${target.buckets.backup}/${target.buckets.prefix}` : target.backup;
}

/** A path inside this migration run's folder (the dump, snapshots, the record). */
export function backupUri(ctx: { target: Target; migrationId: string }, path: string): string {
  return `${backupRoot(ctx.target)}/${ctx.migrationId}/${path}`;
}
