// Cloud Build v1 triggers, as @google-cloud/cloudbuild's CloudBuildClient sends them over REST:
// get/list/create/delete under projects/{p}/triggers (the global region) and under
// projects/{p}/locations/{l}/triggers. A trigger is addressed by its id or its name.
import { randomUUID } from 'node:crypto';
import { badRequest, conflict, notFound, type Route, type SandboxCore, type ServiceModule } from '../server';
import { withEnumNames } from './enum-names';

interface BuildState {
  /** Keyed "project/location/id". */
  triggers: Record<string, Record<string, any>>;
}

function buildState(core: SandboxCore): BuildState {
  core.state.cloudBuild ??= { triggers: {} };
  return core.state.cloudBuild as BuildState;
}

function newTrigger(project: string, location: string, body: Record<string, any>): Record<string, any> {
  const id = randomUUID();
  const { id: _id, createTime: _c, resourceName: _r, ...spec } = body;
  return { ...spec, id, createTime: new Date().toISOString(), resourceName: `projects/${project}/locations/${location}/triggers/${id}` };
}

export function seedBuildTrigger(core: SandboxCore, s: { project: string; name: string; region?: 'global'; substitutions?: Record<string, string> }): Record<string, any> {
  const location = s.region ?? 'global';
  const trigger = newTrigger(s.project, location, {
    name: s.name,
    description: `Build and deploy ${s.name}`,
    github: { owner: 'example', name: 'b2b-recs', push: { branch: '^main$' } },
    filename: `${s.name.replace(/-server$/, '')}_server/cloudbuild.yaml`,
    includedFiles: ['mlflow_server/**'],
    substitutions: s.substitutions ?? { _REGION: 'europe-central2' },
  });
  buildState(core).triggers[`${s.project}/${location}/${trigger.id}`] = trigger;
  core.save();
  return trigger;
}

export const cloudBuildService: ServiceModule = (core) => {
  const st = () => buildState(core);
  const location = (l: string | undefined) => l ?? 'global';
  const inScope = (project: string, loc: string) => Object.entries(st().triggers).filter(([k]) => k.startsWith(`${project}/${loc}/`));
  const find = (project: string, loc: string, idOrName: string) => inScope(project, loc).find(([, t]) => t.id === idOrName || t.name === idOrName);

  // Both URL forms: /v1/projects/p/triggers… and /v1/projects/p/locations/l/triggers…
  const LIST = /^\/v1\/projects\/([^/]+)(?:\/locations\/([^/]+))?\/triggers$/;
  const ONE = /^\/v1\/projects\/([^/]+)(?:\/locations\/([^/]+))?\/triggers\/([^/:]+)$/;
  const routes: Route[] = [
    {
      method: 'GET',
      path: LIST,
      handle: (req) => ({ json: { triggers: inScope(req.params[0], location(req.params[1])).map(([, t]) => t) } }),
    },
    {
      method: 'GET',
      path: ONE,
      handle: (req) => {
        const hit = find(req.params[0], location(req.params[1]), req.params[2]);
        if (!hit) throw notFound(`trigger ${req.params[2]}`);
        return { json: hit[1] };
      },
    },
    {
      method: 'POST',
      path: LIST,
      handle: (req) => {
        const [project, loc] = [req.params[0], location(req.params[1])];
        const body = withEnumNames('@google-cloud/cloudbuild', 'google.devtools.cloudbuild.v1.BuildTrigger', req.json());
        if (!body.name) throw badRequest('trigger name is required');
        // "User-defined substitutions must begin with an underscore (_) and use only uppercase-letters and
        // numbers (respecting the regular expression _[A-Z0-9_]+)" (https://cloud.google.com/build/docs/configuring-builds/substitute-variable-values).
        for (const k of Object.keys(body.substitutions ?? {})) if (!/^_[A-Z0-9_]+$/.test(k)) throw badRequest(`invalid substitution key ${JSON.stringify(k)}: user-defined substitutions match _[A-Z0-9_]+`);
        if (inScope(project, loc).some(([, t]) => t.name === body.name)) throw conflict(`trigger ${body.name}`);
        const trigger = newTrigger(project, loc, body);
        st().triggers[`${project}/${loc}/${trigger.id}`] = trigger;
        return { json: trigger };
      },
    },
    {
      method: 'DELETE',
      path: ONE,
      handle: (req) => {
        const hit = find(req.params[0], location(req.params[1]), req.params[2]);
        if (!hit) throw notFound(`trigger ${req.params[2]}`);
        delete st().triggers[hit[0]];
        return { json: {} };
      },
    },
  ];
  return routes;
};
