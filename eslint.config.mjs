// Lint is part of `npm test`. Only rules that catch real mistakes here: a promise nobody awaits,
// type-only imports that would load a module at run time, Node APIs in workflow code (the
// workflow sandbox has none, and they would break determinism), and the SDK's internals.
import { builtinModules } from 'node:module';
import tseslint from 'typescript-eslint';

const SDK_INTERNALS = { group: ['@temporalio/*/lib/*'], message: 'Use the public API of the Temporal SDK, not its internals.' };
const NO_NODE = 'Workflow code runs in the deterministic workflow sandbox, which has no Node APIs: do it in an activity.';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', '.demo/', 'test-results/'] },
  {
    files: ['**/*.ts'],
    languageOptions: {
      parser: tseslint.parser,
      // One program for the whole repository: src/, test/ and dev/ (tsconfig.json).
      parserOptions: { project: './tsconfig.json', tsconfigRootDir: import.meta.dirname },
    },
    plugins: { '@typescript-eslint': tseslint.plugin },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      'no-restricted-imports': ['error', { patterns: [SDK_INTERNALS] }],
    },
  },
  {
    files: ['src/workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          // Bare names (fs, path, child_process, …) and every node: specifier.
          paths: builtinModules.filter((m) => !m.startsWith('node:')).map((name) => ({ name, message: NO_NODE })),
          patterns: [SDK_INTERNALS, { group: ['node:*'], message: NO_NODE }],
        },
      ],
    },
  },
);
