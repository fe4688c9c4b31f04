// startSandbox(): the local GCP sandbox with every service the adapters use.
import { bigqueryService } from './services/bigquery';
import { cloudBuildService } from './services/cloud-build';
import { cloudRunService } from './services/cloud-run';
import { cloudSqlService } from './services/cloud-sql';
import { iamService } from './services/iam';
import { resourceManagerService } from './services/resource-manager';
import { secretManagerService } from './services/secret-manager';
import { storageService } from './services/storage';
import { Sandbox, type SandboxOptions } from './server';

export { Sandbox, type Fault, type Call } from './server';

export function startSandbox(opts: Omit<SandboxOptions, 'services'> = {}): Promise<Sandbox> {
  return new Sandbox({
    ...opts,
    services: [cloudRunService, cloudSqlService, iamService, secretManagerService, cloudBuildService, storageService, bigqueryService, resourceManagerService],
  }).start();
}
