// The README's first command: `npm run demo -- --start` brings up the dev server and its UI,
// Postgres, the sandbox, the seeded deployment and the worker, starts a migration, and Ctrl-C
// takes all of it down again.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import { describe, expect, inject, it } from 'vitest';
import { freePort } from '../../dev/postgres';
import type { MigrationStatus } from '../../src/workflows/messages';

describe('npm run demo', () => {
  it('starts everything with a migration waiting at its first gate, and Ctrl-C leaves nothing running', { timeout: 300_000 }, async () => {
    const [port, uiPort] = [await freePort(), await freePort()];
    const demo = spawn(process.execPath, ['--import', 'tsx', 'dev/demo.ts', '--start', '--runs', '10', '--port', String(port), '--ui-port', String(uiPort)], {
      // The shared test server instead of a second embedded Postgres.
      env: { ...process.env, DATABASE_URL: inject('pgAdminUrl') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    demo.stdout!.on('data', (d) => (output += d));
    demo.stderr!.on('data', (d) => (output += d));
    const exited = new Promise<number | null>((resolve) => demo.on('exit', (code) => resolve(code)));
    try {
      await expect.poll(() => output, { timeout: 180_000, interval: 500 }).toContain('worker on');
      // One name for the host everywhere (the dev server's own banner says localhost), commands that work with --start, no server noise.
      expect(output).toContain(`http://localhost:${uiPort}/namespaces/default/workflows`);
      expect(output).not.toContain('127.0.0.1');
      expect(output).toContain('./run cli status demo --watch');
      expect(output).not.toContain('start demo');
      expect(output).not.toContain('npx ');

      const connection = await Connection.connect({ address: `127.0.0.1:${port}` });
      const h = new Client({ connection }).workflow.getHandle('mlflow-decommission-demo');
      await expect
        .poll(async () => (await h.query<MigrationStatus>('status').catch(() => undefined))?.waitingFor?.gate, { timeout: 120_000, interval: 1000 })
        .toBe('phase-0');
      expect((await fetch(`http://127.0.0.1:${uiPort}/`)).ok).toBe(true);
      // The UI reads history in pages of 1000, over the server's threshold: at warn level the dev server said so at every page.
      await connection.workflowService.getWorkflowExecutionHistory({ namespace: 'default', execution: { workflowId: h.workflowId }, maximumPageSize: 1000 });
      await connection.close();

      demo.kill('SIGINT');
      expect(await exited).toBe(0);
      expect(output).not.toContain('GetHistory page size'); // all its output is in once it has exited
      expect(existsSync('.demo/deployment')).toBe(false); // what it made is gone
      // The dev server and its UI are gone with it.
      await expect(fetch(`http://127.0.0.1:${uiPort}/`)).rejects.toThrow();
      await expect(Connection.connect({ address: `127.0.0.1:${port}`, connectTimeout: '2s' })).rejects.toThrow();
    } finally {
      demo.kill('SIGKILL');
    }
  });
});
