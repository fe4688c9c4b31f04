// Client helpers for the CLI, the demo and scripts: start a migration the one right way and
// send the operator's commands as updates, so a refused request is heard at once.
import { WorkflowExecutionAlreadyStartedError, WorkflowFailedError, WorkflowUpdateFailedError, type Client, type WorkflowHandle, type WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { describeIssues, migrationInputSchema, workflowIdFor, type MigrationInput } from '../config/schema';
import * as msg from '../workflows/messages';
import type { MigrationResult, MigrationStatus } from '../workflows/messages';
import type { mlflowDecommission } from '../workflows';
import type { UpdateDefinition } from '@temporalio/common';

export const TASK_QUEUE = 'mlflow-decommission';

export class MigrationInputError extends Error {
  override name = 'MigrationInputError';
}

/**
 * A plan's own ID prefix, so the list filtered on a target's migration does not mix in its plans,
 * and its backup folder (named after the workflow ID) says it is a plan's. Time in UTC, to the second.
 */
export function planWorkflowId(target: string, at = new Date()): string {
  return `mlflow-decommission-plan-${target}-${at.toISOString().replace(/[-:]|\.\d+/g, '')}`;
}

/** Starts a migration (or a dry run); refuses bad input and a second migration of the same target. */
export async function startMigration(
  client: Client,
  input: MigrationInput,
  opts: { taskQueue?: string; workflowId?: string } = {},
): Promise<WorkflowHandleWithFirstExecutionRunId<typeof mlflowDecommission>> {
  const parsed = migrationInputSchema.safeParse(input);
  if (!parsed.success) throw new MigrationInputError(`invalid input: ${describeIssues(parsed.error)}`);
  const { target, dryRun } = parsed.data;
  const workflowId = opts.workflowId ?? (dryRun ? planWorkflowId(target) : workflowIdFor(target));
  try {
    return await client.workflow.start<typeof mlflowDecommission>('mlflowDecommission', {
      taskQueue: opts.taskQueue ?? TASK_QUEUE,
      workflowId,
      args: [input],
      staticSummary: `${dryRun ? 'Dry run' : 'MLflow decommission'} of target ${target}`,
      staticDetails: `Phases 0–5 of the MLflow removal plan with checkpoint gates. Query \`status\` for details; send \`approve\` when a gate waits.`,
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      throw new MigrationInputError(
        `a migration of target "${target}" is already running as workflow ${workflowId}: watch it (status ${target}), or roll it back / abort it before starting another`,
      );
    }
    throw err;
  }
}

export function migrationHandle(client: Client, target: string, workflowId = workflowIdFor(target)) {
  return client.workflow.getHandle<typeof mlflowDecommission>(workflowId);
}

/** The workflow said no (the update's validator): the message says why and what to do instead. */
export class RequestRefused extends Error {
  override name = 'RequestRefused';
}

async function send<R>(h: WorkflowHandle, def: UpdateDefinition<string, [R]>, request: R): Promise<string> {
  try {
    return await h.executeUpdate(def, { args: [request] });
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) throw new RequestRefused(`${def.name} refused: ${err.cause?.message ?? err.message}`);
    throw err;
  }
}

export const commands = {
  approve: (h: WorkflowHandle, r: msg.ApproveRequest) => send(h, msg.approveUpdate, r),
  reject: (h: WorkflowHandle, r: msg.RejectRequest) => send(h, msg.rejectUpdate, r),
  retry: (h: WorkflowHandle, r: msg.StepRequest) => send(h, msg.retryUpdate, r),
  skip: (h: WorkflowHandle, r: msg.StepRequest) => send(h, msg.skipUpdate, r),
  rollback: (h: WorkflowHandle, r: msg.StopRequest) => send(h, msg.rollbackUpdate, r),
  abort: (h: WorkflowHandle, r: msg.StopRequest) => send(h, msg.abortUpdate, r),
  status: (h: WorkflowHandle): Promise<MigrationStatus> => h.query(msg.statusQuery),
};

const OUTCOME_OF_FAILURE = new Map<string, MigrationResult['outcome']>(Object.entries(msg.OUTCOME_FAILURE_TYPES).map(([outcome, type]) => [type, outcome as MigrationResult['outcome']]));

/**
 * How a migration ended, for every end: a completed one returns its result; a rolled-back,
 * rejected or aborted one fails (so the workflow list tells it apart) with the result in the
 * failure's details; a cancelled one is asked for its status. Anything else is thrown.
 */
export async function migrationResult(handle: WorkflowHandle): Promise<MigrationResult> {
  try {
    return (await handle.result()) as MigrationResult;
  } catch (err) {
    if (!(err instanceof WorkflowFailedError)) throw err;
    const cause = err.cause;
    const outcome = cause instanceof ApplicationFailure && cause.type ? OUTCOME_OF_FAILURE.get(cause.type) : undefined;
    if (outcome && cause instanceof ApplicationFailure) {
      const result = cause.details?.[0] as MigrationResult | undefined;
      if (result?.status) return result;
    }
    if (cause instanceof CancelledFailure) return { outcome: 'cancelled', status: await handle.query(msg.statusQuery) };
    throw err;
  }
}

export type { MigrationResult, MigrationStatus };
