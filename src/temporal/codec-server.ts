// A codec server for the Temporal Web UI and CLI (`--ui-codec-endpoint` / `--codec-endpoint`): it
// decrypts payloads for display with the same keys as the worker. Run it next to the UI only.
//   MLFLOW_DECOMMISSION_CODEC_KEYS=… npm run codec-server -- --port 8888 --origin http://localhost:8233
// The remote codec protocol: POST /encode and /decode with
// {"payloads": [{metadata: {k: base64}, data: base64}]}; CORS for the UI's origin.
import { createServer, type Server } from 'node:http';
import { parseArgs } from 'node:util';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { AesGcmCodec } from './codec';
import { readWorkerEnv } from '../config/environment';

interface JsonPayload {
  metadata?: Record<string, string>;
  data?: string;
}

const fromJson = (p: JsonPayload): Payload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
  data: Buffer.from(p.data ?? '', 'base64'),
});
const toJson = (p: Payload): JsonPayload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
  data: Buffer.from(p.data ?? []).toString('base64'),
});

export async function startCodecServer(codec: PayloadCodec, opts: { port: number; origin: string }): Promise<{ url: string; server: Server }> {
  const server = createServer(async (req, res) => {
    res.setHeader('Access-Control-Allow-Origin', opts.origin);
    res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
    res.setHeader('Access-Control-Allow-Headers', 'content-type, x-namespace, authorization');
    res.setHeader('Access-Control-Allow-Credentials', 'true');
    if (req.method === 'OPTIONS') return void res.writeHead(204).end();
    const op = req.url?.endsWith('/encode') ? 'encode' : req.url?.endsWith('/decode') ? 'decode' : undefined;
    if (req.method !== 'POST' || !op) return void res.writeHead(404).end('POST /encode or /decode');
    try {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const body = JSON.parse(Buffer.concat(chunks).toString()) as { payloads: JsonPayload[] };
      const out = await codec[op](body.payloads.map(fromJson));
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ payloads: out.map(toJson) }));
    } catch (err) {
      res.writeHead(400, { 'content-type': 'text/plain' }).end((err as Error).message);
    }
  });
  await new Promise<void>((r) => server.listen(opts.port, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, server };
}

function main(): void {
  const { values } = parseArgs({ options: { port: { type: 'string', default: '8888' }, origin: { type: 'string', default: 'http://localhost:8233' } } });
  const codec = AesGcmCodec.fromEnv(readWorkerEnv().MLFLOW_DECOMMISSION_CODEC_KEYS);
  if (!codec) {
    console.error('set MLFLOW_DECOMMISSION_CODEC_KEYS (the worker\'s keys) first');
    process.exit(2);
  }
  void startCodecServer(codec, { port: Number(values.port), origin: values.origin }).then((s) => console.log(`codec server on ${s.url} for ${values.origin}`));
}

if (require.main === module) main();
