// How the worker and the CLI reach Temporal: plain, mTLS (self-hosted) or an API key (Cloud).
import { readFileSync } from 'node:fs';
import type { NativeConnectionOptions } from '@temporalio/worker';
import type { WorkerEnv } from './environment';

export function connectionOptions(env: WorkerEnv): NativeConnectionOptions {
  const tls =
    env.TEMPORAL_TLS_CERT && env.TEMPORAL_TLS_KEY
      ? {
          clientCertPair: { crt: readFileSync(env.TEMPORAL_TLS_CERT), key: readFileSync(env.TEMPORAL_TLS_KEY) },
          serverRootCACertificate: env.TEMPORAL_TLS_CA ? readFileSync(env.TEMPORAL_TLS_CA) : undefined,
          serverNameOverride: env.TEMPORAL_TLS_SERVER_NAME,
        }
      : env.TEMPORAL_API_KEY
        ? true
        : undefined;
  return { address: env.TEMPORAL_ADDRESS, tls, apiKey: env.TEMPORAL_API_KEY };
}
