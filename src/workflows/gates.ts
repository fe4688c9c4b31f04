// Checkpoint gates and approvals. A gate runs its read-only checks first (a failed check blocks
// it like a failed step); then, where the target or the input asks for one, it waits for a
// human's `approve`. Approvals are keyed by gate, so a re-delivered signal changes nothing; a
// `reject` rolls the migration back. Destructive activities check ctx.gatesPassed themselves.
import { condition, isCancellation } from '@temporalio/workflow';
import { shapeOf } from '../shapes';
import { GATE_IDS, type GateId } from '../types';
import { execute } from './activity-options';
import type { ApproveRequest, GateStatus, RejectRequest } from './messages';
import type { Migration } from './migration';
import { stopWith } from './rollback';
import { decide, describeFailure } from './step-runner';
import { event, gateStatus, nextHint, now, refresh, setState } from './status';
import { gateSpec } from './steps';

export async function passGate(m: Migration, id: GateId): Promise<void> {
  const spec = gateSpec(id, shapeOf(m.target));
  const g = gateStatus(m.status, id);
  if (m.ctx.dryRun) {
    g.state = 'planned';
    m.status.plan[`gate ${id}`] = [
      ...spec.checks.map((c) => ({ call: `check.${c}`, resource: id, description: `check: ${c}` })),
      ...(g.requiresApproval ? [{ call: 'approval', resource: id, description: `wait for approve {"gate": "${id}"}` }] : []),
    ];
    refresh(m.status);
    return;
  }
  m.beginUnlessStopped(`gate ${id}`);
  try {
    await checkAndWait(m, id, g);
  } catch (err) {
    // A stop while the gate checked or waited: it did not pass (a rejected gate keeps `rejected`).
    if (isCancellation(err) && (g.state === 'checking' || g.state === 'waiting')) g.state = 'cancelled';
    throw err;
  }
  g.state = 'passed';
  m.ctx.gatesPassed.push(id);
  event(m.status, `gate ${id} passed${g.approval ? ` (approved by ${g.approval.by})` : ''}`);
  setState(m.status, 'running');
}

/** The checks until they pass (or the operator retries them), then the approval where one is needed. */
async function checkAndWait(m: Migration, id: GateId, g: GateStatus): Promise<void> {
  const spec = gateSpec(id, shapeOf(m.target));
  for (;;) {
    Object.assign(g, { state: 'checking', checks: [] });
    setState(m.status, 'running');
    for (const check of spec.checks) {
      try {
        const res = await execute('short', check, [m.ctx], `gate ${id}: ${check}`);
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
    event(m.status, `gate ${id} checks failed: ${reasons}`);
    await decide(m, id, `Gate ${id} checks failed: ${reasons}`, false);
  }
  if (g.requiresApproval) {
    g.state = 'waiting';
    setState(m.status, 'waiting-approval', {
      kind: 'approval',
      gate: id,
      next: `Review: ${spec.review} Then send \`approve\` with \`{"gate": "${id}", "by": "YOUR_NAME"}\` — or \`reject\` / \`rollback\`.`,
    });
    await condition(() => g.approval !== undefined);
  }
}

/** A gate that must wait for a human this time, whatever the approval settings say. */
export function requireApproval(m: Migration, id: GateId, why: string): void {
  const g = gateStatus(m.status, id);
  if (g.requiresApproval) return;
  g.requiresApproval = true;
  event(m.status, `gate ${id} needs approval: ${why}`);
}

export function checkApprove(m: Migration, r: ApproveRequest): string | undefined {
  const g = findGate(m, r?.gate);
  if (typeof g === 'string') return g;
  if (!r.by) return 'say who approves: {"gate": "…", "by": "YOUR_NAME"}';
  if (g.approval) return `gate ${g.id} was already approved by ${g.approval.by}`;
  if (g.state !== 'waiting') return `gate ${g.id} is not waiting for approval (it is ${g.state}). ${nextHint(m.status)}`;
  return undefined;
}

export function applyApprove(m: Migration, r: ApproveRequest): string {
  const g = gateStatus(m.status, r.gate);
  g.approval = { by: r.by, comment: r.comment, at: now() };
  event(m.status, `gate ${g.id} approved by ${r.by}${r.comment ? `: ${r.comment}` : ''}`);
  return `approved gate ${g.id}`;
}

export function checkReject(m: Migration, r: RejectRequest): string | undefined {
  const g = findGate(m, r?.gate);
  if (typeof g === 'string') return g;
  if (!r.by || !r.reason) return 'say who rejects and why: {"gate": "…", "by": "YOUR_NAME", "reason": "…"}';
  if (g.state !== 'waiting') return `gate ${g.id} is not waiting for approval (it is ${g.state}). ${nextHint(m.status)}`;
  return undefined;
}

export function applyReject(m: Migration, r: RejectRequest): string {
  const g = gateStatus(m.status, r.gate);
  Object.assign(g, { state: 'rejected', rejection: { by: r.by, reason: r.reason, at: now() } });
  stopWith(m, 'reject', r.by, `gate ${g.id} rejected: ${r.reason}`);
  return `rejected gate ${g.id}: rolling back`;
}

/** The gate an operator named, or why there is none. */
function findGate(m: Migration, id: unknown): GateStatus | string {
  const g = m.status.gates.find((x) => x.id === id);
  return g ?? `unknown gate "${String(id)}"; gates are ${GATE_IDS.join(', ')}`;
}
