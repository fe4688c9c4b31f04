// A refused or unknown message is visible (issue 13.3): in the audit trail and in Current
// Details until the next state change; an unknown update or query is answered with a suggestion.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { WorkflowHandle } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { commands, startMigration } from '../../src/temporal/client';
import { unknown } from '../../src/workflows/operator-messages';
import { demoTarget, fakeActivities } from '../support/fake-activities';
import { temporalCli, useTestServer, waitForStatus, withWorker } from '../support/temporal';

const run = promisify(execFile);
const server = useTestServer();
let n = 0;

async function currentDetails(h: WorkflowHandle): Promise<string> {
  return ((await h.query('__temporal_workflow_metadata')) as { currentDetails: string }).currentDetails;
}

describe('operator messages', () => {
  it('an unknown signal sent with the temporal CLI is recorded and shown, with the name it was likely meant as', async () => {
    const fakes = fakeActivities(demoTarget());
    await withWorker(server.env, fakes.activities, async (tq) => {
      const h = await startMigration(server.env.client, { target: `msg-${++n}` }, { taskQueue: tq });
      await waitForStatus(h, (s) => s.waitingFor?.gate === 'phase-0');
      await run(temporalCli(), ['workflow', 'signal', '--address', server.env.address, '--workflow-id', h.workflowId, '--name', 'aprove', '--input', JSON.stringify({ gate: 'phase-0', by: 'bob' })]);
      const s = await waitForStatus(h, (x) => x.events.some((e) => e.message.startsWith('unknown signal')));
      expect(s.notice).toBe('unknown signal `aprove`: did you mean `approve`? Now waiting on phase-0 (approve or reject it).');
      expect(await currentDetails(h)).toContain('**Notice:** unknown signal `aprove`: did you mean `approve`?');
      expect(s.gates[0]?.state).toBe('waiting');
      await commands.abort(h, { by: 'alice', reason: 'test over' });
    });
  });

  it('an unknown update is refused with a suggestion and recorded; an unknown query is answered with one', async () => {
    const fakes = fakeActivities(demoTarget());
    await withWorker(server.env, fakes.activities, async (tq) => {
      const h = await startMigration(server.env.client, { target: `msg-${++n}` }, { taskQueue: tq });
      await waitForStatus(h, (s) => s.waitingFor?.gate === 'phase-0');
      await expect(h.executeUpdate('rollbak', { args: [{ by: 'bob', reason: 'x' }] })).rejects.toThrow();
      const err = await h.executeUpdate('rollbak', { args: [{}] }).catch((e: { cause?: Error }) => e.cause?.message);
      expect(err).toBe('unknown update `rollbak`: did you mean `rollback`?');
      await expect(h.query('stauts')).rejects.toThrow('unknown query `stauts`: did you mean `status`?');
      const s = await commands.status(h);
      expect(s.events.map((e) => e.message)).toContainEqual('unknown update `rollbak`: did you mean `rollback`?');
      expect(s.state).toBe('waiting-approval');
      await commands.abort(h, { by: 'alice', reason: 'test over' });
    });
  });

  it('an ignored signal shows in Current Details until the next state change', async () => {
    const fakes = fakeActivities(demoTarget({ approvals: { 'phase-0': false, 'phase-2': true, 'phase-4': true } }));
    await withWorker(server.env, fakes.activities, async (tq) => {
      const h = await startMigration(server.env.client, { target: `msg-${++n}` }, { taskQueue: tq });
      await waitForStatus(h, (s) => s.waitingFor?.gate === 'phase-2');
      await commands.approve(h, { gate: 'phase-2', by: 'bob' });
      await waitForStatus(h, (s) => s.waitingFor?.gate === 'phase-4');
      await h.signal('approve', { gate: 'phase-2', by: 'bob' });
      const s = await waitForStatus(h, (x) => x.notice !== undefined);
      expect(s.notice).toBe('ignored approve for phase-2: gate phase-2 was already approved by bob; now waiting on phase-4 (approve or reject it)');
      expect(await currentDetails(h)).toContain('**Notice:** ignored approve for phase-2');
      await commands.approve(h, { gate: 'phase-4', by: 'bob' });
      const after = await waitForStatus(h, (x) => x.gates.find((g) => g.id === 'phase-4')?.state === 'passed');
      expect(after.notice).toBeUndefined();
      expect(await currentDetails(h)).not.toContain('Notice');
      await commands.abort(h, { by: 'alice', reason: 'test over' });
    });
  });

  it('retry and skip record who decided, from the update and from the signal', async () => {
    const fakes = fakeActivities(demoTarget());
    fakes.failNext('cacheHistograms');
    fakes.failNext('auditReferences');
    await withWorker(server.env, fakes.activities, async (tq) => {
      const h = await startMigration(server.env.client, { target: `msg-${++n}` }, { taskQueue: tq });
      const blocked = await waitForStatus(h, (s) => s.waitingFor?.step === '0.4');
      // Current Details asks for who decides, as the CLI and the dropdown examples send it.
      expect(blocked.waitingFor?.next).toContain('`retry` with `{"step": "0.4", "by": "YOUR_NAME"}`');
      await commands.retry(h, { step: '0.4', by: 'dana' });
      await waitForStatus(h, (s) => s.waitingFor?.step === '0.7');
      await h.signal('skip', { step: '0.7', by: 'erin' });
      const s = await waitForStatus(h, (x) => x.waitingFor?.gate === 'phase-0');
      expect(s.events.map((e) => e.message)).toEqual(expect.arrayContaining(['retry 0.4 by dana', 'skip 0.7 by erin']));
      await commands.abort(h, { by: 'alice', reason: 'test over' });
    });
  });

  it('suggests the closest name, or lists the names when none is close', () => {
    expect(unknown('signal', 'aprove', ['approve', 'reject'])).toBe('unknown signal `aprove`: did you mean `approve`?');
    expect(unknown('signal', 'Approve', ['approve', 'reject'])).toBe('unknown signal `Approve`: did you mean `approve`?');
    expect(unknown('signal', 'deploy', ['approve', 'reject'])).toBe('unknown signal `deploy`: the signals are `approve`, `reject`.');
  });
});
