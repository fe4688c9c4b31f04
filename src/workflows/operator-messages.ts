// The operator's commands, registered from the workflow function before its first await so no
// early message is lost. Each command is both a signal (the UI's Send Signal dialog) and an
// update (the CLI, which wants to hear "no" at once); both run the same check and the same
// apply. A signal that does not fit is recorded as ignored; an update's validator refuses it.
import { setHandler, type SignalDefinition } from '@temporalio/workflow';
import type { UpdateDefinition } from '@temporalio/common';
import { applyApprove, applyReject, checkApprove, checkReject } from './gates';
import * as msg from './messages';
import type { Migration } from './migration';
import { applyStop, checkStop } from './rollback';
import { event } from './status';
import { applyDecision, checkDecision } from './step-runner';

export function registerOperatorMessages(m: Migration): void {
  setHandler(msg.statusQuery, () => m.status, { description: msg.DESCRIPTIONS.status });
  handle(m, msg.approveSignal, msg.approveUpdate, (r) => checkApprove(m, r), (r) => applyApprove(m, r));
  handle(m, msg.rejectSignal, msg.rejectUpdate, (r) => checkReject(m, r), (r) => applyReject(m, r));
  handle(m, msg.retrySignal, msg.retryUpdate, (r) => checkDecision(m, r, 'retry'), (r) => applyDecision(m, r, 'retry'));
  handle(m, msg.skipSignal, msg.skipUpdate, (r) => checkDecision(m, r, 'skip'), (r) => applyDecision(m, r, 'skip'));
  handle(m, msg.rollbackSignal, msg.rollbackUpdate, (r) => checkStop(m, r, 'rollback'), (r) => applyStop(m, r, 'rollback'));
  handle(m, msg.abortSignal, msg.abortUpdate, (r) => checkStop(m, r, 'abort'), (r) => applyStop(m, r, 'abort'));
}

function handle<R>(m: Migration, signal: SignalDefinition<[R]>, update: UpdateDefinition<string, [R]>, check: (r: R) => string | undefined, apply: (r: R) => string): void {
  const description = msg.DESCRIPTIONS[signal.name as keyof typeof msg.DESCRIPTIONS];
  setHandler(
    signal,
    (r: R) => {
      const problem = check(r);
      if (problem) event(m.status, `ignored ${signal.name}: ${problem}`);
      else apply(r);
    },
    { description },
  );
  setHandler(update, (r: R) => apply(r), {
    description,
    validator: (r: R) => {
      const problem = check(r);
      if (problem) throw new Error(problem);
    },
  });
}
