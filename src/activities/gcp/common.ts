// What every cloud step shares: where snapshots go, the label guard, and polling a long
// operation with heartbeats.
import { ErrorType, fail } from '../../errors';
import type { ObjectStore } from '../../ports';
import type { CheckResult, StepContext } from '../../types';
import type { GcpClients } from '../../adapters/gcp/clients';
import { activityContext, heartbeat } from '../heartbeat';

export interface CloudDeps {
  gcp: GcpClients;
  objects: ObjectStore;
}

/** One resource kind's activities, its preflight checks, and what of it still exists (5.1, 5.5). */
export interface CloudKind<A> {
  activities: A;
  preflight(ctx: StepContext): Promise<CheckResult[]>;
  /** Full names of this kind's MLflow resources still present: the configured ones and any carrying the target's labels. */
  remaining(ctx: StepContext): Promise<string[]>;
}

/** gs://backup/prefix/migrationId/…: snapshots, exports and the record live under one folder per migration. */
export function migrationUri(ctx: StepContext, path: string): string {
  return `gs://${ctx.target.buckets.backup}/${ctx.target.buckets.prefix}/${ctx.migrationId}/${path}`;
}

export function snapshotUri(ctx: StepContext, kind: string, name: string): string {
  return migrationUri(ctx, `snapshots/${kind}/${name.replace(/[^A-Za-z0-9._@-]+/g, '_')}.json`);
}

/** Saves what a step is about to delete. Written before the delete; a retry after the delete keeps the first one. */
export async function saveSnapshot(objects: ObjectStore, uri: string, resource: unknown): Promise<void> {
  await objects.write(uri, JSON.stringify(resource, null, 2), 'application/json');
}

export async function readSnapshot<T>(objects: ObjectStore, uri: string, what: string): Promise<T> {
  const body = await objects.read(uri);
  if (!body) fail(ErrorType.CannotRestore, `cannot restore ${what}: its snapshot ${uri} is missing. Recreate it by hand from your infrastructure code, then skip this compensation.`);
  return JSON.parse(body.toString('utf8')) as T;
}

/** Refuses a resource that does not carry every label the target names (seed 003: act only on what is MLflow's). */
export function assertLabels(resource: string, labels: Record<string, string> | null | undefined, ctx: StepContext): void {
  const missing = Object.entries(ctx.target.labels).filter(([k, v]) => labels?.[k] !== v);
  if (missing.length) {
    fail(
      ErrorType.ResourceMismatch,
      `${resource} does not carry the label(s) ${missing.map(([k, v]) => `${k}=${v}`).join(', ')} that mark MLflow resources, so it is left alone. ` +
        `Check the name in the config file, or add the labels to the resource if it really is MLflow's, then retry.`,
    );
  }
}

export function hasLabels(labels: Record<string, string> | null | undefined, ctx: StepContext): boolean {
  return Object.entries(ctx.target.labels).every(([k, v]) => labels?.[k] === v);
}

export { heartbeat };

/** Polls `check` until it returns a value, heartbeating meanwhile; a cancelled activity stops polling. */
export async function pollUntil<T>(what: string, check: () => Promise<T | undefined>, opts: { intervalMs?: number; timeoutMs?: number } = {}): Promise<T> {
  const interval = opts.intervalMs ?? 2_000;
  const deadline = Date.now() + (opts.timeoutMs ?? 3 * 3_600_000);
  for (;;) {
    const done = await check();
    if (done !== undefined) return done;
    if (Date.now() > deadline) throw new Error(`${what}: still not done after ${Math.round((opts.timeoutMs ?? 0) / 60_000)} min; the activity retries and polls again`);
    heartbeat({ waitingFor: what });
    const ctx = activityContext();
    if (ctx) await ctx.sleep(interval);
    else await new Promise((r) => setTimeout(r, interval));
  }
}
