// BigQuery jobs.query and getQueryResults, as @google-cloud/bigquery 9.x calls them
// (POST /bigquery/v2/projects/{p}/queries, then GET …/queries/{jobId}). The sandbox is no SQL
// engine: it recognises the billing query by its marker comment and evaluates it over seeded
// billing-export rows with the query's named parameters.
import { badRequest, notFound, type SandboxCore, type ServiceModule } from '../server';
import { asDict, dict, own } from '../names';

/** The first line of the query src/activities/billing.ts sends (its BILLING_QUERY_MARKER); the sandbox evaluates only that query. */
export const BILLING_QUERY_MARKER = '-- mlflow-decommission:billing-since-deletion';

export interface BillingRow {
  service: string;
  sku?: string;
  cost: number;
  usage_start_time: string;
  labels?: Record<string, string>;
  resource?: string;
  /** project.id; the table's project when absent. */
  project?: string;
}

interface QueryParameter {
  name: string;
  parameterType: { type: string; arrayType?: { type: string } };
  parameterValue: { value?: string; arrayValues?: Array<{ value?: string }> };
}

interface BigQueryState {
  tables: Record<string, BillingRow[]>;
  jobs: Record<string, Record<string, any>>;
}

function bqState(core: SandboxCore): BigQueryState {
  core.state.bigquery ??= { tables: dict(), jobs: dict() };
  const st = core.state.bigquery as BigQueryState;
  // Table and job IDs come from requests: dictionaries without a prototype, also after a reload.
  st.tables = asDict(st.tables);
  st.jobs = asDict(st.jobs);
  return st;
}

function params(list: QueryParameter[] = []): Record<string, string | string[]> {
  return Object.fromEntries(
    list.map((p) => [p.name, p.parameterType.type === 'ARRAY' ? (p.parameterValue.arrayValues ?? []).map((v) => v.value ?? '') : (p.parameterValue.value ?? '')]),
  );
}

/** Evaluates the billing query: cost per (service, sku, resource) since @since for MLflow's resources. */
function evaluateBilling(core: SandboxCore, query: string, p: Record<string, string | string[]>) {
  const table = /FROM\s+`([^`]+)`/i.exec(query)?.[1];
  if (!table) throw badRequest('the billing query names no table');
  const rows = own(bqState(core).tables, table);
  if (!rows) throw notFound(`Not found: Table ${table.replace('.', ':')} was not found in location US`);
  const since = Date.parse(String(p.since));
  if (Number.isNaN(since)) throw badRequest(`Could not cast literal "${p.since}" to type TIMESTAMP`);
  const services = new Set(p.services as string[]);
  const labels = (p.labels as string[]) ?? [];
  const resources = (p.resources as string[]) ?? [];
  const kept = (p.kept as string[]) ?? [];
  const tableProject = table.split('.')[0];
  const groups = new Map<string, { service: string; sku: string; resource: string; cost: number; first: string; last: string }>();
  for (const r of rows) {
    if (Date.parse(r.usage_start_time) < since) continue;
    if ((r.project ?? tableProject) !== p.project) continue;
    if (!services.has(r.service)) continue;
    const pairs = Object.entries(r.labels ?? {}).map(([k, v]) => `${k}=${v}`);
    const labelled = labels.length > 0 && labels.every((l) => pairs.includes(l));
    const named = !!r.resource && resources.some((n) => r.resource === n || r.resource!.endsWith(`/${n}`));
    if (!labelled && !named) continue;
    if (r.resource && kept.some((n) => r.resource === n || r.resource!.endsWith(`/${n}`))) continue;
    const key = `${r.service}\0${r.sku ?? ''}\0${r.resource ?? ''}`;
    const g = groups.get(key) ?? { service: r.service, sku: r.sku ?? '', resource: r.resource ?? '', cost: 0, first: r.usage_start_time, last: r.usage_start_time };
    g.cost += r.cost;
    if (r.usage_start_time < g.first) g.first = r.usage_start_time;
    if (r.usage_start_time > g.last) g.last = r.usage_start_time;
    groups.set(key, g);
  }
  const out = [...groups.values()].sort((a, b) => b.cost - a.cost);
  const iso = (t: string) => new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z');
  return {
    schema: {
      fields: [
        { name: 'service', type: 'STRING', mode: 'NULLABLE' },
        { name: 'sku', type: 'STRING', mode: 'NULLABLE' },
        { name: 'resource', type: 'STRING', mode: 'NULLABLE' },
        { name: 'cost', type: 'FLOAT', mode: 'NULLABLE' },
        { name: 'first_usage', type: 'STRING', mode: 'NULLABLE' },
        { name: 'last_usage', type: 'STRING', mode: 'NULLABLE' },
      ],
    },
    rows: out.map((g) => ({ f: [{ v: g.service }, { v: g.sku }, { v: g.resource }, { v: String(g.cost) }, { v: iso(g.first) }, { v: iso(g.last) }] })),
  };
}

export const bigqueryService: ServiceModule = (core) => [
  {
    method: 'POST',
    path: /^\/bigquery\/v2\/projects\/([^/]+)\/queries$/,
    handle: (req) => {
      const project = req.params[0];
      const body = req.json();
      const query = String(body.query ?? '');
      if (!query.includes(BILLING_QUERY_MARKER)) {
        throw badRequest(`the sandbox evaluates only the billing query (marked "${BILLING_QUERY_MARKER}")`);
      }
      if (body.useLegacySql !== false) throw badRequest('the billing query is GoogleSQL: send useLegacySql=false');
      const result = evaluateBilling(core, query, params(body.queryParameters));
      const jobId = core.nextId('job');
      const response = {
        kind: 'bigquery#queryResponse',
        jobReference: { projectId: project, jobId, location: body.location ?? 'US' },
        ...result,
        totalRows: String(result.rows.length),
        totalBytesProcessed: '0',
        jobComplete: true,
        cacheHit: false,
      };
      bqState(core).jobs[jobId] = response;
      return { json: response };
    },
  },
  {
    method: 'GET',
    path: /^\/bigquery\/v2\/projects\/([^/]+)\/queries\/([^/]+)$/,
    handle: (req) => {
      const job = own(bqState(core).jobs, req.params[1]!);
      if (!job) throw notFound(`Not found: Job ${req.params[0]}:${req.params[1]}`);
      return { json: { ...job, kind: 'bigquery#getQueryResultsResponse' } };
    },
  },
];

/** Seeds billing-export rows into `project.dataset.table` (appending), for tests and the demo. */
export function seedBillingRows(core: SandboxCore, opts: { table: string; rows: BillingRow[] }): void {
  const tables = bqState(core).tables;
  tables[opts.table] = [...(tables[opts.table] ?? []), ...opts.rows];
  core.save();
}
