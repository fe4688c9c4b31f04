// The operator's CLI as a subprocess against a real dev server and a worker with substituted activities.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import type { CompletionRecord } from '../../src/completion-record';
import { migrationResult } from '../../src/temporal/client';
import { demoTarget, fakeActivities } from '../support/fake-activities';
import { useTestServer, waitForStatus, withWorker } from '../support/temporal';

const exec = promisify(execFile);
const server = useTestServer();

interface Ran {
  stdout: string;
  stderr: string;
  code?: number;
  failed?: boolean;
}

function cli(taskQueue: string, ...args: string[]): Promise<Ran> {
  return exec(process.execPath, ['bin/mlflow-decommission.cjs', ...args], {
    env: { ...process.env, TEMPORAL_ADDRESS: server.env.address, TEMPORAL_TASK_QUEUE: taskQueue, USER: 'dana' },
  }).catch((err: Ran) => ({ ...err, failed: true }));
}

/** A refusal: exit code 2, and the way out said as a CLI command, not as signal JSON. */
function expectRefusal(r: Ran, ...says: string[]): void {
  expect(r.failed).toBe(true);
  expect(r.code).toBe(2);
  for (const s of says) expect(r.stderr).toContain(s);
  expect(r.stderr).not.toMatch(/\{"(gate|step|by)"/);
}

describe('mlflow-decommission CLI', () => {
  it('prints its version', async () => {
    const r = await cli('none', '--version');
    expect(r.stdout.trim()).toBe((JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version);
  });

  it('says a target has no migration, and how to start one', async () => {
    await withWorker(server.env, fakeActivities(demoTarget()).activities, async (tq) => {
      for (const args of [['status', 'nobody'], ['report', 'nobody'], ['approve', 'nobody', 'phase-0']]) {
        expectRefusal(await cli(tq, ...args), 'no migration of target "nobody" found', 'mlflow-decommission start nobody');
      }
    });
  });

  it('plans under its own ID prefix, in a table that fits 120 columns (--wide: every cell whole)', async () => {
    const fakes = fakeActivities(demoTarget({ cloudRun: { mlflowService: `mlflow-server-${'x'.repeat(150)}`, appService: 'django-app', trackingUriEnvVar: 'MLFLOW_TRACKING_URI' } }));
    fakes.activities.deleteMlflowService = async () => ({
      summary: 'would',
      actions: [{ call: 'run.services.delete', resource: `projects/demo-project/locations/europe-central2/services/mlflow-server-${'x'.repeat(150)}`, description: 'delete the service', destructive: true }],
    });
    await withWorker(server.env, fakes.activities, async (tq) => {
      const plan = await cli(tq, 'plan', 'cli-plan');
      expect(plan.stdout).toMatch(/3\.1\s+run\.services\.delete \*\s+…x+\s+delete the service/);
      expect(plan.stdout).toMatch(/planned by workflow mlflow-decommission-plan-cli-plan-\d{8}T\d{6}Z/);
      // Its backup paths are the plan's own, and say so.
      expect(plan.stdout).toMatch(/^<plan> = this plan's own backup folder:\n  mlflow-decommission-plan-cli-plan-\d{8}T\d{6}Z\//m);
      for (const line of plan.stdout.split('\n')) expect(line.length, line).toBeLessThanOrEqual(120);
      const wide = await cli(tq, 'plan', 'cli-plan', '--wide');
      expect(wide.stdout).toContain(`services/mlflow-server-${'x'.repeat(150)}`);
      expect(fakes.acted).toEqual([]);
    });
  });

  it('abort: the record says the migration was aborted, that nothing was undone, and when it ended', async () => {
    await withWorker(server.env, fakeActivities(demoTarget({ approvals: { 'phase-0': false, 'phase-2': false } })).activities, async (tq) => {
      await cli(tq, 'start', 'cli-abort');
      const h = server.env.client.workflow.getHandle('mlflow-decommission-cli-abort');
      await waitForStatus(h, (s) => s.waitingFor?.gate === 'phase-4');
      expect((await cli(tq, 'abort', 'cli-abort', '--by', 'gus', '--reason', 'change freeze')).stdout).toContain('aborting');
      await h.result().catch(() => undefined);
      const json = JSON.parse((await cli(tq, '--json', 'report', 'cli-abort')).stdout) as CompletionRecord;
      expect(json.outcome).toBe('aborted');
      expect(json.deleted.map((d) => d.restored)).toEqual([false, false, false, false, false, false]);
      expect(new Set(json.compensations.map((c) => c.result))).toEqual(new Set(['not run: aborted without undoing (its snapshot stays)']));
      expect(json.finishedAt).toBe((await h.describe()).closeTime?.toISOString());
    });
  });

  it('runs a migration: refusals name the CLI command, retry and skip record who, report after a rollback lists every restore and who asked', async () => {
    const fakes = fakeActivities(demoTarget());
    await withWorker(server.env, fakes.activities, async (tq) => {
      const started = await cli(tq, '--json', 'start', 'cli-demo', '--bake-period', '1s');
      expect(JSON.parse(started.stdout).workflowId).toBe('mlflow-decommission-cli-demo');
      expectRefusal(await cli(tq, 'start', 'cli-demo'), 'already running as workflow mlflow-decommission-cli-demo');

      const h = server.env.client.workflow.getHandle('mlflow-decommission-cli-demo');
      await waitForStatus(h, (s) => s.waitingFor?.gate === 'phase-0');
      const status = await cli(tq, 'status', 'cli-demo');
      expect(status.stdout).toContain('waiting-approval');
      expect(status.stdout).toContain('`mlflow-decommission approve cli-demo phase-0`');
      expect(status.stdout).not.toContain('{"gate"');

      expectRefusal(await cli(tq, 'approve', 'cli-demo', 'phase-2'), 'gate phase-2 is not waiting for approval', '`mlflow-decommission approve cli-demo phase-0`');
      expectRefusal(await cli(tq, 'retry', 'cli-demo', '0.1'), 'step 0.1 is not Blocked', '`mlflow-decommission approve cli-demo phase-0`');

      // While it runs, the record has no end.
      const running = await cli(tq, 'report', 'cli-demo');
      expect(running.stdout).toContain('| Finished | — (still waiting-approval) |');
      expect(JSON.parse((await cli(tq, '--json', 'report', 'cli-demo')).stdout).finishedAt).toBeUndefined();

      expect((await cli(tq, 'approve', 'cli-demo', 'phase-0', '--comment', 'spot-checked 3 runs')).stdout).toContain('approved gate phase-0');
      await waitForStatus(h, (x) => x.waitingFor?.gate === 'phase-2');
      fakes.failNext('deleteMlflowService');
      fakes.failNext('deleteArtifactsBucket');
      await cli(tq, 'approve', 'cli-demo', 'phase-2', '--by', 'erin');

      const blocked = await waitForStatus(h, (x) => x.waitingFor?.step === '3.1');
      expect(blocked.state).toBe('blocked');
      expect((await cli(tq, 'status', 'cli-demo')).stdout).toContain('`mlflow-decommission retry cli-demo 3.1`');
      expectRefusal(await cli(tq, 'skip', 'cli-demo', '3.1'), 'step 3.1 must not be skipped');
      expect((await cli(tq, 'retry', 'cli-demo', '3.1', '--by', 'erin')).stdout).toContain('retry 3.1');
      await waitForStatus(h, (x) => x.waitingFor?.step === '3.4');
      expect((await cli(tq, 'skip', 'cli-demo', '3.4')).stdout).toContain('skip 3.4');

      await waitForStatus(h, (x) => x.waitingFor?.gate === 'phase-4');
      fakes.failNext('restoreBuildTrigger');
      expect((await cli(tq, 'rollback', 'cli-demo', '--by', 'alice', '--reason', 'demo over')).stdout).toContain('rolling back');
      await waitForStatus(h, (x) => x.waitingFor?.step === '3.3');
      expect((await cli(tq, 'status', 'cli-demo')).stdout).toContain('`mlflow-decommission skip cli-demo 3.3`');
      await cli(tq, 'skip', 'cli-demo', '3.3', '--by', 'frank');
      expect((await migrationResult(h)).outcome).toBe('rolled-back');

      const report = (await cli(tq, 'report', 'cli-demo')).stdout;
      expect(report).toContain('# MLflow decommission: cli-demo');
      expect(report).toContain('| Outcome | rolled-back |');
      expect(report).toContain('## Restored (the rollback, newest first)');
      for (const step of ['3.1', '3.2', '3.4', '3.5', '3.6']) expect(report).toMatch(new RegExp(`undo ${step.replace('.', '\\.')}: .*\\*\\*done\\*\\* — restored: .*\\(asked: rollback by alice at `));
      expect(report).toMatch(/undo 3\.3: .*\*\*skipped\*\* — left undone: skipped by frank after it was Blocked \(restoreBuildTrigger failed \(injected\)\)/);
      expect(report).toMatch(/\*\*approve\*\* phase-0 by dana — spot-checked 3 runs/);
      expect(report).toMatch(/\*\*retry\*\* 3\.1 by erin/);
      expect(report).toMatch(/\*\*skip\*\* 3\.4 by dana/);
      expect(report).toMatch(/\*\*rollback\*\* by alice — demo over/);
      expect(report).toMatch(/- 3\.1 Delete the MLflow Cloud Run service: .* — \*\*restored\*\*/);
      expect(report).toContain('step 3.1 Blocked: deleteMlflowService failed (injected)');

      const json = JSON.parse((await cli(tq, '--json', 'report', 'cli-demo')).stdout) as CompletionRecord;
      expect(json.compensations.map((c) => [c.step, c.state])).toEqual([
        ['3.6', 'done'],
        ['3.5', 'done'],
        ['3.4', 'done'],
        ['3.3', 'skipped'],
        ['3.2', 'done'],
        ['3.1', 'done'],
      ]);
      // The end is when the workflow closed, after the last restore; not when the rollback was asked for.
      const desc = await h.describe();
      expect(json.finishedAt).toBe(desc.closeTime?.toISOString());
      const rollbackAt = json.requests.find((q) => q.request === 'rollback')!.at;
      expect(json.finishedAt! > rollbackAt).toBe(true);
      expect(json.requests.find((q) => q.request === 'rollback')).toMatchObject({ by: 'alice', reason: 'demo over' });

      // An ended migration is not "not found": the CLI says it ended, and where its record is.
      expectRefusal(await cli(tq, 'rollback', 'cli-demo', '--reason', 'again'), 'the migration of "cli-demo" has ended rolled-back (workflow ', 'mlflow-decommission report cli-demo');
      expect((await cli(tq, 'rollback', 'cli-demo', '--reason', 'again')).stderr).not.toContain('no migration');
    });
  });
});
