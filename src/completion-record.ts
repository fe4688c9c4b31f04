// 5.6 Completion record: what was migrated and proven, what was deleted and where its snapshot
// is, who approved what and when, and what went wrong on the way.
import type { Target } from './config/schema';
import type { MigrationStatus } from './workflows/messages';

export interface CompletionRecord {
  target: string;
  workflowId: string;
  outcome: string;
  startedAt?: string;
  finishedAt?: string;
  migrated: { runs?: unknown; points?: unknown; verified?: unknown };
  deleted: Array<{ step: string; title: string; summary?: string; snapshot?: unknown }>;
  backups: Record<string, unknown>;
  approvals: Array<{ gate: string; by: string; at: string; comment?: string }>;
  problems: string[];
  estimatedMonthlySavingsUsd?: number;
}

export function renderReport(status: MigrationStatus, target?: Pick<Target, 'billing'>): { markdown: string; json: CompletionRecord } {
  const fact = (step: string) => (status.facts[step] ?? {}) as Record<string, unknown>;
  const json: CompletionRecord = {
    target: status.target,
    workflowId: status.workflowId,
    outcome: status.state,
    startedAt: status.events[0]?.at,
    finishedAt: status.events.at(-1)?.at,
    migrated: { runs: fact('0.3').runs, points: fact('0.3').points, verified: fact('0.5') },
    deleted: status.steps.filter((s) => s.destructive && s.state === 'done').map((s) => ({ step: s.id, title: s.title, summary: s.summary, snapshot: fact(s.id).snapshot })),
    backups: { backup: fact('0.1'), rawExport: fact('0.6') },
    approvals: status.gates.filter((g) => g.approval).map((g) => ({ gate: g.id, by: g.approval!.by, at: g.approval!.at, comment: g.approval!.comment })),
    problems: status.events.filter((e) => /Blocked|failed|ignored|retry|skip/.test(e.message)).map((e) => `${e.at} ${e.message}`),
    // The CLI renders from status alone: 5.6 keeps the estimate among its facts.
    estimatedMonthlySavingsUsd: target?.billing.estimatedMonthlySavingsUsd ?? (fact('5.6').estimatedMonthlySavingsUsd as number | undefined),
  };
  const md = [
    `# MLflow decommission: ${json.target}`,
    '',
    '| Field | Value |',
    '|---|---|',
    `| Workflow | ${json.workflowId} |`,
    `| Outcome | ${json.outcome} |`,
    `| Started | ${json.startedAt ?? '—'} |`,
    `| Finished | ${json.finishedAt ?? '—'} |`,
    `| Runs migrated | ${json.migrated.runs ?? '—'} |`,
    `| Points migrated | ${json.migrated.points ?? '—'} |`,
    `| Runs verified point for point | ${(json.migrated.verified as { runsVerified?: number } | undefined)?.runsVerified ?? '—'} |`,
    `| Monthly savings (estimate) | ${json.estimatedMonthlySavingsUsd === undefined ? '—' : `$${json.estimatedMonthlySavingsUsd}`} |`,
    '',
    '## Resources deleted',
    ...(json.deleted.length ? json.deleted.map((d) => `- ${d.step} ${d.title}: ${d.summary ?? ''}${d.snapshot && !d.summary?.includes(String(d.snapshot)) ? ` (snapshot: ${String(d.snapshot)})` : ''}`) : ['- none']),
    '',
    '## Backups',
    // The Postgres shapes' 0.1 is the worker's own dump (no Cloud SQL backup run).
    fact('0.1').exportUri && fact('0.1').backupRunId === undefined
      ? `- Logical dump: ${String(fact('0.1').exportUri)} (${String(fact('0.1').exportBytes ?? '?')} bytes, ${String(fact('0.1').tables ?? '?')} tables, ${String(fact('0.1').rows ?? '?')} rows)`
      : `- SQL export: ${String(fact('0.1').exportUri ?? '—')} (${String(fact('0.1').exportBytes ?? '?')} bytes); Cloud SQL backup run ${String(fact('0.1').backupRunId ?? '—')}`,
    `- Raw table export: ${String(fact('0.6').manifest ?? '—')} (${String(fact('0.6').tables ?? '?')} tables, ${String(fact('0.6').rows ?? '?')} rows)`,
    '',
    '## Approvals',
    ...(json.approvals.length ? json.approvals.map((a) => `- ${a.gate}: ${a.by} at ${a.at}${a.comment ? ` — ${a.comment}` : ''}`) : ['- none']),
    '',
    '## Problems met',
    ...(json.problems.length ? json.problems.map((p) => `- ${p}`) : ['- none']),
    '',
  ].join('\n');
  return { markdown: md, json };
}
