// Seed 002: MLflow in docker-compose with its own database and role on a Postgres (TimescaleDB)
// server that other services share, and its artifacts on a mounted volume. Phase 3 archives the
// artifacts directory first, then drops MLflow's database (its connections terminated), then its
// role, only if the role owns nothing else on the server. The server and its other databases are
// never touched. Stopping the MLflow container is the operator's part; the phase-2 gate waits
// until /health no longer answers.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { emptyDirectory, listFiles, packDirectory, readArchive, unpackArchive, type ArchivedFile } from '../../adapters/directory-archive';
import type { Databases } from '../../adapters/postgres';
import { withSession } from '../../adapters/postgres-session';
import type { SelfHostedTarget, Target } from '../../config';
import { ErrorType, fail } from '../../errors';
import type { ObjectStore } from '../../ports';
import { backupUri, shapeOf } from '../../shapes';
import type { CheckResult, StepContext } from '../../types';
import { activityContext, heartbeat } from '../heartbeat';
import { defineShapeCheck, defineShapeStep } from '../step';
import { dumpBase, identifyOrFail, requireDump } from './backup';
import { quoteIdent } from './catalog';
import { compareLiveCounts, readManifest, restoreDump } from './dump';
import { readJson, saveOnce } from './mlflow-tables';

type Ctx = StepContext<SelfHostedTarget>;

function selfHosted(ctx: StepContext<Target>): Ctx {
  if (shapeOf(ctx.target) !== 'self-hosted') fail(ErrorType.InvalidConfig, `target ${ctx.targetName} is not self-hosted: this step is not one of its shape's`);
  return ctx as Ctx;
}

const literal = (v: string) => `'${v.replace(/'/g, "''")}'`;

/** What 3.2 saved before dropping the database: enough to recreate it, and the server as it was around it. */
export interface DatabaseSnapshot {
  takenAt: string;
  /** pg_database's row as JSON (its columns differ between Postgres versions). */
  database: Record<string, unknown> & { oid: number; datname: string };
  owner: string;
  extensions: string[];
  grants: Array<{ grantee: string; privilege: string; grantable: boolean }>;
  roleSettings: Array<{ role: string; settings: string[] }>;
  /** Every other database on the server (name, oid, owner): 5.1 finds them unchanged. */
  otherDatabases: Array<{ name: string; oid: number; owner: string }>;
}

export interface RoleSnapshot {
  takenAt: string;
  /** pg_roles' row: the attributes, never the password (pg_roles shows it as ********). */
  role: { rolname: string; rolsuper: boolean; rolinherit: boolean; rolcreaterole: boolean; rolcreatedb: boolean; rolcanlogin: boolean; rolreplication: boolean; rolbypassrls: boolean; rolconnlimit: number; rolvaliduntil: string | null };
  memberOf: Array<{ role: string; admin: boolean }>;
  settings: string[];
}

export interface ArtifactsManifest {
  takenAt: string;
  directory: string;
  archive: string;
  archiveBytes: number;
  files: ArchivedFile[];
}

const snapshot = (ctx: Ctx, what: string) => backupUri(ctx, `snapshots/self-hosted/${what}.json`);
const archiveUri = (ctx: Ctx) => backupUri(ctx, 'artifacts/artifacts.tar.gz');
const artifactsManifestUri = (ctx: Ctx) => backupUri(ctx, 'artifacts/manifest.json');

export function createSelfHostedActivities(databases: Databases, objects: ObjectStore) {
  const server = (ctx: Ctx) => databases.pool(ctx.target.databases.server.urlEnv);
  const mlflowDb = (ctx: Ctx) => databases.pool(ctx.target.databases.mlflow.urlEnv);
  const serverResource = (ctx: Ctx) => `postgres:${ctx.target.databases.server.urlEnv}`;
  const dbResource = (ctx: Ctx) => `${serverResource(ctx)}/${ctx.target.mlflow.database}`;

  async function databaseRow(ctx: Ctx): Promise<DatabaseSnapshot['database'] | undefined> {
    const { rows } = await server(ctx).query(`SELECT to_jsonb(d) - 'datacl' AS row FROM pg_catalog.pg_database d WHERE datname = $1`, [ctx.target.mlflow.database]);
    return rows[0]?.row;
  }

  async function otherDatabases(ctx: Ctx): Promise<DatabaseSnapshot['otherDatabases']> {
    const { rows } = await server(ctx).query(
      `SELECT datname AS name, oid::int AS oid, pg_catalog.pg_get_userbyid(datdba) AS owner FROM pg_catalog.pg_database WHERE datname <> $1 ORDER BY datname COLLATE "C"`,
      [ctx.target.mlflow.database],
    );
    return rows;
  }

  /** Why the database must not be dropped whole: it holds something that is not MLflow's, or the worker is connected to it. */
  async function databaseRefusals(ctx: Ctx): Promise<string[]> {
    const refusals: string[] = [];
    const { rows: cur } = await server(ctx).query('SELECT current_database() AS db');
    if (cur[0].db === ctx.target.mlflow.database) {
      refusals.push(`databases.server (${ctx.target.databases.server.urlEnv}) is connected to ${ctx.target.mlflow.database} itself: point it at another database of the server (e.g. postgres)`);
    }
    const found = await identifyOrFail(mlflowDb(ctx), ctx);
    if (found.otherTables.length) {
      refusals.push(`database ${ctx.target.mlflow.database} also holds tables that are not MLflow's (${found.otherTables.map((t) => t.name).join(', ')}): dropping it would drop them. Move them to another database, then retry.`);
    }
    const { rows: schemas } = await mlflowDb(ctx).query(
      `SELECT n.nspname AS name, count(c.oid)::int AS objects FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid
        WHERE n.nspname NOT IN ('public', 'pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
          AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass AND d.objid = n.oid AND d.deptype = 'e')
        GROUP BY n.nspname ORDER BY 1`,
    );
    for (const s of schemas) refusals.push(`database ${ctx.target.mlflow.database} has a schema "${s.name}" with ${s.objects} object(s) that are not MLflow's: move them, then retry.`);
    return refusals;
  }

  async function roleRow(ctx: Ctx): Promise<(RoleSnapshot['role'] & { oid: number }) | undefined> {
    const { rows } = await server(ctx).query(
      `SELECT oid::int AS oid, rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls, rolconnlimit, rolvaliduntil::text AS rolvaliduntil
         FROM pg_catalog.pg_roles WHERE rolname = $1`,
      [ctx.target.mlflow.role],
    );
    return rows[0];
  }

  /** Why the role stays: what else on the server belongs to it or is granted to it (pg_shdepend spans every database). */
  async function roleKeptFor(ctx: Ctx): Promise<string[]> {
    const role = await roleRow(ctx);
    if (!role) return [];
    const reasons: string[] = [];
    if (role.rolsuper) reasons.push('it is a superuser (the server’s own admin, most likely)');
    const { rows: cur } = await server(ctx).query('SELECT current_user AS u');
    if (cur[0].u === role.rolname) reasons.push('the worker connects to the server as this role (databases.server)');
    const { rows: deps } = await server(ctx).query(
      `SELECT coalesce(d.datname, '(server-wide)') AS db, s.deptype, count(*)::int AS n
         FROM pg_catalog.pg_shdepend s LEFT JOIN pg_catalog.pg_database d ON d.oid = s.dbid
        WHERE s.refclassid = 'pg_catalog.pg_authid'::pg_catalog.regclass AND s.refobjid = $1 AND coalesce(d.datname, '') <> $2
          -- MLflow's database itself (a server-wide object) goes in 3.2.
          AND NOT (s.classid = 'pg_catalog.pg_database'::pg_catalog.regclass AND s.objid IS NOT DISTINCT FROM (SELECT oid FROM pg_catalog.pg_database WHERE datname = $2))
        GROUP BY 1, 2 ORDER BY 1, 2`,
      [role.oid, ctx.target.mlflow.database],
    );
    for (const d of deps) reasons.push(`${d.deptype === 'o' ? 'it owns' : 'it holds privileges on'} ${d.n} object(s) in ${d.db}`);
    const { rows: members } = await server(ctx).query(`SELECT pg_catalog.pg_get_userbyid(member) AS m FROM pg_catalog.pg_auth_members WHERE roleid = $1 ORDER BY 1`, [role.oid]);
    if (members.length) reasons.push(`roles ${members.map((m) => m.m).join(', ')} are members of it`);
    return reasons;
  }

  // --- 3.1 artifacts ----------------------------------------------------------------------------

  const archiveArtifactsDirectory = defineShapeStep<Target>({
    requiresGate: 'phase-2',
    async plan(raw) {
      const ctx = selfHosted(raw);
      const dir = ctx.target.mlflow.artifactsDirectory;
      if (!dir) return [];
      const files = await listFiles(dir).catch(() => []);
      const bytes = files.reduce((n, f) => n + f.size, 0);
      return [
        { call: 'objects.write', resource: archiveUri(ctx), description: `archive ${dir} (${files.length} files, ${bytes} bytes) as one tar.gz, read it back against a sha256 per file` },
        { call: 'objects.write', resource: artifactsManifestUri(ctx), description: 'write the manifest (path, size, sha256 of every file)' },
        { call: 'fs.remove', resource: `file://${dir}`, description: `empty ${dir} (the directory itself stays: it may be a mount point)`, destructive: true },
      ];
    },
    async run(raw) {
      const ctx = selfHosted(raw);
      const dir = ctx.target.mlflow.artifactsDirectory;
      if (!dir) return { summary: 'skipped: no artifacts directory is configured (mlflow.artifactsDirectory)', actions: [] };
      const existing = await readJson<ArtifactsManifest>(objects, artifactsManifestUri(ctx));
      const files = await listFiles(dir, (n) => n % 500 === 0 && heartbeat({ listed: n }));
      if (existing && !files.length) {
        return { summary: `${dir} was already archived (${existing.files.length} files) and emptied`, actions: [], facts: { manifest: artifactsManifestUri(ctx), files: existing.files.length } };
      }
      const beat = setInterval(() => heartbeat({ archiving: dir }), 5_000);
      try {
        await packDirectory(dir, files.map((f) => f.path), objects.writeStream(archiveUri(ctx), 'application/gzip'), activityContext()?.cancellationSignal);
        // Proven from the archive's own bytes before a single file is removed.
        const inArchive = await readArchive(objects.readStream(archiveUri(ctx)));
        const key = (f: ArchivedFile) => `${f.path} ${f.size} ${f.sha256}`;
        const missing = files.map(key).filter((k) => !inArchive.map(key).includes(k));
        if (missing.length || inArchive.length !== files.length) {
          fail(ErrorType.VerificationFailed, `the archive ${archiveUri(ctx)} does not hold ${dir} as listed (${missing.slice(0, 5).join('; ') || `${inArchive.length} entries for ${files.length} files`}): nothing was removed. Retry.`);
        }
        const info = (await objects.stat(archiveUri(ctx)))!;
        const manifest: ArtifactsManifest = { takenAt: new Date().toISOString(), directory: dir, archive: archiveUri(ctx), archiveBytes: info.size, files };
        await objects.write(artifactsManifestUri(ctx), JSON.stringify(manifest, null, 2), 'application/json');
        await emptyDirectory(dir);
        const bytes = files.reduce((n, f) => n + f.size, 0);
        return {
          summary: `archived ${files.length} files (${bytes} bytes) of ${dir} to ${archiveUri(ctx)}, verified file by file, then emptied ${dir}; manifest at ${artifactsManifestUri(ctx)}`,
          actions: [],
          facts: { snapshot: artifactsManifestUri(ctx), files: files.length, bytes },
        };
      } finally {
        clearInterval(beat);
      }
    },
  });

  const restoreArtifactsDirectory = defineShapeStep<Target>({
    async plan(raw) {
      const ctx = selfHosted(raw);
      return ctx.target.mlflow.artifactsDirectory ? [{ call: 'fs.write', resource: `file://${ctx.target.mlflow.artifactsDirectory}`, description: `unpack ${archiveUri(ctx)} into it and check every file's sha256` }] : [];
    },
    async run(raw) {
      const ctx = selfHosted(raw);
      const dir = ctx.target.mlflow.artifactsDirectory;
      const manifest = await readJson<ArtifactsManifest>(objects, artifactsManifestUri(ctx));
      if (!dir || !manifest) return { summary: '3.1 wrote no manifest, so it removed nothing; nothing to restore', actions: [] };
      const exists = await stat(dir).then(() => true, () => false);
      const present = exists ? await listFiles(dir) : [];
      const key = (f: ArchivedFile) => `${f.path} ${f.size} ${f.sha256}`;
      const want = manifest.files.map(key);
      if (present.length && present.map(key).join('\n') === want.join('\n')) return { summary: `${dir} already holds its ${want.length} files`, actions: [] };
      if (present.length) fail(ErrorType.CannotRestore, `${dir} is not empty and does not match the archive's manifest: move what is there aside, then retry (the archive is ${manifest.archive}).`);
      await unpackArchive(objects.readStream(manifest.archive), dir);
      const restored = (await listFiles(dir)).map(key);
      const wrong = want.filter((k) => !restored.includes(k));
      if (wrong.length || restored.length !== want.length) fail(ErrorType.CannotRestore, `unpacked ${manifest.archive} into ${dir} but ${wrong.length} file(s) differ from the manifest (e.g. ${wrong[0] ?? 'extra files'})`);
      return { summary: `restored ${want.length} files into ${dir} from ${manifest.archive}, each with its sha256`, actions: [] };
    },
  });

  // --- 3.2 database ------------------------------------------------------------------------------

  const dropTrackingDatabase = defineShapeStep<Target>({
    requiresGate: 'phase-2',
    async plan(raw) {
      const ctx = selfHosted(raw);
      const db = await databaseRow(ctx);
      if (!db) return [];
      const refusals = await databaseRefusals(ctx);
      const { rows } = await server(ctx).query(`SELECT count(*)::int AS n FROM pg_catalog.pg_stat_activity WHERE datname = $1`, [ctx.target.mlflow.database]);
      const { rows: size } = await server(ctx).query(`SELECT pg_catalog.pg_size_pretty(pg_catalog.pg_database_size($1)) AS s`, [ctx.target.mlflow.database]);
      return [
        { call: 'objects.write', resource: snapshot(ctx, 'database'), description: `save ${ctx.target.mlflow.database}'s settings, grants and extensions, and the server's other databases` },
        { call: 'postgres.terminate', resource: dbResource(ctx), description: `terminate the ${rows[0].n} connection(s) to ${ctx.target.mlflow.database} (the tracking server must already be stopped)`, destructive: true },
        { call: 'postgres.drop_database', resource: dbResource(ctx), description: `drop database ${ctx.target.mlflow.database} (${size[0].s}; owner ${db.datdba ? await ownerName(ctx, Number(db.datdba)) : '?'})`, destructive: true },
        ...refusals.map((why) => ({ call: 'refuse', resource: dbResource(ctx), description: `REFUSED, nothing will be dropped: ${why}` })),
        { call: 'keep', resource: serverResource(ctx), description: `left as they are: the server and its ${(await otherDatabases(ctx)).length} other database(s)` },
      ];
    },
    async run(raw) {
      const ctx = selfHosted(raw);
      const name = ctx.target.mlflow.database;
      const snapUri = snapshot(ctx, 'database');
      const db = await databaseRow(ctx);
      if (!db) {
        if (await objects.stat(snapUri)) return { summary: `database ${name} was already dropped (snapshot ${snapUri})`, actions: [], facts: { snapshot: snapUri } };
        fail(ErrorType.PreconditionFailed, `database ${name} does not exist on the server: check mlflow.database and databases.server, then retry.`);
      }
      const manifest = await requireDump(objects, ctx, `dropping database ${name}`);
      const refusals = await databaseRefusals(ctx);
      if (refusals.length) fail(ErrorType.ResourceMismatch, `nothing was dropped: ${refusals.join(' | ')}`);
      const moved = await compareLiveCounts(mlflowDb(ctx), manifest);
      if (moved.length) {
        fail(ErrorType.PreconditionFailed, `nothing was dropped: MLflow's tables changed since the dump of step 0.1 (${moved.join('; ')}). Stop every writer to MLflow, then roll back and start again for a fresh dump.`);
      }
      const { rows: ext } = await mlflowDb(ctx).query(`SELECT extname FROM pg_catalog.pg_extension WHERE extname <> 'plpgsql' ORDER BY 1`);
      const { rows: grants } = await server(ctx).query(
        `SELECT CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(g.grantee) END AS grantee, g.privilege_type AS privilege, g.is_grantable AS grantable
           FROM pg_catalog.pg_database d, pg_catalog.aclexplode(d.datacl) g WHERE d.datname = $1 AND g.grantee <> d.datdba ORDER BY 1, 2`,
        [name],
      );
      const { rows: settings } = await server(ctx).query(
        `SELECT coalesce(pg_catalog.pg_get_userbyid(s.setrole), '') AS role, s.setconfig AS settings FROM pg_catalog.pg_db_role_setting s JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase WHERE d.datname = $1`,
        [name],
      );
      const snap: DatabaseSnapshot = {
        takenAt: new Date().toISOString(),
        database: db,
        owner: await ownerName(ctx, Number(db.datdba)),
        extensions: ext.map((e) => e.extname),
        grants,
        roleSettings: settings,
        otherDatabases: await otherDatabases(ctx),
      };
      await saveOnce(objects, snapUri, snap);
      // Our own pool to that database goes too; the server refuses a DROP while anyone is connected.
      let terminated = 0;
      for (let attempt = 1; ; attempt++) {
        const { rows } = await server(ctx).query(`SELECT count(*) FILTER (WHERE pg_catalog.pg_terminate_backend(pid))::int AS n FROM pg_catalog.pg_stat_activity WHERE datname = $1 AND pid <> pg_catalog.pg_backend_pid()`, [name]);
        terminated += rows[0].n;
        try {
          await server(ctx).query(`DROP DATABASE ${quoteIdent(name)}`);
          break;
        } catch (err) {
          // 55006 object_in_use: a client reconnected between the two statements.
          if ((err as { code?: string }).code !== '55006' || attempt >= 5) throw err;
          await new Promise((r) => setTimeout(r, 500 * attempt));
        }
      }
      return {
        summary: `terminated ${terminated} connection(s) and dropped database ${name}; its settings at ${snapUri}, its data in the dump ${dumpBase(ctx)}; ${snap.otherDatabases.length} other database(s) untouched`,
        actions: [],
        facts: { snapshot: snapUri, terminated, deletedAt: new Date().toISOString() },
      };
    },
  });

  async function ownerName(ctx: Ctx, oid: number): Promise<string> {
    const { rows } = await server(ctx).query('SELECT pg_catalog.pg_get_userbyid($1) AS n', [oid]);
    return rows[0].n;
  }

  const recreateTrackingDatabase = defineShapeStep<Target>({
    async plan(raw) {
      const ctx = selfHosted(raw);
      return [{ call: 'postgres.create_database', resource: dbResource(ctx), description: `recreate ${ctx.target.mlflow.database} from ${snapshot(ctx, 'database')} and restore ${dumpBase(ctx)} into it` }];
    },
    async run(raw) {
      const ctx = selfHosted(raw);
      const name = ctx.target.mlflow.database;
      const snap = await readJson<DatabaseSnapshot>(objects, snapshot(ctx, 'database'));
      if (!snap) return { summary: '3.2 saved no snapshot, so it dropped nothing; nothing to recreate', actions: [] };
      const markerUri = snapshot(ctx, 'database-restored');
      const marker = await readJson<{ oid: number }>(objects, markerUri);
      const now = await databaseRow(ctx);
      if (now && now.oid === snap.database.oid) return { summary: `database ${name} was never dropped; nothing to recreate`, actions: [] };
      if (now && marker?.oid === now.oid) return { summary: `database ${name} was already recreated and restored`, actions: [] };
      const manifest = await readManifest(objects, dumpBase(ctx));
      if (!manifest) fail(ErrorType.CannotRestore, `the dump ${dumpBase(ctx)}/manifest.json is missing: recreate ${name} from another backup, then skip this compensation.`);
      const { rows: owner } = await server(ctx).query('SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1', [snap.owner]);
      if (!owner.length) fail(ErrorType.CannotRestore, `role ${snap.owner}, which owned ${name}, does not exist: recreate it (its compensation, 3.3, does) and retry.`);
      if (now) {
        // A previous attempt created the database and failed in the restore (its transaction left it empty).
        const { rows } = await databases.pool(ctx.target.databases.server.urlEnv, name).query(`SELECT count(*)::int AS n FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'`);
        if (rows[0].n > 0) fail(ErrorType.CannotRestore, `a database ${name} exists that is not the one 3.2 dropped and is not empty: rename or drop it, then retry.`);
      } else {
        const d = snap.database as Record<string, unknown>;
        // libc ('c'), ICU ('i', Postgres 15+) or the builtin provider ('b', Postgres 17+), as the database had it.
        const provider =
          d.datlocprovider === 'i'
            ? ` LOCALE_PROVIDER icu ICU_LOCALE ${literal(String(d.datlocale ?? d.daticulocale))}`
            : d.datlocprovider === 'b'
              ? ` LOCALE_PROVIDER builtin BUILTIN_LOCALE ${literal(String(d.datlocale))}`
              : '';
        await server(ctx).query(
          `CREATE DATABASE ${quoteIdent(name)} WITH OWNER ${quoteIdent(snap.owner)} TEMPLATE template0 ENCODING ${Number(d.encoding)} LC_COLLATE ${literal(String(d.datcollate))} LC_CTYPE ${literal(String(d.datctype))}${provider} CONNECTION LIMIT ${Number(d.datconnlimit ?? -1)}`,
        );
      }
      const created = (await databaseRow(ctx))!;
      const target = databases.pool(ctx.target.databases.server.urlEnv, name);
      for (const e of snap.extensions) await target.query(`CREATE EXTENSION IF NOT EXISTS ${quoteIdent(e)}`);
      const restored = await withSession(target, (s) => restoreDump(s, objects, manifest), { begin: 'BEGIN' });
      for (const g of snap.grants) await server(ctx).query(`GRANT ${g.privilege} ON DATABASE ${quoteIdent(name)} TO ${g.grantee === 'PUBLIC' ? 'PUBLIC' : quoteIdent(g.grantee)}${g.grantable ? ' WITH GRANT OPTION' : ''}`);
      for (const r of snap.roleSettings) {
        for (const s of r.settings) {
          const [k, ...v] = s.split('=');
          await server(ctx).query(`ALTER ${r.role ? `ROLE ${quoteIdent(r.role)}` : 'ROLE ALL'} IN DATABASE ${quoteIdent(name)} SET ${quoteIdent(k)} = ${literal(v.join('='))}`);
        }
      }
      await objects.write(markerUri, JSON.stringify({ oid: created.oid, restoredAt: new Date().toISOString() }), 'application/json');
      return {
        summary: `recreated database ${name} (owner ${snap.owner}) and restored ${restored.tables} tables, ${restored.rows} rows from ${dumpBase(ctx)}; every count equal to the dump`,
        actions: [],
        facts: { restoredRows: restored.rows },
      };
    },
  });

  // --- 3.3 role -----------------------------------------------------------------------------------

  const dropTrackingRole = defineShapeStep<Target>({
    requiresGate: 'phase-2',
    async plan(raw) {
      const ctx = selfHosted(raw);
      const role = await roleRow(ctx);
      if (!role) return [];
      const kept = await roleKeptFor(ctx);
      const { rows } = await server(ctx).query(`SELECT count(*)::int AS n FROM pg_catalog.pg_shdepend s JOIN pg_catalog.pg_database d ON d.oid = s.dbid WHERE s.refobjid = $1 AND d.datname = $2`, [role.oid, ctx.target.mlflow.database]);
      return [
        {
          call: 'postgres.drop_role',
          resource: `${serverResource(ctx)}/role/${role.rolname}`,
          description: kept.length
            ? `keep role ${role.rolname}: ${kept.join('; ')} (checked again after 3.2)`
            : `drop role ${role.rolname} once 3.2 dropped the ${rows[0].n} object(s) it owns in ${ctx.target.mlflow.database}; no password is kept, so a rollback recreates it NOLOGIN`,
          destructive: !kept.length,
        },
      ];
    },
    async run(raw) {
      const ctx = selfHosted(raw);
      const snapUri = snapshot(ctx, 'role');
      const role = await roleRow(ctx);
      if (!role) {
        return (await objects.stat(snapUri))
          ? { summary: `role ${ctx.target.mlflow.role} was already dropped (snapshot ${snapUri})`, actions: [], facts: { snapshot: snapUri } }
          : { summary: `role ${ctx.target.mlflow.role} does not exist: nothing to drop`, actions: [] };
      }
      if (await databaseRow(ctx)) fail(ErrorType.PreconditionFailed, `database ${ctx.target.mlflow.database} still exists: 3.2 drops it first (the role owns it). Retry 3.2, then this step.`);
      const kept = await roleKeptFor(ctx);
      if (kept.length) return { summary: `kept role ${role.rolname}: ${kept.join('; ')}`, actions: [], facts: { kept: true } };
      const { rows: memberOf } = await server(ctx).query(
        `SELECT pg_catalog.pg_get_userbyid(roleid) AS role, admin_option AS admin FROM pg_catalog.pg_auth_members WHERE member = $1 ORDER BY 1`,
        [role.oid],
      );
      const { rows: settings } = await server(ctx).query(`SELECT setconfig FROM pg_catalog.pg_db_role_setting WHERE setrole = $1 AND setdatabase = 0`, [role.oid]);
      const { oid: _oid, ...attributes } = role;
      await saveOnce(objects, snapUri, { takenAt: new Date().toISOString(), role: attributes, memberOf, settings: settings[0]?.setconfig ?? [] } satisfies RoleSnapshot);
      await server(ctx).query(`DROP ROLE ${quoteIdent(role.rolname)}`);
      return {
        summary: `dropped role ${role.rolname} (it owned nothing else on the server); attributes and memberships saved at ${snapUri}, its password not kept: a rollback recreates it NOLOGIN`,
        actions: [],
        facts: { snapshot: snapUri, deletedAt: new Date().toISOString() },
      };
    },
  });

  const recreateTrackingRole = defineShapeStep<Target>({
    async plan(raw) {
      const ctx = selfHosted(raw);
      return [{ call: 'postgres.create_role', resource: `${serverResource(ctx)}/role/${ctx.target.mlflow.role}`, description: `recreate ${ctx.target.mlflow.role} from ${snapshot(ctx, 'role')}, NOLOGIN (no password was kept)` }];
    },
    async run(raw) {
      const ctx = selfHosted(raw);
      const snap = await readJson<RoleSnapshot>(objects, snapshot(ctx, 'role'));
      if (!snap) return { summary: '3.3 saved no snapshot, so it dropped no role; nothing to recreate', actions: [] };
      if (await roleRow(ctx)) return { summary: `role ${snap.role.rolname} exists; nothing to recreate`, actions: [] };
      const r = snap.role;
      const flag = (on: boolean, name: string) => (on ? name : `NO${name}`);
      // NOLOGIN whatever it was: without its password, a LOGIN role would let in whoever the server's auth rules trust.
      const attrs = [flag(r.rolsuper, 'SUPERUSER'), flag(r.rolinherit, 'INHERIT'), flag(r.rolcreaterole, 'CREATEROLE'), flag(r.rolcreatedb, 'CREATEDB'), 'NOLOGIN', flag(r.rolreplication, 'REPLICATION'), flag(r.rolbypassrls, 'BYPASSRLS'), `CONNECTION LIMIT ${Number(r.rolconnlimit)}`];
      if (r.rolvaliduntil) attrs.push(`VALID UNTIL ${literal(r.rolvaliduntil)}`);
      await server(ctx).query(`CREATE ROLE ${quoteIdent(r.rolname)} WITH ${attrs.join(' ')}`);
      for (const m of snap.memberOf) await server(ctx).query(`GRANT ${quoteIdent(m.role)} TO ${quoteIdent(r.rolname)}${m.admin ? ' WITH ADMIN OPTION' : ''}`);
      for (const s of snap.settings) {
        const [k, ...v] = s.split('=');
        await server(ctx).query(`ALTER ROLE ${quoteIdent(r.rolname)} SET ${quoteIdent(k)} = ${literal(v.join('='))}`);
      }
      const login = r.rolcanlogin
        ? ` NOLOGIN: its password was not kept in any backup. Set one and allow login (ALTER ROLE ${r.rolname} WITH LOGIN PASSWORD '…'), then give MLflow the new password.`
        : ' (NOLOGIN, as it was)';
      return { summary: `recreated role ${r.rolname} with its attributes and ${snap.memberOf.length} membership(s),${login}`, actions: [] };
    },
  });

  // --- gate phase-2 ---------------------------------------------------------------------------------

  const checkTrackingServerStopped = defineShapeCheck<Target>(async (raw): Promise<CheckResult[]> => {
    const ctx = selfHosted(raw);
    const url = `${ctx.target.mlflow.trackingUrl.replace(/\/+$/, '')}/health`;
    const name = 'tracking server stopped';
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(5_000), redirect: 'manual' });
      await res.body?.cancel();
      if (res.ok) {
        return [{ name, ok: false, detail: `${url} still answers (${res.status}): stop the MLflow container (your part, e.g. docker compose stop mlflow), then send retry {"step": "phase-2"}` }];
      }
      return [{ name, ok: true, detail: `${url} answers ${res.status}, not MLflow's OK: the tracking server is down` }];
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
      return [{ name, ok: true, detail: `${url} does not answer (${cause}): the tracking server is stopped` }];
    }
  });

  const checkTrackingDatabaseDroppable = defineShapeCheck<Target>(async (raw): Promise<CheckResult[]> => {
    const ctx = selfHosted(raw);
    const refusals = await databaseRefusals(ctx);
    const kept = await roleKeptFor(ctx);
    const others = await otherDatabases(ctx);
    return [
      { name: 'database holds only MLflow', ok: refusals.length === 0, detail: refusals.length ? refusals.join(' | ') : `${ctx.target.mlflow.database} holds MLflow's tables and nothing else` },
      { name: 'role', ok: true, detail: kept.length ? `${ctx.target.mlflow.role} will be kept: ${kept.join('; ')}` : `${ctx.target.mlflow.role} owns nothing else: 3.3 drops it` },
      { name: 'other databases', ok: true, detail: `untouched: ${others.map((d) => d.name).join(', ')}` },
    ];
  });

  return {
    activities: { archiveArtifactsDirectory, restoreArtifactsDirectory, dropTrackingDatabase, recreateTrackingDatabase, dropTrackingRole, recreateTrackingRole, checkTrackingServerStopped, checkTrackingDatabaseDroppable },
    databaseRow,
    otherDatabases,
    roleRow,
  };
}
