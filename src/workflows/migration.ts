// One migration run: the state every mechanism shares, and the vocabulary the phases in
// mlflow-decommission.ts are written in. Each mechanism is its own module: step-runner.ts
// (running a step, Blocked and decisions), gates.ts (checks and approvals), rollback.ts (the
// compensation stack), operator-messages.ts (signals, updates, the query) and status.ts (what the
// UI shows). This file holds the run's beginning and end: input, target, outcome.
import { ApplicationFailure, CancellationScope, CancelledFailure, isCancellation, patched, sleep, workflowInfo } from '@temporalio/workflow';
import { describeIssues, durationMs, effectiveApprovals, migrationInputSchema, workflowIdFor, type MigrationInput, type Target } from '../config/schema';
import { shapeOf } from '../shapes';
import type { GateId, PhaseId, StepContext, StepResult } from '../types';
import { execute } from './activity-options';
import { passGate, requireApproval } from './gates';
import type { MigrationResult, MigrationStatus } from './messages';
import { rollback, type Stop } from './rollback';
import { finish } from './outcome';
import { event, initialStatus, pendingGates, pendingSteps, setState } from './status';
import { runStep, type Decision } from './step-runner';
import { PHASE_TITLES, type ActivityName, type Activities } from './steps';

export class Migration {
  /** What the `status` query returns and the UI renders. */
  readonly status: MigrationStatus = initialStatus(workflowInfo().workflowId);
  /** What every activity receives; begin() fills it before any step runs. */
  ctx!: StepContext<Target>;
  /** The operator's answer to what is Blocked, by step (or gate) id. */
  readonly decisions = new Map<string, Decision>();
  /** Set by rollback, abort or a rejected gate. */
  stop?: Stop;
  /** `abort` during a rollback: stop before the next compensation. */
  abortRollback = false;
  /** Set once 5.4 may begin (patched path only): why `rollback` is refused from then on. */
  wayBackEnded?: string;
  /** The phases run in it; a stop cancels it. */
  readonly scope = new CancellationScope();

  /** Validates the input, loads the target from the worker's config file, and fills the context. */
  async begin(raw: MigrationInput, loadTarget: (name: string) => Promise<Target>): Promise<void> {
    const parsed = migrationInputSchema.safeParse(raw ?? {});
    if (!parsed.success) {
      throw ApplicationFailure.nonRetryable(`invalid workflow input: ${describeIssues(parsed.error)}. Example: {"target": "demo", "dryRun": true}`, 'InvalidInput');
    }
    const input = parsed.data;
    const expectedId = workflowIdFor(input.target);
    if (!input.dryRun && this.status.workflowId !== expectedId) {
      throw ApplicationFailure.nonRetryable(
        `one migration per target: start target "${input.target}" with workflow ID "${expectedId}" (or set "dryRun": true to plan under any ID)`,
        'InvalidInput',
      );
    }
    Object.assign(this.status, { target: input.target, dryRun: input.dryRun, startedAt: workflowInfo().startTime.toISOString() });
    const loaded = await loadTarget(input.target);
    const target: Target = { ...loaded, bakePeriod: input.bakePeriod ?? loaded.bakePeriod, approvals: effectiveApprovals(loaded, input) };
    // The status lists the steps and gates of the target's shape only (the same lists for the cloud shape).
    Object.assign(this.status, { steps: pendingSteps(shapeOf(target)), gates: pendingGates(shapeOf(target)) });
    for (const g of this.status.gates) g.requiresApproval = !!target.approvals[g.id];
    // One folder per migration run: one started again after a rollback must not find the last one's
    // export, snapshots or records. 11.2: a reset to the first workflow task takes a new time but
    // keeps the first run's ID, so the snapshots of the run before the reset are still found.
    const perRun = patched('migration-folder-per-run');
    const migrationId = patched('migration-folder-from-first-run')
      ? `${this.status.workflowId}/${workflowInfo().firstExecutionRunId}`
      : perRun
        ? `${this.status.workflowId}/${new Date().toISOString().replace(/[:.]/g, '-')}`
        : this.status.workflowId;
    this.status.migrationId = migrationId;
    this.ctx = { migrationId, targetName: input.target, target, dryRun: input.dryRun, gatesPassed: [], force: input.force, facts: {} };
    event(this.status, `started${input.dryRun ? ' (dry run: read-only planning)' : ''} for target ${input.target}`);
  }

  get target(): Target {
    return this.ctx.target;
  }

  /** Runs the phases; rollback, reject, abort and cancellation all end here (outcome.ts). */
  async run(phases: () => Promise<void>): Promise<MigrationResult> {
    try {
      await this.scope.run(phases);
      return await finish(this, this.ctx.dryRun ? 'planned' : 'completed');
    } catch (err) {
      if (this.stop?.kind === 'abort') return finish(this, 'aborted', err);
      if (!this.stop && !isCancellation(err)) throw err;
      // Cancelled from the UI, rollback signalled, or a gate rejected: undo, whatever else arrives.
      // Past 5.4 there is no way back (a cancel then only stops).
      if (!this.wayBackEnded) await CancellationScope.nonCancellable(() => rollback(this));
      if (this.abortRollback) return finish(this, 'aborted', err);
      if (!this.stop) return finish(this, 'cancelled', err); // ends as Cancelled in the UI, after the undo
      return finish(this, this.stop.kind === 'reject' ? 'rejected' : 'rolled-back', err);
    }
  }

  /**
   * 11.3: once a stop arrived, nothing new begins (phase, step, gate, timer): a step a stop
   * reached first stays `pending`, with no compensation recorded for it.
   */
  beginUnlessStopped(what: string): void {
    if (this.scope.consideredCancelled && patched('nothing-begins-after-a-stop')) {
      throw new CancelledFailure(`${this.stop ? `${this.stop.kind} by ${this.stop.by}` : 'cancelled'} before ${what} began`);
    }
  }

  /** Issue 10: from here on an undo would bring back what references deleted secrets; `rollback` is refused with `why`. */
  endWayBack(why: string): void {
    if (patched('rollback-ends-at-5.4')) {
      this.wayBackEnded = why;
      event(this.status, why);
    }
  }

  enterPhase(phase: PhaseId): void {
    this.beginUnlessStopped(`Phase ${phase}`);
    this.status.phase = phase;
    event(this.status, `Phase ${phase}: ${PHASE_TITLES[phase]}`);
    setState(this.status, 'running');
  }

  /** Step `id` as its activity, or as `body` for steps made of several activities (step-runner.ts). */
  step(id: string, body?: (ctx: StepContext<Target>) => Promise<StepResult>): Promise<StepResult | undefined> {
    return runStep(this, id, body);
  }

  /** Runs an activity that is part of a step's body (e.g. one backfill batch). */
  call<K extends ActivityName>(activity: K, args: Parameters<Activities[K]>, summary: string, kind: 'short' | 'long' = 'short'): Promise<Awaited<ReturnType<Activities[K]>>> {
    return execute(kind, activity, args, summary);
  }

  /** Checkpoint gate: automated checks first, then, where configured, a human's approval (gates.ts). */
  gate(id: GateId): Promise<void> {
    return passGate(this, id);
  }

  /** A gate that must wait for a human this time, whatever the approval settings say. */
  requireApproval(id: GateId, why: string): void {
    requireApproval(this, id, why);
  }

  /** A durable timer the UI names (e.g. the bake period before the billing check). */
  async wait(duration: string, why: string): Promise<void> {
    this.beginUnlessStopped('the timer');
    if (this.ctx.dryRun) {
      this.status.plan[`wait ${why}`] = [{ call: 'timer', resource: duration, description: `wait ${duration}: ${why}` }];
      return;
    }
    const waitMs = durationMs(duration);
    const until = new Date(Date.now() + waitMs).toISOString();
    setState(this.status, 'waiting-timer', { kind: 'timer', until, next: `Nothing to do: ${why} (until ${until}). Rollback stays possible.` });
    await sleep(waitMs, { summary: `${why} (${duration})` });
    setState(this.status, 'running');
  }

  /** Facts other steps read (e.g. when the deletions happened, for the billing query). */
  keepFacts(key: string, facts: unknown): void {
    this.ctx.facts[key] = facts;
    this.status.facts[key] = facts;
  }
}
