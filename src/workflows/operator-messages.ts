// The operator's commands, registered from the workflow function before its first await so no
// early message is lost. Each command is both a signal (the UI's Send Signal dialog) and an
// update (the CLI, which wants to hear "no" at once); both run the same check and the same
// apply. A signal that does not fit is recorded as ignored and shown in Current Details; an
// update's validator refuses it. A name the workflow does not know is recorded the same way.
import { ApplicationFailure, setDefaultQueryHandler, setDefaultSignalHandler, setDefaultUpdateHandler, setHandler, type SignalDefinition } from '@temporalio/workflow';
import type { UpdateDefinition } from '@temporalio/common';
import { closest, distance } from 'fastest-levenshtein';
import { applyApprove, applyReject, checkApprove, checkReject } from './gates';
import * as msg from './messages';
import type { Migration } from './migration';
import { applyStop, checkStop } from './rollback';
import { nextHint, notice } from './status';
import { applyDecision, checkDecision } from './step-runner';

const COMMANDS = ['approve', 'reject', 'retry', 'skip', 'rollback', 'abort'];

export function registerOperatorMessages(m: Migration): void {
  setHandler(msg.statusQuery, () => m.status, { description: msg.DESCRIPTIONS.status });
  handle(m, msg.approveSignal, msg.approveUpdate, (r) => checkApprove(m, r), (r) => applyApprove(m, r));
  handle(m, msg.rejectSignal, msg.rejectUpdate, (r) => checkReject(m, r), (r) => applyReject(m, r));
  handle(m, msg.retrySignal, msg.retryUpdate, (r) => checkDecision(m, r, 'retry'), (r) => applyDecision(m, r, 'retry'));
  handle(m, msg.skipSignal, msg.skipUpdate, (r) => checkDecision(m, r, 'skip'), (r) => applyDecision(m, r, 'skip'));
  handle(m, msg.rollbackSignal, msg.rollbackUpdate, (r) => checkStop(m, r, 'rollback'), (r) => applyStop(m, r, 'rollback'));
  handle(m, msg.abortSignal, msg.abortUpdate, (r) => checkStop(m, r, 'abort'), (r) => applyStop(m, r, 'abort'));
  // 13.3: `temporal workflow signal --name aprove` reports success; without these it would vanish.
  setDefaultSignalHandler((name) => {
    const now = waitingOn(m);
    notice(m.status, `${unknown('signal', name, COMMANDS)} ${now.charAt(0).toUpperCase()}${now.slice(1)}.`);
  });
  setDefaultUpdateHandler((name) => {
    const said = unknown('update', name, COMMANDS);
    notice(m.status, said);
    throw ApplicationFailure.create({ type: 'UnknownUpdate', message: said, nonRetryable: true }); // fails the update, not the workflow task
  });
  // A query must not change the workflow: the caller hears it, nothing is recorded.
  setDefaultQueryHandler((name) => {
    throw new Error(unknown('query', name, ['status']));
  });
}

/** "unknown signal `aprove`: did you mean `approve`?", or the list of names when none is close. */
export function unknown(kind: string, name: string, known: string[]): string {
  const guess = closest(name, known);
  const close = distance(name.toLowerCase(), guess) <= Math.max(2, Math.floor(guess.length / 3));
  return `unknown ${kind} \`${name}\`: ${close ? `did you mean \`${guess}\`?` : `the ${kind}s are ${known.map((k) => `\`${k}\``).join(', ')}.`}`;
}

function handle<R>(m: Migration, signal: SignalDefinition<[R]>, update: UpdateDefinition<string, [R]>, check: (r: R) => string | undefined, apply: (r: R) => string): void {
  const description = msg.DESCRIPTIONS[signal.name as keyof typeof msg.DESCRIPTIONS];
  setHandler(
    signal,
    (r: R) => {
      const problem = check(r);
      if (problem) notice(m.status, ignored(m, signal.name, r, problem));
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

/** "ignored approve for phase-2: gate phase-2 was already approved by bob; now waiting on phase-4" */
function ignored(m: Migration, name: string, r: unknown, problem: string): string {
  const about = (r as { gate?: unknown; step?: unknown } | undefined) ?? {};
  const subject = typeof about.gate === 'string' ? about.gate : typeof about.step === 'string' ? about.step : undefined;
  return `ignored ${name}${subject ? ` for ${subject}` : ''}: ${problem}${problem.includes(nextHint(m.status)) ? '' : `; ${waitingOn(m)}`}`;
}

function waitingOn(m: Migration): string {
  const w = m.status.waitingFor;
  if (w?.kind === 'approval') return `now waiting on ${w.gate} (approve or reject it)`;
  if (w?.kind === 'decision') return `now waiting on a decision for ${w.step} (retry, skip, rollback or abort)`;
  return `the migration is ${m.status.state}`;
}
