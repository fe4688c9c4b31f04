// `npm run demo -- --shape shared-database | self-hosted`: the deployment of that shape on the
// demo's Postgres, and for self-hosted a stand-in for the MLflow container: it answers /health
// until you stop it, as `docker compose stop mlflow` would, so the phase-2 gate shows its hold.
import { rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { freePort } from './postgres';
import { createSelfHostedDeployment, createSharedDatabaseDeployment } from './shape-deployment';

export async function startShapeDemo(opts: { shape: string; adminUrl: string; dir: string; runs: number }) {
  rmSync(opts.dir, { recursive: true, force: true });
  if (opts.shape === 'shared-database') {
    const d = await createSharedDatabaseDeployment({ adminUrl: opts.adminUrl, name: 'demo', dir: opts.dir, runs: opts.runs, appRevision: 'f00dcafe0001' });
    return {
      workerEnv: d.workerEnv,
      backupDir: d.backupDir,
      describe: `${opts.runs} runs in MLflow's tables beside the GPU app's ten, alembic_version shared`,
      notes: ["Phase 3 (3.1) drops MLflow's tables in one transaction; alembic_version stays for the app, without MLflow's row."],
      close: async () => {},
    };
  }
  if (opts.shape === 'self-hosted') {
    const port = await freePort();
    const container = createServer((req, res) => {
      if (req.method === 'POST' && req.url === '/_stop') {
        res.end('stopped\n');
        container.close();
        container.closeAllConnections();
        return;
      }
      res.end(req.url === '/health' ? 'OK' : '');
    });
    await new Promise<void>((r) => container.listen(port, '127.0.0.1', r));
    const d = await createSelfHostedDeployment({ adminUrl: opts.adminUrl, name: 'demo', dir: opts.dir, runs: opts.runs, trackingUrl: `http://127.0.0.1:${port}` });
    return {
      workerEnv: d.workerEnv,
      backupDir: d.backupDir,
      describe: `database ${d.database} and role ${d.role} beside ${d.otherDatabase}, artifacts in ${d.artifactsDir}`,
      notes: [
        `The phase-2 gate holds while MLflow answers http://localhost:${port}/health. Stop "the container":`,
        `  curl -X POST http://localhost:${port}/_stop`,
        'then send retry {"step": "phase-2", "by": "YOUR_NAME"} (./run cli retry demo phase-2).',
      ],
      close: async () => {
        container.close();
        container.closeAllConnections();
      },
    };
  }
  throw new Error(`--shape ${opts.shape}: choose cloud, shared-database or self-hosted`);
}
