// The engine on a real Temporal dev server, with the data and cloud activities substituted.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { commands, MigrationInputError, migrationResult, startMigration } from '../../src/temporal/client';
import type { MigrationInput } from '../../src/config/schema';
import { STEPS } from '../../src/workflows/steps';
import { createLifecycleActivities } from '../../src/activities/lifecycle';
import { defineStep } from '../../src/activities/step';
import type { GateId } from '../../src/types';
import { demoTarget, fakeActivities } from '../support/fake-activities';
import { MemoryObjectStore } from '../support/memory-object-store';
import { recordHistory, temporalCli, useTestServer, waitForStatus, withWorker } from '../support/temporal';

const run = promisify(execFile);
const server = useTestServer();

let n = 0;
const uniqueTarget = () => `t${process.pid}-${++n}`;

async function start(taskQueue: string, input: MigrationInput) {
  return startMigration(server.env.client, input, { taskQueue });
}

async function approveWhenWaiting(h: WorkflowHandle, gate: GateId) {
  await waitForStatus(h, (s) => s.waitingFor?.gate === gate);
  return commands.approve(h, { gate, by: 'alice', comment: 'looks right' });
}

const ACTING_ORDER = [
  'preflight',
  'backupDatabase',
  'assessScope',
  'planBackfill',
  'cacheHistograms',
  'verifyMigration',
  'exportRawTables',
  'auditReferences',
  'checkPhase0',
  'checkExportVerified',
  'checkCutover',
  'checkCutover',
  'checkExportVerified',
  'deleteMlflowService',
  'deleteMlflowDatabase',
  'deleteBuildTrigger',
  'deleteArtifactsBucket',
  'deleteServiceAccount',
  'disableSecrets',
  'checkResourcesGone',
  'verifyResourcesGone',
  'checkBilling',
  'removeTrackingUri',
  'deleteSecrets',
  'verifyNothingLeft',
  'writeCompletionRecord',
];

describe('mlflowDecommission', () => {
  it('runs Phases 0–5 in order through every approval gate, from the client and from the temporal CLI', async () => {
    const fakes = fakeActivities(demoTarget());
    await withWorker(server.env, fakes.activities, async (tq) => {
      const h = await start(tq, { target: uniqueTarget() });
      await approveWhenWaiting(h, 'phase-0');
      // As an operator would, with the CLI's signal command.
      await waitForStatus(h, (s) => s.waitingFor?.gate === 'phase-2');
      await run(temporalCli(), [
        'workflow', 'signal', '--address', server.env.address, '--workflow-id', h.workflowId, '--name', 'approve',
        '--input', JSON.stringify({ gate: 'phase-2', by: 'bob' }),
      ]);
      await approveWhenWaiting(h, 'phase-4');
      await approveWhenWaiting(h, 'closure');
      const result = await migrationResult(h);
      expect(result.outcome).toBe('completed');
      expect(fakes.acted.filter((a) => !a.startsWith('backfillBatch'))).toEqual(ACTING_ORDER);
      expect(fakes.acted.filter((a) => a.startsWith('backfillBatch')).sort()).toEqual([0, 1, 2, 3, 4].map((i) => `backfillBatch#${i}`));
      expect(result.status.steps.every((s) => s.state === 'done')).toBe(true);
      expect(result.status.gates.map((g) => [g.id, g.state, g.approval?.by])).toEqual([
        ['phase-0', 'passed', 'alice'],
        ['phase-1', 'passed', undefined],
        ['phase-2', 'passed', 'bob'],
        ['phase-3', 'passed', undefined],
        ['phase-4', 'passed', 'alice'],
        ['closure', 'passed', 'alice'],
      ]);
      expect(result.status.facts['0.3']).toEqual({ runs: 50, points: 350_000 });
      // 5.4 deleted the secrets for good: their compensation is void, the others stay recorded.
      expect(result.status.compensations.find((c) => c.step === '3.6')?.state).toBe('void');
      if (process.env.RECORD_HISTORIES) {
        await recordHistory(server.env, h, 'approval-path.json');
      }
    });
  });

  it('0.3 reports the runs the app table holds, not the sum of its attempts, after a batch is retried mid-way', async () => {
    let lost = false;
    const fakes = fakeActivities(demoTarget(), {
      // Batch 3 caches 6 runs, then its worker dies; the retry resumes after them and reports only its 4.
      backfillBatch: async (_ctx: unknown, batch: { index: number; runs: number }) => {
        const runs = batch.index === 2 ? (lost ? batch.runs - 6 : 6) : batch.runs;
        fakes.table.runs += runs;
        if (batch.index === 2 && !lost) {
          lost = true;
          throw ApplicationFailure.retryable('worker lost mid-batch', 'TestFailure');
        }
        return { summary: 'ok', actions: [], facts: { runs, points: runs * 7000 } };
      },
    });
    await withWorker(server.env, fakes.activities, async (tq) => {
      const h = await start(tq, { target: uniqueTarget() });
      for (const gate of ['phase-0', 'phase-2', 'phase-4', 'closure'] as const) await approveWhenWaiting(h, gate);
      const result = await h.result();
      expect(result.outcome).toBe('completed');
      expect(result.status.facts['0.3']).toEqual({ runs: 50, points: 350_000 });
      expect(result.status.steps.find((s) => s.id === '0.3')!.summary).toBe('50 runs migrated, holding 350000 values (this attempt wrote 44 runs)');
      if (process.env.RECORD_HISTORIES) await recordHistory(server.env, h, 'backfill-counts-path.json');
    });
  });

  it('shows the waiting gate and what to do next in status, current details and search attributes', async () => {
    const fakes = fakeActivities(demoTarget());
    await withWorker(server.env, fakes.activities, async (tq) => {
      const h = await start(tq, { target: uniqueTarget() });
      const status = await waitForStatus(h, (s) => s.waitingFor?.gate === 'phase-0');
      expect(status.state).toBe('waiting-approval');
      expect(status.waitingFor?.next).toContain('`approve` with `{"gate": "phase-0"');
      expect(status.gates[0].checks.map((c) => c.name)).toEqual(['checkPhase0', 'checkExportVerified']);
      const desc = await h.describe();
      expect(desc.searchAttributes).toMatchObject({ MigrationState: ['waiting-approval'], MigrationPhase: ['0'], MigrationTarget: [h.workflowId.replace('mlflow-decommission-', '')] });
      expect(await desc.staticSummary()).toContain(h.workflowId.replace('mlflow-decommission-', ''));
      const meta = (await h.query('__temporal_workflow_metadata')) as { currentDetails: string; definition: { signalDefinitions: { name: string; description: string }[] } };
      expect(meta.currentDetails).toContain('`approve` with `{"gate": "phase-0"');
      expect(meta.definition.signalDefinitions.map((d) => d.name).sort()).toEqual(['abort', 'approve', 'reject', 'retry', 'rollback', 'skip']);
      expect(meta.definition.signalDefinitions.every((d) => d.description.length > 20)).toBe(true);
      await commands.abort(h, { by: 'alice', reason: 'test over' });
      expect((await migrationResult(h)).outcome).toBe('aborted');
    });
  });

  it('a dry run returns every step\'s planned actions and acts on nothing', async () => {
    const fakes = fakeActivities(demoTarget());
    await withWorker(server.env, fakes.activities, async (tq) => {
      const target = uniqueTarget();
      const h = await start(tq, { target, dryRun: true });
      const result = await migrationResult(h);
      expect(result.outcome).toBe('planned');
      expect(fakes.acted).toEqual([]);
      for (const s of STEPS) expect(result.status.plan[s.id], s.id).toBeDefined();
      expect(result.status.plan['3.1']).toEqual([{ call: 'fake.deleteMlflowService', resource: 'fake/deleteMlflowService', description: 'would deleteMlflowService' }]);
      expect(result.status.compensations).toEqual([]);
      // Its own prefix: a list filtered on the migration's ID does not mix in its plans.
      expect(h.workflowId).toMatch(new RegExp(`^mlflow-decommission-plan-${target}-\\d{8}T\\d{6}Z$`));
    });
  });

  it('a Blocked step waits for retry, then goes on', async () => {
    const fakes = fakeActivities(demoTarget({ approvals: { 'phase-0': false, 'phase-2': false, 'phase-4': false, closure: false } }));
    fakes.failNext('deleteMlflowService', 1, 'service mlflow-server: permission denied');
    await withWorker(server.env, fakes.activities, async (tq) => {
      const h = await start(tq, { target: uniqueTarget() });
      const blocked = await waitForStatus(h, (s) => s.state === 'blocked');
      expect(blocked.waitingFor).toMatchObject({ kind: 'decision', step: '3.1' });
      expect(blocked.waitingFor?.next).toContain('permission denied');
      expect(blocked.steps.find((s) => s.id === '3.1')).toMatchObject({ state: 'blocked', attempts: 1 });
      // The compensation was recorded before the step acted.
      expect(blocked.compensations.map((c) => c.step)).toEqual(['3.1']);
      await expect(commands.skip(h, { step: '3.1' })).rejects.toThrow(/must not be skipped/);
      await commands.retry(h, { step: '3.1' });
      const result = await migrationResult(h);
      expect(result.outcome).toBe('completed');
      expect(result.status.steps.find((s) => s.id === '3.1')).toMatchObject({ state: 'done', attempts: 2 });
    });
  });

  it('a Blocked skippable step can be skipped', async () => {
    const fakes = fakeActivities(demoTarget());
    fakes.failNext('cacheHistograms');
    await withWorker(server.env, fakes.activities, async (tq) => {
      const h = await start(tq, { target: uniqueTarget() });
      await waitForStatus(h, (s) => s.waitingFor?.step === '0.4');
      await commands.skip(h, { step: '0.4', by: 'alice' });
      const s = await waitForStatus(h, (x) => x.waitingFor?.gate === 'phase-0');
      expect(s.steps.find((x) => x.id === '0.4')?.state).toBe('skipped');
      expect(fakes.acted).not.toContain('cacheHistograms');
      await commands.abort(h, { by: 'alice', reason: 'done testing' });
      await migrationResult(h);
    });
  });

  it('refuses requests that do not fit: approving a gate that is not waiting, retrying a step that is not Blocked', async () => {
    const fakes = fakeActivities(demoTarget());
    await withWorker(server.env, fakes.activities, async (tq) => {
      const h = await start(tq, { target: uniqueTarget() });
      await waitForStatus(h, (s) => s.waitingFor?.gate === 'phase-0');
      await expect(commands.approve(h, { gate: 'phase-2', by: 'alice' })).rejects.toThrow(/gate phase-2 is not waiting for approval/);
      await expect(commands.approve(h, { gate: 'nope' as never, by: 'alice' })).rejects.toThrow(/unknown gate "nope"/);
      await expect(commands.retry(h, { step: '0.1' })).rejects.toThrow(/step 0.1 is not Blocked/);
      await expect(commands.approve(h, { gate: 'phase-0', by: '' })).rejects.toThrow(/say who approves/);
      await commands.abort(h, { by: 'alice', reason: 'over' });
      await migrationResult(h);
    });
  });

  it('without a billing export the closure gate waits for a human, even when its approval is switched off', async () => {
    const consoleFilter = { url: 'https://console.cloud.google.com/billing', project: 'demo-project' };
    const fakes = fakeActivities(demoTarget({ approvals: { 'phase-0': false, 'phase-2': false, 'phase-4': false, closure: false } }), {
      checkBilling: defineStep({ plan: async () => [], run: async () => ({ summary: 'confirm the bill in the console', actions: [], facts: { consoleFilter } }) }),
    });
    await withWorker(server.env, fakes.activities, async (tq) => {
      const h = await start(tq, { target: uniqueTarget(), bakePeriod: '1s' });
      const s = await waitForStatus(h, (x) => x.waitingFor?.gate === 'closure', 60_000);
      expect(s.gates.find((g) => g.id === 'closure')?.requiresApproval).toBe(true);
      expect(s.events.map((e) => e.message)).toContainEqual(expect.stringContaining('gate closure needs approval: no billing export'));
      await commands.approve(h, { gate: 'closure', by: 'alice', comment: 'console shows $0.00' });
      expect((await migrationResult(h)).outcome).toBe('completed');
    });
  });

  it('approvals are keyed by gate: a re-delivered approve changes nothing', async () => {
    const fakes = fakeActivities(demoTarget());
    await withWorker(server.env, fakes.activities, async (tq) => {
      const h = await start(tq, { target: uniqueTarget() });
      await waitForStatus(h, (s) => s.waitingFor?.gate === 'phase-0');
      await h.signal('approve', { gate: 'phase-0', by: 'alice' });
      await waitForStatus(h, (s) => s.waitingFor?.gate === 'phase-2');
      // The same signal again (as a reset would re-deliver it) must not approve phase-2.
      await h.signal('approve', { gate: 'phase-0', by: 'alice' });
      const s = await waitForStatus(h, (x) => x.events.some((e) => e.message.startsWith('ignored approve')));
      expect(s.gates.find((g) => g.id === 'phase-2')?.state).toBe('waiting');
      expect(s.events.find((e) => e.message.startsWith('ignored approve'))?.message).toContain('already approved by alice');
      await commands.abort(h, { by: 'alice', reason: 'over' });
      await migrationResult(h);
    });
  });

  it('rollback runs the recorded compensations newest first, once, even when signalled twice', async () => {
    const fakes = fakeActivities(demoTarget({ approvals: { 'phase-0': false, 'phase-2': false } }));
    fakes.failNext('deleteServiceAccount', 1, 'service account in use');
    await withWorker(server.env, fakes.activities, async (tq) => {
      const h = await start(tq, { target: uniqueTarget() });
      await waitForStatus(h, (s) => s.waitingFor?.step === '3.5');
      await h.signal('rollback', { by: 'alice', reason: 'wrong project' });
      await h.signal('rollback', { by: 'alice', reason: 'wrong project' });
      const result = await migrationResult(h);
      expect(result.outcome).toBe('rolled-back');
      expect(fakes.acted.filter((a) => a.startsWith('restore') || a.startsWith('enable'))).toEqual([
        'restoreServiceAccount',
        'restoreArtifactsBucket',
        'restoreBuildTrigger',
        'restoreMlflowDatabase',
        'restoreMlflowService',
      ]);
      expect(result.status.compensations.every((c) => c.state === 'done')).toBe(true);
      expect(result.status.events.filter((e) => e.message.startsWith('ignored rollback'))).toHaveLength(1);
      if (process.env.RECORD_HISTORIES) {
        await recordHistory(server.env, h, 'rollback-path.json');
      }
    });
  });

  it('a rejected gate rolls back and ends rejected', async () => {
    const fakes = fakeActivities(demoTarget({ approvals: { 'phase-0': false } }));
    await withWorker(server.env, fakes.activities, async (tq) => {
      const h = await start(tq, { target: uniqueTarget() });
      await waitForStatus(h, (s) => s.waitingFor?.gate === 'phase-2');
      await commands.reject(h, { gate: 'phase-2', by: 'carol', reason: 'cutover runs missing' });
      const result = await migrationResult(h);
      expect(result.outcome).toBe('rejected');
      expect(result.status.gates.find((g) => g.id === 'phase-2')?.rejection?.by).toBe('carol');
      expect(fakes.acted.some((a) => a.startsWith('delete'))).toBe(false);
    });
  });

  it('a Blocked compensation during rollback waits for retry', async () => {
    const fakes = fakeActivities(demoTarget({ approvals: { 'phase-0': false, 'phase-2': false } }));
    fakes.failNext('deleteBuildTrigger');
    fakes.failNext('restoreMlflowDatabase', 1, 'instance name still reserved');
    await withWorker(server.env, fakes.activities, async (tq) => {
      const h = await start(tq, { target: uniqueTarget() });
      await waitForStatus(h, (s) => s.waitingFor?.step === '3.3');
      await commands.rollback(h, { by: 'alice', reason: 'stop' });
      const s = await waitForStatus(h, (x) => x.compensations.some((c) => c.state === 'blocked'));
      expect(s.state).toBe('rolling-back');
      expect(s.waitingFor?.next).toContain('instance name still reserved');
      await commands.retry(h, { step: '3.2' });
      const result = await migrationResult(h);
      expect(result.outcome).toBe('rolled-back');
      expect(result.status.compensations.map((c) => [c.step, c.state])).toEqual([
        ['3.1', 'done'],
        ['3.2', 'done'],
        ['3.3', 'done'],
      ]);
    });
  });

  it('cancelling from the UI rolls back the same way, then ends Cancelled', async () => {
    const fakes = fakeActivities(demoTarget({ approvals: { 'phase-0': false, 'phase-2': false } }));
    fakes.failNext('deleteBuildTrigger');
    await withWorker(server.env, fakes.activities, async (tq) => {
      const h = await start(tq, { target: uniqueTarget() });
      await waitForStatus(h, (s) => s.waitingFor?.step === '3.3');
      await h.cancel();
      await expect(h.result()).rejects.toThrow(WorkflowFailedError);
      expect(fakes.acted.filter((a) => a.startsWith('restore'))).toEqual(['restoreBuildTrigger', 'restoreMlflowDatabase', 'restoreMlflowService']);
      expect((await h.describe()).status.name).toBe('CANCELLED');
    });
  });

  it('refuses a second migration of the same target, naming the running one', async () => {
    const fakes = fakeActivities(demoTarget());
    await withWorker(server.env, fakes.activities, async (tq) => {
      const target = uniqueTarget();
      const h = await start(tq, { target });
      await expect(start(tq, { target })).rejects.toThrow(`already running as workflow mlflow-decommission-${target}`);
      await h.terminate('test over');
    });
  });

  it('refuses a real migration under a workflow ID other than the target\'s', async () => {
    const fakes = fakeActivities(demoTarget());
    await withWorker(server.env, fakes.activities, async (tq) => {
      const h = await startMigration(server.env.client, { target: 'demo' }, { taskQueue: tq, workflowId: 'my-own-id' });
      await expect(h.result()).rejects.toThrow(WorkflowFailedError);
      const err = await h.result().catch((e: WorkflowFailedError) => e);
      expect((err as WorkflowFailedError).cause?.message).toContain('start target "demo" with workflow ID "mlflow-decommission-demo"');
    });
  });

  it.each([
    [{ target: 'demo', dryRun: 'yes' }, 'dryRun'],
    [{ target: 'demo', bakePeriod: 'soon' }, 'bakePeriod'],
    [{ target: 'demo', approvals: { 'phase-9': true } }, 'approvals'],
    [{ target: 'demo', password: 'hunter2' }, 'unknown field(s) "password"'],
    [{}, 'target'],
  ])('invalid input %j fails at once, non-retryably, naming %s', async (input, field) => {
    // The client helper refuses before starting anything ...
    await expect(startMigration(server.env.client, input as MigrationInput)).rejects.toThrow(MigrationInputError);
    // ... and a start from the UI, which bypasses it, fails in the workflow with the same words.
    const fakes = fakeActivities(demoTarget());
    await withWorker(server.env, fakes.activities, async (tq) => {
      const h = await server.env.client.workflow.start('mlflowDecommission', { taskQueue: tq, workflowId: `bad-${uniqueTarget()}`, args: [input] });
      const err = (await h.result().catch((e) => e)) as WorkflowFailedError;
      expect(err).toBeInstanceOf(WorkflowFailedError);
      expect(err.cause?.message).toContain(field);
      expect((err.cause as { type?: string; nonRetryable?: boolean }).type).toBe('InvalidInput');
      expect(fakes.acted).toEqual([]);
    });
  });

  it('an unknown target fails naming the targets the worker knows', async () => {
    const fakes = fakeActivities(demoTarget(), {
      loadTarget: async (name: string) => {
        return createLifecycleActivities({ config: { targets: { demo: demoTarget() } }, objects: new MemoryObjectStore(), preflightChecks: [] }).loadTarget(name);
      },
    });
    await withWorker(server.env, fakes.activities, async (tq) => {
      const h = await start(tq, { target: 'prod', dryRun: true });
      const err = (await h.result().catch((e) => e)) as WorkflowFailedError;
      expect((err.cause?.cause as Error | undefined)?.message ?? err.cause?.message).toMatch(/target: "prod" is not in the worker's config file \(known targets: demo\)/);
    });
  });
});
