// The operator's path through the real Temporal Web UI, in Debian's Chromium: start the
// migration from the Start Workflow form, see it wait at its first gate in the current details,
// approve from the Send a Signal dialog (name picked from the dropdown), and see it move on.
// Screenshots land in test-results/screenshots (the README uses them).
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { TestWorkflowEnvironment as Env } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../dev/postgres';
import { devServerExecutable } from '../../dev/temporal';
import { SEARCH_ATTRIBUTES } from '../../src/search-attributes';
import { demoTarget, fakeActivities } from '../support/fake-activities';
import { waitForStatus, workflowBundle } from '../support/temporal';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const shots = join(process.cwd(), 'test-results', 'screenshots');
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`web UI test skipped: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);

describe.skipIf(!haveChromium)('Temporal Web UI', () => {
  let env: TestWorkflowEnvironment;
  let browser: Browser;
  let ui: string;

  beforeAll(async () => {
    const uiPort = await freePort();
    env = await Env.createLocal({ server: { executable: devServerExecutable(), ui: true, uiPort, searchAttributes: SEARCH_ATTRIBUTES } });
    ui = `http://127.0.0.1:${uiPort}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-gpu'],
    });
    mkdirSync(shots, { recursive: true });
  });
  afterAll(async () => {
    await browser?.close();
    await env?.teardown();
  });

  it('starts a migration from the form, shows the waiting gate, and approves it from the signal dialog', async () => {
    const fakes = fakeActivities(demoTarget());
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue: 'mlflow-decommission', workflowBundle: await workflowBundle(), activities: fakes.activities });
    await worker.runUntil(async () => {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      await startFromForm(page, ui, { workflowId: 'mlflow-decommission-demo', input: '{"target": "demo"}' });
      await page.screenshot({ path: join(shots, '1-start-workflow.png') });

      const h = env.client.workflow.getHandle('mlflow-decommission-demo');
      await waitForStatus(h, (s) => s.waitingFor?.gate === 'phase-0');
      await openWorkflow(page, ui, 'mlflow-decommission-demo');
      await openCurrentDetails(page);
      await expect.poll(() => currentDetails(page), { timeout: 20_000 }).toContain('Migration of demo · waiting-approval');
      const body = await currentDetails(page);
      expect(body).toContain('Phase 0: Data migration & verification');
      expect(body).toContain('{"gate": "phase-0", "by": "YOUR_NAME"}');
      await page.screenshot({ path: join(shots, '2-waiting-at-gate.png'), fullPage: true });

      await sendSignal(page, 'approve', '{"gate": "phase-0", "by": "alice", "comment": "approved in the UI"}');
      await page.screenshot({ path: join(shots, '3-signal-dialog.png') });
      const next = await waitForStatus(h, (s) => s.waitingFor?.gate === 'phase-2');
      expect(next.gates.find((g) => g.id === 'phase-0')?.approval).toMatchObject({ by: 'alice', comment: 'approved in the UI' });
      await page.reload();
      await openCurrentDetails(page);
      await expect.poll(() => currentDetails(page), { timeout: 20_000 }).toContain('Phase 2: Django reads from GCS');
      await page.screenshot({ path: join(shots, '4-moved-on.png'), fullPage: true });
      await h.terminate('UI test over');
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

