// Payload encryption: round trip, rotation, a clear error for a missing key, the codec server,
// and a real workflow whose history holds no plaintext.
import { randomBytes } from 'node:crypto';
import { Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { AesGcmCodec } from '../../src/temporal/codec';
import { startCodecServer } from '../../src/temporal/codec-server';
import { startMigration } from '../../src/temporal/client';
import { demoTarget, fakeActivities } from '../support/fake-activities';
import { historyText, useTestServer, workflowBundle } from '../support/temporal';

const k1 = randomBytes(32);
const k2 = randomBytes(32);
const payload = defaultPayloadConverter.toPayload({ target: 'secret-target', note: 'plaintext' });

describe('AesGcmCodec', () => {
  it('round-trips payloads and leaves no plaintext in the encoded bytes', async () => {
    const codec = new AesGcmCodec([['k1', k1]]);
    const [enc] = await codec.encode([payload]);
    expect(Buffer.from(enc.data!).toString('latin1')).not.toContain('secret-target');
    const [dec] = await codec.decode([enc]);
    expect(defaultPayloadConverter.fromPayload(dec)).toEqual({ target: 'secret-target', note: 'plaintext' });
  });

  it('rotates: the newest key encrypts, older keys still decrypt, a dropped key is named', async () => {
    const [old] = await new AesGcmCodec([['k1', k1]]).encode([payload]);
    const rotated = AesGcmCodec.fromEnv(`k2:${k2.toString('base64')},k1:${k1.toString('base64')}`)!;
    expect(defaultPayloadConverter.fromPayload((await rotated.decode([old]))[0])).toMatchObject({ target: 'secret-target' });
    const [fresh] = await rotated.encode([payload]);
    expect(Buffer.from(fresh.metadata!['encryption-key-id']!).toString()).toBe('k2');
    await expect(new AesGcmCodec([['k2', k2]]).decode([old])).rejects.toThrow('key "k1", which is not in MLFLOW_DECOMMISSION_CODEC_KEYS');
  });

  it('refuses a key of the wrong size, naming it', () => {
    expect(() => AesGcmCodec.fromEnv('short:AAAA')).toThrow('codec key short must be 32 bytes');
  });

  it('the codec server decodes for the UI, with CORS for its origin', async () => {
    const codec = new AesGcmCodec([['k1', k1]]);
    const { url, server } = await startCodecServer(codec, { port: 0, origin: 'http://localhost:8233' });
    try {
      const [enc] = await codec.encode([payload]);
      const body = { payloads: [{ metadata: Object.fromEntries(Object.entries(enc.metadata!).map(([k, v]) => [k, Buffer.from(v!).toString('base64')])), data: Buffer.from(enc.data!).toString('base64') }] };
      const res = await fetch(`${url}/decode`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
      expect(res.headers.get('access-control-allow-origin')).toBe('http://localhost:8233');
      const out = (await res.json()) as { payloads: Array<{ data: string }> };
      expect(JSON.parse(Buffer.from(out.payloads[0].data, 'base64').toString())).toMatchObject({ target: 'secret-target' });
    } finally {
      server.close();
    }
  });
});

describe('encrypted workflow history', () => {
  const server = useTestServer();

  it('stores activity inputs, results and the workflow result only as ciphertext', async () => {
    const codec = new AesGcmCodec([['k1', k1]]);
    const dataConverter = { payloadCodecs: [codec] };
    // The target's config travels in every activity input; workflow IDs and search attributes are never encrypted.
    const fakes = fakeActivities(demoTarget({ gcp: { project: 'marker-project-7x', region: 'europe-central2' } }));
    const worker = await Worker.create({ connection: server.env.nativeConnection, taskQueue: 'codec', workflowBundle: await workflowBundle(), activities: fakes.activities, dataConverter });
    const client = new Client({ connection: server.env.connection, dataConverter });
    await worker.runUntil(async () => {
      const h = await startMigration(client, { target: 'codec', dryRun: true }, { taskQueue: 'codec' });
      expect((await h.result()).outcome).toBe('planned');
      const raw = historyText(await server.env.client.workflow.getHandle(h.workflowId).fetchHistory());
      expect(raw).toContain('binary/encrypted');
      const decoded = JSON.stringify((await h.result()).status);
      expect(decoded).toContain('would deleteMlflowService');
      for (const marker of ['marker-project-7x', 'would deleteMlflowService']) expect(raw).not.toContain(marker);
    });
  });
});
