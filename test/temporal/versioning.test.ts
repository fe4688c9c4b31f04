// Worker Deployment versioning on the real dev server: a migration is pinned to the build that
// started it, across a deploy of a new build that becomes current.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { WorkflowHandle } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { readWorkerEnv } from '../../src/config/environment';
import { commands, startMigration } from '../../src/temporal/client';
import { createWorkerOptions, deploymentVersionOf, promoteVersion } from '../../src/temporal/versioning';
import type { GateId } from '../../src/types';
import { demoTarget, fakeActivities } from '../support/fake-activities';
import { useTestServer, waitForStatus, workflowBundle } from '../support/temporal';

const server = useTestServer();

async function approveWhenWaiting(h: WorkflowHandle, gate: GateId) {
  await waitForStatus(h, (s) => s.waitingFor?.gate === gate);
  await commands.approve(h, { gate, by: 'alice' });
}

/** The build IDs of every worker that completed a workflow task of `h`. */
async function taskBuildIds(h: WorkflowHandle): Promise<Set<string>> {
  const history = await h.fetchHistory();
  return new Set((history.events ?? []).flatMap((e) => (e.workflowTaskCompletedEventAttributes ? [e.workflowTaskCompletedEventAttributes.deploymentVersion?.buildId ?? 'unversioned'] : [])));
}

async function versioningOf(h: WorkflowHandle) {
  const info = (await h.describe()).raw.workflowExecutionInfo?.versioningInfo;
  return { buildId: info?.deploymentVersion?.buildId, behavior: info?.behavior };
}

describe('worker versioning', () => {
  it('keeps an open migration on the build that started it when a new build becomes current', async () => {
    const taskQueue = `versioning-${process.pid}`;
    const envOf = (buildId: string) =>
      readWorkerEnv({ TEMPORAL_TASK_QUEUE: taskQueue, TEMPORAL_DEPLOYMENT_NAME: `mlflow-decommission-${process.pid}`, TEMPORAL_WORKER_BUILD_ID: buildId });
    const bundle = await workflowBundle();
    const connection = server.env.nativeConnection;
    const start = async (buildId: string, fakes: ReturnType<typeof fakeActivities>) => {
      const env = envOf(buildId);
      const worker = await Worker.create(createWorkerOptions({ env, connection, workflowBundle: bundle }, fakes.activities));
      const running = worker.run();
      const version = deploymentVersionOf(env, bundle);
      if (!version) throw new Error('versioning is on by default');
      return { worker, running, version };
    };

    const onA = fakeActivities(demoTarget());
    const a = await start('build-a', onA);
    // A first deploy: the deployment has no current version, so the worker's default makes it one.
    expect(await promoteVersion(connection, 'default', a.version, 'if-none')).toBe('promoted');
    const h = await startMigration(server.env.client, { target: `pinned-${process.pid}` }, { taskQueue });
    await waitForStatus(h, (s) => s.waitingFor?.gate === 'phase-0');

    const onB = fakeActivities(demoTarget());
    const b = await start('build-b', onB);
    try {
      expect(await promoteVersion(connection, 'default', b.version, 'if-none')).toBe('kept the current version');
      // As an operator would, with the CLI.
      const { stdout } = await promisify(execFile)(process.execPath, ['bin/mlflow-decommission.cjs', 'promote', 'build-b'], {
        env: { ...process.env, TEMPORAL_ADDRESS: server.env.address, TEMPORAL_TASK_QUEUE: taskQueue, TEMPORAL_DEPLOYMENT_NAME: b.version.deploymentName },
      });
      expect(stdout).toContain(`${b.version.deploymentName}.build-b: promoted`);
      const doneOnA = onA.acted.length;

      await approveWhenWaiting(h, 'phase-0');
      await approveWhenWaiting(h, 'phase-2');
      await approveWhenWaiting(h, 'phase-4');
      await approveWhenWaiting(h, 'closure');
      expect((await h.result()).outcome).toBe('completed');

      // Everything after the deploy ran on A: its activities, and every workflow task.
      expect(onA.acted.slice(doneOnA)).toContain('deleteMlflowService');
      expect(onA.acted).toContain('writeCompletionRecord');
      expect(onB.acted).toEqual([]);
      expect([...(await taskBuildIds(h))]).toEqual(['build-a']);
      expect(await versioningOf(h)).toEqual({ buildId: 'build-a', behavior: 1 /* VERSIONING_BEHAVIOR_PINNED */ });

      // A migration started now goes to B, the current version, and stays there.
      const h2 = await startMigration(server.env.client, { target: `pinned-b-${process.pid}` }, { taskQueue });
      await waitForStatus(h2, (s) => s.waitingFor?.gate === 'phase-0');
      expect(onB.acted).toContain('preflight');
      expect(await versioningOf(h2)).toEqual({ buildId: 'build-b', behavior: 1 });
      await h2.terminate('test done');
    } finally {
      a.worker.shutdown();
      b.worker.shutdown();
      await Promise.all([a.running, b.running]);
    }
  });

  it('runs a migration started before any version was current once the first build is promoted', async () => {
    const taskQueue = `versioning-first-${process.pid}`;
    const env = readWorkerEnv({ TEMPORAL_TASK_QUEUE: taskQueue, TEMPORAL_DEPLOYMENT_NAME: `first-${process.pid}`, TEMPORAL_WORKER_BUILD_ID: 'build-1' });
    const bundle = await workflowBundle();
    const connection = server.env.nativeConnection;
    // Started while no worker is up (or only an unversioned one was): its tasks wait.
    const h = await startMigration(server.env.client, { target: `first-${process.pid}` }, { taskQueue });
    const fakes = fakeActivities(demoTarget());
    const worker = await Worker.create(createWorkerOptions({ env, connection, workflowBundle: bundle }, fakes.activities));
    await worker.runUntil(async () => {
      const version = deploymentVersionOf(env, bundle);
      if (!version) throw new Error('versioning is on by default');
      expect(await promoteVersion(connection, 'default', version, 'if-none')).toBe('promoted');
      await waitForStatus(h, (s) => s.waitingFor?.gate === 'phase-0');
      expect(await versioningOf(h)).toEqual({ buildId: 'build-1', behavior: 1 });
      await h.terminate('test done');
    });
  });

  it('refuses to promote a build no worker runs, saying how to do it by hand', async () => {
    const version = { deploymentName: `mlflow-decommission-${process.pid}`, buildId: 'no-such-build' };
    await expect(promoteVersion(server.env.nativeConnection, 'default', version, 'always', { timeoutMs: 1_000 })).rejects.toThrow(
      `temporal worker deployment set-current-version --deployment-name ${version.deploymentName} --build-id no-such-build`,
    );
  });
});
