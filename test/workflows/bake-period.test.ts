// The bake period is a durable timer: on the time-skipping server, a week passes in seconds.
import { describe, expect, it } from 'vitest';
import { migrationResult, startMigration } from '../../src/temporal/client';
import { demoTarget, fakeActivities } from '../support/fake-activities';
import { useTestServer, withWorker } from '../support/temporal';

const server = useTestServer({ timeSkipping: true });

describe('bake period', () => {
  it('waits the default 7 days on a durable timer, with a summary, before the billing check', async () => {
    const noApprovals = { 'phase-0': false, 'phase-2': false, 'phase-4': false, closure: false };
    const fakes = fakeActivities(demoTarget({ bakePeriod: '7 days', approvals: noApprovals }));
    const times: Record<string, number> = {};
    const stamp = (name: string) => async () => {
      times[name] = Date.now();
      return { summary: name, actions: [] };
    };
    fakes.activities.verifyResourcesGone = stamp('verifyResourcesGone');
    fakes.activities.checkBilling = stamp('checkBilling');
    await withWorker(server.env, fakes.activities, async (tq) => {
      const h = await startMigration(server.env.client, { target: 'bake' }, { taskQueue: tq });
      const result = await migrationResult(h);
      expect(result.outcome).toBe('completed');
      const history = await h.fetchHistory();
      const timers = history.events!.filter((e) => e.timerStartedEventAttributes);
      expect(timers).toHaveLength(1);
      expect(Number(timers[0].timerStartedEventAttributes!.startToFireTimeout!.seconds)).toBe(7 * 24 * 3600);
      const summary = JSON.parse(Buffer.from(timers[0].userMetadata!.summary!.data!).toString());
      expect(summary).toBe('Bake period: let a full billing cycle show before checking the bill (5.2) (7 days)');
    });
    // Activities run on real time: the skipped week shows up only in workflow time.
    expect(times.checkBilling - times.verifyResourcesGone).toBeLessThan(60_000);
  });
});
