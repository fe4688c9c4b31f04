// Plain environment values of the Cloud Run services this tool changes (3.1 deletes mlflow-server,
// 5.3 edits the app service) may hold secrets, so snapshots in the backup bucket keep only their
// names: the values go to a Secret Manager secret of the migration's own, one version per snapshot,
// and the undo reads them back from there. 5.4, the step after which no rollback is offered,
// deletes that secret with the MLflow ones.
import { ErrorType, fail } from '../../errors';
import type { StepContext } from '../../types';
import type { CloudDeps } from './common';
import { describe, gcpCall, gcpGet, isNotFound } from '../../adapters/gcp/calls';

const ROLE = 'roles/secretmanager.admin';

/** A container's plain values by variable name; containers keyed by name, else by position. */
export type EnvValues = Record<string, Record<string, string>>;

/** An env entry as saved: its name and a secret reference, or `valueIn` naming where its plain value is kept. */
export interface SavedEnvEntry {
  name: string;
  valueSource?: unknown;
  /** Set when the entry had a plain value: the Secret Manager version that holds it. */
  valueIn?: string;
}

export function envRecordSecret(ctx: StepContext): string {
  return `projects/${ctx.target.gcp.project}/secrets/mlflow-decommission-${ctx.targetName}-env`;
}

export function createEnvValueStore(deps: CloudDeps) {
  const { secrets } = deps.gcp;

  /** Keeps `values` in a new version of the migration's env secret; returns the version's name. */
  async function save(ctx: StepContext, values: EnvValues): Promise<string> {
    const name = envRecordSecret(ctx);
    const existing = await gcpGet(`reading secret ${name}`, ROLE, async () => (await secrets.getSecret({ name }))[0]);
    if (!existing) {
      await gcpCall(`creating secret ${name}`, ROLE, async () => {
        try {
          await secrets.createSecret({
            parent: `projects/${ctx.target.gcp.project}`,
            secretId: name.split('/').pop()!,
            // Not the target's labels: 5.5 counts what carries those as MLflow leftovers.
            secret: { replication: { automatic: {} }, labels: { 'mlflow-decommission': ctx.targetName } },
          });
        } catch (err) {
          if ((err as { code?: number }).code !== 6 && (err as { code?: number }).code !== 409) throw err; // ALREADY_EXISTS: a racing attempt made it
        }
      });
    }
    const [version] = await gcpCall(`adding a version to ${name}`, ROLE, () => secrets.addSecretVersion({ parent: name, payload: { data: Buffer.from(JSON.stringify(values), 'utf8') } }));
    return version.name!;
  }

  /** The values kept in `version`; a missing version fails the undo naming what is lost. */
  async function read(version: string, what: string): Promise<EnvValues> {
    try {
      const [res] = await gcpCall(`reading ${version}`, ROLE, () => secrets.accessSecretVersion({ name: version }));
      return JSON.parse(Buffer.from(res.payload?.data ?? '').toString('utf8')) as EnvValues;
    } catch (err) {
      if (isNotFound(err)) {
        fail(
          ErrorType.CannotRestore,
          `cannot restore ${what}: its plain environment values were kept in ${version}, which no longer exists (${describe(err)}). Recreate it from your infrastructure code, then skip this compensation.`,
        );
      }
      throw err;
    }
  }

  /** Deletes the migration's env secret (5.4); true when there was one. */
  async function remove(ctx: StepContext): Promise<boolean> {
    const name = envRecordSecret(ctx);
    try {
      await gcpCall(`deleting ${name}`, ROLE, () => secrets.deleteSecret({ name }));
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  return { save, read, remove };
}

/** Splits containers' env into what a snapshot may keep (names, secret references) and the plain values. */
export function redactEnv(containers: Array<Record<string, any>>): { containers: Array<Record<string, any>>; values: EnvValues } {
  const values: EnvValues = Object.create(null);
  const redacted = containers.map((c, index) => {
    const key = c.name ? `name:${c.name}` : `index:${index}`;
    const env = ((c.env ?? []) as Array<Record<string, any>>).map((e) => {
      if (e.valueSource) return { name: e.name, valueSource: e.valueSource };
      (values[key] ??= Object.create(null))[e.name] = String(e.value ?? '');
      return { name: e.name, valueIn: '' } as SavedEnvEntry;
    });
    return { ...c, env };
  });
  return { containers: redacted, values };
}

/** Puts values back into redacted containers; `version` is where they came from. */
export function restoreEnv(containers: Array<Record<string, any>>, values: EnvValues): Array<Record<string, any>> {
  return containers.map((c, index) => {
    const key = c.name ? `name:${c.name}` : `index:${index}`;
    // The values were read back from JSON: only an own entry is a value, never an inherited member such as "toString".
    const saved = values[key];
    const valueOf = (name: string) => (saved && Object.hasOwn(saved, name) ? saved[name] : undefined) ?? '';
    const env = ((c.env ?? []) as SavedEnvEntry[]).map((e) => (e.valueIn !== undefined ? { name: e.name, value: valueOf(e.name) } : { name: e.name, valueSource: e.valueSource }));
    return { ...c, env };
  });
}
