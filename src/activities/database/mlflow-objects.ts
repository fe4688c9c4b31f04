// Which objects are MLflow's, revision by revision: generated from MLflow's own migrations by
// dev/generate-mlflow-schema.ts (mlflow-revisions.json). A shared database holds the app's
// tables beside MLflow's; only the ones MLflow's schema names, with MLflow's columns, are MLflow's.
import data from './mlflow-revisions.json';

type Column = [name: string, type: string];
interface Ranged {
  from: string;
  to: string;
}

/** Every revision MLflow has shipped, oldest first (its history is linear). */
export const MLFLOW_REVISIONS: readonly string[] = data.revisions;
export const MLFLOW_VERSION: string = data.mlflowVersion;

export interface MlflowObjects {
  /** The revision these objects are from (the newest known one for a newer, accepted revision). */
  revision: string;
  /** Table → its columns as MLflow creates them (name, format_type). */
  tables: Map<string, Column[]>;
  sequences: Set<string>;
  /** Enum type → labels (none so far: MLflow's enums are CHECK constraints on Postgres). */
  types: Map<string, string[]>;
  /** Index → its table. */
  indexes: Map<string, string>;
  /** Functions as name(identity arguments), e.g. the trigger function prevent_secrets_aad_mutation(). */
  functions: Set<string>;
  /** Trigger → its table. */
  triggers: Map<string, string>;
}

const at = (i: number) => (o: Ranged) => MLFLOW_REVISIONS.indexOf(o.from) <= i && i <= MLFLOW_REVISIONS.indexOf(o.to);

/** MLflow's objects at `revision`, or undefined for a revision MLflow never shipped (up to MLFLOW_VERSION). */
export function mlflowObjectsAt(revision: string): MlflowObjects | undefined {
  const i = MLFLOW_REVISIONS.indexOf(revision);
  if (i < 0) return undefined;
  const has = at(i);
  return {
    revision,
    tables: new Map((data.tables as Array<{ name: string; columns: Column[] } & Ranged>).filter(has).map((t) => [t.name, t.columns])),
    sequences: new Set((data.sequences as Array<{ name: string } & Ranged>).filter(has).map((s) => s.name)),
    types: new Map((data.types as Array<{ name: string; labels: string[] } & Ranged>).filter(has).map((t) => [t.name, t.labels])),
    indexes: new Map((data.indexes as Array<{ name: string; table: string } & Ranged>).filter(has).map((x) => [x.name, x.table])),
    functions: new Set((data.functions as Array<{ name: string; args: string } & Ranged>).filter(has).map((f) => `${f.name}(${f.args})`)),
    triggers: new Map((data.triggers as Array<{ name: string; table: string } & Ranged>).filter(has).map((t) => [t.name, t.table])),
  };
}
