// Every step activity is built here, so two promises hold by construction:
// a dry run only ever calls plan(), and a destructive step refuses to act before its gate.
import { ErrorType, fail } from '../errors';
import type { CloudTarget, Target } from '../config/schema';
import type { CheckResult, GateId, PlannedAction, StepContext, StepResult } from '../types';

/** `T`: the targets the step runs for (the cloud steps by default; see StepContext). */
export interface StepDefinition<T extends Target = CloudTarget> {
  /** The exact calls run() would make, computed read-only. */
  plan(ctx: StepContext<T>): Promise<PlannedAction[]>;
  run(ctx: StepContext<T>): Promise<StepResult>;
  /** Destructive steps name the gate that must have passed before they may act. */
  requiresGate?: GateId;
}

export function defineStep(def: StepDefinition): (ctx: StepContext) => Promise<StepResult> {
  return defineShapeStep(def);
}

/** defineStep for a step whose target may be of any shape (`T`), not only cloud. */
export function defineShapeStep<T extends Target>(def: StepDefinition<T>): (ctx: StepContext<T>) => Promise<StepResult> {
  return async (ctx) => {
    if (ctx.dryRun) {
      const actions = await def.plan(ctx);
      return { summary: `would make ${actions.length} call(s)`, actions };
    }
    if (def.requiresGate && !ctx.gatesPassed.includes(def.requiresGate)) {
      fail(ErrorType.GateNotPassed, `refusing to act: gate ${def.requiresGate} has not passed (gates passed: ${ctx.gatesPassed.join(', ') || 'none'})`);
    }
    return def.run(ctx);
  };
}

/** A gate check: read-only, so it runs the same in a dry run. */
export function defineCheck(fn: (ctx: StepContext) => Promise<CheckResult[]>): (ctx: StepContext) => Promise<{ checks: CheckResult[] }> {
  return defineShapeCheck(fn);
}

export function defineShapeCheck<T extends Target>(fn: (ctx: StepContext<T>) => Promise<CheckResult[]>): (ctx: StepContext<T>) => Promise<{ checks: CheckResult[] }> {
  return async (ctx) => ({ checks: await fn(ctx) });
}
