// What the operator sees: the status the `status` query returns, the search attributes the UI's
// workflow list filters on, the audit trail, and the markdown shown as Current Details.
import { patched, setCurrentDetails, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { Shape } from '../shapes';
import { MIGRATION_PHASE, MIGRATION_STATE, MIGRATION_TARGET } from '../temporal/search-attributes';
import type { GateId } from '../types';
import type { GateStatus, MigrationState, MigrationStatus, StepStatus, WaitingFor } from './messages';
import { PHASE_TITLES, gatesOf, stepsOf } from './steps';

/** Every step and gate pending, from the table in steps.ts (the cloud shape's until begin() knows the target). */
export function initialStatus(workflowId: string): MigrationStatus {
  return {
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
}

/** The status's step list before anything ran: the steps of the target's shape only. */
export function pendingSteps(shape: Shape): StepStatus[] {
  return stepsOf(shape).map((s) => ({ id: s.id, title: s.title, phase: s.phase, state: 'pending', skippable: !!s.skippable, destructive: !!s.destructive, attempts: 0 }));
}

export function pendingGates(shape: Shape): GateStatus[] {
  return gatesOf(shape).map((g) => ({ id: g.id, phase: g.phase, title: g.title, state: 'pending', requiresApproval: false, checks: [] }));
}

export function setState(status: MigrationStatus, state: MigrationState, waitingFor?: WaitingFor): void {
  if (status.state !== state || status.waitingFor?.next !== waitingFor?.next) status.notice = undefined;
  status.state = state;
  status.waitingFor = waitingFor;
  refresh(status);
}

/** Publishes the status to the workflow list (search attributes) and the workflow's page (current details). */
export function refresh(status: MigrationStatus): void {
  const attributes = [
    { key: MIGRATION_TARGET, value: status.target },
    { key: MIGRATION_PHASE, value: status.phase === null ? (status.state === 'rolling-back' ? 'rollback' : '-') : String(status.phase) },
    { key: MIGRATION_STATE, value: status.state },
  ];
  // 11.4: an unchanged upsert is an event in history for nothing (69 of 284 in the approval path).
  const current = workflowInfo().typedSearchAttributes;
  const changed = attributes.some((a) => current.get(a.key) !== a.value);
  if (changed || !patched('upsert-only-on-change')) upsertSearchAttributes(attributes);
  setCurrentDetails(renderDetails(status));
}

/** An ignored or unknown request: in the audit trail, and in Current Details until the state changes (13.3). */
export function notice(status: MigrationStatus, message: string): void {
  event(status, message);
  status.notice = message;
  setCurrentDetails(renderDetails(status)); // text only: no search attribute changes
}

/** The audit trail: approvals, decisions, ignored requests. */
export function event(status: MigrationStatus, message: string): void {
  status.events.push({ at: now(), message });
}

/** What to tell an operator whose request does not fit: what the migration waits for now. */
export function nextHint(status: MigrationStatus): string {
  return status.waitingFor ? `Now: ${status.waitingFor.next}` : `The migration is ${status.state}.`;
}

export function now(): string {
  return new Date().toISOString();
}

export function stepStatus(status: MigrationStatus, id: string): StepStatus {
  const step = status.steps.find((s) => s.id === id);
  if (!step) throw new Error(`unknown step ${id}`);
  return step;
}

export function gateStatus(status: MigrationStatus, id: GateId): GateStatus {
  const gate = status.gates.find((g) => g.id === id);
  if (!gate) throw new Error(`unknown gate ${id}`);
  return gate;
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
  cancelled: '⊘ cancelled',
};

/** The markdown the UI shows as "current details": where it stands and what to do next. */
export function renderDetails(s: MigrationStatus): string {
  const lines: string[] = [];
  const phase = s.phase === null ? '' : ` · Phase ${s.phase}: ${PHASE_TITLES[s.phase]}`;
  lines.push(`**${s.dryRun ? 'Dry run' : 'Migration'} of ${s.target || '…'}** · **${s.state}**${phase}`);
  if (s.notice) lines.push('', `**Notice:** ${s.notice}`);
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
      // Top-level items: the UI's Markdown runs nested ones together into the gate's line.
      for (const c of g.checks) lines.push(`- ${c.ok ? '✓' : '✗'} check ${c.name}: ${c.detail}`);
    }
  }
  return lines.join('\n');
}
