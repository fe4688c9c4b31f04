// The operator's vocabulary. Each command is both a signal (for the UI's Send Signal dialog
// and `temporal workflow signal`) and an update (for the CLI, which wants to hear "no" at
// once): the same handler backs both, and an update's validator rejects what a signal ignores.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { GateId, PhaseId, PlannedAction, CheckResult } from '../types';
import type { StepActivity } from './steps';

export interface ApproveRequest {
  gate: GateId;
  by: string;
  comment?: string;
}
export interface RejectRequest {
  gate: GateId;
  by: string;
  reason: string;
}
export interface StepRequest {
  step: string;
  /** Who decided: the CLI and the UI's examples always send it (13.5); older clients may not. */
  by?: string;
}
export interface StopRequest {
  by: string;
  reason: string;
}

/** Shown in the UI's signal and update dropdowns (set with the handlers). */
export const DESCRIPTIONS = {
  approve: 'Approve the checkpoint gate that is waiting. {"gate": "phase-0", "by": "alice", "comment": "checked 3 runs"}',
  reject: 'Reject the waiting gate: the migration rolls back what it did. {"gate": "phase-0", "by": "alice", "reason": "…"}',
  retry: 'Run a Blocked step (or a failed gate check, or a Blocked compensation) again after fixing its cause. {"step": "3.1", "by": "alice"}',
  skip: 'Skip a Blocked step marked skippable (or leave a Blocked compensation undone). {"step": "0.4", "by": "alice"}',
  rollback: 'Stop and undo every recorded step, newest first. {"by": "alice", "reason": "…"}',
  abort: 'Stop now without undoing anything; recorded compensations stay listed in the result. {"by": "alice", "reason": "…"}',
  status: 'Where the migration stands: phase, every step, gate results, what it waits for, compensations, the plan.',
};

export const approveSignal = defineSignal<[ApproveRequest]>('approve');
export const rejectSignal = defineSignal<[RejectRequest]>('reject');
export const retrySignal = defineSignal<[StepRequest]>('retry');
export const skipSignal = defineSignal<[StepRequest]>('skip');
export const rollbackSignal = defineSignal<[StopRequest]>('rollback');
export const abortSignal = defineSignal<[StopRequest]>('abort');

export const approveUpdate = defineUpdate<string, [ApproveRequest]>('approve');
export const rejectUpdate = defineUpdate<string, [RejectRequest]>('reject');
export const retryUpdate = defineUpdate<string, [StepRequest]>('retry');
export const skipUpdate = defineUpdate<string, [StepRequest]>('skip');
export const rollbackUpdate = defineUpdate<string, [StopRequest]>('rollback');
export const abortUpdate = defineUpdate<string, [StopRequest]>('abort');

export const statusQuery = defineQuery<MigrationStatus>('status');

/** `cancelled`: a stop arrived while it ran; a step a stop reached before it began stays `pending`. */
export type StepState = 'pending' | 'running' | 'done' | 'blocked' | 'skipped' | 'planned' | 'cancelled';
export type GateState = 'pending' | 'checking' | 'failed' | 'waiting' | 'passed' | 'rejected' | 'planned' | 'cancelled';
export type MigrationState =
  | 'starting'
  | 'running'
  | 'waiting-approval'
  | 'waiting-timer'
  | 'blocked'
  | 'rolling-back'
  | 'completed'
  | 'planned'
  | 'rolled-back'
  | 'rejected'
  | 'aborted'
  | 'cancelled';

export interface StepStatus {
  id: string;
  title: string;
  phase: PhaseId;
  state: StepState;
  skippable: boolean;
  destructive: boolean;
  /** Times the workflow ran the step (each run has its own activity retries). */
  attempts: number;
  startedAt?: string;
  endedAt?: string;
  summary?: string;
  error?: string;
  /** Live progress from the activity's heartbeat is read by the CLI from describe(); this is the last summary. */
}

export interface GateStatus {
  id: GateId;
  phase: PhaseId;
  title: string;
  state: GateState;
  requiresApproval: boolean;
  checks: CheckResult[];
  approval?: { by: string; comment?: string; at: string };
  rejection?: { by: string; reason: string; at: string };
}

export interface CompensationStatus {
  step: string;
  title: string;
  activity: StepActivity;
  state: 'recorded' | 'running' | 'done' | 'blocked' | 'skipped' | 'void';
  recordedAt: string;
  summary?: string;
  error?: string;
}

export interface WaitingFor {
  kind: 'approval' | 'decision' | 'timer';
  gate?: GateId;
  step?: string;
  until?: string;
  /** What the operator should do, in words. */
  next: string;
}

export interface MigrationEvent {
  at: string;
  message: string;
}

export interface MigrationStatus {
  target: string;
  workflowId: string;
  /** This migration's folder in the backup bucket (snapshots, exports, the record): workflow ID and start time. */
  migrationId?: string;
  dryRun: boolean;
  phase: PhaseId | null;
  state: MigrationState;
  waitingFor?: WaitingFor;
  steps: StepStatus[];
  gates: GateStatus[];
  compensations: CompensationStatus[];
  /** Dry run: every action each step would take, by step id. */
  plan: Record<string, PlannedAction[]>;
  /** Small facts the steps reported (counts, object paths), by step id. */
  facts: Record<string, unknown>;
  /** Approvals, ignored requests, decisions: the audit trail. */
  events: MigrationEvent[];
  /** An ignored or unknown request, shown in Current Details until the next state change. */
  notice?: string;
  /** When the workflow started (a reset keeps it) and ended, and how: for the completion record. */
  startedAt?: string;
  endedAt?: string;
  outcome?: MigrationOutcome;
}

/** The states a migration ends in. */
export const ENDED_STATES: readonly MigrationState[] = ['completed', 'planned', 'rolled-back', 'rejected', 'aborted', 'cancelled'];

export type MigrationOutcome = 'completed' | 'planned' | 'rolled-back' | 'rejected' | 'aborted' | 'cancelled';

/** 13.2: the workflow list shows these as Failed, with the outcome and status in the failure's details. */
export const OUTCOME_FAILURE_TYPES = { 'rolled-back': 'MigrationRolledBack', rejected: 'MigrationRejected', aborted: 'MigrationAborted' } as const;

export interface MigrationResult {
  outcome: MigrationOutcome;
  status: MigrationStatus;
}
