// Names in the config file are data (issue 9 item 1): a target or label named like an
// Object.prototype member is kept or refused with a clear error, never silently lost or misread.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { createLifecycleActivities } from '../../src/activities/lifecycle';
import { ConfigError, loadConfigFile } from '../../src/config/environment';
import { MemoryObjectStore } from '../support/memory-object-store';

const example = JSON.parse(readFileSync('mlflow-decommission.config.example.json', 'utf8'));
const target = example.targets['b2b-recs'];

/** The file as an operator writes it: text, so `"__proto__"` is a key, not a prototype. */
function configFile(text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'cfg-names-')), 'config.json');
  writeFileSync(path, text);
  return path;
}
const withTargets = (targets: string) => configFile(`{"targets": ${targets}}`);

describe('names in the config file', () => {
  it('a "__proto__" label is refused, naming the label, not dropped', () => {
    const labels = `{"app": "mlflow", "__proto__": "x"}`;
    const path = withTargets(`{"demo": ${JSON.stringify({ ...target, labels: {} }).replace('"labels":{}', `"labels":${labels}`)}}`);
    expect(() => loadConfigFile(path)).toThrow(ConfigError);
    expect(() => loadConfigFile(path)).toThrow(/targets\.demo\.labels.*__proto__/);
  });

  it('a "__proto__" target is refused, not dropped', () => {
    const path = withTargets(`{"demo": ${JSON.stringify(target)}, "__proto__": ${JSON.stringify(target)}}`);
    expect(() => loadConfigFile(path)).toThrow(/targets.*__proto__/);
  });

  it('labels named like Object.prototype members are kept', () => {
    const labels = { app: 'mlflow', constructor: 'a', valueof: 'b', hasownproperty: 'c' };
    const config = loadConfigFile(withTargets(JSON.stringify({ demo: { ...target, labels } })));
    const demo = config.targets.demo!;
    expect(demo.shape === 'cloud' && Object.entries(demo.labels)).toEqual(Object.entries(labels));
  });

  it('asking for a target named like an Object.prototype member finds no target', async () => {
    const config = loadConfigFile(withTargets(JSON.stringify({ demo: target, constructor: target })));
    const lifecycle = createLifecycleActivities({ config, objects: new MemoryObjectStore(), preflightChecks: [] });
    const found = await lifecycle.loadTarget('constructor');
    expect(found.shape === 'cloud' && found.gcp).toEqual(target.gcp);
    for (const name of ['toString', '__proto__', 'hasOwnProperty', 'valueOf', '__defineGetter__']) {
      const err = await lifecycle.loadTarget(name).then(() => undefined, (e: unknown) => e);
      expect(err, name).toBeInstanceOf(ApplicationFailure);
      expect((err as ApplicationFailure).type).toBe('InvalidInput');
      expect((err as ApplicationFailure).message).toContain('known targets: demo, constructor');
    }
  });

  it('a Cloud Run service or build trigger named as Google would refuse is refused here, before anything runs', () => {
    for (const [field, value] of [
      ['mlflowService', '__proto__'],
      ['appService', 'constructor-'],
      ['mlflowService', 'toString'],
    ] as const) {
      const path = withTargets(JSON.stringify({ demo: { ...target, cloudRun: { ...target.cloudRun, [field]: value } } }));
      expect(() => loadConfigFile(path), value).toThrow(new RegExp(`targets\\.demo\\.cloudRun\\.${field}: expected a Cloud Run service name`));
    }
    expect(() => loadConfigFile(withTargets(JSON.stringify({ demo: { ...target, buildTrigger: '__proto__' } })))).toThrow(/targets\.demo\.buildTrigger: expected a Cloud Build trigger name/);
    const ok = loadConfigFile(withTargets(JSON.stringify({ demo: { ...target, buildTrigger: 'Constructor-2', cloudRun: { ...target.cloudRun, mlflowService: 'constructor' } } }))).targets.demo!;
    expect(ok.shape === 'cloud' && [ok.buildTrigger, ok.cloudRun.mlflowService]).toEqual(['Constructor-2', 'constructor']);
  });
});
