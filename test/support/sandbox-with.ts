// useSandbox() with only the services a test needs: lets a service's tests run while other
// services are still being written. Prefer useSandbox() from ./cloud.
import { afterAll, beforeAll } from 'vitest';
import { createGcpClients } from '../../src/adapters/gcp/clients';
import { createGcsObjectStore } from '../../src/adapters/gcs-object-store';
import { Sandbox, type ServiceModule } from '../../sandbox/server';
import { storageService } from '../../sandbox/services/storage';
import type { CloudFixture } from './cloud';

export function useSandboxWith(services: ServiceModule[], project = 'demo-project'): CloudFixture {
  const fixture = {} as CloudFixture;
  beforeAll(async () => {
    fixture.sandbox = await new Sandbox({ operationDelayMs: 50, services: [storageService, ...services] }).start();
    fixture.gcp = createGcpClients({ apiEndpoint: fixture.sandbox.url, project });
    fixture.objects = createGcsObjectStore(fixture.gcp.storage);
  });
  afterAll(async () => {
    await fixture.gcp?.close();
    await fixture.sandbox?.stop();
  });
  return fixture;
}
