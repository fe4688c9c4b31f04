// How a migration ends (issue 13.2, 13.1, 10): the workflow list tells the outcomes apart, every
// outcome writes the completion record, and past 5.4 a rollback is refused with the reason.
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { commands, migrationResult, startMigration } from '../../src/temporal/client';
import { defineStep } from '../../src/activities/step';
import type { StepContext } from '../../src/types';
import type { MigrationStatus } from '../../src/workflows/messages';
import { demoTarget, fakeActivities } from '../support/fake-activities';
import { recordHistory, useTestServer, waitForStatus, withWorker } from '../support/temporal';

const server = useTestServer();
let n = 0;

/** Fakes whose completion record keeps the status it was given. */
function recordingFakes(approvals: Record<string, boolean>) {
  const records: MigrationStatus[] = [];
  const fakes = fakeActivities(demoTarget({ approvals, bakePeriod: '1s' }), {
    writeCompletionRecord: async (_ctx: StepContext, status: MigrationStatus) => {
      records.push(status);
      return { summary: 'record written', actions: [] };
    },
  });
  return { fakes, records };
}

async function failureOf(h: WorkflowHandle): Promise<ApplicationFailure> {
  const err = await h.result().catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  return cause as ApplicationFailure;
}

describe('the end of a migration', () => {
  it.each([
    ['rollback', 'rolled-back', 'MigrationRolledBack'],
    ['reject', 'rejected', 'MigrationRejected'],
    ['abort', 'aborted', 'MigrationAborted'],
  ] as const)('%s ends Failed (%s, %s) with {outcome, status} in the details, and writes the record', async (verb, outcome, type) => {
    const { fakes, records } = recordingFakes({ 'phase-0': false, 'phase-2': true });
    await withWorker(server.env, fakes.activities, async (tq) => {
      const h = await startMigration(server.env.client, { target: `end-${++n}` }, { taskQueue: tq });
      await waitForStatus(h, (s) => s.waitingFor?.gate === 'phase-2');
      if (verb === 'reject') await commands.reject(h, { gate: 'phase-2', by: 'carol', reason: 'cutover runs missing' });
      else await commands[verb](h, { by: 'carol', reason: 'wrong project' });
      const failure = await failureOf(h);
      expect(failure).toMatchObject({ type, nonRetryable: true });
      expect(failure.message).toContain('by carol');
      const result = await migrationResult(h);
      expect(result.outcome).toBe(outcome);
      expect(result.status.state).toBe(outcome);
      const desc = await h.describe();
      expect(desc.status.name).toBe('FAILED');
      expect(desc.searchAttributes.MigrationState).toEqual([outcome]);
      expect(records.map((r) => [r.outcome, r.state])).toEqual([[outcome, outcome]]);
      expect(Date.parse(records[0].startedAt!)).toBeLessThanOrEqual(Date.parse(records[0].endedAt!));
      expect(records[0].events.map((e) => e.message)).toContainEqual(expect.stringContaining('by carol'));
    });
  });

  it('a cancel rolls back, writes the record, and ends Canceled; migrationResult still tells the outcome', async () => {
    const { fakes, records } = recordingFakes({ 'phase-0': false, 'phase-2': false });
    fakes.failNext('deleteBuildTrigger');
    await withWorker(server.env, fakes.activities, async (tq) => {
      const h = await startMigration(server.env.client, { target: `end-${++n}` }, { taskQueue: tq });
      await waitForStatus(h, (s) => s.waitingFor?.step === '3.3');
      // A Blocked migration is told apart in the list.
      expect((await h.describe()).searchAttributes.MigrationState).toEqual(['blocked']);
      await h.cancel();
      const result = await migrationResult(h);
      expect(result.outcome).toBe('cancelled');
      expect((await h.describe()).status.name).toBe('CANCELLED');
      expect((await h.describe()).searchAttributes.MigrationState).toEqual(['cancelled']);
      expect(records.map((r) => r.outcome)).toEqual(['cancelled']);
      expect(result.status.compensations.map((c) => [c.step, c.state])).toEqual([['3.1', 'done'], ['3.2', 'done'], ['3.3', 'done']]);
      if (process.env.RECORD_HISTORIES) await recordHistory(server.env, h, 'cancel-path.json');
    });
  });

  it('a completed migration ends Completed and its 5.6 record carries the outcome and the end time', async () => {
    const { fakes, records } = recordingFakes({ 'phase-0': false, 'phase-2': false, 'phase-4': false, closure: false });
    await withWorker(server.env, fakes.activities, async (tq) => {
      const h = await startMigration(server.env.client, { target: `end-${++n}` }, { taskQueue: tq });
      const result = await migrationResult(h);
      expect(result.outcome).toBe('completed');
      expect((await h.describe()).status.name).toBe('COMPLETED');
      expect(records).toHaveLength(1);
      expect(records[0]).toMatchObject({ outcome: 'completed', startedAt: expect.any(String), endedAt: expect.any(String) });
    });
  });

  it('past the closure gate a rollback is refused with the reason, and the rollback signal is recorded as refused', async () => {
    const { fakes, records } = recordingFakes({ 'phase-0': false, 'phase-2': false, 'phase-4': false, closure: false });
    // No billing export: the closure gate waits for a human all the same (patched closure-approval-without-billing-export).
    fakes.activities.checkBilling = defineStep({ plan: async () => [], run: async () => ({ summary: 'confirm the bill in the console', actions: [], facts: { consoleFilter: { project: 'demo-project' } } }) });
    fakes.failNext('deleteSecrets', 1, 'secret in use');
    await withWorker(server.env, fakes.activities, async (tq) => {
      const h = await startMigration(server.env.client, { target: `end-${++n}` }, { taskQueue: tq });
      await waitForStatus(h, (s) => s.waitingFor?.gate === 'closure', 60_000);
      // Before closure the way back is open; the gate says where it ends.
      await commands.approve(h, { gate: 'closure', by: 'alice' });
      const blocked = await waitForStatus(h, (s) => s.waitingFor?.step === '5.4');
      // Blocked at 5.4, the way on is retry or abort: rollback is no longer offered.
      expect(blocked.waitingFor?.next).toMatch(/send `retry` with .* or `abort`\.$/);
      expect(blocked.waitingFor?.next).not.toContain('`rollback`');
      await expect(commands.rollback(h, { by: 'bob', reason: 'too late?' })).rejects.toThrow(/rollback ends at 5\.4: it deletes the MLflow secrets/);
      await h.signal('rollback', { by: 'bob', reason: 'too late?' });
      const s = await waitForStatus(h, (x) => x.events.some((e) => e.message.startsWith('ignored rollback')));
      expect(s.events.find((e) => e.message.startsWith('ignored rollback'))?.message).toContain('rollback ends at 5.4');
      expect(s.notice).toContain('ignored rollback: rollback ends at 5.4');
      await commands.retry(h, { step: '5.4', by: 'alice' });
      const result = await migrationResult(h);
      expect(result.outcome).toBe('completed');
      expect(fakes.acted.filter((a) => a.startsWith('restore') || a.startsWith('enable'))).toEqual([]);
      expect(records.map((r) => r.outcome)).toEqual(['completed']);
      if (process.env.RECORD_HISTORIES) await recordHistory(server.env, h, 'closure-path.json');
    });
  });

  it('a cancel past the closure gate stops without undoing anything', async () => {
    const { fakes } = recordingFakes({ 'phase-0': false, 'phase-2': false, 'phase-4': false, closure: false });
    fakes.failNext('deleteSecrets', 1, 'secret in use');
    await withWorker(server.env, fakes.activities, async (tq) => {
      const h = await startMigration(server.env.client, { target: `end-${++n}` }, { taskQueue: tq });
      await waitForStatus(h, (s) => s.waitingFor?.step === '5.4', 60_000);
      await h.cancel();
      const result = await migrationResult(h);
      expect(result.outcome).toBe('cancelled');
      expect(fakes.acted.filter((a) => a.startsWith('restore') || a.startsWith('enable'))).toEqual([]);
    });
  });
});
