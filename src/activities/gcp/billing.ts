// 5.2: after the bake period, the bill must show no cost for MLflow's resources since Phase 3
// deleted them. With a BigQuery billing export this is a query; without one a human checks the
// Billing report in the console, and the closure gate's approval records that they did.
//
// Two costs go on by design and are reported as expected, not as a failure: the soft-deleted
// artifacts bucket is billed as storage until its retention ends, and the final backup of the
// Cloud SQL instance until it expires. Buckets the migration keeps (the backup bucket, an
// artifacts bucket with deleteArtifacts false) are left out of the query.
import { ErrorType, fail } from '../../errors';
import type { PlannedAction, StepContext } from '../../types';
import type { CloudDeps, CloudKind } from './common';
import { describe, gcpCall, rethrowTransient } from '../../adapters/gcp/calls';
import { defineStep } from '../step';

const ROLE = 'roles/bigquery.jobUser on the project and roles/bigquery.dataViewer on the billing export dataset';
/** The Billing export's service.description values for what the migration removes. */
export const BILLED_SERVICES = ['Cloud Run', 'Cloud SQL', 'Cloud Storage', 'Secret Manager'];
/** Below a cent the bill rounds to zero. */
const ZERO_COST_USD = 0.01;

export interface BillingLine {
  service: string;
  sku: string;
  resource: string;
  cost: number;
  first_usage: string;
  last_usage: string;
}

/** The query's first line; the sandbox (dev/sandbox/services/bigquery.ts) recognises the query by it. */
export const BILLING_QUERY_MARKER = '-- mlflow-decommission:billing-since-deletion';

/**
 * Cost per service, SKU and resource since @since, for MLflow's resources: rows carrying every
 * target label, or whose resource.name (detailed usage cost export) is one of MLflow's, but not one
 * of the buckets kept (@kept). Filtering on _PARTITIONTIME keeps the scan to the days since the
 * deletion: a row is exported after its usage.
 */
export function billingQuery(table: string): string {
  return `${BILLING_QUERY_MARKER}
SELECT
  service.description AS service,
  sku.description AS sku,
  IFNULL(resource.name, '') AS resource,
  SUM(cost) AS cost,
  FORMAT_TIMESTAMP('%FT%TZ', MIN(usage_start_time)) AS first_usage,
  FORMAT_TIMESTAMP('%FT%TZ', MAX(usage_start_time)) AS last_usage
FROM \`${table}\`
WHERE DATE(_PARTITIONTIME) >= DATE_SUB(DATE(TIMESTAMP(@since)), INTERVAL 1 DAY)
  AND usage_start_time >= TIMESTAMP(@since)
  AND project.id = @project
  AND service.description IN UNNEST(@services)
  AND (
    (SELECT COUNT(DISTINCT CONCAT(l.key, '=', l.value)) FROM UNNEST(labels) AS l WHERE CONCAT(l.key, '=', l.value) IN UNNEST(@labels)) = ARRAY_LENGTH(@labels)
    OR EXISTS (SELECT 1 FROM UNNEST(@resources) AS r WHERE resource.name = r OR ENDS_WITH(resource.name, CONCAT('/', r)))
  )
  AND NOT EXISTS (SELECT 1 FROM UNNEST(@kept) AS k WHERE resource.name = k OR ENDS_WITH(resource.name, CONCAT('/', k)))
GROUP BY service, sku, resource
ORDER BY cost DESC`;
}

export function createBillingActivities(deps: CloudDeps): CloudKind<{ checkBilling: ReturnType<typeof defineStep> }> {
  const { bigquery } = deps.gcp;

  /** Runs the billing query with named parameters; errors that retrying cannot fix name the config field or the role. */
  async function costLines(ctx: StepContext, table: string, since: string): Promise<BillingLine[]> {
    const [rows] = await gcpCall(`querying the billing export ${table}`, ROLE, async () => {
      try {
        return await bigquery.query({
          query: billingQuery(table),
          params: { since, project: ctx.target.gcp.project, services: BILLED_SERVICES, labels: labelPairs(ctx), resources: mlflowResources(ctx), kept: keptBuckets(ctx) },
          types: { since: 'STRING', project: 'STRING', services: ['STRING'], labels: ['STRING'], resources: ['STRING'], kept: ['STRING'] },
        });
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (code === 400 || code === 404) {
          fail(ErrorType.InvalidConfig, `the billing export ${table} cannot be queried: ${describe(err)}. Check billing.exportTable names the detailed usage cost export (project.dataset.table), then retry.`);
        }
        throw err;
      }
    });
    return (rows as BillingLine[]).map((r) => ({ ...r, cost: Number(r.cost) }));
  }

  const checkBilling = defineStep({
    async plan(ctx) {
      const table = ctx.target.billing.exportTable;
      if (!table) return [];
      return [{ call: 'bigquery.jobs.query', resource: tableResource(table), description: `sum the cost of ${BILLED_SERVICES.join(', ')} for MLflow's resources since the Phase 3 deletions` } satisfies PlannedAction];
    },
    async run(ctx) {
      const deletedAt = deletionTime(ctx);
      const table = ctx.target.billing.exportTable;
      if (!table) {
        const consoleFilter = billingReportFilter(ctx, deletedAt);
        return {
          summary:
            `no billing export is configured: open the Billing report (${consoleFilter.url}) with project ${consoleFilter.project}, ` +
            `services ${consoleFilter.services.join(', ')}, labels ${consoleFilter.labels.join(', ')}, usage dates ${consoleFilter.from} to ${consoleFilter.to} (Pacific time), ` +
            `and confirm the cost is $0.00 before approving closure`,
          actions: [],
          facts: { consoleFilter, deletedAt },
        };
      }
      const lines = await costLines(ctx, table, deletedAt);
      const judged = lines.map((l) => ({ line: l, expected: expectedCost(ctx, l) }));
      const unexpected = judged.filter((j) => !j.expected).map((j) => j.line);
      const expected = judged.filter((j) => j.expected);
      const total = unexpected.reduce((sum, l) => sum + l.cost, 0);
      const expectedTotal = expected.reduce((sum, j) => sum + j.line.cost, 0);
      const action: PlannedAction = { call: 'bigquery.jobs.query', resource: tableResource(table), description: `cost since ${deletedAt}` };
      if (total >= ZERO_COST_USD) {
        fail(
          ErrorType.VerificationFailed,
          `MLflow resources still cost $${total.toFixed(2)} since ${deletedAt}: ${unexpected.map(describeLine).join('; ')}. ` +
            'Find and remove what is still billed (5.5 lists leftovers by label), then retry after the next billing export; or skip 5.2 if you have checked the bill yourself.',
          { lines: unexpected, total },
        );
      }
      const expectedText = expected.length ? `; expected and not counted: $${expectedTotal.toFixed(2)} (${[...new Set(expected.map((j) => j.expected))].join('; ')})` : '';
      return {
        summary: `no unexpected cost for MLflow's resources since ${deletedAt} ($${total.toFixed(4)} across ${unexpected.length} line(s)) in ${table}${expectedText}`,
        actions: [action],
        facts: { totalCostUsd: total, lines: unexpected.length, expectedCostUsd: expectedTotal, expectedLines: expected.length, since: deletedAt },
      };
    },
  });

  return {
    activities: { checkBilling },
    async preflight(ctx) {
      const table = ctx.target.billing.exportTable;
      if (!table) return [{ name: 'billing export', ok: true, detail: 'none configured: 5.2 will ask a human to check the Billing report in the console' }];
      try {
        // A window that starts now matches nothing, but still checks the table, its columns and the permissions.
        await costLines(ctx, table, new Date().toISOString());
        return [{ name: `billing export ${table}`, ok: true, detail: 'queryable' }];
      } catch (err) {
        rethrowTransient(err);
        return [{ name: `billing export ${table}`, ok: false, detail: describe(err) }];
      }
    },
    async remaining() {
      return [];
    },
  };
}

/** The deletion time the workflow keeps after Phase 3, else 3.1's own fact. */
function deletionTime(ctx: StepContext): string {
  const fromStep = (ctx.facts['3.1'] as { deletedAt?: unknown } | undefined)?.deletedAt;
  const at = ctx.facts.deletedAt ?? fromStep;
  if (typeof at !== 'string' || Number.isNaN(Date.parse(at))) {
    fail(ErrorType.PreconditionFailed, 'the deletion time of Phase 3 is unknown (no deletedAt fact): 5.2 measures cost from it. Run Phase 3 first, or retry once 3.1 has recorded it.');
  }
  return new Date(at).toISOString();
}

/**
 * Why a line is expected after the deletion, or undefined when it is not: the soft-deleted artifacts
 * bucket is billed like live storage until its retention ends (https://cloud.google.com/storage/docs/soft-delete#billing),
 * and the final backup of the Cloud SQL instance as backup storage until it expires
 * (https://cloud.google.com/sql/docs/postgres/backup-recovery/backups "What backups cost").
 */
function expectedCost(ctx: StepContext, l: BillingLine): string | undefined {
  const bucket = ctx.target.buckets.artifacts;
  const names = (n: string) => l.resource === n || l.resource.endsWith(`/${n}`);
  if (l.service === 'Cloud Storage' && bucket && ctx.target.buckets.deleteArtifacts && (names(bucket) || !l.resource)) {
    const until = (ctx.facts['3.4'] as { restorableUntil?: string } | undefined)?.restorableUntil;
    if (!until || l.last_usage <= until) return `soft-deleted storage of gs://${bucket}${until ? ` until ${until}` : ''}, kept restorable for rollback`;
  }
  if (l.service === 'Cloud SQL' && /backup/i.test(l.sku) && (names(ctx.target.cloudSql.instance) || !l.resource)) {
    const sql = ctx.facts['3.2'] as { deletedAt?: string; finalBackupTtlDays?: number } | undefined;
    const until = sql?.deletedAt ? new Date(Date.parse(sql.deletedAt) + (sql.finalBackupTtlDays ?? 30) * 86_400_000).toISOString() : undefined;
    if (!until || l.last_usage <= until) return `the final backup of ${ctx.target.cloudSql.instance}${until ? ` until ${until}` : ''}, kept for rollback`;
  }
  return undefined;
}

/** Buckets the migration keeps: their cost is not MLflow's to remove, whatever labels they carry. */
function keptBuckets(ctx: StepContext): string[] {
  const t = ctx.target.buckets;
  return [t.backup, ...(t.artifacts && !t.deleteArtifacts ? [t.artifacts] : [])];
}

function labelPairs(ctx: StepContext): string[] {
  return Object.entries(ctx.target.labels).map(([k, v]) => `${k}=${v}`);
}

/** Names as the detailed export's resource.name carries them (a global name ends with them). */
function mlflowResources(ctx: StepContext): string[] {
  const t = ctx.target;
  return [t.cloudRun.mlflowService, t.cloudSql.instance, ...(t.buckets.artifacts && t.buckets.deleteArtifacts ? [t.buckets.artifacts] : []), ...t.secrets];
}

function tableResource(table: string): string {
  const [project, dataset, name] = table.split('.');
  return `projects/${project}/datasets/${dataset}/tables/${name}`;
}

function describeLine(l: BillingLine): string {
  return `${l.service} / ${l.sku || 'unknown SKU'}${l.resource ? ` / ${l.resource}` : ''}: $${l.cost.toFixed(2)} (${l.first_usage} – ${l.last_usage})`;
}

/** Billing report days are Pacific time; the deletion day itself still carries cost from before the deletion. */
export function billingReportFilter(ctx: StepContext, deletedAt: string, now = new Date()) {
  const pacificDay = (d: Date) => new Intl.DateTimeFormat('en-CA', { timeZone: 'America/Los_Angeles', year: 'numeric', month: '2-digit', day: '2-digit' }).format(d);
  const from = pacificDay(new Date(Date.parse(deletedAt) + 86_400_000));
  const to = pacificDay(now);
  return {
    url: `https://console.cloud.google.com/billing/reports?project=${ctx.target.gcp.project}`,
    project: ctx.target.gcp.project,
    services: BILLED_SERVICES,
    labels: Object.entries(ctx.target.labels).map(([k, v]) => `${k}:${v}`),
    from,
    to: to < from ? from : to,
    groupBy: 'SKU',
    note: `Usage before ${from} includes the hours before the deletion at ${deletedAt}.`,
  };
}
