// Cloud SQL operations are not google.longrunning ones: each call returns an Operation that is
// polled with SqlOperationsService.get until DONE, and a DONE operation may carry an error. An
// instance runs one operation at a time, so every operation's name is saved before it is waited
// on: a retry after a crash waits on the same operation instead of starting another.
import { isOperationInProgress } from '../../adapters/gcp/clients';
import type { StepContext } from '../../types';
import { heartbeat, pollUntil, type CloudDeps } from './common';
import { gcpCall, gcpGet, plain } from '../../adapters/gcp/calls';
import { activityContext } from '../heartbeat';

/** What every Cloud SQL call needs; the permission errors name it. */
export const ROLE = 'roles/cloudsql.admin';

export interface SqlOperation {
  name?: string;
  status?: string;
  operationType?: string;
  startTime?: string;
  endTime?: string;
  error?: { errors?: Array<{ code?: string; message?: string }> } | null;
  backupContext?: { backupId?: string | number } | null;
  exportContext?: { uri?: string } | null;
  importContext?: { uri?: string } | null;
}

/** Sleeps; in an activity, a cancellation ends the sleep. */
async function sleep(ms: number): Promise<void> {
  const ctx = activityContext();
  if (ctx) await ctx.sleep(ms);
  else await new Promise((r) => setTimeout(r, ms));
}

/** Where an instance's operations are: its names, and the object a step's operation name is saved to. */
export interface OperationPlace {
  project(ctx: StepContext): string;
  instanceId(ctx: StepContext): string;
  resource(ctx: StepContext): string;
  operationMarker(ctx: StepContext, key: string): string;
}

export function createOperationRunner(deps: CloudDeps, opts: { pollIntervalMs?: number }, place: OperationPlace) {
  const { sqlOperations } = deps.gcp;
  const { project, instanceId, resource, operationMarker } = place;

  const getOperation = (ctx: StepContext, name: string): Promise<SqlOperation | undefined> =>
    gcpGet(`reading Cloud SQL operation ${name}`, ROLE, async () => plain<SqlOperation>((await sqlOperations.get({ project: project(ctx), operation: name }))[0]));

  /** The instance's operations that have not finished, newest first (operations.list is reverse chronological). */
  const runningOperations = async (ctx: StepContext): Promise<SqlOperation[]> => {
    // An instance that does not exist yet (a restore into a new one) has no operations to list.
    const list = await gcpGet(`listing operations of ${resource(ctx)}`, ROLE, async () => (await sqlOperations.list({ project: project(ctx), instance: instanceId(ctx) }))[0]);
    return (plain<{ items?: SqlOperation[] }>(list ?? {}).items ?? []).filter((o) => o.status !== 'DONE');
  };

  /** Polls one operation to DONE, heartbeating its name so the UI and a retry can see it. */
  const waitFor = async (ctx: StepContext, name: string, what: string): Promise<SqlOperation> => {
    // Cloud SQL operations take seconds (patch) to many minutes (export): poll soon, then back off.
    let interval = opts.pollIntervalMs ?? 250;
    return pollUntil(
      what,
      async () => {
        const op = await getOperation(ctx, name);
        if (!op) throw new Error(`${what}: operation ${name} is no longer known to Cloud SQL; the activity retries`);
        if (op.status === 'DONE') return op;
        heartbeat({ waitingFor: what, operation: name });
        if (!opts.pollIntervalMs) interval = Math.min(interval * 2, 10_000);
        await sleep(interval);
        return undefined;
      },
      { intervalMs: 0 },
    );
  };

  /**
   * Runs one operation of a step so that it happens once however often the step is retried: a saved
   * operation is resumed (or taken as done), a matching one already running on the instance is
   * adopted, and only then is a new one started; its name is saved before it is waited on.
   */
  const runOperation = async (
    ctx: StepContext,
    step: { key: string; what: string; type: string; matches?: (op: SqlOperation) => boolean },
    start: () => Promise<unknown>,
    onError: (message: string) => never,
  ): Promise<SqlOperation> => {
    const marker = operationMarker(ctx, step.key);
    const finish = (op: SqlOperation) => {
      const errors = op.error?.errors ?? [];
      if (errors.length) onError(`operation ${op.name} failed: ${errors.map((e) => `${e.code}: ${e.message}`).join('; ')}`);
      return op;
    };
    const saved = await deps.objects.read(marker);
    if (saved) {
      const name = (JSON.parse(saved.toString('utf8')) as { name: string }).name;
      const op = await getOperation(ctx, name);
      if (op && op.status !== 'DONE') return finish(await waitFor(ctx, name, step.what));
      // Done and without error: the effect happened, do not repeat it. Failed: start it again.
      if (op && !op.error?.errors?.length) return op;
    }
    const adopt = (await runningOperations(ctx)).find((o) => o.operationType === step.type && (step.matches?.(o) ?? true));
    let name = adopt?.name;
    if (!name) {
      for (;;) {
        try {
          const [started] = (await gcpCall(step.what, ROLE, start)) as [SqlOperation];
          name = started.name!;
          break;
        } catch (err) {
          // Another operation holds the instance (a backup window, an operator's change): wait for it, then start.
          if (!isOperationInProgress(err)) throw err;
          await pollUntil(`${step.what}: waiting for the instance's running operation to finish`, async () => ((await runningOperations(ctx)).length ? undefined : true), { intervalMs: opts.pollIntervalMs ?? 5_000 });
        }
      }
    }
    await deps.objects.write(marker, JSON.stringify({ name, type: step.type, startedAt: new Date().toISOString() }), 'application/json');
    heartbeat({ waitingFor: step.what, operation: name });
    return finish(await waitFor(ctx, name, step.what));
  };

  return runOperation;
}
