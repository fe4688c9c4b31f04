#!/usr/bin/env node
// Runs the built CLI when there is one, else the TypeScript source through tsx.
const { existsSync } = require('node:fs');
const { join } = require('node:path');
// package.json's engines: an older Node fails deep inside a client library; say what to run instead.
const major = Number(process.versions.node.split('.')[0]);
if (major < 22) {
  console.error(`mlflow-decommission needs Node >= 22 (this is ${process.version}): run it as ./run cli <command>, which uses the Node ./run setup installs`);
  process.exit(2);
}
const built = join(__dirname, '..', 'dist', 'cli', 'main.js');
if (existsSync(built)) {
  require(built).main();
} else {
  require('tsx/cjs');
  require(join(__dirname, '..', 'src', 'cli', 'main.ts')).main();
}
