// The operator's CLI as a subprocess against a real dev server and a worker with substituted activities.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { migrationResult } from '../../src/temporal/client';
import { demoTarget, fakeActivities } from '../support/fake-activities';
import { useTestServer, waitForStatus, withWorker } from '../support/temporal';

const exec = promisify(execFile);
const server = useTestServer();

function cli(taskQueue: string, ...args: string[]) {
  return exec(process.execPath, ['bin/mlflow-decommission.cjs', ...args], {
    env: { ...process.env, TEMPORAL_ADDRESS: server.env.address, TEMPORAL_TASK_QUEUE: taskQueue, USER: 'dana' },
  }).catch((err: { code: number; stdout: string; stderr: string }) => ({ ...err, failed: true }));
}

describe('mlflow-decommission CLI', () => {
  it('plans, starts, shows status, approves, and explains a refused request with a non-zero exit', async () => {
    const fakes = fakeActivities(demoTarget());
    await withWorker(server.env, fakes.activities, async (tq) => {
      const plan = await cli(tq, 'plan', 'cli-demo');
      expect(plan.stdout).toMatch(/3\.1\s+fake\.deleteMlflowService/);
      expect(fakes.acted).toEqual([]);

      const started = await cli(tq, '--json', 'start', 'cli-demo', '--bake-period', '1s');
      expect(JSON.parse(started.stdout).workflowId).toBe('mlflow-decommission-cli-demo');
      const again = (await cli(tq, 'start', 'cli-demo')) as { failed?: boolean; code: number; stderr: string };
      expect(again.failed).toBe(true);
      expect(again.code).toBe(2);
      expect(again.stderr).toContain('already running as workflow mlflow-decommission-cli-demo');

      const h = server.env.client.workflow.getHandle('mlflow-decommission-cli-demo');
      await waitForStatus(h, (s) => s.waitingFor?.gate === 'phase-0');
      const status = await cli(tq, 'status', 'cli-demo');
      expect(status.stdout).toContain('waiting-approval');
      expect(status.stdout).toContain('next: Review:');

      const wrong = (await cli(tq, 'approve', 'cli-demo', 'phase-2')) as { failed?: boolean; code: number; stderr: string };
      expect(wrong.code).toBe(2);
      expect(wrong.stderr).toContain('gate phase-2 is not waiting for approval');

      const ok = await cli(tq, 'approve', 'cli-demo', 'phase-0', '--comment', 'spot-checked 3 runs');
      expect(ok.stdout).toContain('approved gate phase-0');
      const s = await waitForStatus(h, (x) => x.waitingFor?.gate === 'phase-2');
      expect(s.gates[0].approval).toMatchObject({ by: 'dana', comment: 'spot-checked 3 runs' });

      const rb = await cli(tq, 'rollback', 'cli-demo', '--reason', 'demo over');
      expect(rb.stdout).toContain('rolling back');
      await migrationResult(h);
      const report = await cli(tq, 'report', 'cli-demo');
      expect(report.stdout).toContain('# MLflow decommission: cli-demo');
      expect(report.stdout).toContain('phase-0: dana');
    });
  });
});
