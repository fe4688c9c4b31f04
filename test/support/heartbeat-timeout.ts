// Workflow interceptor for tests: every activity is scheduled with a short heartbeat timeout, so a
// call that goes silent for longer fails fast. Tests only: production code has no such knob, and
// the workflow's commands are unchanged (activity options are not part of replay's checks).
import type { WorkflowInterceptorsFactory } from '@temporalio/workflow';

export const TEST_HEARTBEAT_TIMEOUT_MS = 2_000;

export const interceptors: WorkflowInterceptorsFactory = () => ({
  outbound: [
    {
      scheduleActivity: (input, next) => next({ ...input, options: { ...input.options, heartbeatTimeout: TEST_HEARTBEAT_TIMEOUT_MS } }),
    },
  ],
});
