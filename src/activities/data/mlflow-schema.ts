// Which MLflow tracking-store schemas the data steps understand: the Alembic revisions MLflow has
// shipped since metrics gained `is_nan` (MLflow 1.x) through MLflow 3.17, in order. Taken from
// mlflow/store/db_migrations/versions of the mlflow-skinny 3.17.2 wheel.
import type { Databases } from '../../adapters/postgres';
import type { CheckResult } from '../../types';

export const KNOWN_MLFLOW_REVISIONS = [
  '181f10493468', 'df50e92ffc5e', '7ac759974ad8', '89d4b8295536', '2b4d017a5e9b', 'cfd24bdc0731', '0a8213491aaa', '728d730b5ebd',
  '27a6a02d2cf1', '84291f40a231', 'a8c4a736bde6', '39d1c3be5f05', 'c48cb773bb87', 'bd07f7e963c5', '0c779009ac13', 'cc1f77228345',
  '97727af70f4d', '3500859a5d39', '7f2a7d5fae7d', '2d6e25af4d3e', 'acf3f17fdcc7', '867495a8f9d4', '5b0e9adcef9c', '4465047574b1',
  'f5a4f2784254', '0584bdc529eb', '400f98739977', '6953534de441', 'bda7b8c39065', 'cbc13b556ace', '770bee3ae1dd', 'a1b2c3d4e5f6',
  'de4033877273', '1a0cddfcaa16', '534353b11cbc', '71994744cf8e', '3da73c924c2f', 'bf29a5ff90ea', '1bd49d398cd23', 'b7c8d9e0f1a2',
  '5d2d30f0abce', 'c9d4e5f6a7b8', '2c33131f4dae', 'd3e4f5a6b7c8', 'd0e1f2a3b4c5', 'c8d9e0f1a2b3', '1b5f0d9ad7c1', 'e1f2a3b4c5d6',
  '76601a5f987d', 'c3d6457b6d8a', 'a5b4c3d2e1f0', 'ae8bbe7743c9', '7d34483879f0', 'da6fb0208061', '89d3d66ed43f', 'b7e4c1a90f23',
  'a8b9c0d1e2f3', 'c1d2e3f4a5b6', 'c3d9e7f1a2b4', '6f8d9c3b2a1e', '1971f2d9a75b', '17e22815139b', 'b7e2c1a4d9f3', '75868b020152',
  'dc11669786a5',
];

/** 0.0: the store's Alembic revision is one we know, or one the operator accepted in data.acceptMlflowRevisions. */
export async function checkMlflowRevision(pool: ReturnType<Databases['pool']>, accepted: string[]): Promise<CheckResult> {
  const name = 'mlflow schema revision';
  let revision: string | undefined;
  try {
    const { rows } = await pool.query<{ version_num: string }>('SELECT version_num FROM alembic_version');
    revision = rows[0]?.version_num;
  } catch {
    return { name, ok: false, detail: 'no alembic_version table: this is not an MLflow tracking store, or it was never migrated. Check that databases.mlflow.urlEnv names the MLflow database.' };
  }
  if (!revision) return { name, ok: false, detail: 'alembic_version is empty: the store was never migrated (run `mlflow db upgrade`), or this is not MLflow’s database' };
  if (KNOWN_MLFLOW_REVISIONS.includes(revision)) return { name, ok: true, detail: `revision ${revision}, one of the ${KNOWN_MLFLOW_REVISIONS.length} MLflow schemas (1.x to 3.17) this tool reads` };
  if (accepted.includes(revision)) return { name, ok: true, detail: `revision ${revision}, accepted in data.acceptMlflowRevisions` };
  return {
    name,
    ok: false,
    detail:
      `revision ${revision} is not an MLflow schema this tool knows (it reads MLflow 1.x to 3.17, latest ${KNOWN_MLFLOW_REVISIONS.at(-1)}). ` +
      `If the column check passes and a dry run's plan looks right, add "${revision}" to data.acceptMlflowRevisions in the target, then retry.`,
  };
}
