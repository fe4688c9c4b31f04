// One Postgres for the whole run; each test file creates its own databases on it.
import type { TestProject } from 'vitest/node';
import { startPostgres } from '../dev/postgres';

declare module 'vitest' {
  export interface ProvidedContext {
    pgAdminUrl: string;
  }
}

export default async function setup(project: TestProject) {
  const pg = await startPostgres();
  project.provide('pgAdminUrl', pg.adminUrl);
  return () => pg.stop();
}
