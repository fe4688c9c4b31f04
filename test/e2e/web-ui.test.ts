// The operator's path through the real Temporal Web UI, in Debian's Chromium, over the demo's
// deployment and the real activities: start the migration from the Start Workflow form, see it
// wait at its first gate in the current details, approve from the Send an Update dialog, read
// what phase-2 will delete, see a step Blocked by an injected 403, clear it and send retry, see a
// refused signal told, roll back, and tell the outcome apart in the list. Screenshots land in
// test-results/screenshots, or in SCREENSHOTS_DIR (docs/screenshots: the README's).
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
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
import { migrationResult, startMigration } from '../../src/temporal/client';
import { useTestServer, waitForStatus, workflowBundle } from '../support/temporal';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
// SCREENSHOTS_DIR=docs/screenshots regenerates the README's.
const shots = resolve(process.env.SCREENSHOTS_DIR ?? join('test-results', 'screenshots'));
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
    deployment = await createDeployment({ adminUrl: inject('pgAdminUrl'), name: 'demo', databasePrefix: `webui${process.pid}`, dir: mkdtempSync(join(tmpdir(), 'ui-')), runs: 200, epochs: 10, operationDelayMs: 100 });
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

  it('starts a migration from the form, approves with Send an Update, names what phase-2 deletes, shows a Blocked step, retries it, shows a refused signal, rolls back, and tells the outcome apart in the list', async () => {
    const config = configFileSchema.parse({ targets: { demo: deployment.target } });
    const activities = createActivities({ config, databases, gcp, objects: createGcsObjectStore(gcp.storage) });
    const worker = await Worker.create({ connection: server.env.nativeConnection, taskQueue: 'mlflow-decommission', workflowBundle: await workflowBundle(), activities });
    await worker.runUntil(async () => {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      await fillStartForm(page, ui, { workflowId: 'mlflow-decommission-demo', input: '{"target": "demo"}', summary: 'Decommission MLflow for demo' });
      // The form scrolls inside the page: a taller window shows it down to the Summary.
      await page.setViewportSize({ width: 1400, height: 1700 });
      await page.screenshot({ path: join(shots, '1-start-workflow.png') });
      await page.setViewportSize({ width: 1400, height: 1000 });
      await page.getByRole('button', { name: 'Start Workflow', exact: true }).click();

      const h = server.env.client.workflow.getHandle('mlflow-decommission-demo');
      // A plan of the same target, to be told apart from the migration in the list at the end.
      const plan = await startMigration(server.env.client, { target: 'demo', dryRun: true }, { taskQueue: 'mlflow-decommission' });
      await waitForStatus(h, (s) => s.waitingFor?.gate === 'phase-0', 120_000);
      expect(await (await h.describe()).staticSummary()).toBe('Decommission MLflow for demo');
      await openWorkflow(page, ui, 'mlflow-decommission-demo');
      await openCurrentDetails(page);
      await expect.poll(() => currentDetails(page), { timeout: 20_000 }).toContain('Migration of demo · waiting-approval');
      const body = await currentDetails(page);
      expect(body).toContain('Phase 0: Data migration & verification');
      expect(body).toContain('{"gate": "phase-0", "by": "YOUR_NAME"}');
      await page.screenshot({ path: join(shots, '2-waiting-at-gate.png'), fullPage: true });

      // The update dialog: a refusal would show in the dialog; the screenshot has it open, filled in.
      await sendUpdate(page, 'approve', '{"gate": "phase-0", "by": "alice", "comment": "approved in the UI"}', join(shots, '3-update-dialog.png'));
      const next = await waitForStatus(h, (s) => s.waitingFor?.gate === 'phase-2', 120_000);
      expect(next.gates.find((g) => g.id === 'phase-0')?.approval).toMatchObject({ by: 'alice', comment: 'approved in the UI' });
      await page.reload();
      await openCurrentDetails(page);
      await expect.poll(() => currentDetails(page), { timeout: 20_000 }).toContain('Phase 2: Django reads from GCS');
      // The gate before deleting names every resource Phase 3 deletes, by its full name.
      const gate2 = await currentDetails(page);
      for (const name of ['gs://demo-mlflow-artifacts', 'projects/demo-project/instances/mlflow-db', 'services/mlflow-server', 'trigger mlflow-server', 'serviceAccounts/mlflow-server@demo-project.iam.gserviceaccount.com', 'secrets/mlflow-db-password']) {
        expect(gate2).toContain(name);
      }
      // Current Details scrolls inside the page: a taller window shows the gate's checks.
      await page.setViewportSize({ width: 1400, height: 2100 });
      await page.screenshot({ path: join(shots, '4-what-phase-3-deletes.png') });
      await page.setViewportSize({ width: 1400, height: 1000 });

      // Phase 3's first delete meets the injected 403: Blocked, with what to do, in the UI.
      await sendUpdate(page, 'approve', '{"gate": "phase-2", "by": "alice"}');
      await waitForStatus(h, (s) => s.state === 'blocked' && s.waitingFor?.step === '3.1', 120_000);
      await page.reload();
      await openCurrentDetails(page);
      await expect.poll(() => currentDetails(page), { timeout: 20_000 }).toContain('3.1');
      expect(await currentDetails(page)).toMatch(/Blocked[\s\S]*roles\/run\.admin[\s\S]*retry/);
      await page.screenshot({ path: join(shots, '5-blocked.png'), fullPage: true });

      // The operator fixes the cause (here: clears the fault), then sends retry, saying who.
      deployment.sandbox.clearFaults();
      await sendUpdate(page, 'retry', '{"step": "3.1", "by": "alice"}');
      const after = await waitForStatus(h, (s) => s.waitingFor?.gate === 'phase-4', 120_000);
      expect(after.steps.find((s) => s.id === '3.1')).toMatchObject({ state: 'done', attempts: 2 });
      expect(after.events.map((e) => e.message)).toContain('retry 3.1 by alice');
      expect(deployment.sandbox.callsTo('DELETE /v2/.*/services/mlflow-server$').filter((c) => c.status < 300)).toHaveLength(1);
      await page.reload();
      await openCurrentDetails(page);
      await expect.poll(() => currentDetails(page), { timeout: 20_000 }).toContain('phase-4');
      await page.screenshot({ path: join(shots, '6-retried-and-on.png'), fullPage: true });

      // A signal that does not fit is not silent: Current Details says it was ignored, and why (the engine's notice).
      await sendSignal(page, 'approve', '{"gate": "phase-2", "by": "bob"}', join(shots, '7-signal-dialog.png'));
      await page.reload();
      await openCurrentDetails(page);
      expect(await detailsMatching(page, /ignored approve for phase-2/)).toMatch(/ignored approve for phase-2/);
      await page.screenshot({ path: join(shots, '8-refused-signal.png'), fullPage: true });

      // Roll back from the UI: every recorded compensation runs, newest first.
      await sendUpdate(page, 'rollback', '{"by": "alice", "reason": "walkthrough"}');
      const result = await migrationResult(h);
      expect(result.outcome).toBe('rolled-back');
      expect(result.status.compensations.map((c) => c.state)).toEqual(result.status.compensations.map(() => 'done'));
      await page.reload();
      await openCurrentDetails(page);
      await expect.poll(() => currentDetails(page), { timeout: 20_000 }).toContain('rolled-back');
      await page.screenshot({ path: join(shots, '9-rolled-back.png'), fullPage: true });

      // 13.2: the list tells a rolled-back migration (Failed) from the completed plan at a glance.
      expect((await migrationResult(plan)).outcome).toBe('planned');
      await page.goto(`${ui}/namespaces/default/workflows`);
      const rowOf = (id: string) => page.locator('tr, [role=row]').filter({ has: page.getByRole('link', { name: id, exact: true }) }).first();
      // The status badge's text is upper-cased by CSS, which innerText follows.
      await expect.poll(() => rowOf(plan.workflowId).innerText(), { timeout: 20_000 }).toMatch(/\bcompleted\b/i);
      const rolledBackRow = await rowOf('mlflow-decommission-demo').innerText();
      expect(rolledBackRow).not.toMatch(/\bcompleted\b/i);
      expect(rolledBackRow).toMatch(/\bfailed\b/i);
      await page.screenshot({ path: join(shots, '10-workflow-list.png') });

      // The README's MigrationState query finds it.
      const query = encodeURIComponent('WorkflowType="mlflowDecommission" AND MigrationState="rolled-back"');
      await page.goto(`${ui}/namespaces/default/workflows?query=${query}`);
      await expect.poll(() => rowOf('mlflow-decommission-demo').innerText().catch(() => ''), { timeout: 20_000 }).toMatch(/\bfailed\b/i);
    });
  }, 300_000);
});

/** Fills the Start Workflow form; the Summary is under More options. Not submitted: the caller takes the screenshot first. */
async function fillStartForm(page: Page, ui: string, opts: { workflowId: string; input: string; summary: string }) {
  await page.goto(`${ui}/namespaces/default/workflows/start-workflow`);
  await page.locator('#workflowId').fill(opts.workflowId);
  await page.locator('#taskQueue').fill('mlflow-decommission');
  await page.locator('#workflowType').fill('mlflowDecommission');
  await typeJson(page, page.locator('[aria-label=Data]').locator('visible=true').first(), opts.input);
  // Out of the editor first: while it has focus, the first click elsewhere is swallowed.
  await page.locator('#workflowType').click();
  await page.getByRole('button', { name: 'More options' }).click();
  await page.getByText('User Metadata', { exact: true }).waitFor();
  // User Metadata → Summary: a markdown editor (Edit / Preview) below its label.
  const summary = page.locator('xpath=//*[normalize-space(text())="Summary"]/following::*[@role="textbox"][1]').first();
  await summary.click();
  await page.keyboard.insertText(opts.summary);
  // The editors commit their text on blur; the button only submits what was committed.
  await page.locator('#workflowType').click();
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

/** Current Details once it matches, or as it is after 20 s (for a soft expectation to report). */
async function detailsMatching(page: Page, pattern: RegExp): Promise<string> {
  let text = '';
  for (let i = 0; i < 40 && !pattern.test(text); i++) {
    text = await currentDetails(page);
    if (!pattern.test(text)) await page.waitForTimeout(500);
  }
  return text;
}

/** Send a Signal: fire and forget; a signal that does not fit is only told in Current Details. */
async function sendSignal(page: Page, name: string, input: string, shot?: string) {
  await page.getByRole('button', { name: 'More Actions' }).first().click();
  await page.getByText('Send a Signal', { exact: true }).locator('visible=true').first().click();
  await page.locator('[data-testid=signal-select-button]').locator('visible=true').first().click();
  await page.getByRole('option', { name: new RegExp(`^${name}\\b`) }).locator('visible=true').first().click();
  const dialog = page.locator('dialog[open], [role=dialog]').filter({ hasText: 'Send a Signal' }).locator('visible=true').first();
  await typeJson(page, dialog.locator('[aria-label=Data]').first(), input);
  // The first Submit is swallowed while the editor has focus: click outside it first.
  await dialog.getByText('Encoding', { exact: true }).first().click();
  if (shot) await page.screenshot({ path: shot });
  await dialog.locator('[data-testid=confirm-modal-button]').click();
}

/** Send an Update: the workflow answers, so a refusal shows in the dialog at once. */
async function sendUpdate(page: Page, name: string, input: string, shot?: string) {
  await page.getByRole('button', { name: 'More Actions' }).first().click();
  await page.getByText('Send an Update', { exact: true }).locator('visible=true').first().click();
  const dialog = page.locator('dialog[open], [role=dialog]').filter({ hasText: 'Send an Update' }).locator('visible=true').first();
  // A dropdown of the workflow's updates (with their descriptions) when the worker answers, else a text field.
  const select = dialog.locator('[data-testid$=select-button]').first();
  const text = dialog.locator('input[data-testid=update-name]').first();
  await select.or(text).first().waitFor();
  if (await select.isVisible()) {
    await select.click();
    await page.getByRole('option', { name: new RegExp(`^${name}\\b`) }).locator('visible=true').first().click();
  } else await text.fill(name);
  await typeJson(page, dialog.locator('[aria-label=Data]').first(), input);
  // The first Submit is swallowed while the editor has focus: click outside it first.
  await dialog.getByText('Update ID (optional)', { exact: true }).first().click();
  if (shot) await page.screenshot({ path: shot });
  await dialog.locator('[data-testid=confirm-modal-button]').click();
  await dialog.waitFor({ state: 'hidden', timeout: 20_000 });
}

/** The UI's JSON editor closes brackets and quotes itself: type, then replace whatever it made. */
async function typeJson(page: Page, editor: ReturnType<Page['locator']>, json: string) {
  await editor.click();
  await page.keyboard.press('ControlOrMeta+a');
  await page.keyboard.press('Backspace');
  await page.keyboard.insertText(json);
}

