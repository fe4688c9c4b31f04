// Stable failure types. The workflow treats every non-retryable failure as "Blocked: fix and
// retry"; the type tells scripts and tests what kind of fix is needed.
import { ApplicationFailure } from '@temporalio/common';

export const ErrorType = {
  InvalidInput: 'InvalidInput',
  InvalidConfig: 'InvalidConfig',
  Unreachable: 'Unreachable',
  PermissionDenied: 'PermissionDenied',
  ResourceMismatch: 'ResourceMismatch',
  PreconditionFailed: 'PreconditionFailed',
  VerificationFailed: 'VerificationFailed',
  GateNotPassed: 'GateNotPassed',
  CannotRestore: 'CannotRestore',
} as const;
export type ErrorType = (typeof ErrorType)[keyof typeof ErrorType];

/** A failure retrying cannot fix: the message says what the operator should do. */
export function fail(type: ErrorType, message: string, details?: unknown): never {
  throw ApplicationFailure.nonRetryable(message, type, ...(details === undefined ? [] : [details]));
}
