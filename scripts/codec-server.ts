// A codec server for the Temporal Web UI and CLI (`--ui-codec-endpoint` / `--codec-endpoint`):
// it decrypts payloads for display with the same keys as the worker. Run it next to the UI only.
//   MLFLOW_DECOMMISSION_CODEC_KEYS=… npm run codec-server -- --port 8888 --origin http://localhost:8233
import { parseArgs } from 'node:util';
import { AesGcmCodec } from '../src/codec';
import { startCodecServer } from '../src/codec-server';

const { values } = parseArgs({ options: { port: { type: 'string', default: '8888' }, origin: { type: 'string', default: 'http://localhost:8233' } } });
const codec = AesGcmCodec.fromEnv(process.env.MLFLOW_DECOMMISSION_CODEC_KEYS);
if (!codec) {
  console.error('set MLFLOW_DECOMMISSION_CODEC_KEYS (the worker\'s keys) first');
  process.exit(2);
}
void startCodecServer(codec, { port: Number(values.port), origin: values.origin }).then((s) => console.log(`codec server on ${s.url} for ${values.origin}`));
