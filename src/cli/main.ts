// The operator's CLI: npx mlflow-decommission <command>. Every command that changes something
// goes through an update, so a refused request is told at once, with what to do instead.
import { Client, Connection, WorkflowNotFoundError, type WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { Command, Option } from 'commander';
import { workflowIdFor } from '../config/schema';
import { commands, MigrationInputError, migrationResult, planWorkflowId, RequestRefused, startMigration } from '../temporal/client';
import { ConfigError, readWorkerEnv } from '../config/environment';
import { isEnded, renderReport } from '../completion-record';
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { GATE_IDS, type GateId } from '../types';
import { cliWords, renderPlan, renderStatus, type Progress } from './render';
import { connectionOptions, dataConverter } from '../temporal/connection';
import { MIGRATION_STATE } from '../temporal/search-attributes';
import { promoteVersion } from '../temporal/versioning';

interface Global {
  json?: boolean;
}

// src/cli and dist/cli both sit two levels below package.json.
const { version } = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };

const program = new Command('mlflow-decommission')
  .description('Operate MLflow decommission migrations running on Temporal.')
  .version(version)
  .option('--json', 'print machine-readable JSON');

class CliError extends Error {}

let taskQueue: string | undefined;

async function connect(): Promise<Client> {
  const env = readWorkerEnv();
  taskQueue = env.TEMPORAL_TASK_QUEUE;
  try {
    const connection = await Connection.connect(connectionOptions(env));
    return new Client({ connection, namespace: env.TEMPORAL_NAMESPACE, dataConverter: dataConverter(env) });
  } catch (err) {
    throw new CliError(`cannot reach Temporal at ${env.TEMPORAL_ADDRESS} (${(err as Error).message}): start it (./run demo, or temporal server start-dev) or set TEMPORAL_ADDRESS`);
  }
}

function out(data: unknown, human: () => string): void {
  console.log((program.opts() as Global).json ? JSON.stringify(data, null, 2) : human());
}

function who(opts: { by?: string }): string {
  return opts.by ?? process.env.USER ?? userInfo().username;
}

/**
 * Sends one request to the target's migration. The workflow's refusal is re-worded into CLI
 * commands; a migration that has ended is told apart from one that never was.
 */
async function request(target: string, send: (h: WorkflowHandle) => Promise<string>): Promise<void> {
  const h = (await connect()).workflow.getHandle(workflowIdFor(target));
  try {
    const said = await send(h);
    out({ ok: true, message: said }, () => said);
  } catch (err) {
    if (err instanceof RequestRefused) throw new CliError(cliWords(err.message, target));
    if (err instanceof WorkflowNotFoundError) throw new CliError(await whyNoMigration(h, target));
    throw err;
  }
}

/** An update to a closed workflow fails as "not found": say whether it ended, and how. */
async function whyNoMigration(h: WorkflowHandle, target: string): Promise<string> {
  const desc = await h.describe().catch((err: unknown) => {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  });
  if (!desc) return `no migration of target "${target}" found (workflow ${h.workflowId}). Start one with: mlflow-decommission start ${target}`;
  const state = desc.typedSearchAttributes.get(MIGRATION_STATE);
  return (
    `the migration of "${target}" has ended${state ? ` ${state}` : ''} (workflow ${desc.status.name.toLowerCase()} at ${desc.closeTime?.toISOString() ?? '?'}): there is nothing to change. ` +
    `Its record: mlflow-decommission report ${target}. A new migration: mlflow-decommission start ${target}`
  );
}

program
  .command('plan <target>')
  .description('dry run: every call each step would make; nothing changes')
  .option('--wide', 'print every cell in full (the table is cut to 120 columns otherwise)')
  .action(async (target: string, opts: { wide?: boolean }) => {
    const client = await connect();
    const h = await startMigration(client, { target, dryRun: true }, { taskQueue, workflowId: planWorkflowId(target) });
    const result = await migrationResult(h);
    out(result.status.plan, () => `${renderPlan(result.status, opts)}\n\nplanned by workflow ${h.workflowId}`);
  });

program
  .command('start <target>')
  .description('start the migration of a target (one per target)')
  .option('--bake-period <duration>', 'wait this long before the billing check, e.g. "36h"')
  .option('--force', 'backfill every completed experiment, even those already cached')
  .addOption(new Option('--no-approval <gates...>', 'gates that need no human approval this time').choices([...GATE_IDS]))
  .action(async (target: string, opts: { bakePeriod?: string; force?: boolean; approval?: GateId[] | boolean }) => {
    const client = await connect();
    const approvals = Array.isArray(opts.approval) ? Object.fromEntries(opts.approval.map((g) => [g, false])) : undefined;
    const h = await startMigration(client, { target, bakePeriod: opts.bakePeriod, force: opts.force ?? false, approvals }, { taskQueue });
    out({ workflowId: h.workflowId, runId: h.firstExecutionRunId }, () => `started ${h.workflowId}\nwatch it: mlflow-decommission status ${target} --watch`);
  });

program
  .command('status <target>')
  .description('phase, steps, the gate waiting, backfill progress')
  .option('--watch', 'refresh every 2 seconds until the migration ends')
  .action(async (target: string, opts: { watch?: boolean }) => {
    const client = await connect();
    const h = client.workflow.getHandle(workflowIdFor(target));
    for (;;) {
      const [status, progress] = await Promise.all([commands.status(h), heartbeats(h)]).catch(async (err: unknown) => {
        throw err instanceof WorkflowNotFoundError ? new CliError(await whyNoMigration(h, target)) : err;
      });
      if (opts.watch && !(program.opts() as Global).json) process.stdout.write('\x1b[2J\x1b[H');
      out({ ...status, progress }, () => renderStatus(status, progress));
      if (!opts.watch || isEnded(status.state)) return;
      await new Promise((r) => setTimeout(r, 2000));
    }
  });

for (const verb of ['approve', 'reject'] as const) {
  program
    .command(`${verb} <target> <gate>`)
    .description(verb === 'approve' ? 'approve the gate that is waiting' : 'reject the waiting gate: the migration rolls back')
    .option('--by <name>', 'who decides (default: $USER)')
    .option(verb === 'approve' ? '--comment <text>' : '--reason <text>', verb === 'approve' ? 'what you checked' : 'why (required)')
    .action(async (target: string, gate: GateId, opts: { by?: string; comment?: string; reason?: string }) => {
      await request(target, (h) =>
        verb === 'approve' ? commands.approve(h, { gate, by: who(opts), comment: opts.comment }) : commands.reject(h, { gate, by: who(opts), reason: opts.reason ?? '' }),
      );
    });
}

for (const verb of ['retry', 'skip'] as const) {
  program
    .command(`${verb} <target> <step>`)
    .description(verb === 'retry' ? 'run a Blocked step (or failed gate checks, or a Blocked compensation) again' : 'skip a Blocked skippable step')
    .option('--by <name>', 'who decides (default: $USER)')
    .action(async (target: string, step: string, opts: { by?: string }) => {
      await request(target, (h) => commands[verb](h, { step, by: who(opts) }));
    });
}

for (const verb of ['rollback', 'abort'] as const) {
  program
    .command(`${verb} <target>`)
    .description(verb === 'rollback' ? 'undo every recorded step, newest first' : 'stop without undoing anything')
    .option('--by <name>', 'who decides (default: $USER)')
    .requiredOption('--reason <text>', 'why')
    .action(async (target: string, opts: { by?: string; reason: string }) => {
      await request(target, (h) => commands[verb](h, { by: who(opts), reason: opts.reason }));
    });
}

program
  .command('report <target>')
  .description('the completion record (5.6), or the record so far')
  .action(async (target: string) => {
    const h = (await connect()).workflow.getHandle(workflowIdFor(target));
    const [status, desc] = await Promise.all([commands.status(h), h.describe()]).catch(async (err: unknown) => {
      throw err instanceof WorkflowNotFoundError ? new CliError(await whyNoMigration(h, target)) : err;
    });
    // A running migration has no end; an ended one ended when its workflow closed (after any rollback).
    const closedAt = desc.closeTime?.toISOString();
    const terminated = closedAt && !isEnded(status.state) ? desc.status.name.toLowerCase() : undefined;
    const report = renderReport(status, { finishedAt: closedAt, outcome: terminated });
    out(report.json, () => report.markdown);
  });

program
  .command('promote <build-id>')
  .description('make a worker build the current version (README, Deploying a new build): new migrations start on it, open ones stay on theirs')
  .action(async (buildId: string) => {
    const env = readWorkerEnv();
    const client = await connect();
    const version = { deploymentName: env.TEMPORAL_DEPLOYMENT_NAME, buildId };
    try {
      const done = await promoteVersion(client.connection, env.TEMPORAL_NAMESPACE, version, 'always', { timeoutMs: 15_000 });
      out({ ok: true, ...version, result: done }, () => `${version.deploymentName}.${buildId}: ${done}`);
    } catch (err) {
      throw new CliError(`${(err as Error).message}; are workers of build ${buildId} running on task queue ${env.TEMPORAL_TASK_QUEUE}?`);
    }
  });

async function heartbeats(h: WorkflowHandle): Promise<Progress[]> {
  const desc = await h.describe();
  return (desc.raw.pendingActivities ?? []).map((a) => ({
    activity: a.activityType?.name ?? '?',
    attempt: a.attempt ?? 1,
    details: a.heartbeatDetails?.payloads?.[0] ? defaultPayloadConverter.fromPayload(a.heartbeatDetails.payloads[0]) : undefined,
  }));
}

export async function main(argv = process.argv): Promise<void> {
  try {
    await program.parseAsync(argv);
  } catch (err) {
    const known = err instanceof CliError || err instanceof ConfigError || err instanceof RequestRefused || err instanceof MigrationInputError || err instanceof WorkflowNotFoundError;
    const message = err instanceof WorkflowNotFoundError ? `no migration found: ${err.message}. Start one with: mlflow-decommission start <target>` : (err as Error).message;
    if ((program.opts() as Global).json) console.log(JSON.stringify({ ok: false, error: message }));
    else console.error(`mlflow-decommission: ${message}`);
    if (!known && !(program.opts() as Global).json) console.error(err);
    process.exitCode = known ? 2 : 1;
  }
}

if (require.main === module) void main();
