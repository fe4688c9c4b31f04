// How a migration ends, as the workflow list shows it (13.2). A completed or planned migration
// returns its result; a rolled-back, rejected or aborted one fails with a typed, non-retryable
// ApplicationFailure whose details are the same result, so the list shows Failed, not a green
// Completed; a cancelled one ends Canceled. Every outcome but a plan writes the completion
// record (13.1), after the undo and whatever else arrives (non-cancellable).
import { ApplicationFailure, CancellationScope, patched } from '@temporalio/workflow';
import { execute } from './activity-options';
import { OUTCOME_FAILURE_TYPES, type MigrationOutcome, type MigrationResult } from './messages';
import type { Migration } from './migration';
import { describeFailure } from './step-runner';
import { event, now, setState } from './status';

/** The end of the run: `cause` is what stopped the phases (the cancellation, for a cancel). */
export async function finish(m: Migration, outcome: MigrationOutcome, cause?: unknown): Promise<MigrationResult> {
  const result = settle(m, outcome);
  if (outcome === 'completed' || outcome === 'planned') return result; // 5.6 wrote the record
  if (!patched('outcome-in-terminal-status')) {
    // Before 13.2: a cancel ended Cancelled with the status still `rolling-back`; others returned.
    if (outcome === 'cancelled') throw cause;
    return result;
  }
  if (outcome === 'cancelled') setState(m.status, 'cancelled');
  if (!m.ctx.dryRun) await writeRecord(m, outcome);
  if (outcome === 'cancelled') throw cause; // ends Canceled in the UI
  throw ApplicationFailure.create({
    type: OUTCOME_FAILURE_TYPES[outcome],
    message: `migration ${outcome}${m.stop ? ` by ${m.stop.by}: ${m.stop.reason}` : ''}`,
    nonRetryable: true,
    details: [result],
  });
}

/** Status text only: the outcome, the end time, and the state the list filters on. */
function settle(m: Migration, outcome: MigrationOutcome): MigrationResult {
  Object.assign(m.status, { outcome, endedAt: now() });
  // Before the patch a cancel left the state `rolling-back`: keep that upsert-free on replay.
  if (outcome !== 'cancelled') setState(m.status, outcome);
  return { outcome, status: m.status };
}

async function writeRecord(m: Migration, outcome: MigrationOutcome): Promise<void> {
  try {
    await CancellationScope.nonCancellable(() => execute('undo', 'writeCompletionRecord', [m.ctx, m.status], `Write the completion record (${outcome})`));
  } catch (err) {
    // The outcome stands without its record; the status query still holds every fact.
    event(m.status, `completion record not written: ${describeFailure(err)}`);
  }
}
