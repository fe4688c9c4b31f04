// Cloud Run Admin API v2, as @google-cloud/run's ServicesClient sends it over REST (fallback):
// services get/list/create/patch/delete, each mutation a google.longrunning.Operation that is
// done after core.operationDelayMs, polled through GET /v2/projects/*/locations/*/operations/*.
import { randomUUID } from 'node:crypto';
import { withEnumNames } from './enum-names';
import { conflict, isDue, notFound, type Route, type SandboxCore, type ServiceModule } from '../server';

/** A Service from a request body, enums as names (the client sends numbers). */
const serviceBody = (req: { json(): unknown }): Record<string, any> => withEnumNames('@google-cloud/run', 'google.cloud.run.v2.Service', req.json());

const SERVICE_TYPE = 'type.googleapis.com/google.cloud.run.v2.Service';

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
}

interface RunState {
  services: Record<string, Record<string, any>>;
  operations: Record<string, RunOperation>;
}

function runState(core: SandboxCore): RunState {
  core.state.cloudRun ??= { services: {}, operations: {} };
  return core.state.cloudRun as RunState;
}

export interface SeedCloudRunService {
  project: string;
  region: string;
  name: string;
  labels?: Record<string, string>;
  image?: string;
  serviceAccount?: string;
  env?: Array<{ name: string; value?: string; valueSource?: { secretKeyRef: { secret: string; version: string } } }>;
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
    traffic: [{ type: 'TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST', percent: 100 }],
  };
  const service = materialise(name, spec, undefined);
  runState(core).services[name] = service;
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
    trafficStatuses: [{ type: 'TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST', percent: 100 }],
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

  const startOperation = (parent: string, kind: RunOperation['kind'], service: string, result: Record<string, any>) => {
    const name = `${parent}/operations/${randomUUID()}`;
    st().operations[name] = { name, kind, service, startedAt: new Date().toISOString(), result };
    return operationJson(st().operations[name], false);
  };

  const operationJson = (op: RunOperation, done: boolean) => ({
    name: op.name,
    metadata: { '@type': SERVICE_TYPE, ...op.result, reconciling: !done },
    done,
    ...(done ? { response: { '@type': SERVICE_TYPE, ...op.result } } : {}),
  });

  /** Applies an operation's effect once it is due; a service being changed reports reconciling. */
  const settle = (op: RunOperation): boolean => {
    if (!isDue(op.startedAt, core.operationDelayMs)) return false;
    const services = st().services;
    if (op.kind === 'delete') delete services[op.service];
    else if (services[op.service]) services[op.service] = { ...op.result, reconciling: false };
    delete st().operations[op.name];
    st().operations[`done:${op.name}`] = op;
    core.save();
    return true;
  };

  /** Operations finish on their own time, whether or not anyone polls them. */
  const settleDue = () => {
    for (const op of Object.values(st().operations)) if (!op.name.startsWith('done:') && st().operations[op.name] === op) settle(op);
  };

  const routes: Route[] = [
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
        const name = `${req.params[0]}/services/${id}`;
        if (st().services[name]) throw conflict(`Resource '${id}'`);
        const service = { ...materialise(name, serviceBody(req), undefined), reconciling: true };
        st().services[name] = service;
        return { json: startOperation(req.params[0], 'create', name, service) };
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
        const updated = materialise(name, spec, previous);
        st().services[name] = { ...previous, reconciling: true };
        return { json: startOperation(name.replace(/\/services\/.*/, ''), 'update', name, updated) };
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
