// The revision → objects data generated from MLflow's own migrations, against what the installed
// MLflow says its history is (skipped without mlflow), and the list the data steps read.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { MLFLOW_REVISIONS, mlflowObjectsAt } from '../../../src/activities/database/mlflow-objects';
import { KNOWN_MLFLOW_REVISIONS } from '../../../src/activities/data/mlflow-schema';
import { mlflowUnavailable } from '../../support/mlflow-server';

describe('MLflow revisions and their objects', () => {
  it('the data steps read every revision since metrics.is_nan (181f10493468), in MLflow’s order', () => {
    expect(KNOWN_MLFLOW_REVISIONS[0]).toBe('181f10493468');
    expect(MLFLOW_REVISIONS.slice(0, 3)).toEqual(['451aebb31d03', '90e64c465722', '181f10493468']);
    expect(new Set(MLFLOW_REVISIONS).size).toBe(MLFLOW_REVISIONS.length);
  });

  it('names the tables of a revision with MLflow’s columns, and its trigger function from 1bd49d398cd23 on', () => {
    const first = mlflowObjectsAt('451aebb31d03')!;
    expect([...first.tables.keys()].sort()).toEqual(['alembic_version', 'experiments', 'metrics', 'params', 'runs', 'tags']);
    expect(first.tables.get('metrics')!.map((c) => c[0])).not.toContain('is_nan');
    expect(mlflowObjectsAt('181f10493468')!.tables.get('metrics')!.map((c) => c[0])).toContain('is_nan');
    expect(mlflowObjectsAt('867495a8f9d4')!.functions.size).toBe(0);
    const head = mlflowObjectsAt(MLFLOW_REVISIONS.at(-1)!)!;
    expect(head.functions).toEqual(new Set(['prevent_secrets_aad_mutation()']));
    expect(head.triggers.get('prevent_secrets_aad_mutation')).toBe('secrets');
    expect(mlflowObjectsAt('fedcba987654')).toBeUndefined();
  });

  it.skipIf(mlflowUnavailable)('its revisions are the installed MLflow’s, oldest first (regenerate with dev/generate-mlflow-schema.ts after upgrading it)', () => {
    const py = `
import os, mlflow
from alembic.config import Config
from alembic.script import ScriptDirectory
d = os.path.join(os.path.dirname(mlflow.__file__), 'store', 'db_migrations')
c = Config(os.path.join(d, 'alembic.ini')); c.set_main_option('script_location', d)
print(' '.join(r.revision for r in reversed(list(ScriptDirectory.from_config(c).walk_revisions()))))`;
    const out = spawnSync('python3', ['-c', py], { encoding: 'utf8' });
    expect(out.status, out.stderr).toBe(0);
    expect(out.stdout.trim().split(' ')).toEqual(MLFLOW_REVISIONS);
  });
});
