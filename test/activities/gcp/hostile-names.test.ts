// Names are data (issue 9 item 1), through the cloud steps that snapshot what they delete and put it
// back: object names in 3.4, labels and env var names in 3.1, secret IDs in 3.6. Every name is one
// Google accepts; each must come back exactly. Against the sandbox, through the real clients.
import { beforeAll, describe, expect, it } from 'vitest';
import { seedBuildTrigger } from '../../../dev/sandbox/services/cloud-build';
import { seedCloudRunService } from '../../../dev/sandbox/services/cloud-run';
import { seedSecret } from '../../../dev/sandbox/services/secret-manager';
import { seedBucket } from '../../../dev/sandbox/services/storage';
import { createCloudBuildActivities } from '../../../src/activities/gcp/cloud-build';
import { createCloudRunActivities } from '../../../src/activities/gcp/cloud-run';
import { redactEnv, restoreEnv } from '../../../src/activities/gcp/env-values';
import { createSecretsActivities } from '../../../src/activities/gcp/secrets';
import { createStorageActivities } from '../../../src/activities/gcp/storage';
import { GATE_IDS, type StepContext } from '../../../src/types';
import { useSandbox } from '../../support/cloud';
import { demoTarget } from '../../support/fake-activities';
import { ENV_NAMES, LABEL_KEYS, OBJECT_NAMES, SECRET_IDS } from '../../support/hostile-names';

const cloud = useSandbox();
let run = 0;
function context(target = demoTarget()): StepContext {
  return { migrationId: `names-${++run}`, targetName: 'demo', target, dryRun: false, gatesPassed: [...GATE_IDS], force: false, facts: {} };
}
/** Labels with these keys besides the MLflow one; Object.fromEntries makes `__proto__` a key, where a literal would set the prototype. */
const labelsWith = (keys: string[]): Record<string, string> => Object.fromEntries([['app', 'mlflow'], ...keys.map((k) => [k, `v-${k.length}`])]);

beforeAll(() => {
  seedBucket(cloud.sandbox, { name: 'demo-backups' });
});

describe('3.4 and its undo keep every object name', () => {
  /** Every version: name, content, live or noncurrent, read with the real client. */
  async function versionsOf(bucket: string): Promise<string[]> {
    const [files] = await cloud.gcp.storage.bucket(bucket).getFiles({ versions: true });
    const out = await Promise.all(files.map(async (f) => JSON.stringify([f.name, (await f.download())[0].toString(), f.metadata.timeDeleted ? 'noncurrent' : 'live'])));
    return out.sort();
  }

  it('deletes, then restores, a versioned bucket whose objects carry hostile names', async () => {
    const bucket = 'names-artifacts';
    // Two versions of each name: the older one noncurrent, as Object Versioning keeps it.
    seedBucket(cloud.sandbox, { name: bucket, labels: { app: 'mlflow' }, versioning: true, objects: new Map(OBJECT_NAMES.map((n) => [n, `v1 of ${n}`])) });
    seedBucket(cloud.sandbox, { name: bucket, objects: new Map(OBJECT_NAMES.map((n) => [n, `v2 of ${n}`])) });
    const before = await versionsOf(bucket);
    expect(before).toHaveLength(OBJECT_NAMES.length * 2);

    const target = demoTarget({ buckets: { ...demoTarget().buckets, artifacts: bucket } });
    const ctx = context(target);
    const storage = createStorageActivities({ gcp: cloud.gcp, objects: cloud.objects });
    const deleted = await storage.activities.deleteArtifactsBucket(ctx);
    expect(deleted.facts?.objectVersions).toBe(OBJECT_NAMES.length * 2);
    expect((await cloud.gcp.storage.bucket(bucket).exists())[0]).toBe(false);

    const restored = await storage.activities.restoreArtifactsBucket(ctx);
    expect(restored.facts).toMatchObject({ restoredObjects: OBJECT_NAMES.length * 2, listedObjects: OBJECT_NAMES.length * 2 });
    expect(await versionsOf(bucket)).toEqual(before);
  });
});

describe('3.1 and its undo keep every label key and env var name', () => {
  const parent = 'projects/demo-project/locations/europe-central2';
  const name = `${parent}/services/mlflow-server`;
  const env: Array<{ name: string; value?: string; valueSource?: { secretKeyRef: { secret: string; version: string } } }> = [
    ...ENV_NAMES.map((n, i) => ({ name: n, value: `plain value ${i}` })),
    { name: 'hasOwnProperty_ref', valueSource: { secretKeyRef: { secret: 'projects/demo-project/secrets/MLFLOW_URI', version: '1' } } },
  ];

  it('recreates the service with the same labels, env names and env values', async () => {
    seedSecret(cloud.sandbox, { project: 'demo-project', id: 'MLFLOW_URI', versions: ['https://mlflow'] });
    seedCloudRunService(cloud.sandbox, { project: 'demo-project', region: 'europe-central2', name: 'mlflow-server', labels: labelsWith(LABEL_KEYS), env });
    const cloudRun = createCloudRunActivities({ gcp: cloud.gcp, objects: cloud.objects }, { pollIntervalMs: 20 });
    const ctx = context();
    const [before] = await cloud.gcp.run.getService({ name });

    const deleted = await cloudRun.activities.deleteMlflowService(ctx);
    const snapshot = JSON.parse((await cloud.objects.read(deleted.facts!.snapshot as string))!.toString());
    expect(Object.keys(snapshot.labels).sort()).toEqual(['app', ...LABEL_KEYS].sort());
    expect(snapshot.template.containers[0].env.map((e: { name: string }) => e.name)).toEqual(env.map((e) => e.name));
    expect((await cloud.gcp.run.listServices({ parent }))[0].map((s) => s.name)).not.toContain(name);

    await cloudRun.activities.restoreMlflowService(ctx);
    const [after] = await cloud.gcp.run.getService({ name });
    expect({ ...after.labels }).toEqual(labelsWith(LABEL_KEYS));
    const envOf = (s: typeof after) => s.template!.containers![0]!.env!.map((e) => [e.name, e.value ?? null, e.valueSource?.secretKeyRef?.secret ?? null]);
    expect(envOf(after)).toEqual(envOf(before));
    expect(envOf(after)).toEqual(env.map((e) => [e.name, e.value ?? null, e.valueSource?.secretKeyRef.secret ?? null]));
  });
});

describe('5.3 and its undo touch one env var and keep every other name', () => {
  it('removes MLFLOW_TRACKING_URI beside env vars named "__proto__", "constructor" …, then puts it back', async () => {
    const env = [...ENV_NAMES.map((n, i) => ({ name: n, value: `app value ${i}` })), { name: 'MLFLOW_TRACKING_URI', value: 'https://mlflow.example' }];
    seedCloudRunService(cloud.sandbox, { project: 'demo-project', region: 'europe-central2', name: 'django-app', labels: labelsWith(LABEL_KEYS), env });
    const name = 'projects/demo-project/locations/europe-central2/services/django-app';
    const cloudRun = createCloudRunActivities({ gcp: cloud.gcp, objects: cloud.objects }, { pollIntervalMs: 20 });
    const ctx = context();
    const envOf = async () => (await cloud.gcp.run.getService({ name }))[0].template!.containers![0]!.env!.map((e) => [e.name, e.value]);

    await cloudRun.activities.removeTrackingUri(ctx);
    expect(await envOf()).toEqual(env.slice(0, -1).map((e) => [e.name, e.value]));
    expect({ ...(await cloud.gcp.run.getService({ name }))[0].labels }).toEqual(labelsWith(LABEL_KEYS));
    await cloudRun.activities.restoreTrackingUri(ctx);
    expect(await envOf()).toEqual(env.map((e) => [e.name, e.value]));
  });
});

describe('env values kept for 3.1 and 5.3', () => {
  it('round-trip through JSON by name, and a name with no kept value gets "", never an inherited member', () => {
    const containers = [{ name: 'c', env: ENV_NAMES.map((name, i) => ({ name, value: `v${i}` })) }];
    const { containers: redacted, values } = redactEnv(containers);
    expect(restoreEnv(redacted, JSON.parse(JSON.stringify(values)))).toEqual(containers);
    expect(restoreEnv(redacted, JSON.parse('{"name:c": {}}'))[0]!.env).toEqual(ENV_NAMES.map((name) => ({ name, value: '' })));
  });
});

describe('3.6 and its undo act on secrets whatever their IDs', () => {
  it('disables, then re-enables, secrets named "__proto__", "constructor", "toString" …', async () => {
    for (const id of SECRET_IDS) seedSecret(cloud.sandbox, { project: 'demo-project', id, labels: { app: 'mlflow' }, versions: [`a ${id}`, `b ${id}`] });
    const secrets = createSecretsActivities({ gcp: cloud.gcp, objects: cloud.objects });
    const ctx = context(demoTarget({ secrets: SECRET_IDS }));
    const states = async () =>
      Object.fromEntries(
        await Promise.all(
          SECRET_IDS.map(async (id) => [id, (await cloud.gcp.secrets.listSecretVersions({ parent: `projects/demo-project/secrets/${id}` }))[0].map((v) => String(v.state)).join(',')] as const),
        ),
      );
    const disabled = await secrets.activities.disableSecrets(ctx);
    expect(disabled.facts).toMatchObject({ secrets: SECRET_IDS.map((id) => `projects/demo-project/secrets/${id}`), disabledVersions: SECRET_IDS.length * 2 });
    expect(Object.values(await states())).toEqual(SECRET_IDS.map(() => 'DISABLED,DISABLED'));
    const enabled = await secrets.activities.enableSecrets(ctx);
    expect((enabled.facts?.enabledVersions as string[]).length).toBe(SECRET_IDS.length * 2);
    expect(Object.values(await states())).toEqual(SECRET_IDS.map(() => 'ENABLED,ENABLED'));
    expect(Object.keys(await states()).sort()).toEqual([...SECRET_IDS].sort());
  });
});

describe('3.3 and its undo keep every substitution', () => {
  it('recreates the trigger with the same substitution names, an empty value included', async () => {
    // User-defined substitutions "must begin with an underscore (_) and use only uppercase letters and numbers" (https://cloud.google.com/build/docs/configuring-builds/substitute-variable-values).
    const substitutions = { _REGION: 'europe-central2', _EMPTY: '', _PROTO__: 'x', _0: 'zero' };
    seedBuildTrigger(cloud.sandbox, { project: 'demo-project', name: 'mlflow-server', substitutions });
    const build = createCloudBuildActivities({ gcp: cloud.gcp, objects: cloud.objects });
    const ctx = context();
    await build.activities.deleteBuildTrigger(ctx);
    await build.activities.restoreBuildTrigger(ctx);
    const [triggers] = await cloud.gcp.build.listBuildTriggers({ projectId: 'demo-project' });
    expect(triggers.map((t) => t.name)).toEqual(['mlflow-server']);
    expect({ ...triggers[0]!.substitutions }).toEqual(substitutions);
  });
});
