// The plan's checklist (seed 001), as data: every step the migration runs, in order, with what
// undoes it. The phase functions in mlflow-decommission.ts walk this table; status shows it whole.
import type { createActivities } from '../activities';
import type { Shape } from '../shapes';
import type { GateCheckResult, GateId, PhaseId, StepContext, StepResult } from '../types';

export type Activities = ReturnType<typeof createActivities>;
export type ActivityName = Extract<keyof Activities, string>;
/** The context of a step of some shape: each shape's table names only activities for its targets. */
type AnyShapeContext = StepContext<never>;
/** Activities a step can name: they take the step's context (first) and return a StepResult. */
export type StepActivity = { [K in ActivityName]: Activities[K] extends (ctx: AnyShapeContext, ...more: never[]) => Promise<StepResult> ? K : never }[ActivityName];
/** Read-only gate checks over the step's context. */
export type CheckActivity = { [K in ActivityName]: Activities[K] extends (ctx: AnyShapeContext) => Promise<GateCheckResult> ? K : never }[ActivityName];

export interface StepSpec {
  id: string;
  phase: PhaseId;
  title: string;
  activity: StepActivity;
  /** Records before the step acts; rollback runs it. */
  undo?: StepActivity;
  /** The operator may `skip` it when Blocked. */
  skippable?: boolean;
  destructive?: boolean;
  /** A permanent step makes this step's compensation moot (e.g. secrets deleted for good). */
  voids?: string;
  /** Long data steps get a longer start-to-close timeout. */
  long?: boolean;
}

export interface GateSpec {
  id: GateId;
  phase: PhaseId;
  title: string;
  /** Read-only check activities, run before any approval is asked for. */
  checks: CheckActivity[];
  /** What the approver should look at before approving. */
  review: string;
}

export const PHASE_TITLES: Record<PhaseId, string> = {
  0: 'Data migration & verification',
  1: 'MetricsCollector on the trainer',
  2: 'Django reads from GCS',
  3: 'Remove MLflow infrastructure',
  4: 'Documentation & code references',
  5: 'Cost verification & closure',
};

export const STEPS: StepSpec[] = [
  { id: '0.0', phase: 0, title: 'Preflight: config, hosts, permissions, MLflow schema', activity: 'preflight' },
  // Long: it waits on a Cloud SQL export and then reads the whole dump back.
  { id: '0.1', phase: 0, title: 'Back up the MLflow database (Cloud SQL backup + SQL export, checked row for row)', activity: 'backupDatabase', long: true },
  { id: '0.2', phase: 0, title: 'Assess the cache scope', activity: 'assessScope' },
  { id: '0.3', phase: 0, title: 'Backfill every training history into the app DB', activity: 'planBackfill', long: true },
  { id: '0.4', phase: 0, title: 'Histograms (option A skip, B include)', activity: 'cacheHistograms', skippable: true, long: true },
  { id: '0.5', phase: 0, title: 'Verify completeness and fidelity point for point', activity: 'verifyMigration', long: true },
  { id: '0.6', phase: 0, title: 'Export raw MLflow tables to the backup bucket', activity: 'exportRawTables', long: true },
  { id: '0.7', phase: 0, title: 'Audit app tables that reference MLflow run ids', activity: 'auditReferences', skippable: true },
  { id: '1.1', phase: 1, title: 'New runs write training_metrics.json', activity: 'checkCutover', skippable: true },
  { id: '2.1', phase: 2, title: 'Django caches new runs from training_metrics.json', activity: 'checkCutover', skippable: true },
  { id: '3.1', phase: 3, title: 'Delete the MLflow Cloud Run service', activity: 'deleteMlflowService', undo: 'restoreMlflowService', destructive: true },
  { id: '3.2', phase: 3, title: 'Delete the MLflow Cloud SQL instance', activity: 'deleteMlflowDatabase', undo: 'restoreMlflowDatabase', destructive: true, long: true },
  { id: '3.3', phase: 3, title: 'Delete the Cloud Build trigger', activity: 'deleteBuildTrigger', undo: 'restoreBuildTrigger', destructive: true },
  { id: '3.4', phase: 3, title: 'Delete the artifacts bucket (optional)', activity: 'deleteArtifactsBucket', undo: 'restoreArtifactsBucket', destructive: true, skippable: true, long: true },
  { id: '3.5', phase: 3, title: 'Delete the MLflow service account', activity: 'deleteServiceAccount', undo: 'restoreServiceAccount', destructive: true },
  { id: '3.6', phase: 3, title: 'Disable the MLflow secrets', activity: 'disableSecrets', undo: 'enableSecrets', destructive: true },
  { id: '5.1', phase: 5, title: 'Verify the cloud resources are gone', activity: 'verifyResourcesGone' },
  // Skippable: a human who checked the bill in the console may go on when the export lags or disagrees.
  { id: '5.2', phase: 5, title: 'Check the bill after the bake period', activity: 'checkBilling', skippable: true },
  { id: '5.3', phase: 5, title: 'Remove the tracking URI from the app service', activity: 'removeTrackingUri', undo: 'restoreTrackingUri', destructive: true },
  { id: '5.4', phase: 5, title: 'Delete the disabled secrets (irreversible)', activity: 'deleteSecrets', destructive: true, voids: '3.6' },
  { id: '5.5', phase: 5, title: 'Final verification: nothing labelled MLflow remains', activity: 'verifyNothingLeft' },
  { id: '5.6', phase: 5, title: 'Write the completion record', activity: 'writeCompletionRecord' },
];

export const GATES: GateSpec[] = [
  {
    id: 'phase-0',
    phase: 0,
    title: 'Every history preserved and proven; backup and export verified',
    checks: ['checkPhase0', 'checkExportVerified'],
    review: 'Open a few migrated experiments in the Training tab; compare the counts in step 0.2 and 0.5.',
  },
  { id: 'phase-1', phase: 1, title: 'Trainer writes training_metrics.json', checks: [], review: 'Step 1.1 lists the runs checked.' },
  {
    id: 'phase-2',
    phase: 2,
    title: 'Ready to delete infrastructure (the way back is checked)',
    checks: ['checkExportVerified'],
    review:
      'Phase 3 deletes exactly what the checks above name, by full name: the Cloud Run services, the Cloud SQL instance, the trigger, the artifacts bucket, the service account, and it disables the secrets. Each is snapshotted and can be rolled back. ' +
      'Cloud SQL comes back from the final backup 3.2 takes (data up to the delete), or from the export 3.2 takes after MLflow stopped when cloudSql.restoreFrom is "export"; the 0.1 export, checked row for row, is the second line.',
  },
  { id: 'phase-3', phase: 3, title: 'MLflow infrastructure removed', checks: ['checkResourcesGone'], review: 'Step results list every snapshot.' },
  {
    id: 'phase-4',
    phase: 4,
    title: 'Documentation and code references updated',
    checks: [],
    review:
      'Confirm by hand (plan steps 3.7–3.9, 4, 5.4): mlflow_server/ and mlflow_service.py deleted, MLFLOW_TRACKING_URI removed from settings, README and docs updated (keep docs/mlflow.md), CI/CD no longer builds MLflow.',
  },
  {
    id: 'closure',
    phase: 5,
    title: 'Close: delete the secrets for good and write the completion record',
    checks: [],
    review:
      'Billing is clean (step 5.2). After approval, step 5.4 deletes the secrets and cannot be undone: rollback ends there, because the MLflow service and the tracking URI it would bring back reference those secrets.',
  },
];

type GateOverride = Partial<Record<GateId, Partial<GateSpec>>>;

/** Shapes without Cloud SQL: the dump stands where the SQL export stands; no secrets to delete at closure. */
const WITHOUT_CLOUD_GATES: GateOverride = {
  'phase-0': { title: 'Every history preserved and proven; dump and raw export verified', checks: ['checkPhase0', 'checkDumpVerified'] },
  'phase-3': { checks: ['checkRemovalContained'], review: 'Step results list every snapshot; 5.1 checks again that nothing else changed.' },
  'phase-4': {
    review:
      'Confirm by hand: the app no longer imports mlflow or reads MLFLOW_TRACKING_URI, the MLflow service is gone from docker-compose / deployment files, README and docs updated, CI/CD no longer builds or starts MLflow.',
  },
  closure: { title: 'Close: write the completion record', review: 'Step 5.1 shows what was removed and that nothing else changed. The dump stays in the backup location; nothing after this gate is irreversible.' },
};

const SHARED_DATABASE_GATES: GateOverride = {
  'phase-2': {
    title: "Ready to drop MLflow's tables (the verified dump is the way back)",
    checks: ['checkDumpVerified', 'checkMlflowTablesDroppable'],
    review: "Step 3.1 drops, in one transaction, exactly the objects the check 'mlflow objects' lists (MLflow's tables with their sequences, types and indexes) and none of the app's. The dump from 0.1 restores them on rollback.",
  },
};

const SELF_HOSTED_GATES: GateOverride = {
  'phase-2': {
    title: "Ready to drop MLflow's database and role (the verified dump is the way back)",
    checks: ['checkDumpVerified', 'checkTrackingServerStopped', 'checkTrackingDatabaseDroppable'],
    review:
      "Stopping the MLflow container is your part (e.g. docker compose stop mlflow): the check above passes only once its /health no longer answers. Phase 3 then archives the artifacts directory, drops MLflow's database and, if it owns nothing else, its role. The server and its other databases are not touched.",
  },
};

// --- the other shapes: the same Phases 0–2, their own Phase 3 and 5 -----------------------------

/** Without Cloud SQL, 0.1 is a logical dump the worker makes itself; the rest of Phases 0–2 is the same. */
const PHASES_0_TO_2_WITHOUT_CLOUD_SQL: StepSpec[] = STEPS.filter((s) => s.phase <= 2).map((s) =>
  s.id === '0.1' ? { id: '0.1', phase: 0, title: "Back up MLflow's tables (logical dump: schema and data, gzip, manifest; verified by content)", activity: 'dumpMlflowTables', long: true } : s,
);

/** No cloud bill, no secrets: check that exactly MLflow's objects went, and write the record. */
const PHASE_5_WITHOUT_CLOUD: StepSpec[] = [
  { id: '5.1', phase: 5, title: 'Verify what Phase 3 removed is gone and nothing else changed', activity: 'verifyRemovalContained' },
  { id: '5.2', phase: 5, title: 'Billing: no cloud bill to check', activity: 'explainNoCloudBill' },
  { id: '5.6', phase: 5, title: 'Write the completion record', activity: 'writeCompletionRecord' },
];

const SHAPE_STEPS: Record<Shape, StepSpec[]> = {
  cloud: STEPS,
  'shared-database': [
    ...PHASES_0_TO_2_WITHOUT_CLOUD_SQL,
    { id: '3.1', phase: 3, title: "Drop MLflow's tables, sequences and types (one transaction)", activity: 'dropMlflowTables', undo: 'restoreMlflowTables', destructive: true, long: true },
    ...PHASE_5_WITHOUT_CLOUD,
  ],
  'self-hosted': [
    ...PHASES_0_TO_2_WITHOUT_CLOUD_SQL,
    { id: '3.1', phase: 3, title: 'Archive the artifacts directory (with a manifest), then empty it', activity: 'archiveArtifactsDirectory', undo: 'restoreArtifactsDirectory', destructive: true, skippable: true, long: true },
    { id: '3.2', phase: 3, title: "Terminate MLflow's connections and drop its database", activity: 'dropTrackingDatabase', undo: 'recreateTrackingDatabase', destructive: true, long: true },
    { id: '3.3', phase: 3, title: "Drop MLflow's role if it owns nothing else on the server", activity: 'dropTrackingRole', undo: 'recreateTrackingRole', destructive: true },
    ...PHASE_5_WITHOUT_CLOUD,
  ],
};

/** Gates differ by what they check and what the approver reviews; ids and phases are the same. */
const SHAPE_GATES: Record<Shape, GateSpec[]> = {
  cloud: GATES,
  'shared-database': GATES.map((g) => ({ ...g, ...WITHOUT_CLOUD_GATES[g.id], ...SHARED_DATABASE_GATES[g.id] })),
  'self-hosted': GATES.map((g) => ({ ...g, ...WITHOUT_CLOUD_GATES[g.id], ...SELF_HOSTED_GATES[g.id] })),
};

export function stepsOf(shape: Shape): StepSpec[] {
  return SHAPE_STEPS[shape];
}

export function gatesOf(shape: Shape): GateSpec[] {
  return SHAPE_GATES[shape];
}

export function stepSpec(id: string, shape: Shape = 'cloud'): StepSpec {
  const spec = SHAPE_STEPS[shape].find((s) => s.id === id);
  if (!spec) throw new Error(`unknown step ${id} for the ${shape} shape`);
  return spec;
}

export function gateSpec(id: GateId, shape: Shape = 'cloud'): GateSpec {
  const spec = SHAPE_GATES[shape].find((g) => g.id === id);
  if (!spec) throw new Error(`unknown gate ${id}`);
  return spec;
}
