// How the workflow calls its activities: timeouts, retries, heartbeats and cancellation for each
// kind of call, through the SDK's activity proxy, with the summary the UI shows beside the call.
import { ActivityCancellationType, proxyActivities, type ActivityFunctionWithOptions, type ActivityOptions } from '@temporalio/workflow';
import type { ActivityName, Activities } from './steps';

const RETRY = { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 5 } as const;

// A worker that dies mid-activity is noticed within the heartbeat timeout, and the activity runs
// again elsewhere; every activity heartbeats on a timer while it runs (keepAlive in
// src/activities/heartbeat.ts). Tests shorten it with a workflow interceptor, not here.
const HEARTBEAT = '30 seconds';

/** short: checks and most steps; long: data steps and backfill batches; undo: compensations. */
export type CallKind = 'short' | 'long' | 'undo';

const OPTIONS: Record<CallKind, ActivityOptions> = {
  // Rollback must not start while a step may still be acting: wait for cancellation to land.
  short: { startToCloseTimeout: '15 minutes', heartbeatTimeout: HEARTBEAT, retry: RETRY, cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED },
  long: { startToCloseTimeout: '6 hours', heartbeatTimeout: HEARTBEAT, retry: RETRY, cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED },
  undo: { startToCloseTimeout: '2 hours', heartbeatTimeout: HEARTBEAT, retry: { ...RETRY, maximumAttempts: 10 } },
};

type Proxies = { [K in ActivityName]: ActivityFunctionWithOptions<Activities[K]> };

const PROXIES: Record<CallKind, Proxies> = {
  short: proxyActivities<Activities>(OPTIONS.short),
  long: proxyActivities<Activities>(OPTIONS.long),
  undo: proxyActivities<Activities>(OPTIONS.undo),
};

/** Schedules `activity` with the options of its kind and a summary. */
export function execute<K extends ActivityName>(kind: CallKind, activity: K, args: Parameters<Activities[K]>, summary: string): Promise<Awaited<ReturnType<Activities[K]>>> {
  const fn: ActivityFunctionWithOptions<Activities[K]> = PROXIES[kind][activity];
  return fn.executeWithOptions({ summary }, args);
}
