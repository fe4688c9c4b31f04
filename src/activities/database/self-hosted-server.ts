// Seed 002's server as the Phase 3 steps see it: MLflow's database and role on a Postgres server
// that other services share, what was saved before each was dropped, and why either must stay.
// Only reads: the steps that act are in self-hosted-{artifacts,database,role}.ts.
import type { ArchivedFile } from '../../adapters/directory-archive';
import type { Databases } from '../../adapters/postgres';
import type { SelfHostedTarget, Target } from '../../config/schema';
import { ErrorType, fail } from '../../errors';
import { backupUri, shapeOf } from '../../shapes';
import type { StepContext } from '../../types';
import { identifyOrFail } from './backup';

export type SelfHostedContext = StepContext<SelfHostedTarget>;
type Ctx = SelfHostedContext;

/** The context of a self-hosted step: any other shape's target is a wiring mistake, refused. */
export function selfHosted(ctx: StepContext<Target>): Ctx {
  if (shapeOf(ctx.target) !== 'self-hosted') fail(ErrorType.InvalidConfig, `target ${ctx.targetName} is not self-hosted: this step is not one of its shape's`);
  return ctx as Ctx;
}

export const literal = (v: string) => `'${v.replace(/'/g, "''")}'`;

/** A setconfig entry, name=value (the value may hold '=' itself). */
export function settingParts(setting: string): [name: string, value: string] {
  const eq = setting.indexOf('=');
  return eq < 0 ? [setting, ''] : [setting.slice(0, eq), setting.slice(eq + 1)];
}

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

export const snapshot = (ctx: Ctx, what: string) => backupUri(ctx, `snapshots/self-hosted/${what}.json`);

export type ServerProbe = ReturnType<typeof createServerProbe>;

export function createServerProbe(databases: Databases) {
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

  async function ownerName(ctx: Ctx, oid: number): Promise<string> {
    const { rows } = await server(ctx).query('SELECT pg_catalog.pg_get_userbyid($1) AS n', [oid]);
    return rows[0].n;
  }

  return { server, mlflowDb, serverResource, dbResource, databaseRow, otherDatabases, databaseRefusals, roleRow, roleKeptFor, ownerName };
}
