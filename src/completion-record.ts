// 5.6 Completion record, read as an audit: what was migrated and proven, what was deleted and
// what was restored (each compensation's result), who asked for what and when, the problems met,
// and the true start and end. Built from the `status` the workflow keeps; Markdown and JSON hold
// the same facts (record-markdown.ts renders the JSON).
import type { Target } from './config/schema';
import type { CompensationStatus, MigrationStatus } from './workflows/messages';
import { recordMarkdown } from './record-markdown';

export const ENDED_STATES = ['completed', 'planned', 'rolled-back', 'rejected', 'aborted'] as const;

export interface OperatorRequest {
  at: string;
  request: 'approve' | 'reject' | 'retry' | 'skip' | 'rollback' | 'abort' | 'cancel';
  /** The gate or step it named, if any. */
  subject?: string;
  /** Who asked; undefined when the request carried no name (e.g. a cancel from the UI). */
  by?: string;
  /** The comment or reason given. */
  reason?: string;
}

export interface CompensationRecord {
  step: string;
  title: string;
  state: CompensationStatus['state'];
  /** In words: restored, left undone, Blocked, not needed. */
  result: string;
  recordedAt: string;
  /** Who asked for the rollback that ran it (or skipped it). */
  askedBy?: string;
}

export interface CompletionRecord {
  target: string;
  workflowId: string;
  migrationId?: string;
  /** The workflow's result outcome, or "in progress" while it runs. */
  outcome: string;
  /** The migration's state when the record was made. */
  state: string;
  startedAt?: string;
  /** When the migration ended (after a rollback: when the rollback finished); absent while it runs. */
  finishedAt?: string;
  migrated: { runs?: unknown; points?: unknown; verified?: unknown };
  deleted: Array<{ step: string; title: string; summary?: string; snapshot?: unknown; deletedAt?: string; restored: boolean }>;
  compensations: CompensationRecord[];
  backups: Record<string, unknown>;
  approvals: Array<{ gate: string; by: string; at: string; comment?: string }>;
  requests: OperatorRequest[];
  problems: string[];
  estimatedMonthlySavingsUsd?: number;
}

export interface RecordOptions {
  billing?: Pick<Target, 'billing'>['billing'];
  /** The outcome the workflow returns (the record activity is told it); else read from the status. */
  outcome?: string;
  /** When the migration ended: the workflow's close time, or when the record activity ran at the end. */
  finishedAt?: string;
}

export function isEnded(state: string): boolean {
  return (ENDED_STATES as readonly string[]).includes(state);
}

/** The outcome: told, or ended, or 5.6 running (the record is the last step of a completed migration). */
function outcomeOf(status: MigrationStatus, told?: string): string {
  if (told) return told;
  if (status.outcome) return status.outcome;
  if (isEnded(status.state)) return status.state;
  return status.steps.some((s) => s.id === '5.6' && s.state === 'running') ? 'completed' : 'in progress';
}

// The workflow writes these events (step-runner.ts, rollback.ts); approvals and rejections are read from the gates.
const DECISION = /^(retry|skip) (\S+)(?: by (.+))?$/;
const STOP = /^(rollback|abort) by (.+?)( during rollback)?: (.*)$/s;

export function operatorRequests(status: MigrationStatus): OperatorRequest[] {
  const requests: OperatorRequest[] = [];
  for (const g of status.gates) {
    if (g.approval) requests.push({ at: g.approval.at, request: 'approve', subject: g.id, by: g.approval.by, reason: g.approval.comment });
    if (g.rejection) requests.push({ at: g.rejection.at, request: 'reject', subject: g.id, by: g.rejection.by, reason: g.rejection.reason });
  }
  for (const e of status.events) {
    const d = DECISION.exec(e.message);
    if (d) requests.push({ at: e.at, request: d[1] as 'retry' | 'skip', subject: d[2], by: d[3] });
    const s = STOP.exec(e.message);
    if (s) requests.push({ at: e.at, request: s[1] as 'rollback' | 'abort', by: s[2], reason: s[3] ? `during the rollback: ${s[4]}` : s[4] });
    if (e.message.startsWith('cancelled')) requests.push({ at: e.at, request: 'cancel', reason: 'the workflow was cancelled (UI or API): rolled back' });
  }
  return requests.sort((a, b) => a.at.localeCompare(b.at));
}

function compensationRecord(c: CompensationStatus, requests: OperatorRequest[], outcome: string): CompensationRecord {
  const stop = requests.find((r) => r.request === 'rollback' || r.request === 'reject' || r.request === 'cancel');
  const skippedBy = requests.filter((r) => r.request === 'skip' && r.subject === c.step).at(-1)?.by;
  const result = {
    done: `restored${c.summary ? `: ${c.summary}` : ''}`,
    skipped: `left undone: skipped by ${skippedBy ?? 'an operator'} after it was Blocked${c.error ? ` (${c.error})` : ''}`,
    blocked: `Blocked, not restored: ${c.error ?? 'unknown error'}`,
    running: 'running when the record was made',
    void: `not needed: ${c.summary ?? 'made permanent'}`,
    recorded: stop
      ? 'not run (the rollback stopped before it)'
      : outcome === 'aborted'
        ? 'not run: aborted without undoing (its snapshot stays)'
        : 'not run: nothing was rolled back',
  }[c.state];
  const ran = c.state !== 'recorded' && c.state !== 'void';
  const askedBy = ran && stop ? `${stop.request} by ${stop.by ?? 'no name recorded'} at ${stop.at}` : undefined;
  return { step: c.step, title: c.title, state: c.state, result, recordedAt: c.recordedAt, askedBy };
}

/** The latest time the status knows of: the end of a migration read without its close time. */
function lastKnownTime(status: MigrationStatus): string | undefined {
  const times = [...status.events.map((e) => e.at), ...status.steps.flatMap((s) => (s.endedAt ? [s.endedAt] : []))];
  return times.sort().at(-1);
}

export function buildRecord(status: MigrationStatus, opts: RecordOptions = {}): CompletionRecord {
  const fact = (step: string) => (status.facts[step] ?? {}) as Record<string, unknown>;
  const outcome = outcomeOf(status, opts.outcome);
  const requests = operatorRequests(status);
  const compensations = [...status.compensations].reverse().map((c) => compensationRecord(c, requests, outcome));
  const restored = new Set(compensations.filter((c) => c.state === 'done').map((c) => c.step));
  const ended = outcome !== 'in progress';
  return {
    target: status.target,
    workflowId: status.workflowId,
    migrationId: status.migrationId,
    outcome,
    state: status.state,
    startedAt: status.startedAt ?? status.events[0]?.at,
    finishedAt: ended ? (opts.finishedAt ?? status.endedAt ?? lastKnownTime(status)) : undefined,
    migrated: { runs: fact('0.3').runs, points: fact('0.3').points, verified: fact('0.5') },
    deleted: status.steps
      .filter((s) => s.destructive && s.state === 'done')
      .map((s) => ({ step: s.id, title: s.title, summary: s.summary, snapshot: fact(s.id).snapshot, deletedAt: s.endedAt, restored: restored.has(s.id) })),
    compensations,
    backups: { backup: fact('0.1'), rawExport: fact('0.6') },
    approvals: status.gates.filter((g) => g.approval).map((g) => ({ gate: g.id, by: g.approval!.by, at: g.approval!.at, comment: g.approval!.comment })),
    requests,
    problems: status.events.filter((e) => /Blocked|failed|ignored|unknown/.test(e.message)).map((e) => `${e.at} ${e.message}`),
    // The CLI renders from status alone: 5.6 keeps the estimate among its facts.
    estimatedMonthlySavingsUsd: opts.billing?.estimatedMonthlySavingsUsd ?? (fact('5.6').estimatedMonthlySavingsUsd as number | undefined),
  };
}

export function renderReport(status: MigrationStatus, opts: RecordOptions = {}): { markdown: string; json: CompletionRecord } {
  const json = buildRecord(status, opts);
  return { markdown: recordMarkdown(json, status.facts), json };
}
