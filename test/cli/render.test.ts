// The CLI's status view shows what Current Details shows: the notice of an ignored or unknown
// message, and a step a stop interrupted.
import { describe, expect, it } from 'vitest';
import { renderStatus } from '../../src/cli/render';
import { initialStatus } from '../../src/workflows/status';

describe('renderStatus', () => {
  it('prints the notice and marks a cancelled step', () => {
    const s = { ...initialStatus('mlflow-decommission-demo'), state: 'rolling-back' as const, notice: 'unknown signal `aprove`: did you mean `approve`?' };
    const step = s.steps.find((x) => x.id === '3.4')!;
    step.state = 'cancelled';
    const out = renderStatus(s);
    expect(out).toContain('notice: unknown signal `aprove`: did you mean `approve`?');
    expect(out).toMatch(/^⊘ 3\.4 /m);
    expect(out).not.toMatch(/^\? /m);
  });
});
