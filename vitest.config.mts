import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Forks: Temporal's native worker and embedded Postgres want real processes, not threads.
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    globalSetup: ['test/global-setup.ts'],
  },
});
