// The completion record as Markdown: the same facts as its JSON (completion-record.ts), for people.
import type { CompletionRecord } from './completion-record';

const dash = (v: unknown) => (v === undefined || v === null || v === '' ? '—' : String(v));

export function recordMarkdown(r: CompletionRecord, facts: Record<string, unknown>): string {
  const fact = (step: string) => (facts[step] ?? {}) as Record<string, unknown>;
  const rolledBack = r.compensations.some((c) => c.state !== 'recorded' && c.state !== 'void');
  return [
    `# MLflow decommission: ${r.target}`,
    '',
    '| Field | Value |',
    '|---|---|',
    `| Workflow | ${r.workflowId} |`,
    `| Backup folder | ${dash(r.migrationId)} |`,
    `| Outcome | ${r.outcome} |`,
    `| Started | ${dash(r.startedAt)} |`,
    // A running migration has no end yet; after a rollback the end is when the rollback finished.
    `| Finished | ${r.finishedAt ?? `— (still ${r.state})`} |`,
    `| Runs migrated | ${dash(r.migrated.runs)} |`,
    `| Points migrated | ${dash(r.migrated.points)} |`,
    `| Runs verified point for point | ${dash((r.migrated.verified as { runsVerified?: number } | undefined)?.runsVerified)} |`,
    `| Monthly savings (estimate) | ${r.estimatedMonthlySavingsUsd === undefined ? '—' : `$${r.estimatedMonthlySavingsUsd}`} |`,
    '',
    '## Who asked for what',
    ...(r.requests.length
      ? r.requests.map((q) => `- ${q.at} **${q.request}**${q.subject ? ` ${q.subject}` : ''} by ${q.by ?? '(no name recorded)'}${q.reason ? ` — ${q.reason}` : ''}`)
      : ['- nothing: no approval, decision or stop was needed']),
    '',
    '## Resources deleted',
    ...(r.deleted.length
      ? r.deleted.map(
          (d) =>
            `- ${d.step} ${d.title}: ${d.summary ?? ''}${d.snapshot && !d.summary?.includes(String(d.snapshot)) ? ` (snapshot: ${String(d.snapshot)})` : ''}` +
            `${d.deletedAt ? ` — at ${d.deletedAt}` : ''}${d.restored ? ' — **restored** (see below)' : rolledBack ? ' — **not restored**' : ''}`,
        )
      : ['- none']),
    '',
    rolledBack ? '## Restored (the rollback, newest first)' : '## Compensations (recorded, newest first)',
    ...(r.compensations.length ? r.compensations.map((c) => `- ${c.title}: **${c.state}** — ${c.result}${c.askedBy ? ` (asked: ${c.askedBy})` : ''}`) : ['- none recorded']),
    '',
    '## Backups',
    // The Postgres shapes' 0.1 is the worker's own dump (no Cloud SQL backup run).
    fact('0.1').exportUri && fact('0.1').backupRunId === undefined
      ? `- Logical dump: ${String(fact('0.1').exportUri)} (${String(fact('0.1').exportBytes ?? '?')} bytes, ${String(fact('0.1').tables ?? '?')} tables, ${String(fact('0.1').rows ?? '?')} rows)`
      : `- SQL export: ${dash(fact('0.1').exportUri)} (${String(fact('0.1').exportBytes ?? '?')} bytes); Cloud SQL backup run ${dash(fact('0.1').backupRunId)}`,
    `- Raw table export: ${dash(fact('0.6').manifest)} (${String(fact('0.6').tables ?? '?')} tables, ${String(fact('0.6').rows ?? '?')} rows)`,
    '',
    '## Approvals',
    ...(r.approvals.length ? r.approvals.map((a) => `- ${a.gate}: ${a.by} at ${a.at}${a.comment ? ` — ${a.comment}` : ''}`) : ['- none']),
    '',
    '## Problems met',
    ...(r.problems.length ? r.problems.map((p) => `- ${p}`) : ['- none']),
    '',
  ].join('\n');
}
