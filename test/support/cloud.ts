// A sandbox per test file and the real client libraries pointed at it.
import { afterAll, beforeAll } from 'vitest';
import { createGcpClients, type GcpClients } from '../../src/adapters/gcp/clients';
import { createGcsObjectStore } from '../../src/adapters/gcp/gcs-object-store';
import type { ObjectStore } from '../../src/ports';
import { startSandbox, type Sandbox } from '../../dev/sandbox';

export interface CloudFixture {
  sandbox: Sandbox;
  gcp: GcpClients;
  objects: ObjectStore;
}

/** Starts a fresh sandbox (fast operations) before the file's tests, stops it after. */
export function useSandbox(project = 'demo-project'): CloudFixture {
  const fixture = {} as CloudFixture;
  beforeAll(async () => {
    fixture.sandbox = await startSandbox({ operationDelayMs: 50 });
    fixture.gcp = createGcpClients({ apiEndpoint: fixture.sandbox.url, project });
    fixture.objects = createGcsObjectStore(fixture.gcp.storage);
  });
  afterAll(async () => {
    await fixture.gcp?.close();
    await fixture.sandbox?.stop();
  });
  return fixture;
}
