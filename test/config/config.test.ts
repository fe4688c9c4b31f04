import { describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configFileSchema, effectiveApprovals, migrationInputSchema } from '../../src/config/schema';
import { ConfigError, databaseUrl, loadConfigFile } from '../../src/config/environment';

const example = JSON.parse(readFileSync('mlflow-decommission.config.example.json', 'utf8'));

function writeConfig(json: unknown): string {
  const path = join(mkdtempSync(join(tmpdir(), 'cfg-')), 'config.json');
  writeFileSync(path, typeof json === 'string' ? json : JSON.stringify(json));
  return path;
}

describe('config', () => {
  it('the example config validates and fills defaults', () => {
    const cfg = configFileSchema.parse(example);
    const t = cfg.targets['b2b-recs'];
    expect(t.appTable.history).toBe('training_history_json');
    expect(t.data.batchSize).toBe(500);
    expect(effectiveApprovals(t, migrationInputSchema.parse({ target: 'b2b-recs' }))).toEqual({
      'phase-0': true,
      'phase-1': false,
      'phase-2': true,
      'phase-3': false,
      'phase-4': true,
      closure: true,
    });
  });

  it('input overrides beat the target, which beats the defaults', () => {
    const t = configFileSchema.parse({ targets: { x: { ...example.targets['b2b-recs'], approvals: { 'phase-4': false } } } }).targets.x;
    expect(effectiveApprovals(t, migrationInputSchema.parse({ target: 'x', approvals: { 'phase-0': false, 'phase-1': true } }))).toMatchObject({
      'phase-0': false,
      'phase-1': true,
      'phase-4': false,
      closure: true,
    });
  });

  it.each([
    [['gcp', 'project'], 'B2B_PROD', 'targets.b2b-recs.gcp.project: expected a GCP project ID'],
    [['databases', 'mlflow', 'urlEnv'], 'postgres://u:p@h/db', 'targets.b2b-recs.databases.mlflow.urlEnv: expected the NAME of an environment variable'],
    [['buckets', 'backup'], 'gs://backups', 'targets.b2b-recs.buckets.backup: expected a bucket name without gs://'],
    [['bakePeriod'], 'a week', 'targets.b2b-recs.bakePeriod: expected a duration'],
    [['serviceAccount'], 'mlflow-server', 'targets.b2b-recs.serviceAccount: expected a service account email'],
    [['appTable', 'table'], 'Robert"); DROP TABLE', 'targets.b2b-recs.appTable.table: expected a lower-case SQL identifier'],
    [['colour'], 'blue', 'targets.b2b-recs: unknown field(s) "colour"'],
  ])('a bad %j is refused, naming the field and the expected form', (path, value, message) => {
    const bad = structuredClone(example);
    let o = bad.targets['b2b-recs'];
    for (const k of path.slice(0, -1)) o = o[k];
    o[path.at(-1)!] = value;
    expect(() => loadConfigFile(writeConfig(bad))).toThrow(message);
  });

  it('a missing or malformed file says what to do', () => {
    expect(() => loadConfigFile('/nonexistent/config.json')).toThrow(/set MLFLOW_DECOMMISSION_CONFIG/);
    expect(() => loadConfigFile(writeConfig('{ not json'))).toThrow(ConfigError);
  });

  it('a connection string comes from the env var the config names, and an unset one is named', () => {
    expect(databaseUrl('MLFLOW_DATABASE_URL', { MLFLOW_DATABASE_URL: 'postgres://x' })).toBe('postgres://x');
    expect(() => databaseUrl('MLFLOW_DATABASE_URL', {})).toThrow('env var MLFLOW_DATABASE_URL is not set on the worker');
  });
});

describe('config: the shapes', () => {
  const shared = { shape: 'shared-database', databases: { mlflow: { urlEnv: 'APP_DATABASE_URL' }, app: { urlEnv: 'APP_DATABASE_URL' } }, backup: 'file:///var/backups/mlflow/' };
  const selfHosted = {
    shape: 'self-hosted',
    databases: { mlflow: { urlEnv: 'MLFLOW_DATABASE_URL' }, app: { urlEnv: 'APP_DATABASE_URL' }, server: { urlEnv: 'SERVER_DATABASE_URL' } },
    mlflow: { trackingUrl: 'http://mlflow:5000', database: 'mlflow_tracking', role: 'ultrathink' },
    backup: 'gs://ultrathink-backups/mlflow',
  };

  it('a shape without a cloud names only what it has, and takes the same defaults for the app table and the data', () => {
    const t = configFileSchema.parse({ targets: { s: shared, h: selfHosted } }).targets;
    expect(t.s).toMatchObject({ shape: 'shared-database', backup: 'file:///var/backups/mlflow', billing: { estimatedMonthlySavingsUsd: 0 }, bakePeriod: '7 days' });
    expect(t.s.appTable.history).toBe('training_history_json');
    expect(t.h).toMatchObject({ shape: 'self-hosted', mlflow: { role: 'ultrathink' }, data: { batchSize: 500 } });
    expect(Object.keys(t.h)).not.toContain('gcp');
  });

  it('a target without a shape is the cloud shape, as every config file before shapes', () => {
    expect(configFileSchema.parse(example).targets['b2b-recs'].shape).toBe('cloud');
  });
});
