// Every step activity is built here, so two promises hold by construction:
// a dry run only ever calls plan(), and a destructive step refuses to act before its gate.
import { ErrorType, fail } from '../errors';
import type { CheckResult, GateId, PlannedAction, StepContext, StepResult } from '../types';

export interface StepDefinition {
  /** The exact calls run() would make, computed read-only. */
  plan(ctx: StepContext): Promise<PlannedAction[]>;
  run(ctx: StepContext): Promise<StepResult>;
  /** Destructive steps name the gate that must have passed before they may act. */
  requiresGate?: GateId;
}

export function defineStep(def: StepDefinition): (ctx: StepContext) => Promise<StepResult> {
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
  return async (ctx) => ({ checks: await fn(ctx) });
}
