// A TCP proxy that slows every chunk each way: `latencyMs` plus its size at `bytesPerSecond`, in
// order (a Transform holds the next chunk until the last is through). Put between pg and Postgres,
// it makes every query a slow round trip and every COPY or FETCH a slow stream.
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { Transform } from 'node:stream';

export interface LatencyProxy {
  /** `url` with its host and port replaced by the proxy's. */
  rewrite(url: string): string;
  close(): Promise<void>;
}

export async function startLatencyProxy(upstreamUrl: string, opts: { latencyMs: number; bytesPerSecond: number }): Promise<LatencyProxy> {
  const upstream = new URL(upstreamUrl);
  const sockets = new Set<Socket>();
  const slow = () =>
    new Transform({
      transform(chunk: Buffer, _enc, cb) {
        setTimeout(() => cb(null, chunk), opts.latencyMs + (chunk.length * 1000) / opts.bytesPerSecond);
      },
    });
  const server = createServer((client) => {
    const server = connect(Number(upstream.port || 5432), upstream.hostname);
    for (const s of [client, server]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        server.destroy();
      });
    }
    client.pipe(slow()).pipe(server);
    server.pipe(slow()).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    rewrite(url) {
      const u = new URL(url);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
