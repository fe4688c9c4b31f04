// Secret Manager v1 over REST, as @google-cloud/secret-manager sends it with fallback (HTTP/JSON
// transcoding of the proto's http rules): secrets get/list/create/delete, versions
// list/get/add/access/disable/enable/destroy. Payloads are stored in the state (they are tiny).
import { createHash } from 'node:crypto';
import { ApiError, badRequest, conflict, failedPrecondition, notFound, type Route, type SandboxCore, type ServiceModule } from '../server';
import { checkLabels, own } from '../names';
import { crc32cBase64 } from './storage';

interface VersionRecord {
  name: string;
  createTime: string;
  state: 'ENABLED' | 'DISABLED' | 'DESTROYED';
  destroyTime?: string;
  etag: string;
  /** base64 payload; dropped when destroyed. */
  data?: string;
}

interface SecretRecord {
  secret: Record<string, any>;
  versions: VersionRecord[];
  policy?: { version: number; etag: string; bindings: Array<{ role: string; members: string[] }> };
}

function secretsState(core: SandboxCore): Record<string, SecretRecord> {
  core.state.secretManager ??= { secrets: {} };
  return core.state.secretManager.secrets;
}

const etag = () => `"${createHash('md5').update(String(Math.random())).digest('hex').slice(0, 12)}"`;

function getSecret(core: SandboxCore, name: string): SecretRecord {
  const s = secretsState(core)[name];
  if (!s) throw notFound(`Secret [${name}]`);
  return s;
}

/** "latest" is the newest version that is not destroyed... and, as in GCP, must be enabled to be accessed. */
function getVersion(core: SandboxCore, secretName: string, id: string): VersionRecord {
  const s = getSecret(core, secretName);
  const v = id === 'latest' ? [...s.versions].reverse().find((v) => v.state !== 'DESTROYED') : s.versions.find((v) => v.name === `${secretName}/versions/${id}`);
  if (!v) throw notFound(`Secret Version [${secretName}/versions/${id}]`);
  return v;
}

function publicVersion(v: VersionRecord): Record<string, any> {
  const { data: _data, ...rest } = v;
  return { ...rest, replicationStatus: { automatic: {} } };
}

function addVersion(core: SandboxCore, rec: SecretRecord, data: string): VersionRecord {
  const next = rec.versions.length + 1;
  const v: VersionRecord = { name: `${rec.secret.name}/versions/${next}`, createTime: new Date().toISOString(), state: 'ENABLED', etag: etag(), data };
  rec.versions.push(v);
  void core;
  return v;
}

function page<T>(items: T[], pageSize: string | null, pageToken: string | null): { items: T[]; nextPageToken?: string } {
  const start = Number(pageToken || 0);
  const size = Number(pageSize || 0) || 25_000;
  return { items: items.slice(start, start + size), ...(start + size < items.length ? { nextPageToken: String(start + size) } : {}) };
}

const P = '/v1/projects/([^/]+)/secrets';

export const secretManagerService: ServiceModule = (core) => {
  const secretName = (project: string, id: string) => `projects/${project}/secrets/${id}`;
  const versionOp = (op: 'disable' | 'enable' | 'destroy'): Route => ({
    method: 'POST',
    path: new RegExp(`^${P}/([^/]+)/versions/([^/:]+):${op}$`),
    handle: (req) => {
      const [project, id, version] = req.params;
      const v = getVersion(core, secretName(project, id), version);
      const body = req.json();
      if (body.etag && body.etag !== v.etag) throw new ApiError(409, 'ABORTED', `etag mismatch on ${v.name}`);
      if (v.state === 'DESTROYED' && op !== 'destroy') throw failedPrecondition(`${v.name} is destroyed`);
      if (op === 'disable') v.state = 'DISABLED';
      if (op === 'enable') v.state = 'ENABLED';
      if (op === 'destroy') {
        v.state = 'DESTROYED';
        v.destroyTime = new Date().toISOString();
        delete v.data;
      }
      v.etag = etag();
      return { json: publicVersion(v) };
    },
  });

  return [
    {
      method: 'GET',
      path: new RegExp(`^${P}$`),
      handle: (req) => {
        const prefix = `projects/${req.params[0]}/secrets/`;
        const filter = req.query.get('filter') ?? '';
        // Supports the label filter form "labels.KEY=VALUE" (space-separated terms are ANDed).
        const terms = [...filter.matchAll(/labels\.([a-z0-9_-]+)\s*[=:]\s*"?([^\s"]*)"?/g)];
        const all = Object.values(secretsState(core))
          .filter((s) => s.secret.name.startsWith(prefix))
          .filter((s) => terms.every(([, k, v]) => own(s.secret.labels, k!) === v))
          .map((s) => s.secret);
        const p = page(all, req.query.get('pageSize'), req.query.get('pageToken'));
        return { json: { secrets: p.items, totalSize: all.length, ...(p.nextPageToken ? { nextPageToken: p.nextPageToken } : {}) } };
      },
    },
    {
      method: 'POST',
      path: new RegExp(`^${P}$`),
      handle: (req) => {
        const id = req.query.get('secretId');
        if (!id) throw badRequest('secretId is required');
        // "A secret ID is a string with a maximum length of 255 characters and can contain uppercase and
        // lowercase letters, numerals, and the hyphen (-) and underscore (_) characters" (secretmanager/v1/service.proto).
        if (!/^[A-Za-z0-9_-]{1,255}$/.test(id)) throw badRequest(`Invalid secret_id ${JSON.stringify(id)}: at most 255 letters, digits, hyphens and underscores.`);
        const name = secretName(req.params[0], id);
        const all = secretsState(core);
        if (all[name]) throw conflict(`Secret [${name}]`);
        const body = req.json();
        checkLabels(body.labels, `secret ${id}`);
        all[name] = { secret: { name, replication: body.replication ?? { automatic: {} }, createTime: new Date().toISOString(), labels: body.labels ?? {}, etag: etag() }, versions: [] };
        return { json: all[name].secret };
      },
    },
    {
      method: 'GET',
      path: new RegExp(`^${P}/([^/:]+)$`),
      handle: (req) => ({ json: getSecret(core, secretName(req.params[0], req.params[1])).secret }),
    },
    {
      method: 'DELETE',
      path: new RegExp(`^${P}/([^/:]+)$`),
      handle: (req) => {
        const name = secretName(req.params[0], req.params[1]);
        const rec = getSecret(core, name);
        const want = req.query.get('etag');
        if (want && want !== rec.secret.etag) throw new ApiError(409, 'ABORTED', `etag mismatch on ${name}`);
        delete secretsState(core)[name];
        return { json: {} };
      },
    },
    {
      method: 'POST',
      path: new RegExp(`^${P}/([^/:]+):addVersion$`),
      handle: (req) => {
        const rec = getSecret(core, secretName(req.params[0], req.params[1]));
        const data = req.json().payload?.data;
        if (typeof data !== 'string') throw badRequest('payload.data is required');
        return { json: publicVersion(addVersion(core, rec, data)) };
      },
    },
    {
      method: 'GET',
      path: new RegExp(`^${P}/([^/:]+)/versions$`),
      handle: (req) => {
        const rec = getSecret(core, secretName(req.params[0], req.params[1]));
        const filter = req.query.get('filter') ?? '';
        const stateFilter = /state\s*[=:]\s*(ENABLED|DISABLED|DESTROYED)/.exec(filter)?.[1];
        // Newest first, as Secret Manager lists them.
        const all = [...rec.versions]
          .reverse()
          .filter((v) => !stateFilter || v.state === stateFilter)
          .map(publicVersion);
        const p = page(all, req.query.get('pageSize'), req.query.get('pageToken'));
        return { json: { versions: p.items, totalSize: all.length, ...(p.nextPageToken ? { nextPageToken: p.nextPageToken } : {}) } };
      },
    },
    {
      method: 'GET',
      path: new RegExp(`^${P}/([^/:]+)/versions/([^/:]+)$`),
      handle: (req) => ({ json: publicVersion(getVersion(core, secretName(req.params[0], req.params[1]), req.params[2])) }),
    },
    {
      method: 'GET',
      path: new RegExp(`^${P}/([^/:]+)/versions/([^/:]+):access$`),
      handle: (req) => {
        const v = getVersion(core, secretName(req.params[0], req.params[1]), req.params[2]);
        if (v.state !== 'ENABLED') throw failedPrecondition(`${v.name} is in ${v.state} state.`);
        const bytes = Buffer.from(v.data ?? '', 'base64');
        const crc = Buffer.from(crc32cBase64(bytes), 'base64').readUInt32BE();
        return { json: { name: v.name, payload: { data: v.data, dataCrc32c: String(crc) } } };
      },
    },
    versionOp('disable'),
    versionOp('enable'),
    versionOp('destroy'),
    {
      // secrets.getIamPolicy / setIamPolicy (google/cloud/secretmanager/v1/service.proto): who may access a secret.
      method: 'GET',
      path: new RegExp(`^${P}/([^/:]+):getIamPolicy$`),
      handle: (req) => ({ json: getSecret(core, secretName(req.params[0], req.params[1])).policy ?? { version: 1, etag: 'BwY=', bindings: [] } }),
    },
    {
      method: 'POST',
      path: new RegExp(`^${P}/([^/:]+):setIamPolicy$`),
      handle: (req) => {
        const rec = getSecret(core, secretName(req.params[0], req.params[1]));
        rec.policy = { version: 1, etag: etag(), bindings: req.json<{ policy?: { bindings?: Array<{ role: string; members: string[] }> } }>().policy?.bindings ?? [] };
        return { json: rec.policy };
      },
    },
  ];
};

/** Seeds a secret with enabled versions (plain-text values), for tests and the demo. */
export function seedSecret(core: SandboxCore, opts: { project: string; id: string; labels?: Record<string, string>; versions: string[] }): void {
  const all = secretsState(core);
  const name = `projects/${opts.project}/secrets/${opts.id}`;
  all[name] ??= { secret: { name, replication: { automatic: {} }, createTime: new Date().toISOString(), labels: opts.labels ?? {}, etag: etag() }, versions: [] };
  for (const value of opts.versions) addVersion(core, all[name], Buffer.from(value, 'utf8').toString('base64'));
  core.save();
}
