// Seed 002: MLflow in docker-compose with its own database and role on a Postgres (TimescaleDB)
// server that other services share, and its artifacts on a mounted volume. Phase 3 archives the
// artifacts directory first, then drops MLflow's database (its connections terminated), then its
// role, only if the role owns nothing else on the server. The server and its other databases are
// never touched. Stopping the MLflow container is the operator's part; the phase-2 gate waits
// until /health no longer answers.
import type { Databases } from '../../adapters/postgres';
import type { Target } from '../../config/schema';
import type { ObjectStore } from '../../ports';
import type { CheckResult } from '../../types';
import { defineShapeCheck } from '../step';
import { createArtifactsDirectorySteps } from './self-hosted-artifacts';
import { createTrackingDatabaseSteps } from './self-hosted-database';
import { createTrackingRoleSteps } from './self-hosted-role';
import { createServerProbe, selfHosted } from './self-hosted-server';

export function createSelfHostedActivities(databases: Databases, objects: ObjectStore) {
  const probe = createServerProbe(databases);
  const { databaseRefusals, roleKeptFor, otherDatabases, databaseRow, roleRow } = probe;

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
    activities: {
      ...createArtifactsDirectorySteps(objects),
      ...createTrackingDatabaseSteps(databases, objects, probe),
      ...createTrackingRoleSteps(objects, probe),
      checkTrackingServerStopped,
      checkTrackingDatabaseDroppable,
    },
    databaseRow,
    otherDatabases,
    roleRow,
  };
}
