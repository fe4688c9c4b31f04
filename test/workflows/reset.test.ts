// Reset from the UI to before a completed destructive step: the new run re-runs the steps,
// and because every step checks before it acts, no effect happens twice.
import { randomUUID } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { commands, migrationResult, startMigration } from '../../src/temporal/client';
import { defineStep } from '../../src/activities/step';
import { demoTarget, fakeActivities } from '../support/fake-activities';
import { useTestServer, waitForStatus, withWorker } from '../support/temporal';

const server = useTestServer();

/** A tiny stand-in cloud: a delete acts only on what exists, as the real steps do. */
function idempotentCloud() {
  const exists = new Set(['service', 'instance', 'trigger']);
  const effects: string[] = [];
  const del = (name: string) =>
    defineStep({
      plan: async () => [],
      run: async () => {
        if (exists.delete(name)) effects.push(`delete ${name}`);
        return { summary: exists.has(name) ? 'still there' : `${name} gone`, actions: [] };
      },
    });
  return { effects, exists, activities: { deleteMlflowService: del('service'), deleteMlflowDatabase: del('instance'), deleteBuildTrigger: del('trigger') } };
}

describe('reset', () => {
  it('re-running from before a completed delete repeats no effect', async () => {
    const noApprovals = { 'phase-0': false, 'phase-2': false, 'phase-4': false, closure: false };
    const cloud = idempotentCloud();
    const fakes = fakeActivities(demoTarget({ approvals: noApprovals, bakePeriod: '1s' }), cloud.activities);
    await withWorker(server.env, fakes.activities, async (tq) => {
      const h = await startMigration(server.env.client, { target: 'reset' }, { taskQueue: tq });
      const first = await migrationResult(h);
      expect(first.outcome).toBe('completed');
      expect(cloud.effects).toEqual(['delete service', 'delete instance', 'delete trigger']);

      // The workflow task that scheduled 3.1 (deleteMlflowService): reset to just before it.
      const events = (await h.fetchHistory()).events!;
      const scheduled = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'deleteMlflowService')!;
      const taskCompleted = events.filter((e) => e.workflowTaskCompletedEventAttributes && Number(e.eventId) < Number(scheduled.eventId)).at(-1)!;
      const desc = await h.describe();
      const { runId } = await server.env.client.workflowService.resetWorkflowExecution({
        namespace: 'default',
        workflowExecution: { workflowId: h.workflowId, runId: desc.runId },
        workflowTaskFinishEventId: taskCompleted.eventId,
        reason: 'test: reset to before 3.1',
        requestId: randomUUID(),
      });
      const second = await migrationResult(server.env.client.workflow.getHandle(h.workflowId, runId!));
      expect(second.outcome).toBe('completed');
      expect(cloud.effects).toEqual(['delete service', 'delete instance', 'delete trigger']);
      expect(second.status.steps.find((s) => s.id === '3.1')).toMatchObject({ state: 'done', summary: 'service gone' });
      expect(second.status.compensations.map((c) => c.step)).toEqual(['3.1', '3.2', '3.3', '3.4', '3.5', '3.6', '5.3']);
    });
  });

  it('a reset to the first workflow task keeps the migration folder, so a compensation finds the first run\'s snapshot', async () => {
    // The service's snapshot is saved under the migration's folder, as 3.1 does in the backup bucket.
    const snapshots = new Map<string, string>();
    let service: string | undefined = 'mlflow-server spec';
    const activities = {
      deleteMlflowService: defineStep({
        plan: async () => [],
        run: async (ctx) => {
          if (service !== undefined) snapshots.set(`${ctx.migrationId}/cloud-run.json`, service);
          service = undefined;
          return { summary: 'service gone', actions: [] };
        },
      }),
      restoreMlflowService: defineStep({
        plan: async () => [],
        run: async (ctx) => {
          const snapshot = snapshots.get(`${ctx.migrationId}/cloud-run.json`);
          if (snapshot === undefined) throw ApplicationFailure.nonRetryable(`no snapshot under ${ctx.migrationId}`, 'CannotRestore');
          service = snapshot;
          return { summary: 'service restored', actions: [] };
        },
      }),
    };
    const fakes = fakeActivities(demoTarget({ approvals: { 'phase-0': false, 'phase-2': false, 'phase-4': true, closure: false } }), activities);
    await withWorker(server.env, fakes.activities, async (tq) => {
      const h = await startMigration(server.env.client, { target: 'reset-folder' }, { taskQueue: tq });
      const before = await waitForStatus(h, (s) => s.waitingFor?.gate === 'phase-4');
      expect([...snapshots.keys()]).toEqual([`${before.migrationId}/cloud-run.json`]);

      // As the UI's "Reset to first Workflow Task" does: the run is replayed from its start with a new time.
      const events = (await h.fetchHistory()).events!;
      const firstTask = events.find((e) => e.workflowTaskCompletedEventAttributes)!;
      const { runId } = await server.env.client.workflowService.resetWorkflowExecution({
        namespace: 'default',
        workflowExecution: { workflowId: h.workflowId, runId: (await h.describe()).runId },
        workflowTaskFinishEventId: firstTask.eventId,
        reason: 'test: reset to the first workflow task',
        requestId: randomUUID(),
      });
      const reset = server.env.client.workflow.getHandle(h.workflowId, runId!);
      const after = await waitForStatus(reset, (s) => s.waitingFor?.gate === 'phase-4');
      expect(after.migrationId).toBe(before.migrationId);
      await commands.rollback(reset, { by: 'alice', reason: 'test: undo after the reset' });
      const result = await migrationResult(reset);
      expect(result.outcome).toBe('rolled-back');
      expect(result.status.compensations.find((c) => c.step === '3.1')).toMatchObject({ state: 'done', summary: 'service restored' });
      expect(service).toBe('mlflow-server spec');
    });
  });
});
