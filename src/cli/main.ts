// The operator's CLI: npx mlflow-decommission <command>. Every command that changes something
// goes through an update, so a refused request is told at once, with what to do instead.
import { Client, Connection, WorkflowNotFoundError, type WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { Command, Option } from 'commander';
import { workflowIdFor } from '../config/schema';
import { commands, MigrationInputError, migrationResult, planWorkflowId, RequestRefused, startMigration } from '../temporal/client';
import { ConfigError, readWorkerEnv } from '../config/environment';
import { renderReport } from '../completion-record';
import { userInfo } from 'node:os';
import { GATE_IDS, type GateId } from '../types';
import { ENDED_STATES } from '../workflows/messages';
import { renderPlan, renderStatus, type Progress } from './render';
import { connectionOptions, dataConverter } from '../temporal/connection';
import { promoteVersion } from '../temporal/versioning';

interface Global {
  json?: boolean;
}

const program = new Command('mlflow-decommission')
  .description('Operate MLflow decommission migrations running on Temporal.')
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

program
  .command('plan <target>')
  .description('dry run: every call each step would make; nothing changes')
  .action(async (target: string) => {
    const client = await connect();
    const h = await startMigration(client, { target, dryRun: true }, { taskQueue, workflowId: `${planWorkflowId(target)}-${Date.now()}` });
    const result = await migrationResult(h);
    out(result.status.plan, () => renderPlan(result.status));
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
      const [status, progress] = await Promise.all([commands.status(h), heartbeats(h)]);
      if (opts.watch && !(program.opts() as Global).json) process.stdout.write('\x1b[2J\x1b[H');
      out({ ...status, progress }, () => renderStatus(status, progress));
      if (!opts.watch || ENDED_STATES.includes(status.state)) return;
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
      const h = (await connect()).workflow.getHandle(workflowIdFor(target));
      const said =
        verb === 'approve'
          ? await commands.approve(h, { gate, by: who(opts), comment: opts.comment })
          : await commands.reject(h, { gate, by: who(opts), reason: opts.reason ?? '' });
      out({ ok: true, message: said }, () => said);
    });
}

for (const verb of ['retry', 'skip'] as const) {
  program
    .command(`${verb} <target> <step>`)
    .description(verb === 'retry' ? 'run a Blocked step (or failed gate checks, or a Blocked compensation) again' : 'skip a Blocked skippable step')
    .option('--by <name>', 'who decides (default: $USER)')
    .action(async (target: string, step: string, opts: { by?: string }) => {
      const h = (await connect()).workflow.getHandle(workflowIdFor(target));
      const said = await commands[verb](h, { step, by: who(opts) });
      out({ ok: true, message: said }, () => said);
    });
}

for (const verb of ['rollback', 'abort'] as const) {
  program
    .command(`${verb} <target>`)
    .description(verb === 'rollback' ? 'undo every recorded step, newest first' : 'stop without undoing anything')
    .option('--by <name>', 'who decides (default: $USER)')
    .requiredOption('--reason <text>', 'why')
    .action(async (target: string, opts: { by?: string; reason: string }) => {
      const h = (await connect()).workflow.getHandle(workflowIdFor(target));
      const said = await commands[verb](h, { by: who(opts), reason: opts.reason });
      out({ ok: true, message: said }, () => said);
    });
}

program
  .command('report <target>')
  .description('the completion record (5.6), or the record so far')
  .action(async (target: string) => {
    const h = (await connect()).workflow.getHandle(workflowIdFor(target));
    const report = renderReport(await commands.status(h));
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
