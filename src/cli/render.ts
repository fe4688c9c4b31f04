// What the CLI prints for people: the status in the order the workflow runs it, with a progress
// bar from the backfill's heartbeats, and the dry-run plan as a table.
import type { MigrationStatus } from '../workflows/messages';

export interface Progress {
  activity: string;
  attempt: number;
  details?: unknown;
}

const MARK: Record<string, string> = { done: '✔', running: '▶', blocked: '✖', skipped: '↷', pending: ' ', planned: '·', passed: '✔', waiting: '⏸', failed: '✖', checking: '▶', rejected: '✖', cancelled: '⊘' };

export function renderStatus(s: MigrationStatus, progress: Progress[] = []): string {
  const lines = [`${s.workflowId}  ${s.state}${s.phase === null ? '' : `  phase ${s.phase}`}`];
  if (s.notice) lines.push(`notice: ${s.notice}`);
  if (s.waitingFor) lines.push(`next: ${s.waitingFor.next}`);
  for (const p of progress) {
    const d = (p.details ?? {}) as { runsDone?: number; runsTotal?: number; points?: number };
    if (typeof d.runsDone === 'number' && d.runsTotal) {
      const width = 30;
      const filled = Math.round((d.runsDone / d.runsTotal) * width);
      lines.push(`${p.activity} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${d.runsDone}/${d.runsTotal} runs${d.points ? `, ${d.points} points` : ''}`);
    } else {
      lines.push(`${p.activity} running (attempt ${p.attempt})`);
    }
  }
  lines.push('');
  const gateLine = (g: MigrationStatus['gates'][number]) =>
    `${MARK[g.state] ?? '?'} gate ${g.id}${g.requiresApproval ? ' (approval)' : ''}${g.approval ? ` — approved by ${g.approval.by}` : ''}`;
  // In the order the workflow runs them: each phase's steps, then its gate; the closure gate comes
  // before 5.4, the one step that cannot be undone (or before 5.6, for a shape without secrets).
  const closureBefore = s.steps.some((x) => x.id === '5.4') ? '5.4' : '5.6';
  for (const phase of [0, 1, 2, 3, 4, 5]) {
    for (const st of s.steps.filter((x) => x.phase === phase)) {
      if (st.id === closureBefore) for (const g of s.gates.filter((x) => x.id === 'closure')) lines.push(gateLine(g));
      lines.push(`${MARK[st.state] ?? '?'} ${st.id.padEnd(4)} ${st.title}${st.summary ? ` — ${st.summary}` : ''}${st.error ? ` — ${st.error}` : ''}`);
    }
    for (const g of s.gates.filter((x) => x.phase === phase && x.id !== 'closure')) lines.push(gateLine(g));
  }
  if (s.compensations.length) {
    lines.push('', 'compensations (newest first):');
    for (const c of [...s.compensations].reverse()) lines.push(`  ${c.state.padEnd(9)} ${c.title}${c.error ? ` — ${c.error}` : ''}`);
  }
  return lines.join('\n');
}

type PlanRow = [step: string, call: string, resource: string, what: string];

export function renderPlan(s: MigrationStatus): string {
  const rows = Object.entries(s.plan).flatMap(([step, actions]) => actions.map((a): PlanRow => [step, a.destructive ? `${a.call} (destructive)` : a.call, a.resource, a.description]));
  const width = (i: 0 | 1 | 2) => Math.min(60, Math.max(...rows.map((r) => r[i].length), 4));
  const [w0, w1, w2] = [width(0), width(1), width(2)];
  const header: PlanRow = ['step', 'call', 'resource', 'what'];
  return [header, ...rows].map(([step, call, resource, what]) => [step.padEnd(w0), call.padEnd(w1), resource.padEnd(w2), what].join('  ')).join('\n');
}
