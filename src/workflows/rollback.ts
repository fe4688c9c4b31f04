// The compensation stack and rollback. A step with an undo records it before it acts; rollback
// runs the recorded ones newest first, each until it succeeds or the operator skips it, in a scope
// that is never cancelled. A failed undo blocks and waits, like a failed step. `rollback`, `abort`
// and a rejected gate stop the phases by cancelling their scope.
import { execute } from './activity-options';
import { ENDED_STATES, type MigrationStatus, type StopRequest } from './messages';
import type { Migration } from './migration';
import { decide, describeFailure } from './step-runner';
import { event, now, refresh, setState } from './status';
import type { StepSpec } from './steps';

export type StopKind = 'rollback' | 'abort' | 'reject';

export interface Stop {
  kind: StopKind;
  by: string;
  reason: string;
}

/** Before the step acts: its undo joins the stack (once, however often the step is retried). */
export function recordCompensation(status: MigrationStatus, spec: StepSpec): void {
  if (!spec.undo || status.compensations.some((c) => c.step === spec.id)) return;
  status.compensations.push({ step: spec.id, title: `undo ${spec.id}: ${spec.title}`, activity: spec.undo, state: 'recorded', recordedAt: now() });
}

/** A permanent step (e.g. secrets deleted for good) makes an earlier step's undo moot. */
export function voidCompensation(status: MigrationStatus, stepId: string, why: string): void {
  const c = status.compensations.find((x) => x.step === stepId);
  if (c && c.state === 'recorded') Object.assign(c, { state: 'void', summary: why });
}

/** Newest first, each until it succeeds or the operator skips it; the caller runs it non-cancellable. */
export async function rollback(m: Migration): Promise<void> {
  m.status.phase = null;
  event(m.status, m.stop ? `rolling back (${m.stop.kind})` : 'cancelled: rolling back');
  setState(m.status, 'rolling-back');
  for (const c of [...m.status.compensations].reverse()) {
    if (c.state !== 'recorded' && c.state !== 'blocked') continue;
    for (;;) {
      if (m.abortRollback) return;
      Object.assign(c, { state: 'running', error: undefined });
      setState(m.status, 'rolling-back');
      try {
        const res = await execute('undo', c.activity, [m.ctx], c.title);
        Object.assign(c, { state: 'done', summary: res.summary });
        break;
      } catch (err) {
        Object.assign(c, { state: 'blocked', error: describeFailure(err) });
        event(m.status, `${c.title} Blocked: ${c.error}`);
        const decision = await decide(m, c.step, `Rollback is Blocked at ${c.title}: ${c.error}`, true);
        if (decision === 'skip') {
          c.state = 'skipped';
          break;
        }
      }
    }
  }
  refresh(m.status);
}

/** `rollback` / `abort`: why the request does not fit, or undefined when it does. */
export function checkStop(m: Migration, r: StopRequest, kind: 'rollback' | 'abort'): string | undefined {
  if (!r?.by || !r.reason) return `say who and why: {"by": "YOUR_NAME", "reason": "…"}`;
  if (ENDED_STATES.includes(m.status.state)) return `the migration has ended (${m.status.state})`;
  if (m.status.state === 'rolling-back') return kind === 'abort' ? undefined : 'already rolling back';
  if (kind === 'rollback' && m.wayBackEnded) return `${m.wayBackEnded} Send \`abort\` to stop instead.`;
  if (m.stop) return `already stopping (${m.stop.kind})`;
  return undefined;
}

export function applyStop(m: Migration, r: StopRequest, kind: 'rollback' | 'abort'): string {
  if (m.status.state === 'rolling-back') {
    m.abortRollback = true;
    event(m.status, `abort by ${r.by} during rollback: ${r.reason}`);
    return 'rollback will stop before the next compensation';
  }
  stopWith(m, kind, r.by, r.reason);
  return kind === 'abort' ? 'aborting' : 'rolling back';
}

/** Stops the phases: the running step's activity is cancelled, and Migration.run decides what follows. */
export function stopWith(m: Migration, kind: StopKind, by: string, reason: string): void {
  m.stop = { kind, by, reason };
  event(m.status, `${kind} by ${by}: ${reason}`); // the audit trail names who stopped it, whatever follows
  m.scope.cancel();
}
