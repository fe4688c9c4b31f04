// What the workflow list shows: the search attributes, upserted only when one changes (11.4).
import { defaultPayloadConverter } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { commands, startMigration } from '../../src/temporal/client';
import { demoTarget, fakeActivities } from '../support/fake-activities';
import { useTestServer, waitForStatus, withWorker } from '../support/temporal';

const server = useTestServer();

describe('search attributes', () => {
  it('are upserted only when a value changes', async () => {
    const fakes = fakeActivities(demoTarget({ approvals: { 'phase-0': false, 'phase-2': true } }));
    await withWorker(server.env, fakes.activities, async (tq) => {
      const h = await startMigration(server.env.client, { target: 'upserts' }, { taskQueue: tq });
      await waitForStatus(h, (s) => s.waitingFor?.gate === 'phase-2');
      const events = (await h.fetchHistory()).events ?? [];
      const upserts = events.flatMap((e) => (e.upsertWorkflowSearchAttributesEventAttributes ? [e.upsertWorkflowSearchAttributesEventAttributes.searchAttributes?.indexedFields ?? {}] : []));
      const seen = new Map<string, unknown>();
      const unchanged: string[] = [];
      for (const fields of upserts) {
        const values = Object.entries(fields).map(([k, p]) => [k, JSON.stringify(defaultPayloadConverter.fromPayload(p))] as const);
        if (values.every(([k, v]) => seen.get(k) === v)) unchanged.push(values.map(([k, v]) => `${k}=${v}`).join(' '));
        for (const [k, v] of values) seen.set(k, v);
      }
      expect(unchanged).toEqual([]);
      // Phases 0, 1 and 2 each show in the list, and the gate that waits.
      expect(upserts.length).toBeGreaterThanOrEqual(4);
      expect((await h.describe()).searchAttributes).toMatchObject({ MigrationState: ['waiting-approval'], MigrationPhase: ['2'] });
      await commands.abort(h, { by: 'alice', reason: 'test over' });
    });
  });
});
