// mlflowDecommission: the migration plan (seed 001), phase by phase. Each phase runs its steps
// in order and ends at its checkpoint gate. The mechanics live beside it (see migration.ts). Phases
// 0–2 and 4 are the same for every shape of deployment; Phases 3 and 5 remove what the shape has.
import { patched, proxyActivities } from '@temporalio/workflow';
import type { BackfillBatch } from '../activities/data/backfill';
import type { MigrationInput, Target } from '../config/schema';
import { shapeOf } from '../shapes';
import type { StepContext, StepResult } from '../types';
import type { MigrationResult } from './messages';
import { Migration } from './migration';
import { registerOperatorMessages } from './operator-messages';
import { now } from './status';
import type { Activities } from './steps';

const { loadTarget } = proxyActivities<Activities>({ startToCloseTimeout: '1 minute', retry: { maximumAttempts: 3 } });

export async function mlflowDecommission(input: MigrationInput): Promise<MigrationResult> {
  const m = new Migration();
  registerOperatorMessages(m); // before the first await, so no early signal is lost
  await m.begin(input, loadTarget);
  return m.run(async () => {
    await phase0DataMigration(m);
    await phase1MetricsCollector(m);
    await phase2DjangoReadsGcs(m);
    // The shape comes from loadTarget's result, so a replay takes the same branch.
    const shape = shapeOf(m.target);
    if (shape === 'shared-database') await phase3DropMlflowTables(m);
    else if (shape === 'self-hosted') await phase3RemoveSelfHostedMlflow(m);
    else await phase3RemoveInfrastructure(m);
    await phase4Documentation(m);
    if (shape === 'cloud') await phase5CostVerificationAndClosure(m);
    else await phase5VerifyAndClose(m);
  });
}

/** Nothing is deleted before this phase's gate: once MLflow's database is gone, so is any history not copied. */
async function phase0DataMigration(m: Migration): Promise<void> {
  m.enterPhase(0);
  await m.step('0.0');
  await m.step('0.1');
  await m.step('0.2');
  await m.step('0.3', (ctx) => backfillInBatches(m, ctx));
  await m.step('0.4');
  await m.step('0.5');
  await m.step('0.6');
  await m.step('0.7');
  await m.gate('phase-0');
}

async function phase1MetricsCollector(m: Migration): Promise<void> {
  m.enterPhase(1);
  await m.step('1.1');
  await m.gate('phase-1');
}

async function phase2DjangoReadsGcs(m: Migration): Promise<void> {
  m.enterPhase(2);
  await m.step('2.1');
  await m.gate('phase-2');
}

async function phase3RemoveInfrastructure(m: Migration): Promise<void> {
  m.enterPhase(3);
  await m.step('3.1');
  await m.step('3.2');
  await m.step('3.3');
  await m.step('3.4');
  await m.step('3.5');
  await m.step('3.6');
  m.keepFacts('deletedAt', new Date().toISOString());
  await m.gate('phase-3');
}

/** Seed 000: MLflow's tables share the app's database; only they go, in one transaction. */
async function phase3DropMlflowTables(m: Migration): Promise<void> {
  m.enterPhase(3);
  await m.step('3.1');
  m.keepFacts('deletedAt', new Date().toISOString());
  await m.gate('phase-3');
}

/** Seed 002: the artifacts are archived first, then MLflow's database, then its role if nothing else needs it. */
async function phase3RemoveSelfHostedMlflow(m: Migration): Promise<void> {
  m.enterPhase(3);
  await m.step('3.1');
  await m.step('3.2');
  await m.step('3.3');
  m.keepFacts('deletedAt', new Date().toISOString());
  await m.gate('phase-3');
}

/** Code and docs are the team's to change; the gate holds until a human confirms they did. */
async function phase4Documentation(m: Migration): Promise<void> {
  m.enterPhase(4);
  await m.gate('phase-4');
}

async function phase5CostVerificationAndClosure(m: Migration): Promise<void> {
  m.enterPhase(5);
  await m.step('5.1');
  await m.wait(m.target.bakePeriod, 'Bake period: let a full billing cycle show before checking the bill (5.2)');
  await m.step('5.2');
  await m.step('5.3');
  // Without a billing export only a human can read the bill (5.2 says where): closure waits for one.
  if (m.status.facts['5.2'] && (m.status.facts['5.2'] as { consoleFilter?: unknown }).consoleFilter && patched('closure-approval-without-billing-export')) {
    m.requireApproval('closure', 'no billing export is configured: a human confirms the bill in the console (step 5.2 shows the filter)');
  }
  await m.gate('closure');
  m.endWayBack('rollback ends at 5.4: it deletes the MLflow secrets for good, and the service and tracking URI an undo would bring back reference them.');
  await m.step('5.4');
  await m.step('5.5');
  await m.step('5.6', (ctx) => writeCompletionRecord(m, ctx));
}

/** No cloud bill to wait for (5.2 says so): verify that exactly MLflow's objects went, then close. */
async function phase5VerifyAndClose(m: Migration): Promise<void> {
  m.enterPhase(5);
  await m.step('5.1');
  await m.step('5.2');
  await m.gate('closure');
  await m.step('5.6', (ctx) => writeCompletionRecord(m, ctx));
}

/** 5.6: the record of a completed migration, with its outcome and end time (13.1). */
function writeCompletionRecord(m: Migration, ctx: StepContext<Target>): Promise<StepResult> {
  const status = ctx.dryRun ? m.status : { ...m.status, outcome: 'completed' as const, endedAt: now() };
  return m.call('writeCompletionRecord', [ctx, status], '5.6 Write the completion record');
}

/** Lanes before 'backfill-lanes-from-config': migrations started then keep them on replay. */
const FIXED_LANES = 4;

/** 0.3: the scope splits into batches so history stays small and batches spread over workers. */
async function backfillInBatches(m: Migration, ctx: StepContext<Target>): Promise<StepResult> {
  const planned = await m.call('planBackfill', [ctx], '0.3 plan the backfill batches');
  const batches = ((planned.facts?.batches ?? []) as BackfillBatch[]).slice();
  if (ctx.dryRun) return planned;
  // The planner names the lanes: data.backfillLanes, else the planning worker's activity slots.
  const planLanes = Number(planned.facts?.lanes);
  const lanes = patched('backfill-lanes-from-config') && Number.isInteger(planLanes) && planLanes > 0 ? planLanes : FIXED_LANES;
  let runs = 0;
  let points = 0;
  let failure: unknown;
  // On a failure the other lanes finish their batch but take no new one, so nothing runs on behind a Blocked step.
  const lane = async () => {
    for (let batch = batches.shift(); batch && failure === undefined; batch = batches.shift()) {
      try {
        const res = await m.call('backfillBatch', [ctx, batch], `0.3 backfill batch ${batch.index + 1} (${batch.runs} runs)`, 'long');
        runs += Number(res.facts?.runs ?? 0);
        points += Number(res.facts?.points ?? 0);
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: lanes }, lane));
  if (failure !== undefined) throw failure;
  // The totals as the app table holds them: a batch resumed after a crash reports only its rest.
  if (patched('backfill-counts-from-table')) {
    const counted = await m.call('countBackfilled', [ctx], '0.3 count the migrated runs in the app table', 'long');
    const c = (counted.facts ?? {}) as { runs?: number; points?: number };
    return { summary: `${c.runs} runs migrated, holding ${c.points} values (this attempt wrote ${runs} runs)`, actions: planned.actions, facts: { runs: c.runs, points: c.points } };
  }
  return { summary: `backfilled ${runs} runs, ${points} points`, actions: planned.actions, facts: { runs, points } };
}
