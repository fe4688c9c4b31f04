// Least privilege, in one place: the exact permissions each phase needs at the project level, and
// the predefined role that grants them. Preflight asks the project which of them the worker holds
// (Resource Manager testIamPermissions) and lists what is missing, before anything changes.
// Bucket-level permissions are checked on the buckets themselves (storage.ts).
import type { GcpClients } from '../../adapters/gcp/clients';
import type { CheckResult, StepContext } from '../../types';
import { describe, rethrowTransient } from '../../adapters/gcp/calls';

export const PROJECT_PERMISSIONS: Array<{ phase: string; role: string; permissions: string[] }> = [
  {
    phase: '0 (backup, export)',
    role: 'roles/cloudsql.admin',
    permissions: ['cloudsql.instances.get', 'cloudsql.instances.export', 'cloudsql.backupRuns.create', 'cloudsql.backupRuns.get', 'cloudsql.backupRuns.list'],
  },
  { phase: '3 (delete) and rollback', role: 'roles/run.admin', permissions: ['run.services.get', 'run.services.list', 'run.services.delete', 'run.services.create', 'run.operations.get', 'run.services.getIamPolicy', 'run.services.setIamPolicy'] },
  {
    phase: '3 (delete) and rollback',
    role: 'roles/cloudsql.admin',
    permissions: [
      'cloudsql.instances.list',
      'cloudsql.instances.update',
      'cloudsql.instances.delete',
      'cloudsql.instances.create',
      'cloudsql.instances.import',
      'cloudsql.databases.get',
      'cloudsql.databases.create',
      'cloudsql.users.list',
      'cloudsql.users.create',
      // "Restore a final backup to a new instance: cloudsql.backupRuns.get, cloudsql.instances.restoreBackup,
      // cloudsql.instances.create"; "List final backups: cloudsql.backupRuns.list" (https://cloud.google.com/sql/docs/postgres/iam-permissions).
      'cloudsql.instances.restoreBackup',
    ],
  },
  // Cloud Build guards triggers with the builds permissions: deleting or creating one needs builds.create.
  { phase: '3 (delete) and rollback', role: 'roles/cloudbuild.builds.editor', permissions: ['cloudbuild.builds.get', 'cloudbuild.builds.list', 'cloudbuild.builds.create'] },
  { phase: '3 (delete) and rollback', role: 'roles/iam.serviceAccountAdmin', permissions: ['iam.serviceAccounts.get', 'iam.serviceAccounts.list', 'iam.serviceAccounts.delete', 'iam.serviceAccounts.undelete'] },
  {
    phase: '3 (disable) and rollback',
    role: 'roles/secretmanager.admin',
    // create, versions.add and versions.access: the Cloud Run env values kept for rollback (env-values.ts).
    permissions: ['secretmanager.secrets.get', 'secretmanager.secrets.list', 'secretmanager.versions.list', 'secretmanager.versions.disable', 'secretmanager.versions.enable', 'secretmanager.secrets.create', 'secretmanager.versions.add', 'secretmanager.versions.access'],
  },
  { phase: '3 (delete) and 5 (verify)', role: 'roles/storage.admin', permissions: ['storage.buckets.list', 'storage.buckets.get'] },
  // A deleted bucket no longer exists to hold a policy: restoring it (and its objects) is checked on the project
  // (buckets.restore and objects.restore: https://cloud.google.com/storage/docs/use-soft-deleted-objects).
  { phase: '3 rollback (artifacts bucket)', role: 'roles/storage.admin', permissions: ['storage.buckets.restore', 'storage.objects.restore'] },
  // Recreating a service, or deploying the app's new revision, runs it as its service account.
  { phase: '3 rollback and 5 (tracking URI)', role: 'roles/iam.serviceAccountUser', permissions: ['iam.serviceAccounts.actAs'] },
  { phase: '5 (tracking URI)', role: 'roles/run.admin', permissions: ['run.services.update'] },
  { phase: '5 (delete secrets)', role: 'roles/secretmanager.admin', permissions: ['secretmanager.secrets.delete'] },
  { phase: '5 (billing)', role: 'roles/bigquery.jobUser', permissions: ['bigquery.jobs.create'] },
];

/** 0.0: which of the permissions above the worker lacks on the target's project. */
export async function checkProjectPermissions(gcp: GcpClients, ctx: StepContext): Promise<CheckResult[]> {
  const project = ctx.target.gcp.project;
  const name = `permissions on project ${project}`;
  const wanted = [...new Set(PROJECT_PERMISSIONS.flatMap((p) => p.permissions))];
  let granted: string[];
  try {
    const res = await gcp.projects.projects.testIamPermissions({ resource: `projects/${project}`, requestBody: { permissions: wanted } });
    granted = res.data.permissions ?? [];
  } catch (err) {
    rethrowTransient(err);
    return [{ name, ok: false, detail: `cannot test them (${describe(err)}): check gcp.project, and that the worker's credentials can see the project` }];
  }
  const missing = PROJECT_PERMISSIONS.map((p) => ({ ...p, permissions: p.permissions.filter((x) => !granted.includes(x)) })).filter((p) => p.permissions.length);
  if (!missing.length) return [{ name, ok: true, detail: `all ${wanted.length} permissions the phases need are granted` }];
  return [
    {
      name,
      ok: false,
      detail: `the worker lacks ${missing.map((m) => `${m.permissions.join(', ')} (phase ${m.phase}: grant ${m.role})`).join('; ')}`,
    },
  ];
}
