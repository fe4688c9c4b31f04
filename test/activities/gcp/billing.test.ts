// 5.2 against the sandbox's BigQuery, through the real @google-cloud/bigquery client.
import { beforeAll, describe, expect, it } from 'vitest';
import { createBillingActivities } from '../../../src/activities/gcp/billing';
import { GATE_IDS, type StepContext } from '../../../src/types';
import { seedBillingRows } from '../../../dev/sandbox/services/bigquery';
import { useSandbox } from '../../support/cloud';
import { demoTarget } from '../../support/fake-activities';
import { failureOf } from '../../support/failures';

const cloud = useSandbox();
const TABLE = 'demo-project.billing.gcp_billing_export_resource_v1_0000';
const DELETED_AT = '2025-03-10T12:30:00.000Z';

function context(over: Partial<StepContext> = {}, exportTable: string | null = TABLE): StepContext {
  const target = demoTarget({ billing: { estimatedMonthlySavingsUsd: 50, ...(exportTable ? { exportTable } : {}) } });
  return { migrationId: 'billing-test', targetName: 'demo', target, dryRun: false, gatesPassed: [...GATE_IDS], force: false, facts: { deletedAt: DELETED_AT }, ...over };
}
const billing = () => createBillingActivities({ gcp: cloud.gcp, objects: cloud.objects });
describe('billing check (5.2)', () => {
  beforeAll(() => {
    seedBillingRows(cloud.sandbox, {
      table: TABLE,
      rows: [
        // Before the deletion: expected, and not counted.
        { service: 'Cloud SQL', sku: 'vCPU', cost: 3.2, usage_start_time: '2025-03-10T11:00:00Z', labels: { app: 'mlflow' }, resource: 'mlflow-db' },
        // Not MLflow's: other labels, other name.
        { service: 'Cloud Run', sku: 'CPU', cost: 9, usage_start_time: '2025-03-11T00:00:00Z', labels: { app: 'django' }, resource: 'django-app' },
        // Not a service the migration removed.
        { service: 'BigQuery', sku: 'Analysis', cost: 1, usage_start_time: '2025-03-11T00:00:00Z', labels: { app: 'mlflow' } },
        // Zero-cost lines after the deletion (e.g. free-tier storage) are fine.
        { service: 'Cloud Storage', sku: 'Standard Storage', cost: 0, usage_start_time: '2025-03-11T00:00:00Z', labels: { app: 'mlflow' } },
      ],
    });
  });

  it('is ok when MLflow resources cost nothing since the deletion', async () => {
    const result = await billing().activities.checkBilling(context());
    expect(result.summary).toMatch(/^no unexpected cost for MLflow's resources since 2025-03-10T12:30:00.000Z/);
    expect(result.facts).toMatchObject({ totalCostUsd: 0, lines: 0, expectedLines: 1 });
    expect(cloud.sandbox.callsTo('^POST /bigquery/v2/projects/demo-project/queries$')).toHaveLength(1);
  });

  it('leaves out the buckets the migration keeps, and reports soft-deleted storage and the final backup as expected', async () => {
    const table = 'demo-project.billing.expected_costs';
    const later = '2025-03-11T00:00:00Z';
    seedBillingRows(cloud.sandbox, {
      table,
      rows: [
        // The backup bucket and a kept artifacts bucket carry the MLflow labels too: not MLflow's cost to remove.
        { service: 'Cloud Storage', sku: 'Standard Storage', cost: 2, usage_start_time: later, labels: { app: 'mlflow' }, resource: 'projects/_/buckets/demo-backups' },
        // The deleted artifacts bucket, soft-deleted and restorable, and the final backup: billed by design.
        { service: 'Cloud Storage', sku: 'Standard Storage', cost: 0.7, usage_start_time: later, labels: { app: 'mlflow' }, resource: 'projects/_/buckets/demo-mlflow-artifacts' },
        { service: 'Cloud SQL', sku: 'Cloud SQL for PostgreSQL: Backups in Warsaw', cost: 0.3, usage_start_time: later, resource: 'projects/demo-project/instances/mlflow-db' },
      ],
    });
    const facts = { deletedAt: DELETED_AT, '3.2': { deletedAt: DELETED_AT, finalBackupTtlDays: 30 }, '3.4': { restorableUntil: '2025-03-24T12:30:00.000Z' } };
    const deleting = await billing().activities.checkBilling(context({ facts }, table));
    expect(deleting.summary).toMatch(/no unexpected cost .*\$0\.0000 across 0 line\(s\).*expected and not counted: \$1\.00 \(soft-deleted storage of gs:\/\/demo-mlflow-artifacts until 2025-03-24T12:30:00\.000Z, kept restorable for rollback; the final backup of mlflow-db until 2025-04-09T12:30:00\.000Z, kept for rollback\)/);
    const keptTable = 'demo-project.billing.kept_bucket';
    seedBillingRows(cloud.sandbox, { table: keptTable, rows: [{ service: 'Cloud Storage', sku: 'Standard Storage', cost: 3, usage_start_time: later, labels: { app: 'mlflow' }, resource: 'projects/_/buckets/kept-artifacts' }] });
    const keeping = demoTarget({ billing: { estimatedMonthlySavingsUsd: 50, exportTable: keptTable }, buckets: { ...demoTarget().buckets, artifacts: 'kept-artifacts', deleteArtifacts: false } });
    const kept = await billing().activities.checkBilling({ ...context({ facts }, keptTable), target: keeping });
    expect(kept.facts).toMatchObject({ totalCostUsd: 0, lines: 0 });
    // Billed after the final backup expired: no longer expected (the SKU's line runs past its expiry).
    seedBillingRows(cloud.sandbox, { table, rows: [{ service: 'Cloud SQL', sku: 'Cloud SQL for PostgreSQL: Backups in Warsaw', cost: 0.3, usage_start_time: '2025-04-20T00:00:00Z', resource: 'projects/demo-project/instances/mlflow-db' }] });
    const err = await failureOf(billing().activities.checkBilling(context({ facts }, table)));
    expect(err.message).toMatch(/\$0\.60 since .*Backups in Warsaw .*– 2025-04-20T00:00:00Z/);
  });

  it('fails listing the lines when MLflow resources were billed after the deletion', async () => {
    seedBillingRows(cloud.sandbox, {
      table: TABLE,
      rows: [
        { service: 'Cloud SQL', sku: 'Storage PD SSD', cost: 0.4, usage_start_time: '2025-03-11T01:00:00Z', resource: 'projects/demo-project/instances/mlflow-db' },
        { service: 'Cloud SQL', sku: 'Storage PD SSD', cost: 0.4, usage_start_time: '2025-03-11T02:00:00Z', resource: 'projects/demo-project/instances/mlflow-db' },
        { service: 'Secret Manager', sku: 'Active secret versions', cost: 0.06, usage_start_time: '2025-03-12T00:00:00Z', labels: { app: 'mlflow' } },
      ],
    });
    const err = await failureOf(billing().activities.checkBilling(context()));
    expect(err.type).toBe('VerificationFailed');
    expect(err.message).toContain('$0.86 since 2025-03-10T12:30:00.000Z');
    expect(err.message).toContain('Cloud SQL / Storage PD SSD / projects/demo-project/instances/mlflow-db: $0.80 (2025-03-11T01:00:00Z – 2025-03-11T02:00:00Z)');
    expect(err.message).toContain('Secret Manager / Active secret versions: $0.06');
  });

  it('with no export, tells the human what to check in the console', async () => {
    const before = cloud.sandbox.calls.length;
    const result = await billing().activities.checkBilling(context({}, null));
    expect(cloud.sandbox.calls.slice(before)).toEqual([]);
    expect(result.summary).toMatch(/no billing export is configured/);
    expect(result.facts?.consoleFilter).toMatchObject({
      project: 'demo-project',
      services: ['Cloud Run', 'Cloud SQL', 'Cloud Storage', 'Secret Manager'],
      labels: ['app:mlflow'],
      from: '2025-03-11',
      url: 'https://console.cloud.google.com/billing/reports?project=demo-project',
    });
  });

  it('falls back to 3.1 deletedAt, and fails PreconditionFailed without any', async () => {
    await expect(billing().activities.checkBilling(context({ facts: { '3.1': { deletedAt: DELETED_AT } } }))).rejects.toThrow(/\$0.86/);
    expect((await failureOf(billing().activities.checkBilling(context({ facts: {} })))).type).toBe('PreconditionFailed');
  });

  it('dry run plans the one query; preflight checks the table', async () => {
    const plan = await billing().activities.checkBilling(context({ dryRun: true }));
    expect(plan.actions).toEqual([expect.objectContaining({ call: 'bigquery.jobs.query', resource: 'projects/demo-project/datasets/billing/tables/gcp_billing_export_resource_v1_0000' })]);
    expect(await billing().preflight(context())).toEqual([{ name: `billing export ${TABLE}`, ok: true, detail: 'queryable' }]);
    const missing = await billing().preflight(context({}, 'demo-project.billing.nope'));
    expect(missing[0].ok).toBe(false);
    expect(missing[0].detail).toMatch(/billing.exportTable/);
    expect(await billing().remaining(context())).toEqual([]);
  });

  it('PERMISSION_DENIED names the BigQuery roles', async () => {
    cloud.sandbox.addFault({ match: '^POST /bigquery/v2/projects/demo-project/queries$', status: 403, times: 1 });
    const err = await failureOf(billing().activities.checkBilling(context()));
    expect(err.type).toBe('PermissionDenied');
    expect(err.message).toContain('roles/bigquery.jobUser');
    expect(err.message).toContain('roles/bigquery.dataViewer');
  });
});
