// Seed 002, step 3.3: MLflow's role goes only if it owns nothing else on the server (pg_shdepend
// spans every database). Its attributes and memberships are saved, never its password, so the undo
// recreates it NOLOGIN and says so.
import type { Target } from '../../config/schema';
import { ErrorType, fail } from '../../errors';
import type { ObjectStore } from '../../ports';
import { defineShapeStep } from '../step';
import { quoteIdent } from './catalog';
import { readJson, saveOnce } from './mlflow-tables';
import { literal, selfHosted, settingParts, snapshot, type RoleSnapshot, type ServerProbe } from './self-hosted-server';

export function createTrackingRoleSteps(objects: ObjectStore, probe: ServerProbe) {
  const { server, serverResource, databaseRow, roleRow, roleKeptFor } = probe;

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
        const [k, v] = settingParts(s);
        await server(ctx).query(`ALTER ROLE ${quoteIdent(r.rolname)} SET ${quoteIdent(k)} = ${literal(v)}`);
      }
      const login = r.rolcanlogin
        ? ` NOLOGIN: its password was not kept in any backup. Set one and allow login (ALTER ROLE ${r.rolname} WITH LOGIN PASSWORD '…'), then give MLflow the new password.`
        : ' (NOLOGIN, as it was)';
      return { summary: `recreated role ${r.rolname} with its attributes and ${snap.memberOf.length} membership(s),${login}`, actions: [] };
    },
  });

  return { dropTrackingRole, recreateTrackingRole };
}
