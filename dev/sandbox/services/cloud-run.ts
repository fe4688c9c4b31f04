// Cloud Run Admin API v2, as @google-cloud/run's ServicesClient sends it over REST (fallback):
// services get/list/create/patch/delete, each mutation a google.longrunning.Operation that is
// done after core.operationDelayMs, polled through GET /v2/projects/*/locations/*/operations/*.
import { randomUUID } from 'node:crypto';
import { withEnumNames } from './enum-names';
import { checkLabels } from '../names';
import { badRequest, conflict, isDue, notFound, type Route, type SandboxCore, type ServiceModule } from '../server';

/** A Service from a request body, enums as names (the client sends numbers). */
const serviceBody = (req: { json(): unknown }): Record<string, any> => withEnumNames('@google-cloud/run', 'google.cloud.run.v2.Service', req.json());

const SERVICE_TYPE = 'type.googleapis.com/google.cloud.run.v2.Service';
/** The Ready condition while a change is being rolled out (condition.proto CONDITION_RECONCILING). */
const RECONCILING = () => ({ type: 'Ready', state: 'CONDITION_RECONCILING', lastTransitionTime: new Date().toISOString() });

/** Fields the API sets; whatever a client sends for them is ignored. */
const OUTPUT_ONLY = [
  'uid',
  'generation',
  'createTime',
  'updateTime',
  'deleteTime',
  'expireTime',
  'creator',
  'lastModifier',
  'observedGeneration',
  'terminalCondition',
  'conditions',
  'latestReadyRevision',
  'latestCreatedRevision',
  'trafficStatuses',
  'uri',
  'urls',
  'reconciling',
  'etag',
  'satisfiesPzs',
];

interface RunOperation {
  name: string;
  kind: 'create' | 'update' | 'delete';
  service: string;
  startedAt: string;
  /** The service as the operation will leave it (for delete: as it was). */
  result: Record<string, any>;
  /** Why the new revision cannot become ready: the operation ends with this error. */
  failure?: string;
}

interface RunState {
  services: Record<string, Record<string, any>>;
  operations: Record<string, RunOperation>;
  /** IAM policy per service name (google.iam.v1.Policy); a service is created with an empty one. */
  policies: Record<string, { version: number; etag: string; bindings: Array<{ role: string; members: string[] }> }>;
  /** Revision names each service has had, for REVISION traffic targets. */
  revisions: Record<string, string[]>;
}

/** service_id: "It must begin with letter, and cannot end with hyphen; must contain fewer than 50 characters" (google/cloud/run/v2/service.proto). */
function checkServiceId(id: string): void {
  if (!/^[a-z]([a-z0-9-]{0,47}[a-z0-9])?$/.test(id)) throw badRequest(`Invalid service_id ${JSON.stringify(id)}: it must begin with a lower-case letter, contain only lower-case letters, digits and hyphens, not end with a hyphen, and have fewer than 50 characters.`);
}

/** Env var names Cloud Run refuses (https://cloud.google.com/run/docs/configuring/services/overview-environment-variables): empty, with "=", the X_GOOGLE_ prefix, the container contract's reserved names, over 32768 characters (k8s.min.proto EnvVar.name). */
const RESERVED_ENV = new Set(['PORT', 'K_SERVICE', 'K_REVISION', 'K_CONFIGURATION']);
function checkSpecNames(spec: Record<string, any>, service: string): void {
  checkLabels(spec.labels, `service ${service}`);
  checkLabels(spec.template?.labels, `service ${service} template`);
  for (const c of (spec.template?.containers ?? []) as Array<Record<string, any>>) {
    for (const e of (c.env ?? []) as Array<Record<string, any>>) {
      const name = e.name;
      if (typeof name !== 'string' || !name || name.includes('=') || name.startsWith('X_GOOGLE_') || RESERVED_ENV.has(name) || name.length > 32_768) {
        throw badRequest(`spec.template.containers[].env: the environment variable name ${JSON.stringify(name)} is not allowed (empty, contains "=", starts with X_GOOGLE_, is reserved, or is too long).`);
      }
    }
  }
}

function runState(core: SandboxCore): RunState {
  core.state.cloudRun ??= {};
  const st = core.state.cloudRun as RunState;
  st.services ??= {};
  st.operations ??= {};
  st.policies ??= {};
  st.revisions ??= {};
  return st;
}

/**
 * Secrets a revision references through env valueSource.secretKeyRef that do not exist: such a
 * revision cannot start (https://cloud.google.com/run/docs/configuring/services/secrets).
 */
function unusableSecrets(core: SandboxCore, project: string, template: Record<string, any> | undefined): string[] {
  const secrets = (core.state.secretManager?.secrets ?? {}) as Record<string, { versions: Array<{ name: string; state: string }> }>;
  const problems: string[] = [];
  for (const c of (template?.containers ?? []) as Array<Record<string, any>>) {
    for (const e of (c.env ?? []) as Array<Record<string, any>>) {
      const ref = e.valueSource?.secretKeyRef;
      if (!ref?.secret) continue;
      const name = String(ref.secret).startsWith('projects/') ? String(ref.secret) : `projects/${project}/secrets/${ref.secret}`;
      const secret = secrets[name];
      if (!secret) {
        problems.push(`${e.name}: secret ${name} was not found`);
        continue;
      }
      const version = !ref.version || ref.version === 'latest' ? secret.versions.filter((v) => v.state !== 'DESTROYED').at(-1) : secret.versions.find((v) => v.name === `${name}/versions/${ref.version}`);
      if (!version) problems.push(`${e.name}: secret version ${name}/versions/${ref.version ?? 'latest'} was not found`);
    }
  }
  return problems;
}

export interface SeedCloudRunService {
  project: string;
  region: string;
  name: string;
  labels?: Record<string, string>;
  image?: string;
  serviceAccount?: string;
  env?: Array<{ name: string; value?: string; valueSource?: { secretKeyRef: { secret: string; version: string } } }>;
  /** Members of roles/run.invoker, e.g. ["allUsers"] for a public service. */
  invokers?: string[];
  traffic?: Array<Record<string, any>>;
}

/** A ready service, as if deployed long ago. */
export function seedCloudRunService(core: SandboxCore, s: SeedCloudRunService): Record<string, any> {
  const name = `projects/${s.project}/locations/${s.region}/services/${s.name}`;
  const spec = {
    labels: s.labels ?? {},
    ingress: 'INGRESS_TRAFFIC_ALL',
    launchStage: 'GA',
    template: {
      ...(s.serviceAccount ? { serviceAccount: s.serviceAccount } : {}),
      maxInstanceRequestConcurrency: 80,
      timeout: '300s',
      containers: [
        {
          image: s.image ?? `europe-docker.pkg.dev/${s.project}/images/${s.name}:latest`,
          ports: [{ name: 'http1', containerPort: 8080 }],
          resources: { limits: { cpu: '1', memory: '512Mi' }, cpuIdle: true },
          env: s.env ?? [],
        },
      ],
    },
    traffic: s.traffic ?? [{ type: 'TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST', percent: 100 }],
  };
  const service = materialise(name, spec, undefined);
  const st = runState(core);
  st.services[name] = service;
  st.revisions[name] = [service.latestCreatedRevision];
  st.policies[name] = { version: 1, etag: 'BwY=', bindings: s.invokers?.length ? [{ role: 'roles/run.invoker', members: s.invokers }] : [] };
  core.save();
  return service;
}

/** The stored service: the client's spec plus the output-only fields Cloud Run sets. */
function materialise(name: string, spec: Record<string, any>, previous: Record<string, any> | undefined): Record<string, any> {
  const now = new Date().toISOString();
  const clean = Object.fromEntries(Object.entries(spec).filter(([k]) => !OUTPUT_ONLY.includes(k) && k !== 'name'));
  const generation = previous ? Number(previous.generation) + 1 : 1;
  const serviceId = name.split('/').pop()!;
  const region = name.split('/')[3];
  const revision = `${serviceId}-${String(generation).padStart(5, '0')}-${randomUUID().slice(0, 3)}`;
  const template = { ...(clean.template ?? {}) };
  delete template.revision;
  const ready = { type: 'Ready', state: 'CONDITION_SUCCEEDED', lastTransitionTime: now };
  return {
    name,
    ...clean,
    template,
    uid: previous?.uid ?? randomUUID(),
    generation: String(generation),
    createTime: previous?.createTime ?? now,
    updateTime: now,
    creator: previous?.creator ?? 'deployer@example.com',
    lastModifier: 'sandbox@example.com',
    observedGeneration: String(generation),
    terminalCondition: ready,
    conditions: [
      { type: 'RoutesReady', state: 'CONDITION_SUCCEEDED', lastTransitionTime: now },
      { type: 'ConfigurationsReady', state: 'CONDITION_SUCCEEDED', lastTransitionTime: now },
    ],
    latestReadyRevision: `${name.replace(/\/services\/.*/, '')}/services/${serviceId}/revisions/${revision}`,
    latestCreatedRevision: `${name.replace(/\/services\/.*/, '')}/services/${serviceId}/revisions/${revision}`,
    trafficStatuses: ((clean.traffic as Array<Record<string, any>> | undefined) ?? [{ type: 'TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST', percent: 100 }]).map((t) => ({ ...t })),
    uri: `https://${serviceId}-sandbox-${region}.a.run.app`,
    urls: [`https://${serviceId}-sandbox-${region}.a.run.app`],
    reconciling: false,
    etag: `"${randomUUID().slice(0, 8)}"`,
  };
}

export const cloudRunService: ServiceModule = (core) => {
  const st = () => runState(core);
  const SERVICES = /^\/v2\/(projects\/[^/]+\/locations\/[^/]+)\/services$/;
  const SERVICE = /^\/v2\/(projects\/[^/]+\/locations\/[^/]+\/services\/[^/:]+)$/;

  const startOperation = (parent: string, kind: RunOperation['kind'], service: string, result: Record<string, any>, failure?: string) => {
    const name = `${parent}/operations/${randomUUID()}`;
    st().operations[name] = { name, kind, service, startedAt: new Date().toISOString(), result, ...(failure ? { failure } : {}) };
    return operationJson(st().operations[name], false);
  };

  const operationJson = (op: RunOperation, done: boolean) => ({
    name: op.name,
    metadata: { '@type': SERVICE_TYPE, ...op.result, reconciling: !done },
    done,
    ...(done ? (op.failure ? { error: { code: 9, message: op.failure } } : { response: { '@type': SERVICE_TYPE, ...op.result } }) : {}),
  });

  /** Applies an operation's effect once it is due; a service being changed reports reconciling. */
  const settle = (op: RunOperation): boolean => {
    if (!isDue(op.startedAt, core.operationDelayMs)) return false;
    const services = st().services;
    if (op.kind === 'delete') {
      delete services[op.service];
      delete st().policies[op.service];
      delete st().revisions[op.service];
    } else if (services[op.service]) {
      (st().revisions[op.service] ??= []).push(op.result.latestCreatedRevision);
      if (op.failure) {
        // The revision never became ready: the service keeps serving its last ready revision (if any)
        // and its terminal condition says why (google/cloud/run/v2/condition.proto CONDITION_FAILED).
        const previous = services[op.service];
        const failed = { type: 'Ready', state: 'CONDITION_FAILED', message: op.failure, lastTransitionTime: new Date().toISOString() };
        services[op.service] = { ...op.result, latestReadyRevision: previous.latestReadyRevision, terminalCondition: failed, reconciling: false };
      } else services[op.service] = { ...op.result, reconciling: false };
    }
    delete st().operations[op.name];
    st().operations[`done:${op.name}`] = op;
    core.save();
    return true;
  };

  /** Operations finish on their own time, whether or not anyone polls them. */
  const settleDue = () => {
    for (const op of Object.values(st().operations)) if (!op.name.startsWith('done:') && st().operations[op.name] === op) settle(op);
  };

  /** TrafficTarget.revision names an existing revision of this service (google/cloud/run/v2/traffic_target.proto). */
  const checkTraffic = (service: string, traffic: Array<Record<string, any>> | undefined) => {
    for (const t of traffic ?? []) {
      if (t.type !== 'TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION') continue;
      const revision = String(t.revision ?? '');
      const known = st().revisions[service] ?? [];
      if (!known.some((r) => r === revision || r.endsWith(`/revisions/${revision}`))) {
        throw badRequest(`Revision named '${revision.split('/').pop()}' with traffic percent ${t.percent ?? 0} does not exist.`);
      }
    }
  };

  /** A revision whose env references a secret that does not exist fails to become ready. */
  const revisionFailure = (service: string, spec: Record<string, any>): string | undefined => {
    const problems = unusableSecrets(core, service.split('/')[1]!, spec.template);
    return problems.length ? `Revision '${service.split('/').pop()}' is not ready and cannot serve traffic. ${problems.join('; ')}.` : undefined;
  };

  const routes: Route[] = [
    {
      // getIamPolicy / setIamPolicy (google/cloud/run/v2/service.proto): setIamPolicy "overwrites any existing policy".
      method: 'GET',
      path: /^\/v2\/(projects\/[^/]+\/locations\/[^/]+\/services\/[^/:]+):getIamPolicy$/,
      handle: (req) => {
        settleDue();
        if (!st().services[req.params[0]]) throw notFound(`Resource '${req.params[0].split('/').pop()}' of kind 'SERVICE'`);
        return { json: st().policies[req.params[0]] ?? { version: 1, etag: 'BwY=', bindings: [] } };
      },
    },
    {
      method: 'POST',
      path: /^\/v2\/(projects\/[^/]+\/locations\/[^/]+\/services\/[^/:]+):setIamPolicy$/,
      handle: (req) => {
        settleDue();
        if (!st().services[req.params[0]]) throw notFound(`Resource '${req.params[0].split('/').pop()}' of kind 'SERVICE'`);
        const policy = req.json<{ policy?: { bindings?: Array<{ role: string; members: string[] }> } }>().policy ?? {};
        st().policies[req.params[0]] = { version: 1, etag: Buffer.from(randomUUID().slice(0, 6)).toString('base64'), bindings: policy.bindings ?? [] };
        return { json: st().policies[req.params[0]] };
      },
    },
    {
      method: 'GET',
      path: SERVICE,
      handle: (req) => {
        settleDue();
        const s = st().services[req.params[0]];
        if (!s) throw notFound(`Resource '${req.params[0].split('/').pop()}' of kind 'SERVICE' in region '${req.params[0].split('/')[3]}' in project '${req.params[0].split('/')[1]}'`);
        return { json: s };
      },
    },
    {
      method: 'GET',
      path: SERVICES,
      handle: (req) => {
        settleDue();
        const prefix = `${req.params[0]}/services/`;
        const services = Object.values(st().services).filter((s) => s.name.startsWith(prefix) && !s.deleteTime);
        return { json: { services } };
      },
    },
    {
      method: 'POST',
      path: SERVICES,
      handle: (req) => {
        settleDue();
        const id = req.query.get('serviceId') ?? req.query.get('service_id');
        if (!id) throw notFound('serviceId');
        checkServiceId(id);
        const name = `${req.params[0]}/services/${id}`;
        if (st().services[name]) throw conflict(`Resource '${id}'`);
        const body = serviceBody(req);
        checkSpecNames(body, id);
        checkTraffic(name, body.traffic);
        const ready = materialise(name, body, undefined);
        st().services[name] = { ...ready, reconciling: true, latestReadyRevision: '', terminalCondition: RECONCILING() };
        st().policies[name] = { version: 1, etag: 'BwY=', bindings: [] };
        return { json: startOperation(req.params[0], 'create', name, ready, revisionFailure(name, body)) };
      },
    },
    {
      method: 'PATCH',
      path: SERVICE,
      handle: (req) => {
        settleDue();
        const name = req.params[0];
        const previous = st().services[name];
        if (!previous) throw notFound(`Resource '${name}'`);
        const body = serviceBody(req);
        const mask = req.query.get('updateMask') ?? req.query.get('update_mask');
        // Without a mask the body replaces the spec; with one, only the named top-level fields change.
        const spec = mask ? { ...previous, ...Object.fromEntries(mask.split(',').map((f) => [f.split('.')[0], body[f.split('.')[0]]])) } : body;
        checkSpecNames(spec, name.split('/').pop()!);
        checkTraffic(name, spec.traffic);
        const updated = materialise(name, spec, previous);
        st().services[name] = { ...previous, reconciling: true, terminalCondition: RECONCILING() };
        return { json: startOperation(name.replace(/\/services\/.*/, ''), 'update', name, updated, revisionFailure(name, spec)) };
      },
    },
    {
      method: 'DELETE',
      path: SERVICE,
      handle: (req) => {
        settleDue();
        const name = req.params[0];
        const s = st().services[name];
        if (!s) throw notFound(`Resource '${name}'`);
        const deleting = { ...s, deleteTime: new Date().toISOString(), reconciling: true };
        st().services[name] = deleting;
        return { json: startOperation(name.replace(/\/services\/.*/, ''), 'delete', name, deleting) };
      },
    },
    {
      method: 'GET',
      path: /^\/v2\/(projects\/[^/]+\/locations\/[^/]+\/operations\/[^/:]+)$/,
      handle: (req) => {
        const name = req.params[0];
        const running = st().operations[name];
        if (running) return { json: operationJson(running, settle(running)) };
        const finished = st().operations[`done:${name}`];
        if (finished) return { json: operationJson(finished, true) };
        throw notFound(`Operation '${name}'`);
      },
    },
  ];
  return routes;
};
