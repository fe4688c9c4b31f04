// The Django QuickTest table as the target configures it. Identifiers come from the validated
// config (lower-case SQL identifiers only), so they are safe to splice into SQL.
import type { Databases } from '../../adapters/postgres';
import type { Target } from '../../config/schema';

export type AppTable = Target['appTable'];

/** Resource names for plans and messages: the env var, never the URL. */
export function appResource(target: Target, column?: string): string {
  const t = target.appTable;
  return `postgres:${target.databases.app.urlEnv}/${t.table}${column ? `.${column}` : ''}`;
}

export function mlflowResource(target: Target, table: string): string {
  return `postgres:${target.databases.mlflow.urlEnv}/${table}`;
}

export function appPool(databases: Databases, target: Target) {
  return databases.pool(target.databases.app.urlEnv);
}

export function mlflowPool(databases: Databases, target: Target) {
  return databases.pool(target.databases.mlflow.urlEnv);
}

/** WHERE clause of completed rows that name an MLflow run (seed 0.2: mlflow_run_id not null and not ''). `$1` is the completed status. */
export function completedWithRun(t: AppTable, alias = ''): string {
  const a = alias ? `${alias}.` : '';
  return `${a}${t.status} = $1 AND ${a}${t.runId} IS NOT NULL AND ${a}${t.runId} <> ''`;
}
