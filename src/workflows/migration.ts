// The mechanics behind the phase code: running a step (and blocking it on failure), gates and
// approvals, the compensation stack and rollback, and what the UI shows. The phases in
// mlflow-decommission.ts only say what happens in which order.
import {
  ActivityCancellationType,
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  scheduleActivity,
  setCurrentDetails,
  setHandler,
  sleep,
  upsertSearchAttributes,
  patched,
  workflowInfo,
  type ActivityOptions,
  type SignalDefinition,
} from '@temporalio/workflow';
import type { UpdateDefinition } from '@temporalio/common';
import { msToNumber } from '@temporalio/common/lib/time';
import { describeIssues, effectiveApprovals, migrationInputSchema, workflowIdFor, type MigrationInput, type ResolvedInput, type Target } from '../config';
import { MIGRATION_PHASE, MIGRATION_STATE, MIGRATION_TARGET } from '../search-attributes';
import { GATE_IDS, type GateId, type PhaseId, type StepContext, type StepResult } from '../types';
import * as msg from './messages';
import type { CompensationStatus, GateStatus, MigrationResult, MigrationState, MigrationStatus, StepStatus, WaitingFor } from './messages';
import { shapeOf } from '../shapes';
import { PHASE_TITLES, gateSpec, pendingGates, pendingSteps, stepSpec, type ActivityName, type StepSpec } from './steps';

const RETRY = { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 5 } as const;

// A worker that dies mid-activity is noticed within the heartbeat timeout, and the activity runs
// again elsewhere; every activity that can take longer than that heartbeats (polls, batches).
const HEARTBEAT = '30 seconds';

const OPTIONS: Record<'short' | 'long' | 'undo', ActivityOptions> = {
  // Rollback must not start while a step may still be acting: wait for cancellation to land.
  short: { startToCloseTimeout: '15 minutes', heartbeatTimeout: HEARTBEAT, retry: RETRY, cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED },
  long: { startToCloseTimeout: '6 hours', heartbeatTimeout: HEARTBEAT, retry: RETRY, cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED },
  undo: { startToCloseTimeout: '2 hours', heartbeatTimeout: HEARTBEAT, retry: { ...RETRY, maximumAttempts: 10 } },
};

type StopKind = 'rollback' | 'abort' | 'reject';

export class Migration {
  readonly status: MigrationStatus;
  private ctx!: StepContext<Target>;
  private input!: ResolvedInput;
  private readonly decisions = new Map<string, 'retry' | 'skip'>();
  private stop?: { kind: StopKind; by: string; reason: string };
  private abortRollback = false;
  private readonly scope = new CancellationScope();

  /** Registers every handler before the first await, so no early signal is lost. */
  constructor() {
    const { workflowId } = workflowInfo();
    this.status = {
      target: '',
      workflowId,
      dryRun: false,
      phase: null,
      state: 'starting',
      steps: pendingSteps('cloud'),
      gates: pendingGates('cloud'),
      compensations: [],
      plan: {},
      facts: {},
      events: [],
    };
    setHandler(msg.statusQuery, () => this.status, { description: msg.DESCRIPTIONS.status });
    this.handle(msg.approveSignal, msg.approveUpdate, (r) => this.checkApprove(r), (r) => this.applyApprove(r));
    this.handle(msg.rejectSignal, msg.rejectUpdate, (r) => this.checkReject(r), (r) => this.applyReject(r));
    this.handle(msg.retrySignal, msg.retryUpdate, (r) => this.checkDecision(r, 'retry'), (r) => this.applyDecision(r, 'retry'));
    this.handle(msg.skipSignal, msg.skipUpdate, (r) => this.checkDecision(r, 'skip'), (r) => this.applyDecision(r, 'skip'));
    this.handle(msg.rollbackSignal, msg.rollbackUpdate, (r) => this.checkStop(r, 'rollback'), (r) => this.applyStop(r, 'rollback'));
    this.handle(msg.abortSignal, msg.abortUpdate, (r) => this.checkStop(r, 'abort'), (r) => this.applyStop(r, 'abort'));
  }

  /** Validates the input, loads the target from the worker's config file, and fills the context. */
  async begin(raw: MigrationInput, loadTarget: (name: string) => Promise<Target>): Promise<void> {
    const parsed = migrationInputSchema.safeParse(raw ?? {});
    if (!parsed.success) {
      throw ApplicationFailure.nonRetryable(`invalid workflow input: ${describeIssues(parsed.error)}. Example: {"target": "demo", "dryRun": true}`, 'InvalidInput');
    }
    this.input = parsed.data;
    const expectedId = workflowIdFor(this.input.target);
    if (!this.input.dryRun && this.status.workflowId !== expectedId) {
      throw ApplicationFailure.nonRetryable(
        `one migration per target: start target "${this.input.target}" with workflow ID "${expectedId}" (or set "dryRun": true to plan under any ID)`,
        'InvalidInput',
      );
    }
    this.status.target = this.input.target;
    this.status.dryRun = this.input.dryRun;
    const loaded = await loadTarget(this.input.target);
    const target: Target = { ...loaded, bakePeriod: this.input.bakePeriod ?? loaded.bakePeriod, approvals: effectiveApprovals(loaded, this.input) };
    // The status lists the steps and gates of the target's shape only (the same lists for the cloud shape).
    Object.assign(this.status, { steps: pendingSteps(shapeOf(target)), gates: pendingGates(shapeOf(target)) });
    for (const g of this.status.gates) g.requiresApproval = !!target.approvals[g.id];
    // One folder per migration run: one started again after a rollback must not find the last one's
    // export, snapshots or records. Workflow time is replayed from history, so a reset keeps it.
    const migrationId = patched('migration-folder-per-run') ? `${this.status.workflowId}/${new Date().toISOString().replace(/[:.]/g, '-')}` : this.status.workflowId;
    this.status.migrationId = migrationId;
    this.ctx = { migrationId, targetName: this.input.target, target, dryRun: this.input.dryRun, gatesPassed: [], force: this.input.force, facts: {} };
    this.event(`started${this.input.dryRun ? ' (dry run: read-only planning)' : ''} for target ${this.input.target}`);
  }

  get target(): Target {
    return this.ctx.target;
  }

  /** Runs the phases; rollback, reject, abort and cancellation all end here. */
  async run(phases: () => Promise<void>): Promise<MigrationResult> {
    try {
      await this.scope.run(phases);
      this.setState(this.ctx.dryRun ? 'planned' : 'completed');
      return { outcome: this.ctx.dryRun ? 'planned' : 'completed', status: this.status };
    } catch (err) {
      if (this.stop?.kind === 'abort') {
        this.setState('aborted');
        return { outcome: 'aborted', status: this.status };
      }
      if (!this.stop && !isCancellation(err)) throw err;
      // Cancelled from the UI, rollback signalled, or a gate rejected: undo, whatever else arrives.
      await CancellationScope.nonCancellable(() => this.rollback());
      if (this.abortRollback) {
        this.setState('aborted');
        return { outcome: 'aborted', status: this.status };
      }
      if (!this.stop) throw err; // ends as Cancelled in the UI, after the undo
      this.setState(this.stop.kind === 'reject' ? 'rejected' : 'rolled-back');
      return { outcome: this.stop.kind === 'reject' ? 'rejected' : 'rolled-back', status: this.status };
    }
  }

  enterPhase(phase: PhaseId): void {
    this.status.phase = phase;
    this.event(`Phase ${phase}: ${PHASE_TITLES[phase]}`);
    this.setState('running');
  }

  /**
   * Runs step `id` as its activity (or `body`, for steps made of several activities). The
   * compensation is recorded before the step acts. A failure blocks the step until the
   * operator sends retry, skip (when allowed), rollback or abort.
   */
  async step(id: string, body?: (ctx: StepContext<Target>) => Promise<StepResult>): Promise<StepResult | undefined> {
    const spec = stepSpec(id, shapeOf(this.target));
    const s = this.stepStatus(id);
    const exec = body ?? ((ctx: StepContext<Target>) => this.call<StepResult>(spec.activity, [ctx], `${id} ${spec.title}`, spec.long ? 'long' : 'short'));
    if (this.ctx.dryRun) {
      const res = await exec(this.ctx);
      this.status.plan[id] = res.actions;
      Object.assign(s, { state: 'planned', summary: res.summary });
      this.refresh();
      return res;
    }
    if (spec.undo) this.recordCompensation(spec);
    for (;;) {
      Object.assign(s, { state: 'running', attempts: s.attempts + 1, startedAt: now(), endedAt: undefined, error: undefined });
      this.setState('running');
      try {
        const res = await exec(this.ctx);
        Object.assign(s, { state: 'done', endedAt: now(), summary: res.summary });
        if (res.facts) this.keepFacts(id, res.facts);
        if (spec.voids) this.voidCompensation(spec.voids, `${id} made it permanent`);
        this.refresh();
        return res;
      } catch (err) {
        if (isCancellation(err)) throw err;
        Object.assign(s, { state: 'blocked', endedAt: now(), error: describeFailure(err) });
        this.event(`step ${id} Blocked: ${s.error}`);
        const decision = await this.decide(id, `Step ${id} (${spec.title}) is Blocked: ${s.error}`, !!spec.skippable);
        if (decision === 'skip') {
          s.state = 'skipped';
          this.refresh();
          return undefined;
        }
      }
    }
  }

  /** Runs an activity that is part of a step's body (e.g. one backfill batch). */
  call<T>(activity: ActivityName, args: unknown[], summary: string, kind: 'short' | 'long' = 'short'): Promise<T> {
    return scheduleActivity<T>(activity, args, { ...OPTIONS[kind], summary });
  }

  /** Checkpoint gate: automated checks first, then, where configured, a human's approval. */
  /** A gate that must wait for a human this time, whatever the approval settings say. */
  requireApproval(id: GateId, why: string): void {
    const g = this.gateStatus(id);
    if (g.requiresApproval) return;
    g.requiresApproval = true;
    this.event(`gate ${id} needs approval: ${why}`);
  }

  async gate(id: GateId): Promise<void> {
    const spec = gateSpec(id, shapeOf(this.target));
    const g = this.gateStatus(id);
    if (this.ctx.dryRun) {
      g.state = 'planned';
      this.status.plan[`gate ${id}`] = [
        ...spec.checks.map((c) => ({ call: `check.${c}`, resource: id, description: `check: ${c}` })),
        ...(g.requiresApproval ? [{ call: 'approval', resource: id, description: `wait for approve {"gate": "${id}"}` }] : []),
      ];
      this.refresh();
      return;
    }
    for (;;) {
      Object.assign(g, { state: 'checking', checks: [] });
      this.setState('running');
      for (const check of spec.checks) {
        try {
          const res = await this.call<{ checks: GateStatus['checks'] }>(check, [this.ctx], `gate ${id}: ${check}`);
          g.checks.push(...res.checks);
        } catch (err) {
          if (isCancellation(err)) throw err;
          g.checks.push({ name: check, ok: false, detail: describeFailure(err) });
        }
      }
      const failed = g.checks.filter((c) => !c.ok);
      if (failed.length === 0) break;
      g.state = 'failed';
      const reasons = failed.map((c) => `${c.name}: ${c.detail}`).join('; ');
      this.event(`gate ${id} checks failed: ${reasons}`);
      await this.decide(id, `Gate ${id} checks failed: ${reasons}`, false);
    }
    if (g.requiresApproval) {
      g.state = 'waiting';
      this.setState('waiting-approval', {
        kind: 'approval',
        gate: id,
        next: `Review: ${spec.review} Then send \`approve\` with \`{"gate": "${id}", "by": "YOUR_NAME"}\` — or \`reject\` / \`rollback\`.`,
      });
      await condition(() => g.approval !== undefined);
    }
    g.state = 'passed';
    this.ctx.gatesPassed.push(id);
    this.event(`gate ${id} passed${g.approval ? ` (approved by ${g.approval.by})` : ''}`);
    this.setState('running');
  }

  /** A durable timer the UI names (e.g. the bake period before the billing check). */
  async wait(duration: string, why: string): Promise<void> {
    if (this.ctx.dryRun) {
      this.status.plan[`wait ${why}`] = [{ call: 'timer', resource: duration, description: `wait ${duration}: ${why}` }];
      return;
    }
    const until = new Date(Date.now() + msToNumber(duration as never)).toISOString();
    this.setState('waiting-timer', { kind: 'timer', until, next: `Nothing to do: ${why} (until ${until}). Rollback stays possible.` });
    await sleep(duration as never, { summary: `${why} (${duration})` });
    this.setState('running');
  }

  /** Facts other steps read (e.g. when the deletions happened, for the billing query). */
  keepFacts(key: string, facts: Record<string, unknown> | unknown): void {
    this.ctx.facts[key] = facts;
    this.status.facts[key] = facts;
  }

  // --- rollback -----------------------------------------------------------------------------

  private recordCompensation(spec: StepSpec): void {
    if (this.status.compensations.some((c) => c.step === spec.id)) return;
    this.status.compensations.push({ step: spec.id, title: `undo ${spec.id}: ${spec.title}`, activity: spec.undo!, state: 'recorded', recordedAt: now() });
  }

  private voidCompensation(stepId: string, why: string): void {
    const c = this.status.compensations.find((x) => x.step === stepId);
    if (c && c.state === 'recorded') Object.assign(c, { state: 'void', summary: why });
  }

  /** Newest first, each until it succeeds or the operator skips it; never cancelled. */
  private async rollback(): Promise<void> {
    this.status.phase = null;
    this.event(this.stop ? `${this.stop.kind} by ${this.stop.by}: ${this.stop.reason}` : 'cancelled: rolling back');
    this.setState('rolling-back');
    for (const c of [...this.status.compensations].reverse()) {
      if (c.state !== 'recorded' && c.state !== 'blocked') continue;
      for (;;) {
        if (this.abortRollback) return;
        Object.assign(c, { state: 'running', error: undefined });
        this.setState('rolling-back');
        try {
          const res = await scheduleActivity<StepResult>(c.activity, [this.ctx], { ...OPTIONS.undo, summary: c.title });
          Object.assign(c, { state: 'done', summary: res.summary });
          break;
        } catch (err) {
          Object.assign(c, { state: 'blocked', error: describeFailure(err) });
          this.event(`${c.title} Blocked: ${c.error}`);
          const decision = await this.decide(c.step, `Rollback is Blocked at ${c.title}: ${c.error}`, true);
          if (decision === 'skip') {
            c.state = 'skipped';
            break;
          }
        }
      }
    }
    this.refresh();
  }

  // --- operator requests ----------------------------------------------------------------------

  private async decide(id: string, why: string, skippable: boolean): Promise<'retry' | 'skip'> {
    const rollingBack = this.status.state === 'rolling-back';
    const verbs = [`\`retry\` with \`{"step": "${id}"}\``, ...(skippable ? [`\`skip\` with \`{"step": "${id}"}\``] : []), ...(rollingBack ? ['`abort`'] : ['`rollback`', '`abort`'])];
    this.setState(rollingBack ? 'rolling-back' : 'blocked', { kind: 'decision', step: id, next: `${why}. Fix the cause, then send ${verbs.join(' or ')}.` });
    await condition(() => this.decisions.has(id) || this.abortRollback);
    const d = this.decisions.get(id) ?? 'skip';
    this.decisions.delete(id);
    return d;
  }

  private handle<R>(
    signal: SignalDefinition<[R]>,
    update: UpdateDefinition<string, [R]>,
    check: (r: R) => string | undefined,
    apply: (r: R) => string,
  ): void {
    const description = msg.DESCRIPTIONS[signal.name as keyof typeof msg.DESCRIPTIONS];
    setHandler(
      signal,
      (r: R) => {
        const problem = check(r);
        if (problem) this.event(`ignored ${signal.name}: ${problem}`);
        else apply(r);
      },
      { description },
    );
    setHandler(update, (r: R) => apply(r), {
      description,
      validator: (r: R) => {
        const problem = check(r);
        if (problem) throw new Error(problem);
      },
    });
  }

  private checkApprove(r: msg.ApproveRequest): string | undefined {
    const g = this.findGate(r?.gate);
    if (typeof g === 'string') return g;
    if (!r.by) return 'say who approves: {"gate": "…", "by": "YOUR_NAME"}';
    if (g.approval) return `gate ${g.id} was already approved by ${g.approval.by}`;
    if (g.state !== 'waiting') return `gate ${g.id} is not waiting for approval (it is ${g.state}). ${this.nextHint()}`;
    return undefined;
  }

  private applyApprove(r: msg.ApproveRequest): string {
    const g = this.gateStatus(r.gate);
    g.approval = { by: r.by, comment: r.comment, at: now() };
    this.event(`gate ${g.id} approved by ${r.by}${r.comment ? `: ${r.comment}` : ''}`);
    return `approved gate ${g.id}`;
  }

  private checkReject(r: msg.RejectRequest): string | undefined {
    const g = this.findGate(r?.gate);
    if (typeof g === 'string') return g;
    if (!r.by || !r.reason) return 'say who rejects and why: {"gate": "…", "by": "YOUR_NAME", "reason": "…"}';
    if (g.state !== 'waiting') return `gate ${g.id} is not waiting for approval (it is ${g.state}). ${this.nextHint()}`;
    return undefined;
  }

  private applyReject(r: msg.RejectRequest): string {
    const g = this.gateStatus(r.gate);
    Object.assign(g, { state: 'rejected', rejection: { by: r.by, reason: r.reason, at: now() } });
    this.stopWith('reject', r.by, `gate ${g.id} rejected: ${r.reason}`);
    return `rejected gate ${g.id}: rolling back`;
  }

  private checkDecision(r: msg.StepRequest, verb: 'retry' | 'skip'): string | undefined {
    const id = r?.step;
    if (typeof id !== 'string') return `${verb} needs {"step": "<step id, e.g. 3.1>"}`;
    const comp = this.status.compensations.find((c) => c.step === id && c.state === 'blocked');
    if (this.status.state === 'rolling-back') {
      return comp ? undefined : `nothing is Blocked at ${id} during the rollback. ${this.nextHint()}`;
    }
    const step = this.status.steps.find((s) => s.id === id);
    const gate = this.status.gates.find((g) => g.id === id);
    if (!step && !gate) return `unknown step "${id}"; steps are ${this.status.steps.map((s) => s.id).join(', ')}`;
    if (step && step.state !== 'blocked') return `step ${id} is not Blocked (it is ${step.state}). ${this.nextHint()}`;
    if (gate && gate.state !== 'failed') return `gate ${id} has no failed checks (it is ${gate.state}). ${this.nextHint()}`;
    if (verb === 'skip' && (gate || !step!.skippable)) return `step ${id} must not be skipped: fix its cause and retry, or rollback`;
    return undefined;
  }

  private applyDecision(r: msg.StepRequest, verb: 'retry' | 'skip'): string {
    this.decisions.set(r.step, verb);
    this.event(`${verb} ${r.step}${r.by ? ` by ${r.by}` : ''}`);
    return `${verb} ${r.step}`;
  }

  private checkStop(r: msg.StopRequest, kind: 'rollback' | 'abort'): string | undefined {
    if (!r?.by || !r.reason) return `say who and why: {"by": "YOUR_NAME", "reason": "…"}`;
    if (['completed', 'planned', 'rolled-back', 'rejected', 'aborted'].includes(this.status.state)) return `the migration has ended (${this.status.state})`;
    if (this.status.state === 'rolling-back') return kind === 'abort' ? undefined : 'already rolling back';
    if (this.stop) return `already stopping (${this.stop.kind})`;
    return undefined;
  }

  private applyStop(r: msg.StopRequest, kind: 'rollback' | 'abort'): string {
    if (this.status.state === 'rolling-back') {
      this.abortRollback = true;
      this.event(`abort by ${r.by} during rollback: ${r.reason}`);
      return 'rollback will stop before the next compensation';
    }
    this.stopWith(kind, r.by, r.reason);
    return kind === 'abort' ? 'aborting' : 'rolling back';
  }

  private stopWith(kind: StopKind, by: string, reason: string): void {
    this.stop = { kind, by, reason };
    this.scope.cancel();
  }

  // --- status and UI --------------------------------------------------------------------------

  private setState(state: MigrationState, waitingFor?: WaitingFor): void {
    this.status.state = state;
    this.status.waitingFor = waitingFor;
    this.refresh();
  }

  private refresh(): void {
    upsertSearchAttributes([
      { key: MIGRATION_TARGET, value: this.status.target },
      { key: MIGRATION_PHASE, value: this.status.phase === null ? (this.status.state === 'rolling-back' ? 'rollback' : '-') : String(this.status.phase) },
      { key: MIGRATION_STATE, value: this.status.state },
    ]);
    setCurrentDetails(renderDetails(this.status));
  }

  private event(message: string): void {
    this.status.events.push({ at: now(), message });
  }

  private nextHint(): string {
    return this.status.waitingFor ? `Now: ${this.status.waitingFor.next}` : `The migration is ${this.status.state}.`;
  }

  private findGate(id: unknown): GateStatus | string {
    const g = this.status.gates.find((x) => x.id === id);
    return g ?? `unknown gate "${String(id)}"; gates are ${GATE_IDS.join(', ')}`;
  }

  private stepStatus(id: string): StepStatus {
    return this.status.steps.find((s) => s.id === id)!;
  }

  private gateStatus(id: GateId): GateStatus {
    return this.status.gates.find((g) => g.id === id)!;
  }
}

function now(): string {
  return new Date().toISOString();
}

/** The root cause's message: an ActivityFailure wraps the activity's own error. */
export function describeFailure(err: unknown): string {
  let e = err as { message?: string; cause?: unknown } | undefined;
  while (e?.cause) e = e.cause as typeof e;
  return e?.message ?? String(err);
}

// Plain symbols that every UI font has (emoji are missing from many server-side renderers).
const ICON: Record<string, string> = {
  pending: '○',
  running: '▶',
  done: '✓',
  blocked: '✗ BLOCKED',
  skipped: '↷ skipped',
  planned: '·',
  recorded: '○',
  void: '–',
  checking: '▶',
  failed: '✗ FAILED',
  waiting: '‖ WAITING',
  passed: '✓',
  rejected: '✗ rejected',
};

/** The markdown the UI shows as "current details": where it stands and what to do next. */
export function renderDetails(s: MigrationStatus): string {
  const lines: string[] = [];
  const phase = s.phase === null ? '' : ` · Phase ${s.phase}: ${PHASE_TITLES[s.phase]}`;
  lines.push(`**${s.dryRun ? 'Dry run' : 'Migration'} of ${s.target || '…'}** · **${s.state}**${phase}`);
  if (s.waitingFor) lines.push('', `**Next:** ${s.waitingFor.next}`);
  if (s.state === 'rolling-back' || s.compensations.some((c) => c.state !== 'recorded')) {
    lines.push('', '**Rollback**', '');
    for (const c of [...s.compensations].reverse()) lines.push(`- ${ICON[c.state] ?? c.state} ${c.title}${c.error ? ` — ${c.error}` : c.summary ? ` — ${c.summary}` : ''}`);
  }
  if (s.phase !== null) {
    lines.push('', `**Phase ${s.phase} steps**`, '');
    for (const st of s.steps.filter((x) => x.phase === s.phase)) {
      lines.push(`- ${ICON[st.state] ?? st.state} ${st.id} ${st.title}${st.error ? ` — ${st.error}` : st.summary ? ` — ${st.summary}` : ''}`);
    }
    for (const g of s.gates.filter((x) => x.phase === s.phase && x.state !== 'pending')) {
      lines.push(`- ${ICON[g.state] ?? g.state} gate ${g.id}: ${g.title}`);
      for (const c of g.checks) lines.push(`    - ${c.ok ? '✓' : '✗'} ${c.name}: ${c.detail}`);
    }
  }
  return lines.join('\n');
}
