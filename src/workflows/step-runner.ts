// Running a step: its compensation is recorded before it acts, and a failure blocks it until the
// operator decides: retry (after fixing the cause), skip (where the step allows it), rollback or
// abort. Failed gate checks and failed compensations wait for the same decision.
import { condition, isCancellation } from '@temporalio/workflow';
import type { Target } from '../config/schema';
import { shapeOf } from '../shapes';
import type { StepContext, StepResult } from '../types';
import { execute } from './activity-options';
import type { StepRequest } from './messages';
import type { Migration } from './migration';
import { recordCompensation, voidCompensation } from './rollback';
import { event, nextHint, now, refresh, setState, stepStatus } from './status';
import { stepSpec } from './steps';

export type Decision = 'retry' | 'skip';

/**
 * Runs step `id` as its activity (or `body`, for steps made of several activities). A dry run
 * only plans; a real run records the compensation first, then runs until done or skipped.
 */
export async function runStep(m: Migration, id: string, body?: (ctx: StepContext<Target>) => Promise<StepResult>): Promise<StepResult | undefined> {
  const spec = stepSpec(id, shapeOf(m.target));
  const s = stepStatus(m.status, id);
  const exec = body ?? ((ctx: StepContext<Target>) => execute(spec.long ? 'long' : 'short', spec.activity, [ctx], `${id} ${spec.title}`));
  m.beginUnlessStopped(`step ${id}`);
  if (m.ctx.dryRun) {
    const res = await exec(m.ctx);
    m.status.plan[id] = res.actions;
    Object.assign(s, { state: 'planned', summary: res.summary });
    refresh(m.status);
    return res;
  }
  if (spec.undo) recordCompensation(m.status, spec);
  for (;;) {
    Object.assign(s, { state: 'running', attempts: s.attempts + 1, startedAt: now(), endedAt: undefined, error: undefined });
    setState(m.status, 'running');
    try {
      const res = await exec(m.ctx);
      Object.assign(s, { state: 'done', endedAt: now(), summary: res.summary });
      if (res.facts) m.keepFacts(id, res.facts);
      if (spec.voids) voidCompensation(m.status, spec.voids, `${id} made it permanent`);
      refresh(m.status);
      return res;
    } catch (err) {
      if (isCancellation(err)) {
        Object.assign(s, { state: 'cancelled', endedAt: now() });
        throw err;
      }
      Object.assign(s, { state: 'blocked', endedAt: now(), error: describeFailure(err) });
      event(m.status, `step ${id} Blocked: ${s.error}`);
      const decision = await decide(m, id, `Step ${id} (${spec.title}) is Blocked: ${s.error}`, !!spec.skippable);
      if (decision === 'skip') {
        s.state = 'skipped';
        refresh(m.status);
        return undefined;
      }
      m.beginUnlessStopped(`the retry of step ${id}`);
    }
  }
}

/** Waits for the operator's decision on what is Blocked at `id` (a step, a gate or a compensation). */
export async function decide(m: Migration, id: string, why: string, skippable: boolean): Promise<Decision> {
  const rollingBack = m.status.state === 'rolling-back';
  const verbs = [`\`retry\` with \`{"step": "${id}", "by": "YOUR_NAME"}\``, ...(skippable ? [`\`skip\` with \`{"step": "${id}", "by": "YOUR_NAME"}\``] : []), ...(rollingBack || m.wayBackEnded ? ['`abort`'] : ['`rollback`', '`abort`'])];
  setState(m.status, rollingBack ? 'rolling-back' : 'blocked', { kind: 'decision', step: id, next: `${why}. Fix the cause, then send ${verbs.join(' or ')}.` });
  await condition(() => m.decisions.has(id) || m.abortRollback);
  const d = m.decisions.get(id) ?? 'skip';
  m.decisions.delete(id);
  return d;
}

/** `retry` / `skip`: why the request does not fit, or undefined when it does. */
export function checkDecision(m: Migration, r: StepRequest, verb: Decision): string | undefined {
  const id = r?.step;
  if (typeof id !== 'string') return `${verb} needs {"step": "<step id, e.g. 3.1>", "by": "YOUR_NAME"}`;
  const comp = m.status.compensations.find((c) => c.step === id && c.state === 'blocked');
  if (m.status.state === 'rolling-back') {
    return comp ? undefined : `nothing is Blocked at ${id} during the rollback. ${nextHint(m.status)}`;
  }
  const step = m.status.steps.find((s) => s.id === id);
  const gate = m.status.gates.find((g) => g.id === id);
  if (!step && !gate) return `unknown step "${id}"; steps are ${m.status.steps.map((s) => s.id).join(', ')}`;
  if (step && step.state !== 'blocked') return `step ${id} is not Blocked (it is ${step.state}). ${nextHint(m.status)}`;
  if (gate && gate.state !== 'failed') return `gate ${id} has no failed checks (it is ${gate.state}). ${nextHint(m.status)}`;
  if (verb === 'skip' && (gate || !step?.skippable)) return `step ${id} must not be skipped: fix its cause and retry, or rollback`;
  return undefined;
}

export function applyDecision(m: Migration, r: StepRequest, verb: Decision): string {
  m.decisions.set(r.step, verb);
  event(m.status, `${verb} ${r.step} by ${r.by || 'someone unnamed (send "by")'}`);
  return `${verb} ${r.step}`;
}

/** The root cause's message: an ActivityFailure wraps the activity's own error. */
export function describeFailure(err: unknown): string {
  let e = err as { message?: string; cause?: unknown } | undefined;
  while (e?.cause) e = e.cause as typeof e;
  return e?.message ?? String(err);
}
