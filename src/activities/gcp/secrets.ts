// Secret Manager: 3.6 disables the MLflow secrets' versions (reversible: the snapshot records which
// were enabled), and 5.4 deletes the secrets after the bake period (irreversible). Payloads are never
// read: metadata is enough to know what to disable and re-enable.
import { ErrorType, fail } from '../../errors';
import type { CheckResult, PlannedAction, StepContext } from '../../types';
import { assertLabels, hasLabels, heartbeat, saveSnapshot, snapshotUri, type CloudDeps, type CloudKind } from './common';
import { createEnvValueStore, envRecordSecret } from './env-values';
import { describe, gcpCall, gcpGet, isNotFound, plain, rethrowTransient } from '../../adapters/gcp/calls';
import { defineStep } from '../step';

const ROLE = 'roles/secretmanager.admin';

type Secret = { name: string; labels?: Record<string, string> };
type Version = { name: string; state: string | number };
export interface SecretSnapshot {
  takenAt: string;
  secret: string;
  labels: Record<string, string>;
  /** Versions that were ENABLED before 3.6: exactly these are re-enabled on rollback. */
  enabledVersions: string[];
  versions: Array<{ name: string; state: string }>;
}

/** Version.State over REST may arrive as a name or as its number; unset is proto3's 0, STATE_UNSPECIFIED. */
const STATE_NAMES: Record<number, string> = { 0: 'STATE_UNSPECIFIED', 1: 'ENABLED', 2: 'DISABLED', 3: 'DESTROYED' };
const stateOf = (v: Version): string => {
  const state = v.state ?? 0;
  return typeof state === 'number' ? (STATE_NAMES[state] ?? `STATE_${state}`) : state;
};

export function createSecretsActivities(deps: CloudDeps): CloudKind<ReturnType<typeof activities>> {
  const { secrets } = deps.gcp;
  const envValues = createEnvValueStore(deps);
  const secretName = (ctx: StepContext, id: string) => `projects/${ctx.target.gcp.project}/secrets/${id}`;
  const snapshotOf = (ctx: StepContext, id: string) => snapshotUri(ctx, 'secret', id);

  const getSecret = (name: string): Promise<Secret | undefined> => gcpGet(`reading secret ${name}`, ROLE, async () => plain<Secret>((await secrets.getSecret({ name }))[0]));
  const listVersions = async (name: string): Promise<Version[]> =>
    (await gcpCall(`listing versions of ${name}`, ROLE, async () => plain<Version[]>((await secrets.listSecretVersions({ parent: name }))[0]))) ?? [];

  /** The configured secrets that still exist, each checked for the MLflow labels before anything acts. */
  const presentSecrets = async (ctx: StepContext): Promise<{ present: Secret[]; gone: string[] }> => {
    const present: Secret[] = [];
    const gone: string[] = [];
    for (const id of ctx.target.secrets) {
      const name = secretName(ctx, id);
      const secret = await getSecret(name);
      if (secret) present.push(secret);
      else gone.push(name);
    }
    return { present, gone };
  };

  return {
    activities: activities(),
    async preflight(ctx) {
      const checks: CheckResult[] = [];
      for (const id of ctx.target.secrets) {
        const name = secretName(ctx, id);
        try {
          const secret = await getSecret(name);
          if (!secret) {
            checks.push({ name: `secret ${id}`, ok: true, detail: `${name} does not exist (already deleted?): 3.6 and 5.4 will skip it. Check secrets in the config if that is unexpected.` });
            continue;
          }
          const versions = await listVersions(name);
          const enabled = versions.filter((v) => stateOf(v) === 'ENABLED').length;
          const labelled = hasLabels(secret.labels, ctx);
          checks.push({
            name: `secret ${id}`,
            ok: labelled,
            detail: labelled
              ? `readable (metadata only): ${versions.length} version(s), ${enabled} enabled`
              : `${name} lacks the labels ${labelText(ctx)}, so 3.6 will refuse it: add the labels if it is MLflow's, or remove it from secrets`,
          });
        } catch (err) {
          rethrowTransient(err);
          checks.push({ name: `secret ${id}`, ok: false, detail: `cannot read ${name}: ${describe(err)}` });
        }
      }
      return checks;
    },
    async remaining(ctx) {
      const left = new Set<string>();
      for (const secret of (await presentSecrets(ctx)).present) left.add(secret.name);
      const filter = Object.entries(ctx.target.labels)
        .map(([k, v]) => `labels.${k}=${v}`)
        .join(' AND ');
      const [found] = await gcpCall(`listing secrets in ${ctx.target.gcp.project}`, ROLE, () => secrets.listSecrets({ parent: `projects/${ctx.target.gcp.project}`, filter }));
      for (const s of plain<Secret[]>(found)) if (hasLabels(s.labels, ctx)) left.add(s.name);
      return [...left];
    },
  };

  function activities() {
    // 3.6
    const disableSecrets = defineStep({
      requiresGate: 'phase-2',
      async plan(ctx) {
        const actions: PlannedAction[] = [];
        for (const secret of (await presentSecrets(ctx)).present) {
          const enabled = (await listVersions(secret.name)).filter((v) => stateOf(v) === 'ENABLED');
          if (!enabled.length) continue;
          actions.push({ call: 'storage.objects.insert', resource: snapshotOf(ctx, idOf(secret.name)), description: `record which versions of ${idOf(secret.name)} are enabled, for rollback` });
          for (const v of enabled) actions.push({ call: 'secretmanager.versions.disable', resource: v.name, description: `disable version ${idOf(v.name, 'versions')} (reversible)`, destructive: true });
        }
        return actions;
      },
      async run(ctx) {
        const { present, gone } = await presentSecrets(ctx);
        // Every secret is checked before any is touched: a wrong name must not leave half the list disabled.
        for (const s of present) assertLabels(`secret ${s.name}`, s.labels, ctx);
        const actions: PlannedAction[] = [];
        let disabled = 0;
        for (const secret of present) {
          const versions = await listVersions(secret.name);
          const enabled = versions.filter((v) => stateOf(v) === 'ENABLED');
          const snapshot = snapshotOf(ctx, idOf(secret.name));
          // A retry after some versions were disabled keeps the first record: it alone knows what was enabled.
          if (!(await deps.objects.stat(snapshot))) {
            await saveSnapshot(deps.objects, snapshot, {
              takenAt: new Date().toISOString(),
              secret: secret.name,
              labels: secret.labels ?? {},
              enabledVersions: enabled.map((v) => v.name),
              versions: versions.map((v) => ({ name: v.name, state: stateOf(v) })),
            } satisfies SecretSnapshot);
            actions.push({ call: 'storage.objects.insert', resource: snapshot, description: `recorded ${enabled.length} enabled version(s)` });
          }
          for (const v of enabled) {
            try {
              await gcpCall(`disabling ${v.name}`, ROLE, () => secrets.disableSecretVersion({ name: v.name }));
            } catch (err) {
              if (!isNotFound(err)) throw err;
            }
            disabled++;
            heartbeat({ disabled });
            actions.push({ call: 'secretmanager.versions.disable', resource: v.name, description: 'disabled', destructive: true });
          }
        }
        return {
          summary: `disabled ${disabled} version(s) of ${present.length} secret(s)${gone.length ? `; already gone: ${gone.map((n) => idOf(n)).join(', ')}` : ''}`,
          actions,
          facts: { secrets: present.map((s) => s.name), disabledVersions: disabled },
        };
      },
    });

    // Undo of 3.6: exactly the versions the snapshot says were enabled.
    const enableSecrets = defineStep({
      async plan(ctx) {
        const actions: PlannedAction[] = [];
        for (const id of ctx.target.secrets) {
          const saved = await readSaved(ctx, id);
          for (const v of saved?.enabledVersions ?? []) actions.push({ call: 'secretmanager.versions.enable', resource: v, description: 'enable again (it was enabled before 3.6)' });
        }
        return actions;
      },
      async run(ctx) {
        const actions: PlannedAction[] = [];
        for (const id of ctx.target.secrets) {
          const saved = await readSaved(ctx, id);
          // No record: 3.6 saves it before disabling anything, so this secret was never touched.
          if (!saved) continue;
          for (const name of saved.enabledVersions) {
            const version = await gcpGet(`reading ${name}`, ROLE, async () => plain<Version>((await secrets.getSecretVersion({ name }))[0]));
            if (!version) {
              fail(ErrorType.CannotRestore, `cannot re-enable ${name}: the secret or version no longer exists (deleted in 5.4?). Its former state is recorded in ${snapshotOf(ctx, id)}; recreate the secret by hand, then skip this compensation.`);
            }
            const state = stateOf(version);
            if (state === 'ENABLED') continue;
            if (state === 'DESTROYED') fail(ErrorType.CannotRestore, `cannot re-enable ${name}: it was destroyed. Add a new version with the value by hand, then skip this compensation.`);
            await gcpCall(`enabling ${name}`, ROLE, () => secrets.enableSecretVersion({ name }));
            actions.push({ call: 'secretmanager.versions.enable', resource: name, description: 'enabled again' });
          }
        }
        return { summary: `re-enabled ${actions.length} secret version(s)`, actions, facts: { enabledVersions: actions.map((a) => a.resource) } };
      },
    });

    // 5.4: irreversible, after the bake period.
    const deleteSecrets = defineStep({
      requiresGate: 'closure',
      async plan(ctx) {
        const record = await getSecret(envRecordSecret(ctx));
        return [
          ...(await presentSecrets(ctx)).present.map((s) => ({ call: 'secretmanager.secrets.delete', resource: s.name, description: `delete ${idOf(s.name)} and all its versions (irreversible)`, destructive: true })),
          ...(record ? [{ call: 'secretmanager.secrets.delete', resource: record.name, description: 'delete the env values kept for rollback (no rollback is offered after 5.4)', destructive: true }] : []),
        ];
      },
      async run(ctx) {
        const { present, gone } = await presentSecrets(ctx);
        for (const s of present) assertLabels(`secret ${s.name}`, s.labels, ctx);
        // An enabled version means something switched it back on after 3.6: maybe it is still in use.
        for (const s of present) {
          const enabled = (await listVersions(s.name)).filter((v) => stateOf(v) === 'ENABLED');
          if (enabled.length) {
            fail(
              ErrorType.PreconditionFailed,
              `${s.name} has enabled version(s) ${enabled.map((v) => idOf(v.name, 'versions')).join(', ')} although 3.6 disabled them: something re-enabled it. Check nothing reads it, disable them, then retry (or skip 5.4 to keep the secret).`,
            );
          }
        }
        const actions: PlannedAction[] = [];
        for (const s of present) {
          try {
            await gcpCall(`deleting ${s.name}`, ROLE, () => secrets.deleteSecret({ name: s.name }));
          } catch (err) {
            if (!isNotFound(err)) throw err;
          }
          actions.push({ call: 'secretmanager.secrets.delete', resource: s.name, description: 'deleted', destructive: true });
        }
        // The Cloud Run env values kept for rollback: with the MLflow secrets gone, nothing they restore could start.
        if (await envValues.remove(ctx)) actions.push({ call: 'secretmanager.secrets.delete', resource: envRecordSecret(ctx), description: 'deleted the env values kept for rollback', destructive: true });
        return {
          summary: `deleted ${present.length} secret(s)${gone.length ? `; already gone: ${gone.map((n) => idOf(n)).join(', ')}` : ''}`,
          actions,
          facts: { deleted: present.map((s) => s.name), alreadyGone: gone },
        };
      },
    });

    return { disableSecrets, enableSecrets, deleteSecrets };
  }

  async function readSaved(ctx: StepContext, id: string): Promise<SecretSnapshot | undefined> {
    const raw = await deps.objects.read(snapshotOf(ctx, id));
    return raw ? (JSON.parse(raw.toString('utf8')) as SecretSnapshot) : undefined;
  }
}

/** The last segment after `kind/`, e.g. the secret ID or the version number. */
function idOf(name: string, kind = 'secrets'): string {
  const parts = name.split('/');
  const i = parts.lastIndexOf(kind);
  return (i >= 0 ? parts[i + 1] : parts.at(-1)) ?? name;
}

function labelText(ctx: StepContext): string {
  return Object.entries(ctx.target.labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
}
