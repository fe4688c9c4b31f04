// Gate phase-2 is the last before anything is deleted: its last check also names, by full name,
// every resource Phase 3 will delete, from the Phase 3 steps' own plans (read-only, the same code
// a dry run runs), so the approver sees `gs://…`, the instance, the service, not "the bucket".
// A gate check returning more rows is not a new command: the workflow's history is unchanged.
import type { Target } from '../config/schema';
import { SHAPES, shapeOf } from '../shapes';
import type { CheckResult, GateCheckResult, PlannedAction, StepContext, StepResult } from '../types';
import { gateSpec, stepsOf } from '../workflows/steps';

type Check = (ctx: StepContext<never>) => Promise<GateCheckResult>;
type Step = (ctx: StepContext<never>) => Promise<StepResult>;

/** Object versions inside a bucket are counted, not listed: the bucket names them. */
const PART_OF_A_WHOLE = /#\d+$|\/\*\*$/;

function namesOf(actions: PlannedAction[]): string {
  const destructive = actions.filter((a) => a.destructive);
  const parts = destructive.filter((a) => PART_OF_A_WHOLE.test(a.resource));
  const wholes = [...new Set(destructive.filter((a) => !PART_OF_A_WHOLE.test(a.resource)).map((a) => `${a.description} (${a.resource})`))];
  if (!destructive.length) return `nothing${actions.length ? `: ${actions.map((a) => a.description).join('; ')}` : ' (already gone)'}`;
  return [...wholes, ...(parts.length ? [`and the object versions inside (${parts.length}${parts.some((p) => p.resource.endsWith('/**')) ? '+' : ''})`] : [])].join('; ');
}

/** One row per Phase 3 step of the target's shape: what it will delete. */
export async function deletionPreview(ctx: StepContext<Target>, steps: Partial<Record<string, Step>>): Promise<CheckResult[]> {
  const rows: CheckResult[] = [];
  for (const spec of stepsOf(shapeOf(ctx.target)).filter((s) => s.phase === 3 && s.destructive)) {
    const name = `${spec.id} will delete`;
    const step = steps[spec.activity];
    if (!step) {
      rows.push({ name, ok: false, detail: `no activity ${spec.activity} on this worker` });
      continue;
    }
    try {
      const res = await step({ ...ctx, dryRun: true } as StepContext<never>);
      rows.push({ name, ok: true, detail: namesOf(res.actions) });
    } catch (err) {
      rows.push({ name, ok: false, detail: `cannot list what ${spec.id} deletes (${(err as Error).message}): fix it, then retry phase-2` });
    }
  }
  return rows;
}

/** The gate before deleting: phase-1 has passed, phase-2 has not (phase-0 runs the same check too). */
function beforeDeleting(ctx: StepContext<Target>): boolean {
  return ctx.gatesPassed.includes('phase-1') && !ctx.gatesPassed.includes('phase-2');
}

/** The activities with each shape's last phase-2 check extended by the deletion preview. */
export function withDeletionPreview<A extends Record<string, unknown>>(activities: A): A {
  const extended: Record<string, unknown> = { ...activities };
  const steps = activities as unknown as Partial<Record<string, Step>>;
  for (const shape of SHAPES) {
    const name = gateSpec('phase-2', shape).checks.at(-1);
    const check = name ? (activities[name] as Check | undefined) : undefined;
    if (!name || !check) continue;
    extended[name] = async (ctx: StepContext<Target>): Promise<GateCheckResult> => {
      const res = await check(ctx as StepContext<never>);
      // Only for the shape whose gate this is: a check name is one shape's last, never two.
      if (!beforeDeleting(ctx) || shapeOf(ctx.target) !== shape) return res;
      return { checks: [...res.checks, ...(await deletionPreview(ctx, steps))] };
    };
  }
  return extended as A;
}
