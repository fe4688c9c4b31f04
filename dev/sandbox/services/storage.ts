// Cloud Storage JSON API, as @google-cloud/storage 8.x speaks it with an apiEndpoint override:
// buckets (with soft delete and restore), objects with generations (versioning, soft delete),
// multipart/media uploads and resumable sessions (PUT chunks, 308 Resume Incomplete).
// Object bodies live in blob files beside the state file, never in the JSON state.
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { asDict, checkLabels, dict, own } from '../names';
import { ApiError, badRequest, conflict, notFound, readBlob, writeBlob, type Reply, type Route, type SandboxCore, type SandboxRequest, type ServiceModule } from '../server';

const DEFAULT_SOFT_DELETE_SECONDS = 7 * 86_400;

interface ObjectRecord {
  meta: Record<string, any>;
  blob: string;
}

interface BucketRecord {
  meta: Record<string, any>;
  objects: ObjectRecord[];
  /** The bucket's IAM policy (uniform bucket-level access): who may do what to its objects. */
  policy?: { version: number; etag: string; bindings: Array<{ role: string; members: string[] }> };
}

interface UploadSession {
  bucket: string;
  name: string;
  metadata: Record<string, any>;
  contentType?: string;
}

interface StorageState {
  seq: number;
  buckets: Record<string, BucketRecord>;
  /** Soft-deleted buckets, restorable until their hardDeleteTime. */
  deleted: BucketRecord[];
  uploads: Record<string, UploadSession>;
}

function storageState(core: SandboxCore): StorageState {
  core.state.storage ??= { seq: 0, buckets: dict(), deleted: [], uploads: dict() };
  const st = core.state.storage as StorageState;
  // Bucket names are user-chosen ("constructor" is one): dictionaries without a prototype, also after a reload.
  st.buckets = asDict(st.buckets);
  st.uploads = asDict(st.uploads);
  return st;
}

// "Bucket names can only contain lowercase letters, numeric characters, dashes (-), underscores (_),
// and dots (.) … must start and end with a number or letter … 3-63 characters. Names containing dots
// can contain up to 222 characters, but each dot-separated component can be no longer than 63
// characters … cannot begin with the "goog" prefix" (https://cloud.google.com/storage/docs/buckets#naming).
function checkBucketName(name: unknown): asserts name is string {
  const ok =
    typeof name === 'string' &&
    /^[a-z0-9][a-z0-9._-]*[a-z0-9]$/.test(name) &&
    name.length >= 3 &&
    name.length <= (name.includes('.') ? 222 : 63) &&
    name.split('.').every((part) => part.length > 0 && part.length <= 63) &&
    !name.startsWith('goog') &&
    !/g(o|0)(o|0)gle/.test(name);
  if (!ok) throw new ApiError(400, 'INVALID_ARGUMENT', `Invalid bucket name: ${JSON.stringify(name)}`, 'invalid');
}

// "Object names can contain any sequence of valid Unicode characters, of length 1-1024 bytes when
// UTF-8 encoded … cannot contain Carriage Return or Line Feed characters … cannot start with
// .well-known/acme-challenge/ … cannot be named . or .." (https://cloud.google.com/storage/docs/objects#naming).
function checkObjectName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !name) throw badRequest('object name is required');
  const bytes = Buffer.byteLength(name, 'utf8');
  const ok = bytes <= 1024 && !/[\r\n]/.test(name) && name !== '.' && name !== '..' && !name.startsWith('.well-known/acme-challenge/') && Buffer.from(name, 'utf8').toString('utf8') === name;
  if (!ok) throw new ApiError(400, 'INVALID_ARGUMENT', `The specified object name is not valid: ${JSON.stringify(name.slice(0, 80))}${bytes > 1024 ? ` (${bytes} bytes; at most 1024)` : ''}`, 'invalid');
}

/** Object names in listing order: lexicographic by their UTF-8 bytes, not by JavaScript's UTF-16 units. */
const byName = (x: string, y: string) => Buffer.compare(Buffer.from(x, 'utf8'), Buffer.from(y, 'utf8'));

/** A generation: microseconds since the epoch, strictly increasing, as GCS issues them. */
function nextGeneration(st: StorageState): string {
  st.seq = Math.max(st.seq + 1, Date.now() * 1000);
  return String(st.seq);
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** CRC32C (Castagnoli), base64 of the big-endian 32-bit value: the form GCS reports. */
export function crc32cBase64(data: Buffer): string {
  let crc = 0xffffffff;
  for (const b of data) crc = CRC_TABLE[(crc ^ b) & 0xff] ^ (crc >>> 8);
  const out = Buffer.alloc(4);
  out.writeUInt32BE((crc ^ 0xffffffff) >>> 0);
  return out.toString('base64');
}

const md5Base64 = (data: Buffer) => createHash('md5').update(data).digest('base64');

function newBucket(core: SandboxCore, st: StorageState, name: string, project: string, body: Record<string, any>, retentionSeconds = DEFAULT_SOFT_DELETE_SECONDS): BucketRecord {
  const now = new Date().toISOString();
  return {
    meta: {
      kind: 'storage#bucket',
      id: name,
      name,
      selfLink: `${core.url}/storage/v1/b/${name}`,
      projectNumber: projectNumber(project),
      // Not a GCS field: the sandbox keeps the owning project to list by ?project=.
      project,
      generation: nextGeneration(st),
      metageneration: '1',
      location: body.location ?? 'EUROPE-CENTRAL2',
      locationType: 'region',
      storageClass: body.storageClass ?? 'STANDARD',
      timeCreated: now,
      updated: now,
      labels: body.labels ?? {},
      versioning: body.versioning ?? { enabled: false },
      softDeletePolicy: { retentionDurationSeconds: String(body.softDeletePolicy?.retentionDurationSeconds ?? retentionSeconds), effectiveTime: now },
      iamConfiguration: { uniformBucketLevelAccess: { enabled: true } },
      etag: 'CAE=',
    },
    objects: [],
  };
}

function projectNumber(project: string): string {
  let h = 0;
  for (const c of project) h = (h * 31 + c.charCodeAt(0)) % 1_000_000_000;
  return String(100_000_000_000 + h);
}

function retentionMs(bucket: BucketRecord): number {
  return Number(bucket.meta.softDeletePolicy?.retentionDurationSeconds ?? 0) * 1000;
}

function purgeExpired(core: SandboxCore, st: StorageState): void {
  const now = Date.now();
  const expired = (m: Record<string, any>) => m.hardDeleteTime && Date.parse(m.hardDeleteTime) <= now;
  for (const b of st.deleted.filter((b) => expired(b.meta))) for (const o of b.objects) dropBlob(core, o.blob);
  st.deleted = st.deleted.filter((b) => !expired(b.meta));
  for (const b of Object.values(st.buckets)) {
    for (const o of b.objects.filter((o) => expired(o.meta))) dropBlob(core, o.blob);
    b.objects = b.objects.filter((o) => !expired(o.meta));
  }
}

function dropBlob(core: SandboxCore, blob: string): void {
  rmSync(join(core.blobDir, blob), { force: true });
}

function bucketOf(st: StorageState, name: string): BucketRecord {
  const b = own(st.buckets, name);
  if (!b) throw notFound(`bucket ${name}`);
  return b;
}

const isLive = (o: ObjectRecord) => !o.meta.timeDeleted && !o.meta.softDeleteTime;
const isSoftDeleted = (o: ObjectRecord) => !!o.meta.softDeleteTime;

/** Stores a new live version; the previous live one becomes noncurrent (versioning) or is deleted. */
function putObject(core: SandboxCore, st: StorageState, bucketName: string, name: string, data: Buffer, meta: Record<string, any>, query: URLSearchParams): Record<string, any> {
  const bucket = bucketOf(st, bucketName);
  checkObjectName(name);
  const current = bucket.objects.find((o) => o.meta.name === name && isLive(o));
  const ifGen = query.get('ifGenerationMatch');
  if (ifGen !== null && (ifGen === '0' ? !!current : current?.meta.generation !== ifGen)) {
    throw new ApiError(412, 'FAILED_PRECONDITION', `At least one of the pre-conditions you specified did not hold (ifGenerationMatch=${ifGen} on ${name}).`);
  }
  const now = new Date().toISOString();
  if (current) retire(bucket, current, now);
  const generation = nextGeneration(st);
  const blob = `${bucketName}--${generation}`;
  writeBlob(core, blob, data);
  const object = {
    kind: 'storage#object',
    id: `${bucketName}/${name}/${generation}`,
    selfLink: `${core.url}/storage/v1/b/${bucketName}/o/${encodeURIComponent(name)}`,
    mediaLink: `${core.url}/download/storage/v1/b/${bucketName}/o/${encodeURIComponent(name)}?generation=${generation}&alt=media`,
    name,
    bucket: bucketName,
    generation,
    metageneration: '1',
    contentType: meta.contentType ?? 'application/octet-stream',
    storageClass: 'STANDARD',
    size: String(data.length),
    md5Hash: md5Base64(data),
    crc32c: crc32cBase64(data),
    etag: Buffer.from(generation).toString('base64'),
    timeCreated: now,
    updated: now,
    timeStorageClassUpdated: now,
    ...(meta.metadata ? { metadata: meta.metadata } : {}),
    ...(meta.contentEncoding ? { contentEncoding: meta.contentEncoding } : {}),
  };
  bucket.objects.push({ meta: object, blob });
  return object;
}

/** A live version stops being live: noncurrent under versioning, soft-deleted otherwise. */
function retire(bucket: BucketRecord, o: ObjectRecord, now: string): void {
  if (bucket.meta.versioning?.enabled) o.meta.timeDeleted = now;
  else softDelete(bucket, o, now);
}

function softDelete(bucket: BucketRecord, o: ObjectRecord, now: string): void {
  const keep = retentionMs(bucket);
  o.meta.timeDeleted ??= now;
  if (keep > 0) {
    o.meta.softDeleteTime = now;
    o.meta.hardDeleteTime = new Date(Date.parse(now) + keep).toISOString();
  } else {
    bucket.objects.splice(bucket.objects.indexOf(o), 1);
  }
}

function findObject(bucket: BucketRecord, name: string, generation: string | null, softDeleted = false): ObjectRecord {
  const o = generation
    ? bucket.objects.find((o) => o.meta.name === name && o.meta.generation === generation && isSoftDeleted(o) === softDeleted)
    : bucket.objects.find((o) => o.meta.name === name && isLive(o));
  if (!o) throw notFound(`object gs://${bucket.meta.name}/${name}${generation ? `#${generation}` : ''}`);
  return o;
}

function page<T>(items: T[], query: URLSearchParams): { items: T[]; nextPageToken?: string } {
  const start = Number(query.get('pageToken') ?? 0);
  const max = Math.min(Number(query.get('maxResults') ?? 1000) || 1000, 1000);
  const slice = items.slice(start, start + max);
  return start + max < items.length ? { items: slice, nextPageToken: String(start + max) } : { items: slice };
}

function policyOf(b: BucketRecord): NonNullable<BucketRecord['policy']> {
  b.policy ??= { version: 1, etag: 'CAE=', bindings: [] };
  return b.policy;
}

/** Object permissions of the predefined roles (https://cloud.google.com/storage/docs/access-control/iam-roles). */
const ROLE_PERMISSIONS = new Map<string, string[]>([
  ['roles/storage.admin', ['storage.objects.get', 'storage.objects.list', 'storage.objects.create', 'storage.objects.delete']],
  ['roles/storage.objectAdmin', ['storage.objects.get', 'storage.objects.list', 'storage.objects.create', 'storage.objects.delete']],
  ['roles/storage.objectUser', ['storage.objects.get', 'storage.objects.list', 'storage.objects.create', 'storage.objects.delete']],
  ['roles/storage.objectViewer', ['storage.objects.get', 'storage.objects.list']],
  ['roles/storage.objectCreator', ['storage.objects.create']],
  ['roles/storage.legacyBucketReader', ['storage.objects.list']],
  ['roles/storage.legacyObjectReader', ['storage.objects.get']],
  ['roles/storage.legacyBucketWriter', ['storage.objects.list', 'storage.objects.create', 'storage.objects.delete']],
]);

/** Whether `member` (e.g. "serviceAccount:x@y") holds `permission` on the bucket through its IAM policy. */
export function bucketAllows(core: SandboxCore, bucket: string, member: string, permission: string): boolean {
  const b = own(storageState(core).buckets, bucket);
  if (!b) return false;
  return policyOf(b).bindings.some((x) => x.members.includes(member) && (ROLE_PERMISSIONS.get(x.role) ?? []).includes(permission));
}

/** Grants `role` on a bucket to `member`, as an operator would before the migration (tests, the demo). */
export function grantBucket(core: SandboxCore, bucket: string, member: string, role: string): void {
  const p = policyOf(bucketOf(storageState(core), bucket));
  const binding = p.bindings.find((x) => x.role === role);
  if (binding) {
    if (!binding.members.includes(member)) binding.members.push(member);
  } else p.bindings.push({ role, members: [member] });
  core.save();
}

/** Writes one object version, for services that write into buckets (a Cloud SQL export). */
export function putObjectFor(core: SandboxCore, bucket: string, name: string, data: Buffer, contentType = 'application/octet-stream'): Record<string, any> {
  const meta = putObject(core, storageState(core), bucket, name, data, { contentType }, new URLSearchParams());
  core.save();
  return meta;
}

/** The live version's bytes of gs://bucket/name, or undefined. */
export function liveObjectBody(core: SandboxCore, bucket: string, name: string): Buffer | undefined {
  const o = own(storageState(core).buckets, bucket)?.objects.find((x) => x.meta.name === name && isLive(x));
  return o ? readBlob(core, o.blob) : undefined;
}

function publicBucket(b: BucketRecord): Record<string, any> {
  const { project: _project, ...meta } = b.meta;
  return meta;
}

/** multipart/related: a JSON metadata part, then the media part. */
function parseMultipart(req: SandboxRequest): { meta: Record<string, any>; data: Buffer } {
  const m = /boundary="?([^";]+)"?/.exec(String(req.headers['content-type'] ?? ''));
  if (!m) throw badRequest('multipart upload without a boundary');
  const delimiter = Buffer.from(`--${m[1]}`);
  const parts: Buffer[] = [];
  let at = req.body.indexOf(delimiter);
  while (at >= 0) {
    const next = req.body.indexOf(delimiter, at + delimiter.length);
    if (next < 0) break;
    parts.push(req.body.subarray(at + delimiter.length, next));
    at = next;
  }
  const contents = parts.map((p) => {
    const headerEnd = p.indexOf('\r\n\r\n');
    let content = p.subarray(headerEnd + 4);
    if (content.subarray(-2).toString() === '\r\n') content = content.subarray(0, -2);
    return { headers: p.subarray(0, headerEnd).toString('utf8'), content };
  });
  if (contents.length < 2) throw badRequest('multipart upload needs a metadata part and a media part');
  const meta = JSON.parse(contents[0].content.toString('utf8') || '{}');
  const type = /content-type:\s*([^\r\n]+)/i.exec(contents[1].headers)?.[1];
  if (type && !meta.contentType) meta.contentType = type;
  return { meta, data: contents[1].content };
}

function mediaReply(core: SandboxCore, o: ObjectRecord, req: SandboxRequest): Reply {
  const data = readBlob(core, o.blob) ?? Buffer.alloc(0);
  const headers: Record<string, string> = {
    'content-type': o.meta.contentType,
    'x-goog-hash': `crc32c=${o.meta.crc32c},md5=${o.meta.md5Hash}`,
    'x-goog-generation': o.meta.generation,
    'x-goog-stored-content-encoding': o.meta.contentEncoding ?? 'identity',
    'x-goog-stored-content-length': o.meta.size,
  };
  const range = /^bytes=(\d*)-(\d*)$/.exec(String(req.headers.range ?? ''));
  if (range && (range[1] || range[2])) {
    const start = range[1] ? Number(range[1]) : Math.max(0, data.length - Number(range[2]));
    const end = range[1] && range[2] ? Math.min(Number(range[2]), data.length - 1) : data.length - 1;
    return { status: 206, body: data.subarray(start, end + 1), headers: { ...headers, 'content-range': `bytes ${start}-${end}/${data.length}` } };
  }
  return { body: data, headers };
}

export const storageService: ServiceModule = (core) => {
  const st = () => {
    const s = storageState(core);
    purgeExpired(core, s);
    return s;
  };
  const routes: Route[] = [
    {
      method: 'GET',
      path: /^\/storage\/v1\/b$/,
      handle: (req) => {
        const s = st();
        const project = req.query.get('project');
        if (!project) throw badRequest('project is required');
        const prefix = req.query.get('prefix') ?? '';
        const source = req.query.get('softDeleted') === 'true' ? s.deleted : Object.values(s.buckets);
        const items = source.filter((b) => b.meta.project === project && b.meta.name.startsWith(prefix)).map(publicBucket);
        return { json: { kind: 'storage#buckets', ...page(items, req.query) } };
      },
    },
    {
      method: 'POST',
      path: /^\/storage\/v1\/b$/,
      handle: (req) => {
        const s = st();
        const body = req.json();
        const project = req.query.get('project');
        if (!project) throw badRequest('project is required');
        if (!body.name) throw badRequest('bucket name is required');
        checkBucketName(body.name);
        checkLabels(body.labels, `bucket ${body.name}`);
        if (own(s.buckets, body.name)) throw conflict(`bucket ${body.name}`);
        const bucket = newBucket(core, s, body.name, project, body);
        s.buckets[body.name] = bucket;
        return { json: publicBucket(bucket) };
      },
    },
    {
      // testIamPermissions: everything asked for, minus what a test denied (state.deniedPermissions).
      method: 'GET',
      path: /^\/storage\/v1\/b\/([^/]+)\/iam\/testPermissions$/,
      handle: (req) => {
        bucketOf(st(), req.params[0]);
        const denied: string[] = core.state.deniedPermissions ?? [];
        return { json: { kind: 'storage#testIamPermissionsResponse', permissions: req.query.getAll('permissions').filter((p) => !denied.includes(p)) } };
      },
    },
    {
      method: 'GET',
      path: /^\/storage\/v1\/b\/([^/]+)$/,
      handle: (req) => {
        const s = st();
        if (req.query.get('softDeleted') === 'true') {
          const gen = req.query.get('generation');
          const b = s.deleted.find((b) => b.meta.name === req.params[0] && (!gen || b.meta.generation === gen));
          if (!b) throw notFound(`soft-deleted bucket ${req.params[0]}`);
          return { json: publicBucket(b) };
        }
        return { json: publicBucket(bucketOf(s, req.params[0])) };
      },
    },
    {
      method: 'PATCH',
      path: /^\/storage\/v1\/b\/([^/]+)$/,
      handle: (req) => {
        const b = bucketOf(st(), req.params[0]);
        const body = req.json();
        if (body.labels) {
          checkLabels(body.labels, `bucket ${b.meta.name}`);
          // A label key is a name: merged in a dictionary without a prototype.
          const labels = dict<unknown>(Object.entries(b.meta.labels ?? {}));
          for (const [k, v] of Object.entries(body.labels)) {
            if (v === null) delete labels[k];
            else labels[k] = v;
          }
          checkLabels(labels, `bucket ${b.meta.name}`);
          b.meta.labels = labels;
        }
        if (body.versioning) b.meta.versioning = body.versioning;
        if (body.softDeletePolicy) {
          // "0, or between 7 and 90 days" (https://cloud.google.com/storage/docs/soft-delete#retention-duration).
          const seconds = Number(body.softDeletePolicy.retentionDurationSeconds ?? b.meta.softDeletePolicy?.retentionDurationSeconds ?? 0);
          if (seconds !== 0 && (seconds < 7 * 86_400 || seconds > 90 * 86_400)) throw badRequest(`softDeletePolicy.retentionDurationSeconds must be 0 or between 604800 and 7776000, not ${seconds}`);
          b.meta.softDeletePolicy = { retentionDurationSeconds: String(seconds), effectiveTime: new Date().toISOString() };
        }
        b.meta.metageneration = String(Number(b.meta.metageneration) + 1);
        b.meta.updated = new Date().toISOString();
        return { json: publicBucket(b) };
      },
    },
    {
      method: 'DELETE',
      path: /^\/storage\/v1\/b\/([^/]+)$/,
      handle: (req) => {
        const s = st();
        const b = bucketOf(s, req.params[0]);
        // Noncurrent versions count: GCS refuses to delete a bucket until every version is gone.
        if (b.objects.some((o) => !isSoftDeleted(o))) throw new ApiError(409, 'CONFLICT', 'The bucket you tried to delete is not empty.');
        delete s.buckets[b.meta.name];
        const keep = retentionMs(b);
        if (keep > 0) {
          const now = new Date();
          b.meta.softDeleteTime = now.toISOString();
          b.meta.hardDeleteTime = new Date(now.getTime() + keep).toISOString();
          s.deleted.push(b);
        } else {
          for (const o of b.objects) dropBlob(core, o.blob);
        }
        return { status: 204 };
      },
    },
    {
      method: 'POST',
      path: /^\/storage\/v1\/b\/([^/]+)\/restore$/,
      handle: (req) => {
        const s = st();
        const name = req.params[0];
        const gen = req.query.get('generation');
        if (!gen) throw badRequest('generation is required to restore a bucket');
        const b = s.deleted.find((b) => b.meta.name === name && b.meta.generation === gen);
        if (!b) throw notFound(`soft-deleted bucket ${name} generation ${gen}`);
        if (own(s.buckets, name)) throw conflict(`bucket ${name}`);
        s.deleted.splice(s.deleted.indexOf(b), 1);
        delete b.meta.softDeleteTime;
        delete b.meta.hardDeleteTime;
        b.meta.updated = new Date().toISOString();
        s.buckets[name] = b;
        return { json: publicBucket(b) };
      },
    },
    {
      method: 'GET',
      path: /^\/storage\/v1\/b\/([^/]+)\/o$/,
      handle: (req) => {
        const b = bucketOf(st(), req.params[0]);
        const prefix = req.query.get('prefix') ?? '';
        const delimiter = req.query.get('delimiter');
        const versions = req.query.get('versions') === 'true';
        const softDeleted = req.query.get('softDeleted') === 'true';
        // objects.list: "softDeleted and versions cannot be set to true simultaneously" (@google-cloud/storage
        // bucket.js getFiles; https://cloud.google.com/storage/docs/json_api/v1/objects/list).
        if (softDeleted && versions) throw badRequest('softDeleted and versions cannot both be true');
        const matching = b.objects
          .filter((o) => (softDeleted ? isSoftDeleted(o) : versions ? !isSoftDeleted(o) : isLive(o)))
          .filter((o) => o.meta.name.startsWith(prefix))
          .sort((x, y) => (x.meta.name === y.meta.name ? Number(BigInt(x.meta.generation) - BigInt(y.meta.generation)) : byName(x.meta.name, y.meta.name)));
        const prefixes = new Set<string>();
        const items = matching.filter((o) => {
          if (!delimiter) return true;
          const rest = o.meta.name.slice(prefix.length);
          const cut = rest.indexOf(delimiter);
          if (cut < 0) return true;
          prefixes.add(prefix + rest.slice(0, cut + delimiter.length));
          return false;
        });
        const p = page(
          items.map((o) => o.meta),
          req.query,
        );
        return { json: { kind: 'storage#objects', ...p, ...(prefixes.size ? { prefixes: [...prefixes] } : {}) } };
      },
    },
    {
      // objects.restore (https://cloud.google.com/storage/docs/json_api/v1/objects/restore): "a new copy
      // of that object is created … A new generation is assigned"; the soft-deleted version stays
      // soft-deleted; a live object of the same name becomes noncurrent (versioning) or soft-deleted.
      method: 'POST',
      path: /^\/storage\/v1\/b\/([^/]+)\/o\/(.+)\/restore$/,
      handle: (req) => {
        const s = st();
        const b = bucketOf(s, req.params[0]);
        const gen = req.query.get('generation');
        if (!gen) throw badRequest('generation is required to restore an object');
        const o = findObject(b, req.params[1], gen, true);
        const live = b.objects.find((x) => x.meta.name === o.meta.name && isLive(x));
        const ifGen = req.query.get('ifGenerationMatch');
        if (ifGen !== null && (ifGen === '0' ? !!live : live?.meta.generation !== ifGen)) {
          throw new ApiError(412, 'FAILED_PRECONDITION', `At least one of the pre-conditions you specified did not hold (ifGenerationMatch=${ifGen} on ${o.meta.name}).`);
        }
        const now = new Date().toISOString();
        if (live) retire(b, live, now);
        const generation = nextGeneration(s);
        const blob = `${b.meta.name}--${generation}`;
        writeBlob(core, blob, readBlob(core, o.blob) ?? Buffer.alloc(0));
        const { softDeleteTime: _s, hardDeleteTime: _h, timeDeleted: _t, ...meta } = o.meta;
        const copy = {
          ...meta,
          id: `${b.meta.name}/${meta.name}/${generation}`,
          generation,
          metageneration: '1',
          etag: Buffer.from(generation).toString('base64'),
          timeCreated: now,
          updated: now,
          mediaLink: `${core.url}/download/storage/v1/b/${b.meta.name}/o/${encodeURIComponent(meta.name)}?generation=${generation}&alt=media`,
        };
        b.objects.push({ meta: copy, blob });
        return { json: copy };
      },
    },
    {
      // Bucket IAM (uniform bucket-level access): https://cloud.google.com/storage/docs/json_api/v1/buckets/getIamPolicy
      method: 'GET',
      path: /^\/storage\/v1\/b\/([^/]+)\/iam$/,
      handle: (req) => ({ json: { kind: 'storage#policy', resourceId: `projects/_/buckets/${req.params[0]}`, ...policyOf(bucketOf(st(), req.params[0])) } }),
    },
    {
      // buckets.setIamPolicy: the whole policy is replaced; a stale etag is refused (412).
      method: 'PUT',
      path: /^\/storage\/v1\/b\/([^/]+)\/iam$/,
      handle: (req) => {
        const b = bucketOf(st(), req.params[0]);
        const body = req.json<{ etag?: string; bindings?: Array<{ role: string; members: string[] }> }>();
        const current = policyOf(b);
        if (body.etag && body.etag !== current.etag) throw new ApiError(412, 'FAILED_PRECONDITION', 'The policy was changed since it was read (etag mismatch).');
        b.policy = { version: 1, etag: Buffer.from(String(Date.now()) + Math.random()).toString('base64').slice(0, 12), bindings: (body.bindings ?? []).filter((x) => x.members?.length) };
        return { json: { kind: 'storage#policy', resourceId: `projects/_/buckets/${b.meta.name}`, ...b.policy } };
      },
    },
    {
      method: 'GET',
      path: /^\/storage\/v1\/b\/([^/]+)\/o\/(.+)$/,
      handle: (req) => {
        const b = bucketOf(st(), req.params[0]);
        const gen = req.query.get('generation');
        const softDeleted = req.query.get('softDeleted') === 'true';
        const o = gen ? (b.objects.find((o) => o.meta.name === req.params[1] && o.meta.generation === gen && (softDeleted || !isSoftDeleted(o))) ?? findObject(b, req.params[1], gen)) : findObject(b, req.params[1], null);
        return req.query.get('alt') === 'media' ? mediaReply(core, o, req) : { json: o.meta };
      },
    },
    {
      method: 'DELETE',
      path: /^\/storage\/v1\/b\/([^/]+)\/o\/(.+)$/,
      handle: (req) => {
        const b = bucketOf(st(), req.params[0]);
        const gen = req.query.get('generation');
        const o = gen ? findObject(b, req.params[1], gen) : findObject(b, req.params[1], null);
        const now = new Date().toISOString();
        // Without a generation the live version goes (noncurrent under versioning); with one, that version goes for good (soft delete).
        if (!gen && isLive(o)) retire(b, o, now);
        else softDelete(b, o, now);
        return { status: 204 };
      },
    },
    {
      method: 'POST',
      path: /^\/upload\/storage\/v1\/b\/([^/]+)\/o$/,
      handle: (req) => {
        const s = st();
        const bucket = req.params[0];
        bucketOf(s, bucket);
        const type = req.query.get('uploadType');
        if (type === 'multipart') {
          const { meta, data } = parseMultipart(req);
          return { json: putObject(core, s, bucket, meta.name ?? req.query.get('name') ?? '', data, meta, req.query) };
        }
        if (type === 'media') {
          return { json: putObject(core, s, bucket, req.query.get('name') ?? '', req.body, { contentType: req.headers['content-type'] }, req.query) };
        }
        if (type === 'resumable') {
          const meta = req.json();
          const name = req.query.get('name') ?? meta.name;
          checkObjectName(name);
          const id = core.nextId('upload');
          s.uploads[id] = { bucket, name, metadata: { ...meta, contentType: meta.contentType ?? (req.headers['x-upload-content-type'] as string | undefined) } };
          writeFileSync(join(core.blobDir, id), Buffer.alloc(0));
          const pre = req.query.get('ifGenerationMatch');
          const location = `${core.url}/upload/storage/v1/b/${bucket}/o?uploadType=resumable&name=${encodeURIComponent(name)}&upload_id=${id}${pre !== null ? `&ifGenerationMatch=${pre}` : ''}`;
          return { status: 200, headers: { location }, json: {} };
        }
        throw badRequest(`uploadType ${type} is not supported`);
      },
    },
    {
      method: 'PUT',
      path: /^\/upload\/storage\/v1\/b\/([^/]+)\/o$/,
      handle: (req) => resumableChunk(core, st(), req),
    },
    {
      method: 'DELETE',
      path: /^\/upload\/storage\/v1\/b\/([^/]+)\/o$/,
      handle: (req) => {
        const s = st();
        const id = req.query.get('upload_id') ?? '';
        if (!own(s.uploads, id)) throw notFound(`upload session ${id}`);
        delete s.uploads[id];
        dropBlob(core, id);
        return { status: 499, json: {} };
      },
    },
  ];
  return routes;
};

/** One PUT of a resumable session: "bytes a-b/total", "bytes a-*\/total" (final, unknown end) or "bytes *\/…" (status query). */
function resumableChunk(core: SandboxCore, s: StorageState, req: SandboxRequest): Reply {
  const id = req.query.get('upload_id') ?? '';
  const found = own(s.uploads, id);
  if (!found) throw notFound(`upload session ${id}`);
  const session: UploadSession = found;
  const partPath = join(core.blobDir, id);
  const received = existsSync(partPath) ? statSync(partPath).size : 0;
  const incomplete = (): Reply => ({ status: 308, headers: received > 0 ? { range: `bytes=0-${received - 1}` } : {}, body: '' });
  const range = String(req.headers['content-range'] ?? `bytes 0-*/${req.body.length}`);
  const status = /^bytes \*\/(\d+|\*)$/.exec(range);
  if (status) {
    if (status[1] !== '*' && Number(status[1]) === received) return finish();
    return incomplete();
  }
  const m = /^bytes (\d+)-(\d+|\*)\/(\d+|\*)$/.exec(range);
  if (!m) throw badRequest(`bad Content-Range "${range}"`);
  const start = Number(m[1]);
  if (start > received) throw badRequest(`chunk starts at ${start} but only ${received} bytes were received`);
  // A resent chunk overlaps what is already stored: keep only the new bytes.
  const fresh = req.body.subarray(received - start);
  appendFileSync(partPath, fresh);
  const total = m[3] === '*' ? (m[2] === '*' ? start + req.body.length : undefined) : Number(m[3]);
  const now = received + fresh.length;
  if (total !== undefined && now >= total) return finish();
  return { status: 308, headers: { range: `bytes=0-${now - 1}` }, body: '' };

  function finish(): Reply {
    const data = readFileSync(partPath);
    const object = putObject(core, s, session.bucket, session.name, data, session.metadata, req.query);
    delete s.uploads[id];
    dropBlob(core, id);
    return { json: object };
  }
}

/** Seeds a bucket in the sandbox with objects (one version each), for tests and the demo. */
export function seedBucket(
  core: SandboxCore,
  /** Objects by name; a Map (or entries) when a name such as "__proto__" must not be read as an object literal's prototype. */
  opts: { name: string; project?: string; labels?: Record<string, string>; objects?: Record<string, string | Buffer> | Map<string, string | Buffer>; softDeleteRetentionSeconds?: number; versioning?: boolean },
): void {
  const s = storageState(core);
  // A sandbox serves one project in practice: without one named, a new bucket joins the others' project.
  const project = opts.project ?? own(s.buckets, opts.name)?.meta.project ?? Object.values(s.buckets)[0]?.meta.project ?? 'demo-project';
  const bucket = own(s.buckets, opts.name) ?? newBucket(core, s, opts.name, project, { labels: opts.labels ?? {}, versioning: { enabled: opts.versioning ?? false } }, opts.softDeleteRetentionSeconds);
  s.buckets[opts.name] = bucket;
  for (const [name, body] of opts.objects instanceof Map ? opts.objects : Object.entries(opts.objects ?? {})) {
    putObject(core, s, opts.name, name, Buffer.isBuffer(body) ? body : Buffer.from(body), { contentType: 'application/octet-stream' }, new URLSearchParams());
  }
  core.save();
}
