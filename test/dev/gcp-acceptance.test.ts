// The opt-in real-project run's resource code (dev/gcp-acceptance.ts), against the sandbox: it
// creates every resource it says, the inventory sees them, and the cleanup leaves nothing behind.
import { describe, expect, it } from 'vitest';
import { acceptanceInventory, acceptanceNames, acceptanceTarget, createAcceptanceResources, deleteAcceptanceResources } from '../../dev/gcp-acceptance';
import { cloudTargetSchema } from '../../src/config/schema';
import { useSandbox } from '../support/cloud';

const cloud = useSandbox('acc-project');

describe('the acceptance run’s resources', () => {
  it('are created as an MLflow deployment has them, seen by the inventory, and all deleted again', async () => {
    const n = acceptanceNames('acc-project', 'europe-west1', 'mda-test01');
    const lines: string[] = [];
    const { dbPassword } = await createAcceptanceResources(cloud.gcp, n, { clientCidr: '203.0.113.7/32', log: (l) => lines.push(l), pollMs: 20 });
    expect(lines.join('\n')).not.toContain(dbPassword);
    // The worker's target for the run is a valid one.
    expect(() => cloudTargetSchema.parse(acceptanceTarget(n))).not.toThrow();

    const before = await acceptanceInventory(cloud.gcp, n);
    expect(Object.entries(before).filter(([, v]) => v === 'absent')).toEqual([]);
    expect(before.instance).toMatchObject({ version: 'POSTGRES_15', tier: 'db-f1-micro', users: ['mlflow', 'postgres'], deletionProtection: { value: true }, labels: n.labels });
    expect((before.artifacts as { versions: string[][] }).versions.map((v) => v[2]).sort()).toEqual(['live', 'live', 'noncurrent', 'noncurrent']);
    expect((before.mlflowService as { invokers: unknown }).invokers).toEqual([['roles/run.invoker', [`serviceAccount:${n.serviceAccount}`]]]);

    const problems = await deleteAcceptanceResources(cloud.gcp, n, { targetName: 'acceptance', pollMs: 20 });
    expect(problems).toEqual([]);
    await new Promise((r) => setTimeout(r, 100)); // past PENDING_DELETE
    const after = await acceptanceInventory(cloud.gcp, n);
    expect(Object.values(after).every((v) => v === 'absent'), JSON.stringify(after)).toBe(true);
  });
});
