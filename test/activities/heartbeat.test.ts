import { MockActivityEnvironment } from '@temporalio/testing';
import { CancelledFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { heartbeat, keepAlive, keepingAlive } from '../../src/activities/heartbeat';

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('keepAlive', () => {
  it('heartbeats on a timer while an awaited call runs, repeating the latest progress', async () => {
    const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 1_000 });
    const beats: unknown[] = [];
    env.on('heartbeat', (d) => beats.push(d));
    await env.run(() =>
      keepAlive({ step: 'start' }, async () => {
        await wait(1_200); // silent for longer than the heartbeat timeout
        heartbeat({ step: 'half' });
        await wait(1_200);
      }),
    );
    // A beat every 250 ms: ~5 of each (at least 2 on a loaded machine); 1 of each without the timer.
    expect(beats.filter((b) => (b as { step: string }).step === 'start').length).toBeGreaterThanOrEqual(2);
    expect(beats.filter((b) => (b as { step: string }).step === 'half').length).toBeGreaterThanOrEqual(3);
    expect(beats.at(-1)).toEqual({ step: 'half' });
  });

  it('stops beating once nothing was reported for stallMs, so a hung call meets the heartbeat timeout', async () => {
    const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 400 });
    const beats: number[] = [];
    env.on('heartbeat', () => beats.push(Date.now()));
    const started = Date.now();
    await env.run(() => keepAlive(undefined, () => wait(1_500), 300));
    // Beats during the first 300 ms only (none at all on a machine too loaded to fire the timer):
    // after that a hung call goes silent.
    expect(beats.every((t) => t - started < 700)).toBe(true);
  });

  it('before any progress, repeats the previous attempt\'s details, so a retry keeps its resume point', async () => {
    const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 1_000, heartbeatDetails: { cursor: 'run-41' } });
    const beats: unknown[] = [];
    env.on('heartbeat', (d) => beats.push(d));
    await env.run(() => keepAlive(undefined, () => wait(1_200)));
    expect(beats.length).toBeGreaterThanOrEqual(2);
    expect(new Set(beats.map((b) => JSON.stringify(b)))).toEqual(new Set([JSON.stringify({ cursor: 'run-41' })]));
  });

  it('hands the work the activity\'s cancellation signal', async () => {
    const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 400 });
    const run = env.run(() =>
      keepAlive(undefined, async (signal) => {
        for (;;) {
          signal.throwIfAborted();
          await wait(50);
        }
      }),
    );
    await wait(200);
    env.cancel();
    await expect(run).rejects.toBeInstanceOf(CancelledFailure);
  });

  it('outside a worker, runs the work with a signal that never aborts', async () => {
    expect(await keepAlive({ x: 1 }, async (signal) => signal.aborted)).toBe(false);
  });

  it('keepingAlive keeps every activity\'s name, arguments and result', async () => {
    const acts = keepingAlive({ add: async (a: number, b: number) => a + b, fail: async () => Promise.reject(new Error('no')) });
    expect(Object.keys(acts)).toEqual(['add', 'fail']);
    expect(await new MockActivityEnvironment({ heartbeatTimeoutMs: 400 }).run(acts.add, 2, 3)).toBe(5);
    await expect(acts.fail()).rejects.toThrow('no');
  });
});
