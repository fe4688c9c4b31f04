// Seed 002, step 3.2: MLflow's database is dropped whole (its connections terminated), after its
// settings, grants and extensions are saved and its tables are proven unchanged since the dump.
// The undo recreates it as it was (owner, encoding, locale) and restores the dump into it.
import type { Databases } from '../../adapters/postgres';
import { withSession } from '../../adapters/postgres-session';
import type { Target } from '../../config/schema';
import { ErrorType, fail } from '../../errors';
import type { ObjectStore } from '../../ports';
import { defineShapeStep } from '../step';
import { dumpBase, requireDump } from './backup';
import { quoteIdent } from './catalog';
import { compareLiveCounts, readManifest, restoreDump } from './dump';
import { readJson, saveOnce } from './mlflow-tables';
import { literal, selfHosted, settingParts, snapshot, type DatabaseSnapshot, type ServerProbe } from './self-hosted-server';

export function createTrackingDatabaseSteps(databases: Databases, objects: ObjectStore, probe: ServerProbe) {
  const { server, mlflowDb, serverResource, dbResource, databaseRow, otherDatabases, databaseRefusals, ownerName } = probe;

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
          const [k, v] = settingParts(s);
          await server(ctx).query(`ALTER ${r.role ? `ROLE ${quoteIdent(r.role)}` : 'ROLE ALL'} IN DATABASE ${quoteIdent(name)} SET ${quoteIdent(k)} = ${literal(v)}`);
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

  return { dropTrackingDatabase, recreateTrackingDatabase };
}
