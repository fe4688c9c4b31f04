// A small, seeded `npm run chaos`: the worker is SIGKILLed in the backfill, the export and the
// Phase 3 deletes, the Temporal server restarts mid-phase, and the result equals a clean run's.
import { describe, expect, inject, it } from 'vitest';
import { runChaos } from '../../dev/chaos';

describe('chaos', () => {
  it('survives SIGKILLs, a Temporal restart and cut connections without losing a point or acting twice', { timeout: 900_000 }, async () => {
    const summary = await runChaos({ adminUrl: inject('pgAdminUrl'), kills: 3, runs: 20, seed: 7, faultRate: 0.01, log: (l) => console.log(`${new Date().toISOString()} ${l}`) });
    expect(summary.checks.filter((c) => !c.ok)).toEqual([]);
    expect(summary.kills).toBeGreaterThanOrEqual(2);
    expect(summary.serverRestarts).toBe(1);
  });
});
