// IAM API v1 service accounts, as @googleapis/iam sends them with a rootUrl override: get, list,
// create, delete and undelete. As in IAM, a deleted account keeps its uniqueId and can be undeleted
// by that id for 30 days; after that it is gone for good.
import { randomInt, randomUUID } from 'node:crypto';
import { asDict, dict, own } from '../names';
import { ApiError, badRequest, conflict, notFound, type Route, type SandboxCore, type ServiceModule } from '../server';

const UNDELETE_WINDOW_MS = 30 * 86_400_000;

interface IamState {
  accounts: Record<string, Record<string, any>>;
  deleted: Array<{ account: Record<string, any>; deletedAt: string }>;
}

function iamState(core: SandboxCore): IamState {
  core.state.iam ??= { accounts: dict(), deleted: [] };
  const st = core.state.iam as IamState;
  // Accounts are looked up by the email or uniqueId a request names: no inherited member may answer.
  st.accounts = asDict(st.accounts);
  return st;
}

function newAccount(project: string, email: string, displayName?: string, description?: string): Record<string, any> {
  const uniqueId = `1${Array.from({ length: 20 }, () => randomInt(10)).join('')}`;
  return {
    name: `projects/${project}/serviceAccounts/${email}`,
    projectId: project,
    uniqueId,
    email,
    ...(displayName ? { displayName } : {}),
    ...(description ? { description } : {}),
    etag: Buffer.from(randomUUID().slice(0, 8)).toString('base64'),
    oauth2ClientId: uniqueId,
  };
}

export function seedServiceAccount(core: SandboxCore, s: { project: string; email: string; displayName?: string }): Record<string, any> {
  const account = newAccount(s.project, s.email, s.displayName);
  iamState(core).accounts[s.email] = account;
  core.save();
  return account;
}

/** Pretends an account was deleted `days` ago, to test the end of the undelete window. */
export function ageDeletedServiceAccount(core: SandboxCore, email: string, days: number): void {
  for (const d of iamState(core).deleted) if (d.account.email === email) d.deletedAt = new Date(Date.now() - days * 86_400_000).toISOString();
  core.save();
}

export const iamService: ServiceModule = (core) => {
  const st = () => iamState(core);
  /** Accounts are addressed by email or uniqueId; the project segment may be "-". */
  const find = (id: string) => own(st().accounts, id) ?? Object.values(st().accounts).find((a) => a.uniqueId === id);
  const ACCOUNTS = /^\/v1\/projects\/([^/]+)\/serviceAccounts$/;
  const ACCOUNT = /^\/v1\/projects\/([^/]+)\/serviceAccounts\/([^/:]+)$/;

  const routes: Route[] = [
    {
      method: 'GET',
      path: ACCOUNT,
      handle: (req) => {
        const a = find(req.params[1]);
        if (!a) throw notFound(`Service account projects/${req.params[0]}/serviceAccounts/${req.params[1]}`);
        return { json: a };
      },
    },
    {
      method: 'GET',
      path: ACCOUNTS,
      handle: (req) => ({ json: { accounts: Object.values(st().accounts).filter((a) => a.projectId === req.params[0]) } }),
    },
    {
      method: 'POST',
      path: ACCOUNTS,
      handle: (req) => {
        const [project] = req.params;
        const body = req.json<{ accountId?: string; serviceAccount?: { displayName?: string; description?: string } }>();
        if (!body.accountId || !/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/.test(body.accountId)) throw badRequest('accountId must be 6-30 lower-case letters, digits or hyphens');
        const email = `${body.accountId}@${project}.iam.gserviceaccount.com`;
        if (st().accounts[email]) throw conflict(`Service account ${body.accountId}`);
        st().accounts[email] = newAccount(project, email, body.serviceAccount?.displayName, body.serviceAccount?.description);
        return { json: st().accounts[email] };
      },
    },
    {
      method: 'DELETE',
      path: ACCOUNT,
      handle: (req) => {
        const a = find(req.params[1]);
        if (!a) throw notFound(`Service account projects/${req.params[0]}/serviceAccounts/${req.params[1]}`);
        delete st().accounts[a.email];
        st().deleted.push({ account: a, deletedAt: new Date().toISOString() });
        return { json: {} };
      },
    },
    {
      method: 'POST',
      path: /^\/v1\/projects\/([^/]+)\/serviceAccounts\/([^/:]+):undelete$/,
      handle: (req) => {
        const [project, id] = req.params;
        const i = st().deleted.findIndex((d) => d.account.uniqueId === id);
        const d = st().deleted[i];
        if (!d || Date.now() - Date.parse(d.deletedAt) > UNDELETE_WINDOW_MS) {
          // "avoid using the - wildcard … if you try to access the service account projects/-/serviceAccounts/…,
          // which does not exist, the response contains an HTTP 403 Forbidden error instead of a 404"
          // (https://cloud.google.com/iam/docs/reference/rest/v1/projects.serviceAccounts/undelete).
          if (project === '-') throw new ApiError(403, 'PERMISSION_DENIED', `Permission 'iam.serviceAccounts.undelete' denied on resource (or it may not exist).`);
          throw notFound(`Deleted service account with unique ID ${id} (accounts can be undeleted for 30 days)`);
        }
        if (st().accounts[d.account.email]) throw new ApiError(400, 'FAILED_PRECONDITION', `Cannot undelete ${id}: an account with the email ${d.account.email} exists.`);
        st().deleted.splice(i, 1);
        st().accounts[d.account.email] = d.account;
        return { json: { restoredAccount: d.account } };
      },
    },
  ];
  return routes;
};
