// Types shared by the workflow, the activities and the client. Types only: the workflow
// bundle imports this file, so it must stay free of Node APIs.
import type { CloudTarget, Target } from './config/schema';

export type PhaseId = 0 | 1 | 2 | 3 | 4 | 5;
export const GATE_IDS = ['phase-0', 'phase-1', 'phase-2', 'phase-3', 'phase-4', 'closure'] as const;
export type GateId = (typeof GATE_IDS)[number];

/**
 * What every step and check activity receives. Names resources and env vars, never secrets.
 * `T` is the target as the step sees it: the cloud steps run only for the cloud shape (the
 * default here); steps that run for every shape, or for another, say so with StepContext<Target>.
 */
export interface StepContext<T extends Target = CloudTarget> {
  migrationId: string;
  targetName: string;
  target: T;
  dryRun: boolean;
  /** Gates already passed; destructive steps refuse to act without theirs (defence in depth). */
  gatesPassed: GateId[];
  /** Backfill: rewrite caches that are already filled. */
  force: boolean;
  /** Results of earlier steps, by step id, for steps that need what came before (e.g. deletion time). */
  facts: Record<string, unknown>;
}

/** One call a step would make, or made; the dry-run plan is the list of these. */
export interface PlannedAction {
  /** The API or system touched, e.g. "run.services.delete" or "postgres.update". */
  call: string;
  /** The resource, fully named, e.g. "projects/p/locations/r/services/mlflow-server". */
  resource: string;
  /** Plain words for the operator. */
  description: string;
  destructive?: boolean;
}

export interface StepResult {
  /** One line for the UI and the report. */
  summary: string;
  actions: PlannedAction[];
  /** Small, secret-free facts the workflow keeps (counts, object paths, timestamps). */
  facts?: Record<string, unknown>;
}

export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
}

export interface GateCheckResult {
  checks: CheckResult[];
}
