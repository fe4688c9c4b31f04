// How the worker and the CLI reach Temporal: plain, mTLS (self-hosted) or an API key (Cloud).
import { readFileSync } from 'node:fs';
import type { DataConverter } from '@temporalio/common';
import type { NativeConnectionOptions } from '@temporalio/worker';
import { AesGcmCodec } from './codec';
import type { WorkerEnv } from '../config/environment';

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

/** Payload encryption when keys are configured; the worker and every client must agree. */
export function dataConverter(env: WorkerEnv): DataConverter | undefined {
  const codec = AesGcmCodec.fromEnv(env.MLFLOW_DECOMMISSION_CODEC_KEYS);
  return codec ? { payloadCodecs: [codec] } : undefined;
}
