// Resource Manager v3, the part preflight uses: projects.testIamPermissions. Grants everything
// asked for except what a test denied in state.deniedPermissions.
import type { Route, SandboxCore } from '../server';

export function resourceManagerService(core: SandboxCore): Route[] {
  return [
    {
      method: 'POST',
      path: /^\/v3\/projects\/([^/:]+):testIamPermissions$/,
      handle: (req) => {
        const denied: string[] = core.state.deniedPermissions ?? [];
        const asked = req.json<{ permissions?: string[] }>().permissions ?? [];
        return { json: { permissions: asked.filter((p) => !denied.includes(p)) } };
      },
    },
  ];
}
