// Heartbeats from activities, which tests and scripts also call outside a worker:
// Context.current() throws there, so progress is simply not reported.
import { Context } from '@temporalio/activity';

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

export function heartbeat(details: unknown): void {
  activityContext()?.heartbeat(details);
}

/** Details of the previous attempt's last heartbeat, when this is a retry. */
export function lastHeartbeat<T>(): T | undefined {
  return activityContext()?.info.heartbeatDetails as T | undefined;
}
