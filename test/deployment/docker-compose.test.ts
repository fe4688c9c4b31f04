// docker-compose.yml is checked, not trusted: valid for Debian's docker-compose (the compose
// spec), and its worker runs like `npm run worker`, with the versioning env it needs.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { DockerfileParser } from 'dockerfile-ast';
import ms, { type StringValue } from 'ms';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { findExecutable } from '../../dev/temporal';
import { readWorkerEnv } from '../../src/config/environment';

const run = promisify(execFile);
const compose = findExecutable('docker-compose');
if (!compose && process.env.REQUIRE_DOCKER_COMPOSE) throw new Error('no docker-compose on PATH: apt-get install docker-compose; CI requires the compose check');
if (!compose) console.warn('docker-compose.yml validation skipped: no docker-compose (apt-get install docker-compose)');

/** The env a user must give; the values are placeholders, the check is of the file. */
const USER_ENV = { MLFLOW_DATABASE_URL: 'postgres://mlflow@db/mlflow', APP_DATABASE_URL: 'postgres://app@db/app', HOME: '/home/user' };

interface Service {
  command?: string[];
  environment?: Record<string, string | null>;
  stop_grace_period?: string;
}

async function resolved(env: Record<string, string>): Promise<{ services: Record<string, Service> }> {
  const { stdout } = await run(compose!, ['config'], { env: { PATH: process.env.PATH, ...env } });
  return parse(stdout) as { services: Record<string, Service> };
}

/** `node <flags> <script>` → the flags, less the TypeScript loader that only a source checkout needs. */
function nodeFlags(argv: string[]): string[] {
  expect(argv[0]).toBe('node');
  const flags = argv.slice(1, -1);
  const loader = flags.indexOf('--import');
  if (loader >= 0 && flags[loader + 1] === 'tsx') flags.splice(loader, 2);
  return flags;
}

describe('docker-compose.yml', () => {
  const raw = parse(readFileSync('docker-compose.yml', 'utf8')) as { services: Record<string, Service> };
  const worker = raw.services.worker!;

  it.skipIf(!compose)('is valid for docker-compose', async () => {
    await expect(run(compose!, ['config', '-q'], { env: { PATH: process.env.PATH, ...USER_ENV } })).resolves.toBeDefined();
  });

  it.skipIf(!compose)('refuses to start without the database URLs, naming the one missing', async () => {
    await expect(run(compose!, ['config', '-q'], { env: { PATH: process.env.PATH, ...USER_ENV, MLFLOW_DATABASE_URL: '' } })).rejects.toThrow(/set MLFLOW_DATABASE_URL/);
  });

  it('starts the worker with the Node flags of npm run worker, and the script the image holds', () => {
    const scripts = (JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> }).scripts;
    const npmWorker = scripts.worker!.split(/\s+/);
    expect(nodeFlags(worker.command!)).toEqual(nodeFlags(npmWorker));
    expect(nodeFlags(worker.command!)).toContain('--max-semi-space-size=8');
    // The image's own CMD is the same, so `docker run` of the image behaves as compose does.
    const cmd = DockerfileParser.parse(readFileSync('Dockerfile', 'utf8')).getCMDs().at(-1)!;
    expect(JSON.parse(cmd.getArgumentsContent()!)).toEqual(worker.command);
    expect(worker.command!.at(-1)).toBe('dist/worker.js'); // tsconfig.build.json's outDir for src/worker.ts
  });

  it.skipIf(!compose)('passes the worker the versioning env, each value one the worker accepts', async () => {
    const env = (await resolved(USER_ENV)).services.worker!.environment!;
    for (const k of ['TEMPORAL_WORKER_VERSIONING', 'TEMPORAL_DEPLOYMENT_NAME', 'TEMPORAL_WORKER_BUILD_ID', 'TEMPORAL_WORKER_PROMOTE', 'WORKER_MAX_CONCURRENT_ACTIVITIES']) {
      expect(Object.keys(env), k).toContain(k);
    }
    const parsed = readWorkerEnv(Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v ?? undefined])));
    expect(parsed).toMatchObject({ TEMPORAL_WORKER_VERSIONING: true, TEMPORAL_DEPLOYMENT_NAME: 'mlflow-decommission', TEMPORAL_WORKER_BUILD_ID: undefined, TEMPORAL_WORKER_PROMOTE: 'if-none' });
    // A build ID given by the operator (an image tag) reaches the worker.
    const tagged = (await resolved({ ...USER_ENV, TEMPORAL_WORKER_BUILD_ID: 'v1.4.2' })).services.worker!.environment!;
    expect(readWorkerEnv(Object.fromEntries(Object.entries(tagged).map(([k, v]) => [k, v ?? undefined]))).TEMPORAL_WORKER_BUILD_ID).toBe('v1.4.2');
  });

  it.skipIf(!compose)("gives the worker longer to stop than the worker's own force time", async () => {
    const service = (await resolved(USER_ENV)).services.worker!;
    const env = readWorkerEnv(Object.fromEntries(Object.entries(service.environment!).map(([k, v]) => [k, v ?? undefined])));
    expect(service.stop_grace_period).toBeDefined();
    expect(ms(service.stop_grace_period as StringValue)).toBeGreaterThan(ms(env.WORKER_SHUTDOWN_FORCE_TIME as StringValue));
  });
});
