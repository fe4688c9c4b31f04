// Regenerates src/activities/database/mlflow-revisions.json from the installed MLflow: a scratch
// Postgres, MLflow's own Alembic migrations run one revision at a time
// (dev/mlflow-schema-revisions.py), and the objects each revision has. Each object is kept once,
// with the first and last revision that has it in that form.
//   npx tsx dev/generate-mlflow-schema.ts      (after ./run setup, which installs mlflow)
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createDatabase, startPostgres } from './postgres';

interface Snapshot {
  revision: string;
  tables: Array<{ name: string; columns: Array<[string, string]> }>;
  sequences: Array<{ name: string }>;
  types: Array<{ name: string; labels: string[] }>;
  indexes: Array<{ name: string; table: string }>;
  functions: Array<{ name: string; args: string }>;
  triggers: Array<{ name: string; table: string }>;
}

const OUT = join(__dirname, '../src/activities/database/mlflow-revisions.json');

async function main(): Promise<void> {
  const pg = await startPostgres();
  try {
    const url = await createDatabase(pg.adminUrl, 'mlflow_schema_scratch');
    const run = spawnSync('python3', [join(__dirname, 'mlflow-schema-revisions.py'), url.replace(/^postgres(ql)?:/, 'postgresql+psycopg2:')], {
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    if (run.status !== 0) throw new Error(`mlflow-schema-revisions.py exited ${run.status}`);
    const { mlflowVersion, revisions } = JSON.parse(run.stdout) as { mlflowVersion: string; revisions: Snapshot[] };
    const ids = revisions.map((r) => r.revision);
    const out: Record<string, unknown> = { generatedBy: 'dev/generate-mlflow-schema.ts', mlflowVersion, revisions: ids };
    for (const kind of ['tables', 'sequences', 'types', 'indexes', 'functions', 'triggers'] as const) {
      // Same object in the same form over consecutive revisions: one entry with its range.
      const ranges = new Map<string, { object: object; from: number; to: number }>();
      revisions.forEach((r, i) => {
        for (const o of r[kind]) {
          const key = JSON.stringify(o);
          const seen = ranges.get(key);
          if (seen && seen.to !== i - 1) throw new Error(`${kind} ${key} comes back after a gap at ${r.revision}: the range format cannot hold it`);
          if (seen) seen.to = i;
          else ranges.set(key, { object: o, from: i, to: i });
        }
      });
      out[kind] = [...ranges.values()].map((x) => ({ ...x.object, from: ids[x.from], to: ids[x.to] }));
    }
    // One object per line: a regenerated file diffs by object.
    const body = Object.entries(out)
      .map(([k, v]) => (Array.isArray(v) && typeof v[0] === 'object' ? `  "${k}": [\n${v.map((o) => `    ${JSON.stringify(o)}`).join(',\n')}\n  ]` : `  "${k}": ${JSON.stringify(v)}`))
      .join(',\n');
    writeFileSync(OUT, `{\n${body}\n}\n`);
    console.log(`MLflow ${mlflowVersion}: ${ids.length} revisions written to ${OUT}`);
  } finally {
    await pg.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
