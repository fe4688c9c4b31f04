// The local GCP sandbox's core: an HTTP server that speaks the Google REST surface the real
// client libraries use, with state kept in a file, per-endpoint fault injection and a call log.
// Services (cloud-run, cloud-sql, …) plug in as route tables. Only tests, the demo and dev
// tooling import this folder; production code reaches it through endpoint options alone.
import { mkdirSync, readFileSync, writeFileSync, existsSync, mkdtempSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export interface SandboxRequest {
  method: string;
  /** Decoded path without the query string. */
  path: string;
  /** The route pattern's capture groups, URI-decoded. */
  params: string[];
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: Buffer;
  /** The body as JSON ({} when empty). */
  json<T = any>(): T;
}

export interface Reply {
  status?: number;
  json?: unknown;
  body?: Buffer | string;
  headers?: Record<string, string>;
}

export interface Route {
  method: string;
  path: RegExp;
  handle(req: SandboxRequest): Reply | Promise<Reply>;
}

/** A Google API error: the body has the {error: {code, message, status}} shape clients decode. */
export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly status: string,
    message: string,
    /** errors[].reason, e.g. "operationInProgress"; the status in lower case when absent. */
    readonly reason?: string,
  ) {
    super(message);
  }
}
export const notFound = (what: string) => new ApiError(404, 'NOT_FOUND', `${what} not found`);
export const conflict = (what: string) => new ApiError(409, 'ALREADY_EXISTS', `${what} already exists`);
export const badRequest = (why: string) => new ApiError(400, 'INVALID_ARGUMENT', why);
export const failedPrecondition = (why: string) => new ApiError(400, 'FAILED_PRECONDITION', why);

export interface Fault {
  /** Matched against "METHOD /path" (e.g. "DELETE /v2/projects/p/locations/r/services/mlflow-server"). */
  match: string;
  /** Reply with this HTTP status (403, 429, 503 …) instead of serving the request. */
  status?: number;
  /** Delay before serving (or failing). */
  latencyMs?: number;
  /** Never answer: the client's deadline or the activity's heartbeat timeout must catch it. */
  hang?: boolean;
  /** How many matching requests it affects; unlimited when absent. */
  times?: number;
  /** Affects each matching request with this probability (chaos runs); always when absent. */
  probability?: number;
}

export interface Call {
  method: string;
  path: string;
  status: number;
  at: string;
}

const STATUS_NAMES: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  409: 'ALREADY_EXISTS',
  429: 'RESOURCE_EXHAUSTED',
  500: 'INTERNAL',
  503: 'UNAVAILABLE',
};

/** What a service module gets: the shared state and helpers. */
export interface SandboxCore {
  /** JSON state, one top-level key per service; saved to the state file after every change. */
  state: Record<string, any>;
  /** Where large bodies (GCS objects) live, beside the state file. */
  blobDir: string;
  /** How long long-running operations take before they report done. */
  operationDelayMs: number;
  /** How long a deleted Cloud SQL instance stays listed as PENDING_DELETE after its delete operation. */
  pendingDeleteMs: number;
  /** The base URL clients reach, e.g. for selfLinks and resumable upload sessions. */
  url: string;
  save(): void;
  nextId(prefix: string): string;
}

export type ServiceModule = (core: SandboxCore) => Route[];

export interface SandboxOptions {
  /** State survives a restart when the same file is given again. Default: a fresh temp dir. */
  stateFile?: string;
  port?: number;
  operationDelayMs?: number;
  /** Default: operationDelayMs. */
  pendingDeleteMs?: number;
  services: ServiceModule[];
}

export class Sandbox implements SandboxCore {
  state: Record<string, any> = {};
  blobDir: string;
  operationDelayMs: number;
  pendingDeleteMs: number;
  url = '';
  readonly calls: Call[] = [];
  /** Requests a fault answered (status or hang), for chaos summaries. */
  faultsInjected = 0;
  private faults: Fault[] = [];
  private routes: Route[] = [];
  private server?: Server;
  private readonly stateFile: string;
  private readonly pending = new Set<ServerResponse>();

  constructor(private readonly opts: SandboxOptions) {
    this.stateFile = opts.stateFile ?? join(mkdtempSync(join(tmpdir(), 'gcp-sandbox-')), 'state.json');
    this.blobDir = join(dirname(this.stateFile), 'blobs');
    mkdirSync(this.blobDir, { recursive: true });
    this.operationDelayMs = opts.operationDelayMs ?? 200;
    this.pendingDeleteMs = opts.pendingDeleteMs ?? this.operationDelayMs;
    if (existsSync(this.stateFile)) {
      const saved = JSON.parse(readFileSync(this.stateFile, 'utf8'));
      this.state = saved.state ?? {};
      this.faults = saved.faults ?? [];
    }
  }

  async start(): Promise<this> {
    this.routes = [...controlRoutes(this), ...this.opts.services.flatMap((s) => s(this))];
    this.server = createServer((req, res) => void this.serve(req, res));
    await new Promise<void>((resolve) => this.server!.listen(this.opts.port ?? 0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    for (const res of this.pending) res.destroy();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  save(): void {
    writeFileSync(this.stateFile, JSON.stringify({ state: this.state, faults: this.faults }));
  }

  private counter = 0;
  nextId(prefix: string): string {
    return `${prefix}-${Date.now().toString(36)}-${(++this.counter).toString(36)}`;
  }

  addFault(fault: Fault): void {
    new RegExp(fault.match); // a bad pattern fails here, not on the next request
    this.faults.push(fault);
    this.save();
  }

  clearFaults(): void {
    this.faults = [];
    this.save();
  }

  /** Calls that change state: everything but reads, BigQuery queries and permission tests. */
  mutations(): Call[] {
    return this.calls.filter((c) => c.method !== 'GET' && !/(\/queries|:testIamPermissions)$/.test(c.path));
  }

  /** Calls whose "METHOD /path" matches, for assertions such as "deleted exactly once". */
  callsTo(match: string): Call[] {
    const re = new RegExp(match);
    return this.calls.filter((c) => re.test(`${c.method} ${c.path}`));
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://sandbox');
    const path = decodeURIComponent(url.pathname);
    const method = (req.headers['x-http-method-override'] as string | undefined) ?? req.method ?? 'GET';
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const send = (reply: Reply) => {
      const status = reply.status ?? 200;
      if (!path.startsWith('/_sandbox')) this.calls.push({ method, path, status, at: new Date().toISOString() });
      const payload = reply.json !== undefined ? JSON.stringify(reply.json) : (reply.body ?? '');
      res.writeHead(status, { ...(reply.json !== undefined ? { 'content-type': 'application/json' } : {}), ...reply.headers });
      res.end(payload);
    };
    const errorReply = (code: number, status: string, message: string, reason = status.toLowerCase()): Reply => ({ status: code, json: { error: { code, message, status, errors: [{ message, domain: 'global', reason }] } } });

    const fault = this.faults.find(
      (f) => (f.times === undefined || f.times > 0) && new RegExp(f.match).test(`${method} ${path}`) && (f.probability === undefined || Math.random() < f.probability),
    );
    if (fault) {
      if (fault.times !== undefined) fault.times--;
      if (fault.hang || fault.status) this.faultsInjected++;
      if (fault.latencyMs) await new Promise((r) => setTimeout(r, fault.latencyMs));
      if (fault.hang) {
        this.pending.add(res);
        res.on('close', () => this.pending.delete(res));
        return;
      }
      if (fault.status) return send(errorReply(fault.status, STATUS_NAMES[fault.status] ?? 'UNKNOWN', `injected fault on ${method} ${path}`));
    }

    for (const route of this.routes) {
      if (route.method !== method) continue;
      const m = route.path.exec(path);
      if (!m) continue;
      const request: SandboxRequest = {
        method,
        path,
        params: m.slice(1),
        query: url.searchParams,
        headers: req.headers,
        body,
        json: () => (body.length ? JSON.parse(body.toString('utf8')) : {}),
      };
      try {
        const reply = await route.handle(request);
        if (method !== 'GET') this.save();
        return send(reply);
      } catch (err) {
        if (err instanceof ApiError) return send(errorReply(err.code, err.status, err.message, err.reason));
        return send(errorReply(500, 'INTERNAL', (err as Error).stack ?? String(err)));
      }
    }
    send(errorReply(404, 'NOT_FOUND', `the sandbox does not implement ${method} ${path}`));
  }
}

/** /_sandbox/*: the same controls over HTTP, for a demo or test in another process. */
function controlRoutes(sb: Sandbox): Route[] {
  return [
    { method: 'GET', path: /^\/_sandbox\/state$/, handle: () => ({ json: sb.state }) },
    { method: 'GET', path: /^\/_sandbox\/calls$/, handle: () => ({ json: sb.calls }) },
    {
      method: 'POST',
      path: /^\/_sandbox\/faults$/,
      handle: (req) => {
        sb.addFault(req.json<Fault>());
        return { status: 204 };
      },
    },
    {
      method: 'DELETE',
      path: /^\/_sandbox\/faults$/,
      handle: () => {
        sb.clearFaults();
        return { status: 204 };
      },
    },
  ];
}

/** A time-taking operation: done once `delayMs` has passed since it began. */
export function isDue(startedAt: string, delayMs: number): boolean {
  return Date.now() - Date.parse(startedAt) >= delayMs;
}

/** Reads an object body stored by a service, or undefined. */
export function readBlob(core: SandboxCore, id: string): Buffer | undefined {
  const p = join(core.blobDir, id);
  return existsSync(p) ? readFileSync(p) : undefined;
}

export function writeBlob(core: SandboxCore, id: string, body: Buffer): void {
  writeFileSync(join(core.blobDir, id), body);
}
