// Recorded histories must replay on the current workflow code: a change that would break a
// running migration fails here. Guard such changes with patched(); never re-record these
// histories (that would drop the guard for migrations still open on the old code).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { workflowIdFor } from '../../src/config/schema';
import { workflowBundle } from '../support/temporal';

const dir = join(process.cwd(), 'test/histories');
const files = readdirSync(dir).filter((f) => f.endsWith('.json'));

interface JsonPayloads {
  payloads?: Array<{ data?: string }>;
}

interface JsonHistory {
  events: Array<{
    workflowExecutionStartedEventAttributes?: { input?: JsonPayloads };
    markerRecordedEventAttributes?: { markerName?: string; details?: Record<string, JsonPayloads> };
  }>;
}

/** Every `patched('…')` id in the workflow code. */
function patchIdsInWorkflowCode(): string[] {
  const src = join(process.cwd(), 'src/workflows');
  const code = readdirSync(src).filter((f) => f.endsWith('.ts')).map((f) => readFileSync(join(src, f), 'utf8')).join('\n');
  return [...new Set([...code.matchAll(/\bpatched\(\s*['"`]([^'"`]+)['"`]\s*\)/g)].map((m) => m[1]!))].sort();
}

/** The patch ids a history's markers carry (the SDK's `core_patch` marker, its id in the payload). */
function patchMarkers(history: JsonHistory): string[] {
  return history.events.flatMap((e) => {
    const marker = e.markerRecordedEventAttributes;
    if (marker?.markerName !== 'core_patch') return [];
    return Object.values(marker.details ?? {}).flatMap((d) => (d.payloads ?? []).map((p) => (JSON.parse(Buffer.from(p.data ?? '', 'base64').toString()) as { id: string }).id));
  });
}

/** The workflow checks its own ID against the target, so replay under the ID it ran with. The SDK takes the JSON form as it is. */
function load(file: string) {
  const history = JSON.parse(readFileSync(join(dir, file), 'utf8')) as JsonHistory;
  const data = history.events[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0]?.data;
  if (data === undefined) throw new Error(`${file}: the first event carries no workflow input`);
  const input = JSON.parse(Buffer.from(data, 'base64').toString()) as { target: string };
  return { workflowId: workflowIdFor(input.target), history };
}

describe('recorded histories', () => {
  it('include the approval path and the rollback path', () => {
    expect(files).toEqual(expect.arrayContaining(['approval-path.json', 'rollback-path.json']));
  });

  it('none carries a password, a connection string with one, or a secret value', () => {
    for (const file of files) {
      const text = readFileSync(join(dir, file), 'utf8');
      expect(text, file).not.toMatch(/[a-z]+:\/\/[^\s"/:@]+:[^\s"/@]+@/i);
      expect(text, file).not.toMatch(/mlflow-(db-password|tracking-token)-v\d|BEGIN PRIVATE KEY|"password"/);
    }
  });

  // A patched() branch no history takes is a branch replay never checks: record one (never re-record old ones).
  it('every patched() id in src/workflows has a recorded history that contains its marker', () => {
    const ids = patchIdsInWorkflowCode();
    expect(ids.length).toBeGreaterThan(0);
    const recorded = new Set(files.flatMap((f) => patchMarkers(load(f).history)));
    expect(ids.filter((id) => !recorded.has(id))).toEqual([]);
  });

  it.each(files)('%s replays without nondeterminism', async (file) => {
    const { workflowId, history } = load(file);
    const result = await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history, workflowId);
    expect(result).toBeUndefined();
  });

  // What lets tests shorten the heartbeat timeout (test/support/heartbeat-timeout.ts) without a
  // patch: a ScheduleActivityTask command is matched on its type and id, not on its timeouts.
  it.each(files)('%s replays on code that schedules its activities with another heartbeat timeout', async (file) => {
    const { workflowId, history } = load(file);
    const bundle = await workflowBundle([join(process.cwd(), 'test/support/heartbeat-timeout.ts')]);
    expect(await Worker.runReplayHistory({ workflowBundle: bundle }, history, workflowId)).toBeUndefined();
  });

  it('all replay together through runReplayHistories', async () => {
    const histories = files.map(load);
    const results = [];
    for await (const r of Worker.runReplayHistories({ workflowBundle: await workflowBundle() }, histories)) results.push(r);
    expect(results.map((r) => r.error?.message)).toEqual(files.map(() => undefined));
    expect(results).toHaveLength(files.length);
  });
});
