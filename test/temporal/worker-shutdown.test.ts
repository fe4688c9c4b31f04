// Issue 9: a worker asked to stop while a batch is stuck in a call that ignores cancellation gives
// up at its force time instead of hanging until the call ends.
import { Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { readWorkerEnv } from '../../src/config/environment';
import { startMigration } from '../../src/temporal/client';
import { createWorkerOptions } from '../../src/temporal/versioning';
import { demoTarget, fakeActivities } from '../support/fake-activities';
import { useTestServer, workflowBundle } from '../support/temporal';

const server = useTestServer();

describe('worker shutdown', () => {
  it('gives up at WORKER_SHUTDOWN_FORCE_TIME when an activity never returns', async () => {
    const taskQueue = `shutdown-${process.pid}`;
    const env = readWorkerEnv({ TEMPORAL_TASK_QUEUE: taskQueue, TEMPORAL_WORKER_VERSIONING: 'false', WORKER_SHUTDOWN_GRACE_TIME: '1s', WORKER_SHUTDOWN_FORCE_TIME: '2s' });
    let stuck!: () => void;
    const started = new Promise<void>((r) => (stuck = r));
    let release!: () => void;
    const never = new Promise<void>((r) => (release = r));
    const fakes = fakeActivities(demoTarget(), {
      // A call that neither returns nor looks at cancellation.
      backfillBatch: async () => {
        stuck();
        await never;
        return { summary: 'too late', actions: [] };
      },
    });
    const worker = await Worker.create(createWorkerOptions({ env, connection: server.env.nativeConnection, workflowBundle: await workflowBundle() }, fakes.activities));
    const running = worker.run();
    const h = await startMigration(server.env.client, { target: `shutdown-${process.pid}` }, { taskQueue });
    try {
      await started;
      worker.shutdown();
      // At the force time the SDK raises GracefulShutdownPeriodExpiredError and run() rejects (with
      // the native worker still held by the stuck call); src/worker.ts then exits the process.
      await expect(running).rejects.toThrow();
    } finally {
      release();
      await h.terminate('test done');
    }
  });

  it('refuses a force time that is not longer than the grace time', () => {
    expect(() => readWorkerEnv({ WORKER_SHUTDOWN_GRACE_TIME: '30s', WORKER_SHUTDOWN_FORCE_TIME: '20s' })).toThrow(
      'WORKER_SHUTDOWN_FORCE_TIME (20s) must be longer than WORKER_SHUTDOWN_GRACE_TIME (30s)',
    );
    expect(() => readWorkerEnv({ WORKER_SHUTDOWN_FORCE_TIME: 'soon' })).toThrow(/WORKER_SHUTDOWN_FORCE_TIME.*expected a duration/);
  });
});
