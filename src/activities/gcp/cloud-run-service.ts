// What every Cloud Run step shares: the services' names, reading one, and waiting for a create or
// update until the service's terminal condition is Ready (a failed condition says why).
import type { StepContext } from '../../types';
import { pollUntil, type CloudDeps } from './common';
import { gcpCall, gcpGet, plain } from '../../adapters/gcp/calls';
import { keepAlive } from '../heartbeat';

export const ROLE = 'roles/run.admin';

/** Set by Cloud Run; a create that sends them back is refused or ignored, so restore strips them. */
export const OUTPUT_ONLY = [
  'name',
  'uid',
  'generation',
  'createTime',
  'updateTime',
  'deleteTime',
  'expireTime',
  'creator',
  'lastModifier',
  'observedGeneration',
  'terminalCondition',
  'conditions',
  'latestReadyRevision',
  'latestCreatedRevision',
  'trafficStatuses',
  'uri',
  'urls',
  'reconciling',
  'etag',
  'satisfiesPzs',
  'threatDetectionEnabled',
];

export type Service = Record<string, any>;
export interface EnvEntry {
  name: string;
  value?: string;
  valueSource?: unknown;
}

const READY = 'CONDITION_SUCCEEDED';
const FAILED = 'CONDITION_FAILED';
/** Condition.state over REST may arrive as a name or as its number (google/cloud/run/v2/condition.proto). */
const conditionState = (c: { state?: string | number } | undefined) => (typeof c?.state === 'number' ? ['STATE_UNSPECIFIED', 'CONDITION_PENDING', 'CONDITION_RECONCILING', FAILED, READY][c.state] : c?.state);

export interface CloudRunOptions {
  /** How often to poll a service that is still being deleted by an earlier attempt. */
  pollIntervalMs?: number;
}

export function createCloudRunServices(deps: CloudDeps, opts: CloudRunOptions = {}) {
  const { run } = deps.gcp;
  const parentOf = (ctx: StepContext) => `projects/${ctx.target.gcp.project}/locations/${ctx.target.gcp.region}`;
  const serviceName = (ctx: StepContext, id: string) => `${parentOf(ctx)}/services/${id}`;
  const mlflowName = (ctx: StepContext) => serviceName(ctx, ctx.target.cloudRun.mlflowService);
  const appName = (ctx: StepContext) => serviceName(ctx, ctx.target.cloudRun.appService);

  const getService = (name: string): Promise<Service | undefined> => gcpGet(`reading Cloud Run service ${name}`, ROLE, async () => plain((await run.getService({ name }))[0]));

  /** Waits for a long-running operation the client started, heartbeating; a failed operation throws. */
  const waitFor = async (what: string, started: Promise<[{ promise(): Promise<unknown> }, ...unknown[]]>) => {
    const [operation] = await gcpCall(what, ROLE, () => started);
    // Not abandoned on cancellation: the operation goes on at Google, and a rollback must not race it.
    return keepAlive({ waitingFor: what }, () => operation.promise());
  };

  /**
   * Waits until the service's terminal condition is Ready for its latest revision; a failed
   * condition (a revision that cannot start, e.g. a missing secret) fails with its message.
   */
  const waitReady = async (name: string, what: string, onFailed: (message: string) => never): Promise<Service> =>
    pollUntil(
      `${what}: ${name} becoming Ready`,
      async () => {
        const s = await getService(name);
        if (!s) throw new Error(`${name} disappeared while ${what}; the activity retries`);
        const state = conditionState(s.terminalCondition);
        if (state === FAILED) onFailed(s.terminalCondition?.message ?? 'its terminal condition failed');
        if (state === READY && !s.reconciling && (!s.latestCreatedRevision || s.latestReadyRevision === s.latestCreatedRevision)) return s;
        return undefined;
      },
      { intervalMs: opts.pollIntervalMs },
    );

  /** Runs a create or update; a failed operation is judged by the service's condition, which says why. */
  const change = async (name: string, what: string, started: Promise<[{ promise(): Promise<unknown> }, ...unknown[]]>, onFailed: (message: string) => never): Promise<Service> => {
    try {
      await waitFor(what, started);
    } catch (err) {
      if ((err as { type?: string }).type) throw err;
      if (!(await getService(name))) throw err;
    }
    return waitReady(name, what, onFailed);
  };

  const updateStarted = (service: Service) => run.updateService({ service: Object.fromEntries(Object.entries(service).filter(([k]) => !OUTPUT_ONLY.includes(k) || k === 'name' || k === 'etag')) });

  return { parentOf, mlflowName, appName, getService, waitFor, waitReady, change, updateStarted };
}

/** The names and waits the Cloud Run steps share, over one client. */
export type CloudRunServices = ReturnType<typeof createCloudRunServices>;
