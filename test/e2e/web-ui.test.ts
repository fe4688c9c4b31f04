// The operator's path through the real Temporal Web UI, in Debian's Chromium, over the demo's
// deployment and the real activities: start the migration from the Start Workflow form, see it
// wait at its first gate in the current details, approve from the Send a Signal dialog (name
// picked from the dropdown), see a step Blocked by an injected 403, clear it and send retry.
// Screenshots land in test-results/screenshots (the README uses them).
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { demoFaults } from '../../dev/demo-data';
import { createDeployment, type Deployment } from '../../dev/deployment';
import { createActivities } from '../../src/activities';
import { createGcpClients, type GcpClients } from '../../src/adapters/gcp/clients';
import { createGcsObjectStore } from '../../src/adapters/gcp/gcs-object-store';
import { createDatabases, type Databases } from '../../src/adapters/postgres';
import { configFileSchema } from '../../src/config/schema';
import { migrationResult } from '../../src/temporal/client';
import { useTestServer, waitForStatus, workflowBundle } from '../support/temporal';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const shots = join(process.cwd(), 'test-results', 'screenshots');
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && process.env.REQUIRE_CHROMIUM) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH); CI requires the browser test`);
if (!haveChromium) console.warn(`web UI test skipped: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);

describe.skipIf(!haveChromium)('Temporal Web UI', () => {
  const server = useTestServer({ ui: true });
  let browser: Browser;
  let ui: string;
  let deployment: Deployment;
  let gcp: GcpClients;
  let databases: Databases;

  beforeAll(async () => {
    ui = server.uiUrl;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-gpu'],
    });
    mkdirSync(shots, { recursive: true });
    // The demo's deployment, with 3.1's delete failing (403) until the operator clears the fault.
    deployment = await createDeployment({ adminUrl: inject('pgAdminUrl'), name: 'demo', databasePrefix: `webui${process.pid}`, dir: mkdtempSync(join(tmpdir(), 'ui-')), runs: 30, epochs: 10, operationDelayMs: 100 });
    demoFaults(deployment.sandbox, '3.1', deployment.target);
    gcp = createGcpClients({ apiEndpoint: deployment.sandbox.url, project: deployment.target.gcp.project });
    databases = createDatabases(deployment.workerEnv);
  });
  afterAll(async () => {
    await browser?.close();
    await gcp?.close();
    await databases?.close();
    await deployment?.close();
  });

  it('starts a migration from the form, approves gates from the signal dialog, shows a Blocked step, retries it, and rolls back', async () => {
    const config = configFileSchema.parse({ targets: { demo: deployment.target } });
    const activities = createActivities({ config, databases, gcp, objects: createGcsObjectStore(gcp.storage) });
    const worker = await Worker.create({ connection: server.env.nativeConnection, taskQueue: 'mlflow-decommission', workflowBundle: await workflowBundle(), activities });
    await worker.runUntil(async () => {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      await startFromForm(page, ui, { workflowId: 'mlflow-decommission-demo', input: '{"target": "demo"}' });
      await page.screenshot({ path: join(shots, '1-start-workflow.png') });

      const h = server.env.client.workflow.getHandle('mlflow-decommission-demo');
      await waitForStatus(h, (s) => s.waitingFor?.gate === 'phase-0', 60_000);
      await openWorkflow(page, ui, 'mlflow-decommission-demo');
      await openCurrentDetails(page);
      await expect.poll(() => currentDetails(page), { timeout: 20_000 }).toContain('Migration of demo · waiting-approval');
      const body = await currentDetails(page);
      expect(body).toContain('Phase 0: Data migration & verification');
      expect(body).toContain('{"gate": "phase-0", "by": "YOUR_NAME"}');
      await page.screenshot({ path: join(shots, '2-waiting-at-gate.png'), fullPage: true });

      await sendSignal(page, 'approve', '{"gate": "phase-0", "by": "alice", "comment": "approved in the UI"}');
      await page.screenshot({ path: join(shots, '3-signal-dialog.png') });
      const next = await waitForStatus(h, (s) => s.waitingFor?.gate === 'phase-2', 60_000);
      expect(next.gates.find((g) => g.id === 'phase-0')?.approval).toMatchObject({ by: 'alice', comment: 'approved in the UI' });
      await page.reload();
      await openCurrentDetails(page);
      await expect.poll(() => currentDetails(page), { timeout: 20_000 }).toContain('Phase 2: Django reads from GCS');
      await page.screenshot({ path: join(shots, '4-moved-on.png'), fullPage: true });

      // Phase 3's first delete meets the injected 403: Blocked, with what to do, in the UI.
      await sendSignal(page, 'approve', '{"gate": "phase-2", "by": "alice"}');
      await waitForStatus(h, (s) => s.state === 'blocked' && s.waitingFor?.step === '3.1', 60_000);
      await page.reload();
      await openCurrentDetails(page);
      await expect.poll(() => currentDetails(page), { timeout: 20_000 }).toContain('3.1');
      expect(await currentDetails(page)).toMatch(/Blocked[\s\S]*roles\/run\.admin[\s\S]*retry/);
      await page.screenshot({ path: join(shots, '5-blocked.png'), fullPage: true });

      // The operator fixes the cause (here: clears the fault), then sends retry from the UI.
      deployment.sandbox.clearFaults();
      await sendSignal(page, 'retry', '{"step": "3.1", "by": "alice"}');
      const after = await waitForStatus(h, (s) => s.waitingFor?.gate === 'phase-4', 60_000);
      expect(after.steps.find((s) => s.id === '3.1')).toMatchObject({ state: 'done', attempts: 2 });
      expect(deployment.sandbox.callsTo('DELETE /v2/.*/services/mlflow-server$').filter((c) => c.status < 300)).toHaveLength(1);
      await page.reload();
      await openCurrentDetails(page);
      await expect.poll(() => currentDetails(page), { timeout: 20_000 }).toContain('phase-4');
      await page.screenshot({ path: join(shots, '6-retried-and-on.png'), fullPage: true });

      // Roll back from the UI: every recorded compensation runs, newest first.
      await sendSignal(page, 'rollback', '{"by": "alice", "reason": "walkthrough"}');
      const result = await migrationResult(h);
      expect(result.outcome).toBe('rolled-back');
      expect(result.status.compensations.map((c) => c.state)).toEqual(result.status.compensations.map(() => 'done'));
      await page.reload();
      await openCurrentDetails(page);
      await expect.poll(() => currentDetails(page), { timeout: 20_000 }).toContain('rolled-back');
      await page.screenshot({ path: join(shots, '7-rolled-back.png'), fullPage: true });

      // 13.2: in the workflow list a rolled-back migration is Failed, not a green Completed, and
      // the README's MigrationState query and column find it.
      const query = encodeURIComponent('WorkflowType="mlflowDecommission" AND MigrationState="rolled-back"');
      await page.goto(`${ui}/namespaces/default/workflows?query=${query}`);
      const row = page.getByRole('row').filter({ hasText: 'mlflow-decommission-demo' }).first();
      // The badge's text is upper case in the list (FAILED).
      await expect.poll(() => row.innerText().catch(() => ''), { timeout: 20_000 }).toMatch(/\bfailed\b/i);
      expect(await row.innerText()).not.toMatch(/\bcompleted\b/i);
      await page.screenshot({ path: join(shots, '8-list-rolled-back-is-failed.png') });
    });
  });
});

async function startFromForm(page: Page, ui: string, opts: { workflowId: string; input: string }) {
  await page.goto(`${ui}/namespaces/default/workflows/start-workflow`);
  await page.locator('#workflowId').fill(opts.workflowId);
  await page.locator('#taskQueue').fill('mlflow-decommission');
  await page.locator('#workflowType').fill('mlflowDecommission');
  await typeJson(page, page.locator('[aria-label=Data]').locator('visible=true').first(), opts.input);
  // The editor commits its text on blur; the button only submits what was committed.
  await page.locator('#workflowType').click();
  await page.getByRole('button', { name: 'Start Workflow', exact: true }).click();
}


async function openWorkflow(page: Page, ui: string, workflowId: string) {
  await page.goto(`${ui}/namespaces/default/workflows`);
  await page.getByRole('link', { name: workflowId }).first().click();
  await page.waitForURL(/\/workflows\/.+\/.+\//);
}

async function openCurrentDetails(page: Page) {
  const tab = page.getByText('User Metadata', { exact: true }).locator('visible=true').first();
  await tab.waitFor({ timeout: 20_000 });
  await tab.click();
  await page.getByText('Current Details').locator('visible=true').first().waitFor({ timeout: 20_000 });
}

/** The UI renders current details (markdown) in a sandboxed frame. */
async function currentDetails(page: Page): Promise<string> {
  const texts = await Promise.all(page.frames().map((f) => f.locator('body').innerText().catch(() => '')));
  return texts.join('\n');
}

async function sendSignal(page: Page, name: string, input: string) {
  await page.getByRole('button', { name: 'More Actions' }).first().click();
  await page.getByText('Send a Signal', { exact: true }).locator('visible=true').first().click();
  await page.locator('[data-testid=signal-select-button]').locator('visible=true').first().click();
  await page.getByRole('option', { name: new RegExp(`^${name}\\b`) }).locator('visible=true').first().click();
  const dialog = page.locator('dialog[open], [role=dialog]').filter({ hasText: 'Send a Signal' }).locator('visible=true').first();
  await typeJson(page, dialog.locator('[aria-label=Data]').first(), input);
  await dialog.getByText('Encoding', { exact: true }).first().click();
  await dialog.locator('[data-testid=confirm-modal-button]').click();
}

/** The UI's JSON editor closes brackets and quotes itself: type, then replace whatever it made. */
async function typeJson(page: Page, editor: ReturnType<Page['locator']>, json: string) {
  await editor.click();
  await page.keyboard.press('ControlOrMeta+a');
  await page.keyboard.press('Backspace');
  await page.keyboard.insertText(json);
}

