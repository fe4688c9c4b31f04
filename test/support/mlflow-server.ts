// A real MLflow tracking server (PyPI mlflow) on a Postgres backend, for the tests that need a
// store MLflow itself wrote. Needs `python3 -c "import mlflow, psycopg2"` (./run setup installs both).
import { execFile, spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

const probe = spawnSync('python3', ['-c', 'import mlflow, psycopg2'], { encoding: 'utf8' });
/** Why a real MLflow cannot run here, or undefined when it can. */
export const mlflowUnavailable = probe.status === 0 ? undefined : (probe.error?.message ?? probe.stderr.trim().split('\n').at(-1) ?? `exit ${probe.status}`);

export interface MlflowServer {
  url: string;
  stop(): Promise<void>;
}

/** Starts `mlflow server` on `port` over the database at `postgresUrl`, and waits for /health. */
export async function startMlflowServer(postgresUrl: string, port: number, workDir: string): Promise<MlflowServer> {
  const url = `http://127.0.0.1:${port}`;
  // postgresql+psycopg2: SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3.
  const backend = postgresUrl.replace(/^postgres(ql)?:/, 'postgresql+psycopg2:');
  // Detached: its own process group, so stop() ends the server and its workers together.
  const server = spawn('python3', ['-m', 'mlflow', 'server', '--backend-store-uri', backend, '--artifacts-destination', join(workDir, 'mlflow-artifacts'), '--host', '127.0.0.1', '--port', String(port), '--workers', '1'], {
    cwd: workDir,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const keep = (b: Buffer) => (log = (log + b.toString()).slice(-4000));
  server.stdout!.on('data', keep);
  server.stderr!.on('data', keep);
  const exited = new Promise((r) => server.once('exit', r));
  const stop = async () => {
    if (server.exitCode !== null || server.signalCode !== null) return;
    process.kill(-server.pid!, 'SIGTERM');
    const timer = setTimeout(() => {
      try {
        process.kill(-server.pid!, 'SIGKILL');
      } catch {}
    }, 10_000);
    await exited;
    clearTimeout(timer);
  };
  const deadline = Date.now() + 150_000;
  for (;;) {
    if (server.exitCode !== null) throw new Error(`mlflow server exited ${server.exitCode}:\n${log}`);
    if (await fetch(`${url}/health`).then((r) => r.ok, () => false)) return { url, stop };
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`mlflow server not healthy after 150 s:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * Logs runs through MLflow's own client (test/fixtures/mlflow-client-runs.py); returns their ids.
 * Asynchronously: a spawnSync would stop this process reading the server's log pipes, and a
 * server whose pipe is full stops answering.
 */
export async function writeRunsThroughMlflow(trackingUrl: string, workDir: string): Promise<string[]> {
  const writer = await promisify(execFile)('python3', [join(__dirname, '../fixtures/mlflow-client-runs.py'), trackingUrl], { cwd: workDir, encoding: 'utf8', timeout: 240_000 }).catch(
    (err: Error & { stderr?: string }) => {
      throw new Error(`mlflow client script failed: ${err.message}\n${err.stderr ?? ''}`);
    },
  );
  return JSON.parse(writer.stdout.trim().split('\n').at(-1)!).run_ids;
}
