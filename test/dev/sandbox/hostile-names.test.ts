// Names are data (issue 9 item 1): every name Google accepts comes back from the sandbox exactly as
// it was given, and every name Google refuses is refused the same way. Through the real clients.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { createDatabase } from '../../../dev/postgres';
import { seedSqlInstance } from '../../../dev/sandbox/services/cloud-sql';
import { Sandbox } from '../../../dev/sandbox/server';
import { createGcpClients } from '../../../src/adapters/gcp/clients';
import { storageService } from '../../../dev/sandbox/services/storage';
import { seedServiceAccount } from '../../../dev/sandbox/services/iam';
import { bucketAllows, grantBucket, seedBucket } from '../../../dev/sandbox/services/storage';
import { ENV_NAMES, LABEL_KEYS, OBJECT_NAMES, SECRET_IDS } from '../../support/hostile-names';
import { useSandbox } from '../../support/cloud';

const cloud = useSandbox('demo-project');
const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: { code?: number; message?: string }) => e);
/** A label map with these keys; Object.fromEntries defines `__proto__` as a key, where a literal would set the prototype. */
const labelsWith = (keys: string[]): Record<string, string> => Object.fromEntries(keys.map((k) => [k, `v-${k.length}`]));

describe('Cloud Storage object names', () => {
  it('every hostile name round-trips through upload, list, download, delete, soft-deleted list and restore', async () => {
    seedBucket(cloud.sandbox, { name: 'names-bucket', project: 'demo-project' });
    const bucket = cloud.gcp.storage.bucket('names-bucket');
    for (const [i, name] of OBJECT_NAMES.entries()) {
      // Half through one multipart request, half through a resumable session: both carry the name differently.
      await bucket.file(name).save(Buffer.from(`body of ${i}`), { resumable: i % 2 === 1, validation: 'crc32c' });
    }
    const [listed] = await bucket.getFiles();
    expect(listed.map((f) => f.name).sort()).toEqual([...OBJECT_NAMES].sort());
    for (const [i, name] of OBJECT_NAMES.entries()) {
      const [data] = await bucket.file(name).download();
      expect(data.toString()).toBe(`body of ${i}`);
      const [meta] = await bucket.file(name).getMetadata();
      expect(meta.name).toBe(name);
    }

    const generations = new Map(listed.map((f) => [f.name, String(f.metadata.generation)]));
    for (const name of OBJECT_NAMES) await bucket.file(name).delete();
    expect((await bucket.getFiles())[0]).toEqual([]);
    const [soft] = await bucket.getFiles({ softDeleted: true });
    expect(soft.map((f) => f.name).sort()).toEqual([...OBJECT_NAMES].sort());

    for (const name of OBJECT_NAMES) await bucket.file(name).restore({ generation: Number(generations.get(name)) });
    const [back] = await bucket.getFiles();
    expect(back.map((f) => f.name).sort()).toEqual([...OBJECT_NAMES].sort());
    for (const [i, name] of OBJECT_NAMES.entries()) expect((await bucket.file(name).download())[0].toString()).toBe(`body of ${i}`);
  });

  it('a prefix listing with a delimiter treats a name as data', async () => {
    seedBucket(cloud.sandbox, { name: 'prefix-bucket', project: 'demo-project', objects: new Map([['__proto__/a', 'a'], ['__proto__/b', 'b'], ['constructor', 'c']]) });
    const [files, , api] = await cloud.gcp.storage.bucket('prefix-bucket').getFiles({ prefix: '', delimiter: '/', autoPaginate: false });
    expect(files.map((f) => f.name)).toEqual(['constructor']);
    expect((api as { prefixes?: string[] }).prefixes).toEqual(['__proto__/']);
  });

  it('refuses what Cloud Storage refuses: CR, LF, "." and "..", the ACME prefix, over 1024 bytes', async () => {
    seedBucket(cloud.sandbox, { name: 'refusing-bucket', project: 'demo-project' });
    const bucket = cloud.gcp.storage.bucket('refusing-bucket');
    for (const name of ['line\nfeed', 'carriage\rreturn', '.', '..', '.well-known/acme-challenge/token', 'é'.repeat(513)]) {
      for (const resumable of [false, true]) {
        const err = await failure(bucket.file(name).save('x', { resumable }));
        expect(err?.code, JSON.stringify(name)).toBe(400);
      }
    }
    // 1024 bytes is still a name.
    await bucket.file('é'.repeat(512)).save('x', { resumable: false });
    expect((await bucket.getFiles())[0].map((f) => f.name)).toEqual(['é'.repeat(512)]);
  });
});

describe('the GCS object store adapter', () => {
  it('writes, stats, reads and lists every hostile name under a prefix', async () => {
    seedBucket(cloud.sandbox, { name: 'adapter-bucket', project: 'demo-project' });
    for (const name of OBJECT_NAMES) await cloud.objects.write(`gs://adapter-bucket/p/${name}`, `body ${name}`);
    for (const name of OBJECT_NAMES) {
      expect((await cloud.objects.read(`gs://adapter-bucket/p/${name}`))?.toString()).toBe(`body ${name}`);
      expect((await cloud.objects.stat(`gs://adapter-bucket/p/${name}`))?.uri).toBe(`gs://adapter-bucket/p/${name}`);
    }
    expect((await cloud.objects.list('gs://adapter-bucket/p/')).map((o) => o.uri).sort()).toEqual(OBJECT_NAMES.map((n) => `gs://adapter-bucket/p/${n}`).sort());
  });
});

describe('Cloud Storage buckets', () => {
  it('a bucket named "constructor" is created, read, deleted and restored like any other', async () => {
    const storage = cloud.gcp.storage;
    const [created] = await storage.createBucket('constructor', { softDeletePolicy: { retentionDurationSeconds: 7 * 86_400 } });
    expect(created.name).toBe('constructor');
    expect((await storage.bucket('constructor').getMetadata())[0].name).toBe('constructor');
    const [buckets] = await storage.getBuckets({ prefix: 'constructor' });
    expect(buckets.map((b) => b.name)).toEqual(['constructor']);
    await storage.bucket('constructor').delete();
    expect((await failure(storage.bucket('constructor').getMetadata()))?.code).toBe(404);
    const [gone] = await storage.getBuckets({ prefix: 'constructor', softDeleted: true });
    await storage.bucket('constructor').restore({ generation: String(gone[0]!.metadata.generation) });
    expect((await storage.bucket('constructor').getMetadata())[0].name).toBe('constructor');
  });

  it('after a restart from the state file, a bucket named "constructor" is still free to create', async () => {
    const stateFile = join(mkdtempSync(join(tmpdir(), 'names-')), 'state.json');
    const first = await new Sandbox({ stateFile, services: [storageService] }).start();
    seedBucket(first, { name: 'first-bucket', project: 'demo-project' });
    await first.stop();
    const again = await new Sandbox({ stateFile, services: [storageService] }).start();
    const gcp = createGcpClients({ apiEndpoint: again.url, project: 'demo-project' });
    try {
      expect((await failure(gcp.storage.bucket('constructor').getMetadata()))?.code).toBe(404);
      await gcp.storage.createBucket('constructor');
      expect((await gcp.storage.getBuckets())[0].map((b) => b.name).sort()).toEqual(['constructor', 'first-bucket']);
    } finally {
      await gcp.close();
      await again.stop();
    }
  });

  it('refuses bucket names Cloud Storage refuses', async () => {
    // "Bucket names can only contain lowercase letters, numeric characters, dashes, underscores, and dots … must start and end with a number or letter" (https://cloud.google.com/storage/docs/buckets#naming).
    for (const name of ['__proto__', 'toString', 'ab', '-dash', 'UPPER']) {
      const err = await failure(cloud.gcp.storage.createBucket(name));
      expect(err?.code, name).toBe(400);
    }
  });

  it('label keys such as "constructor" are set, read and removed; "__proto__" is refused as Google refuses it', async () => {
    seedBucket(cloud.sandbox, { name: 'labelled-bucket', project: 'demo-project' });
    const bucket = cloud.gcp.storage.bucket('labelled-bucket');
    await bucket.setMetadata({ labels: labelsWith(LABEL_KEYS) });
    expect((await bucket.getMetadata())[0].labels).toEqual(labelsWith(LABEL_KEYS));
    await bucket.setMetadata({ labels: { constructor: null } });
    expect((await bucket.getMetadata())[0].labels).toEqual(labelsWith(LABEL_KEYS.filter((k) => k !== 'constructor')));
    const err = await failure(bucket.setMetadata({ labels: labelsWith(['__proto__']) }));
    expect(err?.code).toBe(400);
    expect((await bucket.getMetadata())[0].labels).toEqual(labelsWith(LABEL_KEYS.filter((k) => k !== 'constructor')));
  });

  it('a binding whose role is named like an Object.prototype member grants nothing, and breaks nothing', () => {
    seedBucket(cloud.sandbox, { name: 'policy-bucket', project: 'demo-project' });
    grantBucket(cloud.sandbox, 'policy-bucket', 'user:a@example.com', 'constructor');
    grantBucket(cloud.sandbox, 'policy-bucket', 'user:b@example.com', 'roles/storage.objectViewer');
    expect(bucketAllows(cloud.sandbox, 'policy-bucket', 'user:a@example.com', 'storage.objects.get')).toBe(false);
    expect(bucketAllows(cloud.sandbox, 'policy-bucket', 'user:b@example.com', 'storage.objects.get')).toBe(true);
  });
});

describe('Cloud Run names', () => {
  const parent = 'projects/demo-project/locations/europe-central2';
  const env = ENV_NAMES.map((name, i) => ({ name, value: `value ${i}` }));

  it('labels such as "constructor" and env names such as "__proto__" come back exactly, after create and after an update', async () => {
    const [op] = await cloud.gcp.run.createService({
      parent,
      serviceId: 'names-service',
      service: { labels: labelsWith(LABEL_KEYS), template: { labels: labelsWith(['constructor']), containers: [{ image: 'hello', env }] } },
    });
    await op.promise();
    const name = `${parent}/services/names-service`;
    const [service] = await cloud.gcp.run.getService({ name });
    expect({ ...service.labels }).toEqual(labelsWith(LABEL_KEYS));
    expect({ ...service.template?.labels }).toEqual(labelsWith(['constructor']));
    expect(service.template?.containers?.[0]?.env?.map((e) => [e.name, e.value])).toEqual(env.map((e) => [e.name, e.value]));

    const [update] = await cloud.gcp.run.updateService({ service: { ...service, template: { ...service.template, containers: [{ image: 'hello', env: [...env].reverse() }] } } });
    await update.promise();
    const [after] = await cloud.gcp.run.getService({ name });
    expect(after.template?.containers?.[0]?.env?.map((e) => e.name)).toEqual([...ENV_NAMES].reverse());
    expect({ ...after.labels }).toEqual(labelsWith(LABEL_KEYS));
  });

  it('refuses a service ID, label key or env name Cloud Run refuses (400 INVALID_ARGUMENT)', async () => {
    const create = (serviceId: string, service: Record<string, unknown>) => failure(cloud.gcp.run.createService({ parent, serviceId, service }));
    for (const id of ['__proto__', 'constructor-', 'toString', 'x'.repeat(50)]) expect((await create(id, { template: { containers: [{ image: 'hello' }] } }))?.code, id).toBe(3);
    expect((await create('bad-label', { labels: { Upper: 'x' }, template: { containers: [{ image: 'hello' }] } }))?.code).toBe(3);
    for (const bad of ['', 'A=B', 'X_GOOGLE_THING', 'PORT']) {
      expect((await create('bad-env', { template: { containers: [{ image: 'hello', env: [{ name: bad, value: 'v' }] }] } }))?.code, bad).toBe(3);
    }
    expect((await cloud.gcp.run.listServices({ parent }))[0].map((s) => s.name!.split('/').pop())).not.toContain('bad-env');
  });
});

describe('Secret Manager names', () => {
  it('secrets named "__proto__", "constructor", "toString" … are created, listed, versioned, read and deleted', async () => {
    const secrets = cloud.gcp.secrets;
    const parent = 'projects/demo-project';
    for (const id of SECRET_IDS) {
      await secrets.createSecret({ parent, secretId: id, secret: { replication: { automatic: {} }, labels: labelsWith(['constructor']) } });
      await secrets.addSecretVersion({ parent: `${parent}/secrets/${id}`, payload: { data: Buffer.from(`payload of ${id}`) } });
    }
    const [listed] = await secrets.listSecrets({ parent, filter: 'labels.constructor=v-11' });
    expect(listed.map((s) => s.name!.split('/').pop()).sort()).toEqual([...SECRET_IDS].sort());
    for (const id of SECRET_IDS) {
      const [version] = await secrets.accessSecretVersion({ name: `${parent}/secrets/${id}/versions/latest` });
      expect(Buffer.from(version.payload!.data!).toString()).toBe(`payload of ${id}`);
      expect({ ...(await secrets.getSecret({ name: `${parent}/secrets/${id}` }))[0].labels }).toEqual(labelsWith(['constructor']));
    }
    await secrets.deleteSecret({ name: `${parent}/secrets/__proto__` });
    expect((await failure(secrets.getSecret({ name: `${parent}/secrets/__proto__` })))?.code).toBe(5);
    expect((await secrets.getSecret({ name: `${parent}/secrets/constructor` }))[0].name).toBe(`${parent}/secrets/constructor`);
  });

  it('refuses a secret ID Secret Manager refuses', async () => {
    for (const id of ['a.b', 'with space', 'x'.repeat(256), 'émoji']) {
      expect((await failure(cloud.gcp.secrets.createSecret({ parent: 'projects/demo-project', secretId: id, secret: { replication: { automatic: {} } } })))?.code, id).toBe(3);
    }
  });
});

describe('IAM and BigQuery look-ups by name', () => {
  const status = (e: unknown) => (e as { status?: number; code?: number; response?: { status?: number } } | undefined)?.response?.status ?? (e as { code?: number })?.code;

  it('a service account addressed as "constructor" or "toString" is not found, and deleting one changes nothing', async () => {
    seedServiceAccount(cloud.sandbox, { project: 'demo-project', email: 'kept-sa@demo-project.iam.gserviceaccount.com' });
    const accounts = cloud.gcp.iam.projects.serviceAccounts;
    for (const id of ['constructor', 'toString', '__proto__']) {
      expect(status(await failure(accounts.get({ name: `projects/demo-project/serviceAccounts/${id}` }))), id).toBe(404);
      expect(status(await failure(accounts.delete({ name: `projects/demo-project/serviceAccounts/${id}` }))), id).toBe(404);
    }
    const { data } = await accounts.get({ name: 'projects/demo-project/serviceAccounts/kept-sa@demo-project.iam.gserviceaccount.com' });
    expect(data.email).toBe('kept-sa@demo-project.iam.gserviceaccount.com');
  });

  it('a query job named like an Object.prototype member is not found', async () => {
    for (const id of ['constructor', 'toString', '__proto__']) expect(status(await failure(cloud.gcp.bigquery.job(id).getQueryResults())), id).toBe(404);
  });
});

describe('Cloud SQL and Cloud Build names', () => {
  it('refuses user labels Cloud SQL refuses, and keeps "constructor"', async () => {
    seedSqlInstance(cloud.sandbox, { project: 'demo-project', name: 'labelled-db', region: 'europe-central2' });
    const bad = await failure(cloud.gcp.sqlInstances.patch({ project: 'demo-project', instance: 'labelled-db', body: { settings: { userLabels: { Upper: 'x' } } } }));
    expect(bad?.code).toBe(3);
    const [op] = await cloud.gcp.sqlInstances.patch({ project: 'demo-project', instance: 'labelled-db', body: { settings: { userLabels: labelsWith(['constructor']) } } });
    for (;;) {
      const [now] = await cloud.gcp.sqlOperations.get({ project: 'demo-project', operation: op.name! });
      if (String(now.status) === 'DONE' || now.status === 3) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const [instance] = await cloud.gcp.sqlInstances.get({ project: 'demo-project', instance: 'labelled-db' });
    expect({ ...instance.settings?.userLabels }).toEqual(labelsWith(['constructor']));
  });

  it('refuses a substitution key Cloud Build refuses', async () => {
    const err = await failure(cloud.gcp.build.createBuildTrigger({ projectId: 'demo-project', trigger: { name: 'bad-subst', filename: 'cloudbuild.yaml', substitutions: { __proto__x: 'v' } } }));
    expect(err?.code).toBe(3);
  });
});

describe('Cloud SQL database names', () => {
  async function waitDone(name: string) {
    for (;;) {
      const [op] = await cloud.gcp.sqlOperations.get({ project: 'demo-project', operation: name });
      if (op.status === 'DONE' || op.status === 3) return op;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  const rowsOf = async (url: string) => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      return (await client.query<{ v: string }>('SELECT v FROM t ORDER BY v')).rows.map((r) => r.v);
    } catch {
      return [];
    } finally {
      await client.end();
    }
  };

  it('a final backup keeps, and a restore brings back, databases named "__proto__" and "constructor"', async () => {
    // PostgreSQL takes any identifier, quoted: these are names a Cloud SQL user may give a database.
    const names = ['__proto__', 'constructor'];
    const urls = new Map<string, string>();
    for (const db of names) {
      const url = await createDatabase(inject('pgAdminUrl'), `names_${db.replace(/_/g, 'u')}_${process.pid}`);
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      await client.query(`DROP TABLE IF EXISTS t; CREATE TABLE t (v text); INSERT INTO t VALUES ('row of ${db}')`);
      await client.end();
      urls.set(db, url);
    }
    seedSqlInstance(cloud.sandbox, { project: 'demo-project', name: 'names-db', region: 'europe-central2', databases: names, backing: Object.fromEntries(urls) });

    const [deleting] = await cloud.gcp.sqlInstances.delete({ project: 'demo-project', instance: 'names-db', enableFinalBackup: true, finalBackupTtlDays: 7 });
    const deleted = await waitDone(deleting.name!);
    expect(deleted.error).toBeFalsy();
    for (const db of names) expect(await rowsOf(urls.get(db)!), db).toEqual([]);

    const [backups] = await cloud.gcp.sqlBackups.listBackups({ parent: 'projects/demo-project', filter: 'instance:names-db AND type:FINAL' });
    const [restoring] = await cloud.gcp.sqlInstances.restoreBackup({ project: 'demo-project', instance: 'names-db-restored', body: { backup: backups.at(-1)!.name } });
    const restored = await waitDone(restoring.name!);
    expect(restored.error).toBeFalsy();
    for (const db of names) expect(await rowsOf(urls.get(db)!), db).toEqual([`row of ${db}`]);
  });
});
