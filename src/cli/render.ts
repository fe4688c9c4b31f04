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
  if (s.notice) lines.push(`notice: ${cliWords(s.notice, s.target)}`);
  if (s.waitingFor) lines.push(`next: ${cliWords(s.waitingFor.next, s.target)}`);
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

/** The widest a plain `plan` prints: a terminal's default width is 80, most are 120. */
export const PLAN_WIDTH = 120;

/** `text` cut to `width` with an ellipsis; a resource keeps its end, which names the object. */
function fit(text: string, width: number, keepEnd = false): string {
  if (text.length <= width) return text.padEnd(width);
  return keepEnd ? `…${text.slice(text.length - width + 1)}` : `${text.slice(0, width - 1)}…`;
}

/** The dry-run plan as a table: within PLAN_WIDTH columns, or every cell in full with `wide`. */
export function renderPlan(s: MigrationStatus, opts: { wide?: boolean } = {}): string {
  // The plan's own backup folder is in most paths: named once above the table, <plan> in it.
  const folder = opts.wide ? undefined : s.migrationId;
  const short = (text: string) => (folder ? text.split(`/${folder}/`).join('/<plan>/') : text);
  const rows = Object.entries(s.plan).flatMap(([step, actions]) =>
    actions.map((a): PlanRow => [step, a.destructive ? `${a.call} *` : a.call, short(a.resource), short(a.description)]),
  );
  const header: PlanRow = ['step', 'call', 'resource', 'what'];
  const longest = (i: 0 | 1 | 2) => Math.max(...[header, ...rows].map((r) => r[i].length));
  const widths = opts.wide ? [longest(0), longest(1), longest(2)] : [Math.min(12, longest(0)), Math.min(28, longest(1)), Math.min(40, longest(2))];
  const [w0 = 4, w1 = 4, w2 = 8] = widths;
  const w3 = PLAN_WIDTH - (w0 + w1 + w2 + 6);
  const lines = [header, ...rows].map(([step, call, resource, what]) =>
    opts.wide ? [step.padEnd(w0), call.padEnd(w1), resource.padEnd(w2), what].join('  ') : [fit(step, w0), fit(call, w1), fit(resource, w2, true), fit(what, w3).trimEnd()].join('  '),
  );
  if (folder) lines.unshift(`<plan> = this plan's own backup folder:`, `  ${folder}`, '');
  lines.push('', `* destructive: acts only after the gate before it has passed.${opts.wide ? '' : ' Cells cut with … are whole in: plan --wide (or --json).'}`);
  return lines.join('\n');
}

const CLI = 'mlflow-decommission';

/**
 * The workflow speaks to the UI (signal names with their JSON); a CLI user gets the CLI command
 * that does the same. Targets are config-file keys, safe to print unquoted.
 */
export function cliWords(text: string, target: string): string {
  const gate = /"gate": "([^"]+)"/.exec(text)?.[1] ?? '<gate>';
  return text
    .replace(/`?(approve|reject)`? with `?\{"gate": "([^"]+)"[^}]*\}`?/g, (_, verb: string, g: string) => `\`${CLI} ${verb} ${target} ${g}${verb === 'reject' ? ' --reason "…"' : ''}\``)
    .replace(/`?(retry|skip)`?(?: with)? `?\{"step": "([^"]+)"[^}]*\}`?/g, (_, verb: string, step: string) => `\`${CLI} ${verb} ${target} ${step}\``)
    .replace(/`(rollback|abort)`/g, (_, verb: string) => `\`${CLI} ${verb} ${target} --reason "…"\``)
    .replace(/`reject`/g, `\`${CLI} reject ${target} ${gate} --reason "…"\``)
    .replace(/\bsend (`?mlflow-decommission)/g, 'run $1')
    .replace(/say who (?:approves|rejects|and why)[^:]*: \{[^}]*\}/g, 'say who and why: --by NAME (default $USER) and --reason "…"');
}
