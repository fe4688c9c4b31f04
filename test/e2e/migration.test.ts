// The worker users run — every real activity, the real clients — against a real Temporal dev
// server, real Postgres and the GCP sandbox seeded with a whole MLflow deployment.
import { Worker } from '@temporalio/worker';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDeployment } from '../../dev/deployment';
import { tableRowCounts } from '../../dev/postgres';
import { createActivities } from '../../src/activities';
import { createGcpClients, isNotFound } from '../../src/adapters/gcp/clients';
import { createGcsObjectStore } from '../../src/adapters/gcp/gcs-object-store';
import { createDatabases } from '../../src/adapters/postgres';
import { commands, migrationResult, startMigration } from '../../src/temporal/client';
import { configFileSchema } from '../../src/config/schema';
import type { CompletionRecord } from '../../src/completion-record';
import type { Sandbox } from '../../dev/sandbox';
import { historyText, recordHistory, useTestServer, waitForStatus, workflowBundle } from '../support/temporal';

const server = useTestServer();

/** user:password@ in a URL: what must never reach a payload. */
const CONNECTION_STRING_WITH_PASSWORD = /[a-z]+:\/\/[^\s"/:@]+:[^\s"/@]+@/i;

const noApprovals = { 'phase-0': false, 'phase-2': false, 'phase-4': false, closure: false };
let n = 0;

/** A fresh deployment (sandbox + two databases) and the real worker over it. */
async function deployment(runs = 30) {
  const name = `e2e${process.pid}x${++n}`;
  const d = await createDeployment({ adminUrl: inject('pgAdminUrl'), name, dir: mkdtempSync(join(tmpdir(), 'e2e-')), runs, epochs: 12, operationDelayMs: 100 });
  const config = configFileSchema.parse({ targets: { [name]: d.target } });
  const gcp = createGcpClients({ apiEndpoint: d.sandbox.url, project: d.target.gcp.project });
  const databases = createDatabases(d.workerEnv);
  const objects = createGcsObjectStore(gcp.storage);
  const taskQueue = `e2e-${name}`;
  const worker = await Worker.create({
    connection: server.env.nativeConnection,
    taskQueue,
    workflowBundle: await workflowBundle(),
    activities: createActivities({ config, databases, gcp, objects }),
  });
  const running = worker.run();
  const app = new pg.Pool({ connectionString: d.appUrl, max: 2 });
  return {
    ...d,
    gcp,
    objects,
    app,
    secrets: [new URL(d.mlflowUrl).password, new URL(d.appUrl).password].filter(Boolean),
    start: (input: object = {}) => startMigration(server.env.client, { target: name, ...input }, { taskQueue }),
    async close() {
      worker.shutdown();
      await running;
      await Promise.all([gcp.close(), databases.close(), app.end(), d.close()]);
    },
  };
}

const mutating = (sb: Sandbox) => sb.mutations();

describe('the real worker', () => {
  it('a dry run plans the exact calls of every step and changes nothing', async () => {
    const d = await deployment();
    try {
      const before = mutating(d.sandbox).length;
      const result = await migrationResult(await d.start({ dryRun: true }));
      expect(result.outcome).toBe('planned');
      const plan = result.status.plan;
      expect(plan['3.1']).toContainEqual(expect.objectContaining({ call: 'run.services.delete', resource: `projects/demo-project/locations/europe-central2/services/mlflow-server` }));
      expect(plan['3.2'].map((a) => a.call)).toContain('sql.instances.delete');
      expect(plan['0.6'].length).toBeGreaterThan(5);
      expect(mutating(d.sandbox).slice(before)).toEqual([]);
      const { rows } = await d.app.query(`SELECT count(*)::int AS n FROM ml_platform_quicktest WHERE training_history_json IS NOT NULL`);
      expect(rows[0].n).toBe(3); // only the post-cutover ones, which Django cached from training_metrics.json
    } finally {
      await d.close();
    }
  });

  it('takes the deployment through Phases 0–5: every history cached and verified, everything deleted once with its snapshot, no secret in the history', async () => {
    const d = await deployment();
    try {
      const h = await d.start({ approvals: noApprovals, bakePeriod: '1s' });
      const result = await migrationResult(h);
      expect(result.outcome, JSON.stringify(result.status.steps.filter((s) => s.state !== 'done'))).toBe('completed');
      const { rows } = await d.app.query(
        `SELECT count(*) FILTER (WHERE training_history_json IS NULL)::int AS missing FROM ml_platform_quicktest WHERE status = 'completed' AND coalesce(mlflow_run_id, '') <> ''`,
      );
      expect(rows[0].missing).toBe(0);
      for (const match of ['DELETE /v2/.*/services/mlflow-server$', 'DELETE /v1/projects/demo-project/instances/mlflow-db$', 'DELETE /storage/v1/b/demo-mlflow-artifacts$']) {
        expect(d.sandbox.callsTo(match).filter((c) => c.status < 300), match).toHaveLength(1);
      }
      const folder = `gs://demo-backups/mlflow-decommission/${result.status.migrationId}`;
      // The first run's ID: a reset keeps it, so the snapshots stay where the undos look (11.2).
      expect(result.status.migrationId).toBe(`${h.workflowId}/${h.firstExecutionRunId}`);
      const snapshots = await d.objects.list(`${folder}/snapshots/`);
      expect(snapshots.length).toBeGreaterThanOrEqual(5);
      expect(await d.objects.stat(`${folder}/completion-record.md`)).toBeDefined();
      // The record, as an audit: six deletions none restored, every compensation recorded and not needed (or made moot), a true end.
      const record = JSON.parse(String(await d.objects.read(`${folder}/completion-record.json`))) as CompletionRecord;
      expect(record).toMatchObject({ outcome: 'completed', workflowId: h.workflowId, migrationId: result.status.migrationId });
      expect(record.deleted.map((x) => [x.step, x.restored])).toEqual(['3.1', '3.2', '3.3', '3.4', '3.5', '3.6', '5.3', '5.4'].map((x) => [x, false]));
      expect(record.compensations.map((c) => c.result)).toEqual(expect.arrayContaining(['not run: nothing was rolled back', 'not needed: 5.4 made it permanent']));
      expect(record.finishedAt! >= result.status.steps.find((x) => x.id === '5.5')!.endedAt!).toBe(true);
      expect(record.requests).toEqual([]);
      // The gate before deleting named every resource Phase 3 deletes, by full name; phase-0's, which runs the same check, did not.
      const gateText = (id: string) => result.status.gates.find((g) => g.id === id)!.checks.map((c) => `${c.ok ? 'ok' : 'FAILED'} ${c.name}: ${c.detail}`).join('\n');
      for (const name of [
        'projects/demo-project/locations/europe-central2/services/mlflow-server',
        'projects/demo-project/instances/mlflow-db',
        'trigger mlflow-server',
        'gs://demo-mlflow-artifacts',
        'projects/demo-project/serviceAccounts/mlflow-server@demo-project.iam.gserviceaccount.com',
        'projects/demo-project/secrets/mlflow-db-password/versions/1',
      ]) {
        expect(gateText('phase-2')).toContain(name);
      }
      expect(gateText('phase-2')).toMatch(/^ok 3\.4 will delete: .*gs:\/\/demo-mlflow-artifacts/m);
      expect(gateText('phase-0')).not.toContain('will delete');
      // Inputs, results, heartbeat details and errors: nothing secret in the history every UI user reads.
      const history = historyText(await h.fetchHistory());
      expect(history, 'payloads are read as text').toContain('projects/demo-project/instances/mlflow-db');
      for (const secret of d.secrets) expect(history).not.toContain(secret);
      expect(history).not.toMatch(CONNECTION_STRING_WITH_PASSWORD);
      expect(history).not.toContain('mlflow-db-password-v1');
      if (process.env.RECORD_HISTORIES) await recordHistory(server.env, h, 'real-activities-path.json');
    } finally {
      await d.close();
    }
  });

  it('a full Phase 3 then rollback leaves the deployment as it started, resource by resource and row by row', async () => {
    const d = await deployment(10);
    try {
      const before = await inventory(d);
      const rowsBefore = await tableRowCounts(d.mlflowUrl);
      expect(rowsBefore.metrics).toBeGreaterThan(1000);
      const h = await d.start({ approvals: { ...noApprovals, 'phase-4': true } });
      await waitForStatus(h, (s) => s.waitingFor?.gate === 'phase-4', 120_000);
      const gone = await inventory(d);
      expect(Object.entries(gone).filter(([, v]) => v !== 'absent').map(([k]) => k)).toEqual(['django-app', 'secret mlflow-db-password', 'secret mlflow-tracking-token']);
      // Deleting the instance dropped the MLflow database's tables.
      expect(await tableRowCounts(d.mlflowUrl)).toEqual({});
      await commands.rollback(h, { by: 'alice', reason: 'e2e' });
      const result = await migrationResult(h);
      expect(result.outcome).toBe('rolled-back');
      expect(result.status.compensations.every((c) => c.state === 'done'), JSON.stringify(result.status.compensations)).toBe(true);
      expect(result.status.compensations.find((c) => c.step === '3.2')?.summary).toMatch(/from final backup/);
      expect(await inventory(d)).toEqual(before);
      // The undo of 3.2 brought back the data itself, every row of every MLflow table.
      expect(await tableRowCounts(d.mlflowUrl)).toEqual(rowsBefore);

      // Fixed and started again: a folder of its own, so 0.1 takes a fresh backup and export.
      const again = await d.start({ approvals: { ...noApprovals, 'phase-4': true } });
      const second = await waitForStatus(again, (s) => s.waitingFor?.gate === 'phase-4', 120_000);
      expect(second.migrationId).not.toBe(result.status.migrationId);
      expect((second.facts['0.1'] as { exportUri: string }).exportUri).toContain(second.migrationId);
      await again.terminate('e2e over');
    } finally {
      await d.close();
    }
  });

  it('a reset to before a completed delete re-runs the steps without repeating any effect', async () => {
    const d = await deployment(10);
    try {
      const h = await d.start({ approvals: { ...noApprovals, 'phase-4': true } });
      const first = await waitForStatus(h, (s) => s.waitingFor?.gate === 'phase-4', 120_000);
      const before = d.sandbox.mutations().length;
      // The workflow task that scheduled 3.1: the UI's Reset picks the same point.
      const events = (await h.fetchHistory()).events!;
      const scheduled = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'deleteMlflowService')!;
      const taskCompleted = events.filter((e) => e.workflowTaskCompletedEventAttributes && Number(e.eventId) < Number(scheduled.eventId)).at(-1)!;
      const { runId } = await server.env.client.workflowService.resetWorkflowExecution({
        namespace: 'default',
        workflowExecution: { workflowId: h.workflowId, runId: (await h.describe()).runId },
        workflowTaskFinishEventId: taskCompleted.eventId,
        reason: 'e2e: reset to before 3.1',
        requestId: randomUUID(),
      });
      const reset = server.env.client.workflow.getHandle(h.workflowId, runId!);
      const status = await waitForStatus(reset, (s) => s.waitingFor?.gate === 'phase-4', 120_000);
      // Same folder as before the reset, so the snapshots the compensations need are still found.
      expect(status.migrationId).toBe(first.migrationId);
      expect(status.steps.filter((s) => s.phase === 3).map((s) => s.state)).toEqual(['done', 'done', 'done', 'done', 'done', 'done']);
      // Phase 3 ran again, and changed nothing: every resource was already gone or disabled.
      expect(d.sandbox.mutations().slice(before).filter((c) => c.method === 'DELETE' || c.path.endsWith(':disable'))).toEqual([]);
      await reset.terminate('e2e over');
    } finally {
      await d.close();
    }
  });
});


/** What an operator would compare, read through the worker's own clients; ids and timestamps GCP assigns anew are left out. */
async function inventory(d: Awaited<ReturnType<typeof deployment>>): Promise<Record<string, unknown>> {
  const { project, region } = d.target.gcp;
  const absentOn404 = async <T>(read: () => Promise<T>): Promise<T | 'absent'> => read().catch((err) => (isNotFound(err) ? 'absent' : Promise.reject(err)));
  const service = async (name: string) =>
    absentOn404(async () => {
      const [s] = await d.gcp.run.getService({ name: `projects/${project}/locations/${region}/services/${name}` });
      return { labels: s.labels, containers: s.template?.containers?.map((c) => ({ image: c.image, env: c.env })), serviceAccount: s.template?.serviceAccount };
    });
  const out: Record<string, unknown> = {
    'mlflow-server': await service('mlflow-server'),
    'django-app': await service('django-app'),
    'mlflow-db': await absentOn404(async () => {
      const [i] = await d.gcp.sqlInstances.get({ project, instance: 'mlflow-db' });
      const [db] = await d.gcp.sqlDatabases.get({ project, instance: 'mlflow-db', database: 'mlflow' });
      const [users] = await d.gcp.sqlUsers.list({ project, instance: 'mlflow-db' });
      const s = i.settings;
      return {
        region: i.region,
        databaseVersion: i.databaseVersion,
        tier: s?.tier,
        labels: s?.userLabels,
        database: db.name,
        users: (users.items ?? []).map((u) => u.name).sort(),
        network: { ipConfiguration: s?.ipConfiguration, zone: s?.locationPreference?.zone, maintenanceWindow: s?.maintenanceWindow },
        deletionProtection: s?.deletionProtectionEnabled,
      };
    }),
    'mlflow-server invokers': await absentOn404(async () => (await d.gcp.run.getIamPolicy({ resource: `projects/${project}/locations/${region}/services/mlflow-server` }))[0].bindings?.map((b) => [b.role, b.members])),
    'build trigger': await d.gcp.build.listBuildTriggers({ projectId: project }).then(([ts]) => ts.filter((t) => t.name === 'mlflow-server').map((t) => ({ name: t.name, filename: t.filename, github: t.github })).at(0) ?? 'absent'),
    'artifacts bucket': await absentOn404(async () => {
      const bucket = d.gcp.storage.bucket('demo-mlflow-artifacts');
      const [meta] = await bucket.getMetadata();
      const [files] = await bucket.getFiles();
      return { labels: meta.labels, objects: await Promise.all(files.map(async (f) => [f.name, (await f.download())[0].toString('base64')])) };
    }),
    'service account': await absentOn404(async () => {
      const { data } = await d.gcp.iam.projects.serviceAccounts.get({ name: `projects/${project}/serviceAccounts/${d.target.serviceAccount}` });
      return { email: data.email, uniqueId: data.uniqueId, disabled: !!data.disabled };
    }),
  };
  for (const secret of d.target.secrets) {
    out[`secret ${secret}`] = await absentOn404(async () => {
      const [versions] = await d.gcp.secrets.listSecretVersions({ parent: `projects/${project}/secrets/${secret}` });
      return versions.map((v) => [v.name, String(v.state)]).sort();
    });
  }
  return out;
}
