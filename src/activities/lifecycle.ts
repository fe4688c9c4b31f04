// The migration's own lifecycle: the target from the worker's config file, preflight, and
// the completion record (5.6).
import type { ConfigFile, Target } from '../config/schema';
import { ErrorType, fail } from '../errors';
import type { ObjectStore } from '../ports';
import { renderReport } from '../completion-record';
import { backupUri } from '../shapes';
import type { CheckResult, StepContext } from '../types';
import type { MigrationResult, MigrationStatus } from '../workflows/messages';
import { defineShapeStep } from './step';

export interface LifecycleDeps {
  config: ConfigFile;
  objects: ObjectStore;
  /** Preflight checks contributed by the data, cloud and database activities (each for its shapes). */
  preflightChecks: Array<(ctx: StepContext<Target>) => Promise<CheckResult[]>>;
}

export function createLifecycleActivities(deps: LifecycleDeps) {
  const runChecks = async (ctx: StepContext<Target>) => (await Promise.all(deps.preflightChecks.map((c) => c(ctx)))).flat();
  return {
    async loadTarget(name: string): Promise<Target> {
      const target = deps.config.targets[name];
      if (!target) {
        const known = Object.keys(deps.config.targets).join(', ') || 'none';
        fail(ErrorType.InvalidInput, `target: "${name}" is not in the worker's config file (known targets: ${known}). Fix "target" in the input, or add it to the file MLFLOW_DECOMMISSION_CONFIG names.`);
      }
      return target;
    },

    // 0.0: every host answers, the credentials can do what each step needs, the schema is one we know.
    preflight: defineShapeStep<Target>({
      async plan(ctx) {
        return (await runChecks(ctx)).map((c) => ({ call: 'preflight', resource: c.name, description: `${c.ok ? 'ok' : 'FAILS'}: ${c.detail}` }));
      },
      async run(ctx) {
        const checks = await runChecks(ctx);
        const failed = checks.filter((c) => !c.ok);
        if (failed.length) {
          fail(ErrorType.PreconditionFailed, `preflight: ${failed.map((c) => `${c.name}: ${c.detail}`).join('; ')}`, { checks });
        }
        return { summary: `${checks.length} checks passed`, actions: [], facts: { checks: checks.length } };
      },
    }),

    // 5.6: the record the plan asks for, in the backup bucket beside the snapshots. The workflow
    // writes it at the end of every outcome and says which; it runs last, so now is the true end.
    async writeCompletionRecord(ctx: StepContext<Target>, status: MigrationStatus, outcome?: MigrationResult['outcome']) {
      const base = backupUri(ctx, 'completion-record');
      const actions = [
        { call: 'storage.objects.insert', resource: `${base}.md`, description: 'write the completion record (Markdown)' },
        { call: 'storage.objects.insert', resource: `${base}.json`, description: 'write the completion record (JSON)' },
      ];
      if (ctx.dryRun) return { summary: 'would write the completion record', actions };
      const report = renderReport(status, { billing: ctx.target.billing, outcome, finishedAt: new Date().toISOString() });
      await deps.objects.write(`${base}.md`, report.markdown, 'text/markdown');
      await deps.objects.write(`${base}.json`, JSON.stringify(report.json, null, 2), 'application/json');
      return { summary: `completion record at ${base}.md`, actions, facts: { uri: `${base}.md`, estimatedMonthlySavingsUsd: ctx.target.billing.estimatedMonthlySavingsUsd } };
    },
  };
}
