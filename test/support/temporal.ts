// A real Temporal server per test file (the CLI dev server, or the time-skipping test server),
// one workflow bundle per file, and a fresh worker and task queue per test.
import { join } from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker, type WorkflowBundle } from '@temporalio/worker';
import type { WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { devServerExecutable, testServerExecutable } from '../../dev/temporal';
import { SEARCH_ATTRIBUTES } from '../../src/temporal/search-attributes';
import type { MigrationStatus } from '../../src/workflows/messages';

let runtimeInstalled = false;
function quietRuntime() {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  Runtime.install({ logger: new DefaultLogger('WARN') });
}

export async function startDevServer(): Promise<TestWorkflowEnvironment> {
  quietRuntime();
  return TestWorkflowEnvironment.createLocal({ server: { executable: devServerExecutable(), searchAttributes: SEARCH_ATTRIBUTES } });
}

export async function startTimeSkippingServer(): Promise<TestWorkflowEnvironment> {
  quietRuntime();
  const env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: testServerExecutable() } });
  // The test server has no --search-attribute flag; it does take the operator call.
  await env.connection.operatorService.addSearchAttributes({
    namespace: 'default',
    searchAttributes: Object.fromEntries(SEARCH_ATTRIBUTES.map((k) => [k.name, temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD])),
  });
  return env;
}

let bundle: Promise<WorkflowBundle> | undefined;
export function workflowBundle(): Promise<WorkflowBundle> {
  bundle ??= bundleWorkflowCode({ workflowsPath: join(process.cwd(), 'src/workflows/index.ts'), logger: new DefaultLogger('WARN') });
  return bundle;
}

let queue = 0;
export async function withWorker<T>(env: TestWorkflowEnvironment, activities: object, fn: (taskQueue: string) => Promise<T>): Promise<T> {
  const taskQueue = `test-${process.pid}-${++queue}`;
  const worker = await Worker.create({ connection: env.nativeConnection, namespace: env.namespace ?? 'default', taskQueue, workflowBundle: await workflowBundle(), activities });
  return worker.runUntil(fn(taskQueue));
}

/** Polls the status query until `predicate` holds; the last status is in the error if it never does. */
export async function waitForStatus(handle: WorkflowHandle, predicate: (s: MigrationStatus) => boolean, timeoutMs = 30_000): Promise<MigrationStatus> {
  const deadline = Date.now() + timeoutMs;
  let last: MigrationStatus | undefined;
  while (Date.now() < deadline) {
    try {
      last = await handle.query<MigrationStatus>('status');
      if (predicate(last)) return last;
    } catch {
      // not started yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`status never matched; last: ${JSON.stringify({ state: last?.state, phase: last?.phase, waitingFor: last?.waitingFor, events: last?.events.slice(-5) })}`);
}
