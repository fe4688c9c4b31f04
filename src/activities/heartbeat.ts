// Heartbeats and cancellation for activities, which tests and scripts also call outside a worker:
// Context.current() throws there, so progress is simply not reported and nothing is cancelled.
// Every activity runs inside keepAlive (see keepingAlive in ./index.ts): a timer heartbeats the
// latest progress while any awaited call runs, and the heartbeat is also how a cancellation
// reaches the worker, so loops over chunks check the signal between them.
import { Context } from '@temporalio/activity';
import type { Duration } from '@temporalio/common';

export interface BackfillProgress {
  runsDone: number;
  runsTotal: number;
  points: number;
  /** The last run id written: a retry resumes after it. */
  cursor?: string;
}

/** The running activity's context, or undefined outside one. */
export function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/** The latest details each running activity reported, which the timer repeats. */
const latest = new WeakMap<Context, unknown>();
/** When each running activity last reported progress. */
const progressAt = new WeakMap<Context, number>();
/** Activities whose timer is already running (a nested keepAlive adds none). */
const beating = new WeakSet<Context>();

export function heartbeat(details: unknown): void {
  const ctx = activityContext();
  if (!ctx) return;
  latest.set(ctx, details);
  progressAt.set(ctx, Date.now());
  ctx.heartbeat(details);
}

/** Default for keepAlive's stallMs (the worker passes WORKER_ACTIVITY_STALL_TIME). */
export const DEFAULT_STALL_MS = 5 * 60_000;

/** Details of the previous attempt's last heartbeat, when this is a retry. */
export function lastHeartbeat<T>(): T | undefined {
  return activityContext()?.info.heartbeatDetails as T | undefined;
}

/**
 * For the worker's maxHeartbeatThrottleInterval. A cancellation (a rollback during a step) reaches
 * the activity only in the reply to a heartbeat the SDK sends, and by default it sends one per
 * 0.8 × the heartbeat timeout (24 s at 30 s): capped, a rollback begins within seconds.
 */
export const MAX_HEARTBEAT_THROTTLE_INTERVAL: Duration = '1 second';

const NEVER = new AbortController().signal;

/** The activity's cancellation signal; outside a worker, one that never aborts. */
export function cancellationSignal(): AbortSignal {
  return activityContext()?.cancellationSignal ?? NEVER;
}

/** Between chunks of a long loop: a cancelled activity stops here (the SDK reports it as cancelled). */
export function throwIfCancelled(): void {
  activityContext()?.cancellationSignal.throwIfAborted();
}

/**
 * Runs `work` while a timer heartbeats the latest progress (`progress` until something newer is
 * reported; before anything is, the previous attempt's details, so a retry's resume point is not
 * lost). The timer fires at least every second: the SDK sends the server at most one heartbeat per
 * throttle interval (0.8 × the heartbeat timeout, capped by the worker's
 * maxHeartbeatThrottleInterval), and a cancellation arrives only in a heartbeat's reply.
 * The timer proves the worker alive, not the call: once nothing was reported for `stallMs`, it
 * stops, so a call that hangs meets the heartbeat timeout and the attempt is retried.
 */
export async function keepAlive<T>(progress: unknown, work: (signal: AbortSignal) => Promise<T>, stallMs = DEFAULT_STALL_MS): Promise<T> {
  const ctx = activityContext();
  if (!ctx) return work(NEVER);
  if (progress !== undefined) heartbeat(progress);
  if (beating.has(ctx)) return work(ctx.cancellationSignal);
  beating.add(ctx);
  if (!progressAt.has(ctx)) progressAt.set(ctx, Date.now());
  const every = Math.min(Math.max((ctx.info.heartbeatTimeoutMs ?? 4_000) / 4, 100), 1_000);
  const timer = setInterval(() => {
    if (Date.now() - (progressAt.get(ctx) ?? 0) > stallMs) return;
    ctx.heartbeat(latest.has(ctx) ? latest.get(ctx) : ctx.info.heartbeatDetails);
  }, every);
  try {
    return await work(ctx.cancellationSignal);
  } finally {
    clearInterval(timer);
    beating.delete(ctx);
  }
}

type AsyncFunctions = Record<string, (...args: never[]) => Promise<unknown>>;

/** The same activities, each run inside keepAlive: one place, so no activity can go silent. */
export function keepingAlive<A extends AsyncFunctions>(activities: A, stallMs = DEFAULT_STALL_MS): A {
  const out: Record<string, unknown> = Object.create(null);
  for (const [name, fn] of Object.entries(activities)) {
    out[name] = (...args: Parameters<typeof fn>) => keepAlive(undefined, () => fn(...args), stallMs);
  }
  return out as A;
}
