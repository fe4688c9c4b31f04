// The non-retryable failure an activity should end with (its type and message say what to fix).
import { ApplicationFailure } from '@temporalio/common';
import { expect } from 'vitest';

export async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}
