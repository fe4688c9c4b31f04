// Optional payload encryption (AES-256-GCM) for everything the workflow stores in Temporal:
// inputs, results, heartbeat details, failures' details. Keys come from the worker's and the
// CLI's environment, never from history; the newest key encrypts and every listed key decrypts,
// so rotation is "add a key in front, keep the old ones until their histories are gone".
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';

const ENCODING = 'binary/encrypted';
const KEY_ID = 'encryption-key-id';

export class AesGcmCodec implements PayloadCodec {
  private readonly keys: Map<string, Buffer>;
  private readonly current: string;

  /** keys: newest first, e.g. [["2026-11", <32 bytes>], ["2026-05", <32 bytes>]]. */
  constructor(keys: Array<[string, Buffer]>) {
    const [newest] = keys;
    if (!newest) throw new Error('the codec needs at least one key');
    for (const [id, key] of keys) if (key.length !== 32) throw new Error(`codec key ${id} must be 32 bytes (base64 of 32 random bytes), got ${key.length}`);
    this.keys = new Map(keys);
    this.current = newest[0];
  }

  /** MLFLOW_DECOMMISSION_CODEC_KEYS="id2:base64key,id1:base64key" (newest first). */
  static fromEnv(value: string | undefined): AesGcmCodec | undefined {
    if (!value) return undefined;
    return new AesGcmCodec(
      value.split(',').map((entry) => {
        const [id, b64] = entry.trim().split(':');
        if (!id || !b64) throw new Error('MLFLOW_DECOMMISSION_CODEC_KEYS: expected "keyId:base64Key[,keyId:base64Key…]", newest first');
        return [id, Buffer.from(b64, 'base64')] as [string, Buffer];
      }),
    );
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    const key = this.keys.get(this.current)!;
    return payloads.map((p) => {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      const body = Buffer.concat([cipher.update(temporal.api.common.v1.Payload.encode(p).finish()), cipher.final()]);
      return {
        metadata: { encoding: Buffer.from(ENCODING), [KEY_ID]: Buffer.from(this.current) },
        data: Buffer.concat([iv, body, cipher.getAuthTag()]),
      };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => {
      if (Buffer.from(p.metadata?.encoding ?? []).toString() !== ENCODING) return p;
      const id = Buffer.from(p.metadata?.[KEY_ID] ?? []).toString();
      const key = this.keys.get(id);
      if (!key) throw new Error(`payload encrypted with key "${id}", which is not in MLFLOW_DECOMMISSION_CODEC_KEYS: add it back (keys: ${[...this.keys.keys()].join(', ')})`);
      const data = Buffer.from(p.data ?? []);
      const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, 12));
      decipher.setAuthTag(data.subarray(data.length - 16));
      const plain = Buffer.concat([decipher.update(data.subarray(12, data.length - 16)), decipher.final()]);
      return temporal.api.common.v1.Payload.decode(plain) as Payload;
    });
  }
}
