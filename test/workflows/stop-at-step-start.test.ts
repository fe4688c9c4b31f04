// A stop that lands in the same workflow task as a step starts (issue 11.3): the step must not
// begin, show `running`, or get a compensation. Both messages are sent while no worker runs,
// so the next worker receives them in one workflow task, in the order they were sent.
import { Worker } from '@temporalio/worker';
import type { WorkflowHandle } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { migrationResult, startMigration } from '../../src/temporal/client';
import type { MigrationResult } from '../../src/workflows/messages';
import { demoTarget, fakeActivities, type Fakes } from '../support/fake-activities';
import { recordHistory, useTestServer, waitForStatus, workflowBundle } from '../support/temporal';

const server = useTestServer();
let n = 0;

/** A worker without a workflow cache, so the next one on the queue takes the next task at once. */
async function withUncachedWorker<T>(taskQueue: string, fakes: Fakes, fn: () => Promise<T>): Promise<T> {
  const worker = await Worker.create({ connection: server.env.nativeConnection, namespace: 'default', taskQueue, workflowBundle: await workflowBundle(), activities: fakes.activities, maxCachedWorkflows: 0 });
  return worker.runUntil(fn());
}

type Message = 'skip 3.4' | 'approve phase-2' | 'reject phase-2' | 'rollback' | 'abort' | 'cancel';

async function send(h: WorkflowHandle, message: Message): Promise<void> {
  if (message === 'skip 3.4') await h.signal('skip', { step: '3.4', by: 'alice' });
  else if (message === 'approve phase-2') await h.signal('approve', { gate: 'phase-2', by: 'alice' });
  else if (message === 'reject phase-2') await h.signal('reject', { gate: 'phase-2', by: 'bob', reason: 'test: stop at step start' });
  else if (message === 'cancel') await h.cancel();
  else await h.signal(message, { by: 'bob', reason: 'test: stop at step start' });
}

/** Runs to where `first` makes the next step start, stops the worker, sends both messages, and runs on. */
async function stopAtStepStart(messages: Message[], record?: string): Promise<{ result: MigrationResult; fakes: Fakes }> {
  const atGate = messages.includes('approve phase-2');
  const fakes = fakeActivities(demoTarget({ approvals: { 'phase-0': false, 'phase-2': atGate, 'phase-4': false, closure: false } }));
  if (!atGate) fakes.failNext('deleteArtifactsBucket', 1, 'bucket busy');
  const taskQueue = `stop-at-start-${process.pid}-${++n}`;
  const h = await startMigration(server.env.client, { target: `stop-${process.pid}-${n}` }, { taskQueue });
  await withUncachedWorker(taskQueue, fakes, () => waitForStatus(h, (s) => (atGate ? s.waitingFor?.gate === 'phase-2' : s.waitingFor?.step === '3.4')));
  for (const m of messages) await send(h, m);
  const result = await withUncachedWorker(taskQueue, fakes, async () => {
    const r = await migrationResult(h);
    if (record && process.env.RECORD_HISTORIES) await recordHistory(server.env, h, record);
    return r;
  });
  return { result, fakes };
}

const OUTCOME = { rollback: 'rolled-back', abort: 'aborted', cancel: 'cancelled' } as const;

// Each case stops and starts a worker twice; under a loaded machine that can take a while.
describe('a stop in the same workflow task as a step start', { timeout: 300_000 }, () => {
  it.each([
    ['skip 3.4', 'rollback'],
    ['rollback', 'skip 3.4'],
    ['skip 3.4', 'abort'],
    ['abort', 'skip 3.4'],
    ['skip 3.4', 'cancel'],
    ['cancel', 'skip 3.4'],
  ] as const)('%s + %s: 3.5 never begins, nothing shows running, no undo for it', async (...messages) => {
    const { result, fakes } = await stopAtStepStart(messages, messages.join(' + ') === 'skip 3.4 + rollback' ? 'stop-at-step-start.json' : undefined);
    const stop = messages.find((m) => m !== 'skip 3.4') as keyof typeof OUTCOME;
    expect(result.outcome).toBe(OUTCOME[stop]);
    expect(result.status.steps.filter((s) => s.state === 'running')).toEqual([]);
    expect(result.status.steps.find((s) => s.id === '3.5')).toMatchObject({ state: 'pending', attempts: 0 });
    expect(result.status.compensations.map((c) => c.step)).not.toContain('3.5');
    expect(fakes.acted).not.toContain('deleteServiceAccount');
    expect(fakes.acted).not.toContain('restoreServiceAccount');
    if (stop !== 'abort') expect(fakes.acted.filter((a) => a.startsWith('restore'))).toEqual(['restoreArtifactsBucket', 'restoreBuildTrigger', 'restoreMlflowDatabase', 'restoreMlflowService']);
  });

  it.each([
    ['approve phase-2', 'rollback', 'rolled-back'],
    ['rollback', 'approve phase-2', 'rolled-back'],
    ['approve phase-2', 'reject phase-2', 'rejected'],
    ['reject phase-2', 'approve phase-2', 'rejected'],
  ] as const)('%s + %s at the last gate before deleting: nothing is deleted, nothing is undone (%s)', async (first, second, outcome) => {
    const { result, fakes } = await stopAtStepStart([first, second]);
    expect(result.outcome).toBe(outcome);
    expect(result.status.steps.filter((s) => s.phase === 3).map((s) => s.state)).toEqual(['pending', 'pending', 'pending', 'pending', 'pending', 'pending']);
    expect(result.status.compensations).toEqual([]);
    expect(fakes.acted.filter((a) => a.startsWith('delete') || a.startsWith('restore'))).toEqual([]);
  });
});
