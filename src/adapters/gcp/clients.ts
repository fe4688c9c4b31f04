// The official Google Cloud clients, built once per worker. Production: Application Default
// Credentials and Google's endpoints. With an endpoint override (a private endpoint or the local
// sandbox) every client goes to that URL over REST, with a static token.
import { BigQuery } from '@google-cloud/bigquery';
import { CloudBuildClient } from '@google-cloud/cloudbuild';
import { ServicesClient } from '@google-cloud/run';
import { SecretManagerServiceClient } from '@google-cloud/secret-manager';
import { SqlBackupRunsServiceClient, SqlDatabasesServiceClient, SqlInstancesServiceClient, SqlOperationsServiceClient, SqlUsersServiceClient, v1 as sqlV1 } from '@google-cloud/sql';
import { Storage } from '@google-cloud/storage';
import { cloudresourcemanager, type cloudresourcemanager_v3 } from '@googleapis/cloudresourcemanager';
import { auth as restAuthLibrary, iam, type iam_v1 } from '@googleapis/iam';
import { OAuth2Client } from 'google-auth-library';
import type { ClientOptions } from 'google-gax';

export interface GcpClients {
  project: string;
  run: ServicesClient;
  sqlInstances: SqlInstancesServiceClient;
  sqlOperations: SqlOperationsServiceClient;
  sqlBackupRuns: SqlBackupRunsServiceClient;
  /** The Backups API: final backups, which outlive their instance. */
  sqlBackups: sqlV1.SqlBackupsServiceClient;
  sqlDatabases: SqlDatabasesServiceClient;
  sqlUsers: SqlUsersServiceClient;
  iam: iam_v1.Iam;
  projects: cloudresourcemanager_v3.Cloudresourcemanager;
  secrets: SecretManagerServiceClient;
  build: CloudBuildClient;
  storage: Storage;
  bigquery: BigQuery;
  close(): Promise<void>;
}

export interface GcpClientOptions {
  /** e.g. http://127.0.0.1:8085; unset for Google's own endpoints. */
  apiEndpoint?: string;
  /** Project for clients that need one at construction (Storage, BigQuery). */
  project?: string;
}

export function createGcpClients(opts: GcpClientOptions = {}): GcpClients {
  const project = opts.project ?? 'unset-project';
  let gax: ClientOptions = {};
  let authClient: OAuth2Client | undefined;
  let rootUrl: string | undefined;
  // The REST (@googleapis) clients bring their own google-auth-library: their credentials come from it.
  let restAuth: InstanceType<typeof restAuthLibrary.OAuth2> | InstanceType<typeof restAuthLibrary.GoogleAuth> = new restAuthLibrary.GoogleAuth({
    scopes: ['https://www.googleapis.com/auth/cloud-platform'],
  });
  if (opts.apiEndpoint) {
    const url = new URL(opts.apiEndpoint);
    // A static token: an override endpoint is a private or local one, never Google's OAuth.
    authClient = new OAuth2Client();
    authClient.setCredentials({ access_token: 'endpoint-override', expiry_date: Date.now() + 10 * 365 * 86_400_000 });
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    gax = { apiEndpoint: url.hostname, servicePath: url.hostname, port, protocol: url.protocol.replace(':', ''), fallback: true, authClient } as ClientOptions;
    rootUrl = `${url.origin}/`;
    restAuth = new restAuthLibrary.OAuth2();
    restAuth.setCredentials(authClient.credentials);
  }
  const base = opts.apiEndpoint?.replace(/\/$/, '');
  const clients = {
    project,
    run: new ServicesClient({ ...gax }),
    // The Cloud SQL Admin API is REST only: the client must use its HTTP transport.
    sqlInstances: new SqlInstancesServiceClient({ fallback: true, ...gax }),
    sqlOperations: new SqlOperationsServiceClient({ fallback: true, ...gax }),
    sqlBackupRuns: new SqlBackupRunsServiceClient({ fallback: true, ...gax }),
    // Only the v1 namespace exports the Backups client (@google-cloud/sql build/src/index.d.ts).
    sqlBackups: new sqlV1.SqlBackupsServiceClient({ fallback: true, ...gax }),
    sqlDatabases: new SqlDatabasesServiceClient({ fallback: true, ...gax }),
    sqlUsers: new SqlUsersServiceClient({ fallback: true, ...gax }),
    iam: iam({ version: 'v1', auth: restAuth, ...(rootUrl ? { rootUrl } : {}) }),
    projects: cloudresourcemanager({ version: 'v3', auth: restAuth, ...(rootUrl ? { rootUrl } : {}) }),
    secrets: new SecretManagerServiceClient({ ...gax }),
    build: new CloudBuildClient({ ...gax }),
    storage: new Storage({ projectId: project, ...(base ? { apiEndpoint: base, authClient } : {}) }),
    bigquery: new BigQuery({ projectId: project, ...(base ? { apiEndpoint: base, authClient } : {}) }),
  };
  return {
    ...clients,
    async close() {
      await Promise.all([clients.run.close(), clients.sqlInstances.close(), clients.sqlOperations.close(), clients.sqlBackupRuns.close(), clients.sqlBackups.close(), clients.sqlDatabases.close(), clients.sqlUsers.close(), clients.secrets.close(), clients.build.close()]);
    },
  };
}

/** NOT_FOUND arrives as gRPC code 5 over gRPC and as HTTP 404 over REST. */
export function isNotFound(err: unknown): boolean {
  const e = err as { code?: unknown; status?: unknown; response?: { status?: unknown } } | undefined;
  return e?.code === 5 || e?.code === 404 || e?.status === 404 || e?.response?.status === 404 || e?.code === 'NOT_FOUND';
}

export function isAlreadyExists(err: unknown): boolean {
  const e = err as { code?: unknown; status?: unknown } | undefined;
  return e?.code === 6 || e?.code === 409 || e?.status === 409;
}

/** Cloud SQL's 409 "Operation failed because another operation was already in progress" (reason operationInProgress). */
export function isOperationInProgress(err: unknown): boolean {
  const e = err as { code?: unknown; status?: unknown; message?: unknown } | undefined;
  return (e?.code === 10 || e?.code === 409 || e?.status === 409) && /another operation was already in progress|operationInProgress/i.test(String(e?.message ?? ''));
}

export function isPermissionDenied(err: unknown): boolean {
  const e = err as { code?: unknown; status?: unknown } | undefined;
  return e?.code === 7 || e?.code === 403 || e?.status === 403;
}

/** Throttling, outages and dropped connections: retrying later may succeed, so they are never a verdict. */
export function isTransient(err: unknown): boolean {
  const e = err as { code?: unknown; status?: unknown; response?: { status?: unknown } } | undefined;
  const status = Number(e?.response?.status ?? e?.status ?? (typeof e?.code === 'number' && e.code >= 100 ? e.code : NaN));
  if ([408, 429, 500, 502, 503, 504].includes(status)) return true;
  if (typeof e?.code === 'number' && e.code < 100) return [4, 8, 10, 13, 14].includes(e.code); // DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, INTERNAL, UNAVAILABLE
  return typeof e?.code === 'string' && ['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN'].includes(e.code);
}
