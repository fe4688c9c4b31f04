// 3.5: the MLflow service account. Deleting keeps the account's uniqueId in a snapshot first,
// because IAM undeletes by uniqueId only, and only for 30 days.
import { ErrorType, fail } from '../../errors';
import type { CheckResult, StepContext } from '../../types';
import { readSnapshot, saveSnapshot, snapshotUri, type CloudDeps, type CloudKind } from './common';
import { describe, gcpCall, gcpGet, isNotFound, rethrowTransient } from '../../adapters/gcp/calls';
import { defineStep } from '../step';

const ROLE = 'roles/iam.serviceAccountAdmin';

interface ServiceAccount {
  name?: string | null;
  email?: string | null;
  uniqueId?: string | null;
  displayName?: string | null;
}

export function createIamActivities(deps: CloudDeps) {
  const accounts = deps.gcp.iam.projects.serviceAccounts;
  const accountName = (ctx: StepContext) => `projects/${ctx.target.gcp.project}/serviceAccounts/${ctx.target.serviceAccount}`;
  const snapshotOf = (ctx: StepContext) => snapshotUri(ctx, 'iam', ctx.target.serviceAccount);

  const getAccount = (ctx: StepContext): Promise<ServiceAccount | undefined> =>
    gcpGet(`reading service account ${ctx.target.serviceAccount}`, ROLE, async () => (await accounts.get({ name: accountName(ctx) })).data);

  const deleteServiceAccount = defineStep({
    requiresGate: 'phase-2',
    async plan(ctx) {
      if (!(await getAccount(ctx))) return [];
      return [
        { call: 'storage.objects.insert', resource: snapshotOf(ctx), description: 'save the account and its uniqueId (undelete needs it)' },
        { call: 'iam.serviceAccounts.delete', resource: accountName(ctx), description: `delete ${ctx.target.serviceAccount} (undeletable for 30 days)`, destructive: true },
      ];
    },
    async run(ctx) {
      const name = accountName(ctx);
      const snapshot = snapshotOf(ctx);
      const account = await getAccount(ctx);
      if (!account) {
        const saved = (await deps.objects.read(snapshot)) ? await readSnapshot<ServiceAccount>(deps.objects, snapshot, name) : undefined;
        return { summary: `${ctx.target.serviceAccount} is already gone`, actions: [], facts: saved ? { snapshot, uniqueId: saved.uniqueId } : {} };
      }
      await saveSnapshot(deps.objects, snapshot, account);
      try {
        await gcpCall(`deleting ${name}`, ROLE, () => accounts.delete({ name }));
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      return {
        summary: `deleted ${ctx.target.serviceAccount} (uniqueId ${account.uniqueId}; undeletable until ${new Date(Date.now() + 30 * 86_400_000).toISOString().slice(0, 10)})`,
        actions: [{ call: 'iam.serviceAccounts.delete', resource: name, description: 'deleted the account', destructive: true }],
        facts: { deletedAt: new Date().toISOString(), snapshot, uniqueId: account.uniqueId },
      };
    },
  });

  const restoreServiceAccount = defineStep({
    async plan(ctx) {
      if (await getAccount(ctx)) return [];
      return [{ call: 'iam.serviceAccounts.undelete', resource: `projects/${ctx.target.gcp.project}/serviceAccounts/(uniqueId from ${snapshotOf(ctx)})`, description: `undelete ${ctx.target.serviceAccount}` }];
    },
    async run(ctx) {
      if (await getAccount(ctx)) return { summary: `${ctx.target.serviceAccount} exists; nothing to restore`, actions: [] };
      const saved = await readSnapshot<ServiceAccount>(deps.objects, snapshotOf(ctx), `service account ${ctx.target.serviceAccount}`);
      // The project, not "-": with the wildcard a missing account answers 403 instead of 404
      // (https://cloud.google.com/iam/docs/reference/rest/v1/projects.serviceAccounts/undelete).
      const name = `projects/${ctx.target.gcp.project}/serviceAccounts/${saved.uniqueId}`;
      try {
        await gcpCall(`undeleting ${ctx.target.serviceAccount}`, ROLE, () => accounts.undelete({ name, requestBody: {} }));
      } catch (err) {
        const status = (err as { status?: number; response?: { status?: number } }).status ?? (err as { response?: { status?: number } }).response?.status;
        if (isNotFound(err) || status === 400) {
          fail(
            ErrorType.CannotRestore,
            `cannot undelete ${ctx.target.serviceAccount} (uniqueId ${saved.uniqueId}): ${describe(err)}. IAM keeps deleted accounts 30 days; after that, recreate it ` +
              `(gcloud iam service-accounts create ${ctx.target.serviceAccount.split('@')[0]}) and grant its roles again, then skip this compensation.`,
          );
        }
        throw err;
      }
      return {
        summary: `undeleted ${ctx.target.serviceAccount} (uniqueId ${saved.uniqueId}); check its role bindings, IAM restores only those still present`,
        actions: [{ call: 'iam.serviceAccounts.undelete', resource: name, description: 'undeleted the account' }],
      };
    },
  });

  async function preflight(ctx: StepContext): Promise<CheckResult[]> {
    const name = `iam: service account ${ctx.target.serviceAccount}`;
    try {
      const account = await getAccount(ctx);
      return [account ? { name, ok: true, detail: `readable (uniqueId ${account.uniqueId})` } : { name, ok: false, detail: 'not found: check serviceAccount in the config' }];
    } catch (err) {
      rethrowTransient(err);
      return [{ name, ok: false, detail: (err as { type?: string }).type ? (err as Error).message : describe(err) }];
    }
  }

  async function remaining(ctx: StepContext): Promise<string[]> {
    return (await getAccount(ctx)) ? [accountName(ctx)] : [];
  }

  return { activities: { deleteServiceAccount, restoreServiceAccount }, preflight, remaining } satisfies CloudKind<Record<string, unknown>>;
}

export type IamActivities = ReturnType<typeof createIamActivities>['activities'];
