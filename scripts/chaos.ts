// npm run chaos: kill the worker with SIGKILL at random points of a whole migration, restart the
// Temporal dev server mid-phase, cut the backfill's Postgres connections, and prove that nothing
// was lost or done twice. Prints a summary table; exits non-zero when a check fails.
//   --kills 20   SIGKILLs, spread over the backfill (0.3), the export (0.6) and the Phase 3 deletes
//   --runs 200   MLflow runs to seed
//   --seed 1     the random kill points
//   --fault-rate 0.03  chance of a 503, a 429, a slow answer (and a fifth of it, a hang) per GCP request
import { parseArgs } from 'node:util';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { runChaos } from '../dev/chaos';
import { startPostgres } from '../dev/postgres';

const { values: args } = parseArgs({
  options: {
    kills: { type: 'string', default: '20' },
    runs: { type: 'string', default: '200' },
    seed: { type: 'string', default: '1' },
    'fault-rate': { type: 'string', default: '0.03' },
  },
});

async function main() {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const pg = await startPostgres();
  try {
    const summary = await runChaos({ adminUrl: pg.adminUrl, kills: Number(args.kills), runs: Number(args.runs), seed: Number(args.seed), faultRate: Number(args['fault-rate']), log: console.log });
    console.table(summary.checks.map((c) => ({ check: c.name, result: c.ok ? 'ok' : 'FAILED', detail: c.detail })));
    console.table([
      {
        'kills survived': summary.kills,
        'Temporal restarts': summary.serverRestarts,
        'connections cut': summary.connectionsTerminated,
        'faults injected': summary.faultsInjected,
        'Blocked, retried': summary.blockedRetried,
        'points verified': summary.pointsVerified,
        'effects duplicated': summary.effectsDuplicated,
        'rows lost': summary.rowsLost,
        seconds: Math.round(summary.seconds),
      },
    ]);
    process.exitCode = summary.checks.every((c) => c.ok) ? 0 : 1;
  } finally {
    await pg.stop();
  }
}

void main();
