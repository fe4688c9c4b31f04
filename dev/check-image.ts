// `./run check-image`: the Dockerfile's build, run here without docker. Each stage is a temporary
// folder standing for its WORKDIR: COPY copies (from the repo, or --from an earlier stage), ENV
// sets, RUN runs; FROM's base image and USER cannot be had here, so they are only reported. Then
// the final stage's CMD starts (it must load every module and stop at the missing config file),
// and the workflow bundle is built from the image's dist/ with its production node_modules.
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { promisify } from 'node:util';
import { Copy, DockerfileParser, Env } from 'dockerfile-ast';

export interface ImageCheck {
  /** What ran or was copied, and what could not be done here. */
  log: string[];
  /** The final stage's CMD, as the container runs it. */
  cmd: string[];
  /** The CMD's stderr when started without a config file. */
  startup: string;
  /** The folder of the final stage (removed by cleanup). */
  image: string;
  cleanup(): void;
}

const run = promisify(execFile);

export async function checkImage(repo = process.cwd()): Promise<ImageCheck> {
  const root = mkdtempSync(join(tmpdir(), 'check-image-'));
  try {
    return await buildAndStart(repo, root);
  } catch (err) {
    rmSync(root, { recursive: true, force: true });
    throw err;
  }
}

async function buildAndStart(repo: string, root: string): Promise<ImageCheck> {
  const dockerfile = DockerfileParser.parse(readFileSync(join(repo, 'Dockerfile'), 'utf8'));
  const log: string[] = [];
  const stages = new Map<string, string>();
  let dir = '';
  let workdir = '/';
  let env: Record<string, string> = {};
  let cmd: string[] = [];
  /** A path inside a stage (absolute, or relative to WORKDIR) as a path in its folder; the stage's WORKDIR is its folder. */
  const inStage = (stageDir: string, stageWorkdir: string, p: string) => join(stageDir, posix.relative(stageWorkdir, posix.resolve(stageWorkdir, p)));
  const workdirs = new Map<string, string>();
  for (const ins of dockerfile.getInstructions()) {
    const keyword = ins.getKeyword();
    const args = ins.getArguments().map((a) => a.getValue());
    if (keyword === 'FROM') {
      const name = args[2] ?? String(stages.size);
      dir = join(root, name);
      stages.set(name, dir);
      mkdirSync(dir, { recursive: true });
      workdir = '/';
      env = {};
      log.push(`FROM ${args[0]}: not pulled here (stage ${name})`);
    } else if (keyword === 'WORKDIR') {
      workdir = args[0] ?? '/';
      workdirs.set([...stages.keys()].at(-1)!, workdir);
    } else if (keyword === 'ENV' && ins instanceof Env) {
      for (const p of ins.getProperties()) env[p.getName()] = p.getValue() ?? '';
    } else if (keyword === 'COPY' && ins instanceof Copy) {
      const from = ins.getFromFlag()?.getValue();
      const sources = args.slice(0, -1);
      const dest = inStage(dir, workdir, args.at(-1)!);
      for (const src of sources) {
        const source = from ? inStage(stages.get(from) ?? fail(`COPY --from=${from}: no such stage`), workdirs.get(from) ?? '/', src) : join(repo, src);
        const target = args.at(-1)!.endsWith('/') ? join(dest, posix.basename(src)) : dest;
        // Between stages as hard links: node_modules is tens of thousands of files, and no one writes them.
        if (from) execFileSync('cp', ['-al', source, target]);
        else cpSync(source, target, { recursive: true });
      }
      log.push(`COPY ${from ? `--from=${from} ` : ''}${args.join(' ')}`);
    } else if (keyword === 'RUN') {
      const started = Date.now();
      // The same command; npm takes packages from its cache when it has them (setup filled it).
      const res = spawnSync('sh', ['-c', ins.getArgumentsContent() ?? ''], {
        cwd: dir,
        env: { ...process.env, ...env, npm_config_prefer_offline: 'true' },
        encoding: 'utf8',
        maxBuffer: 64 * 1024 * 1024,
      });
      if (res.status !== 0) fail(`RUN ${ins.getArgumentsContent()} failed (${res.status}):\n${res.stdout}\n${res.stderr}`);
      log.push(`RUN ${ins.getArgumentsContent()} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    } else if (keyword === 'CMD') {
      cmd = JSON.parse(ins.getArgumentsContent() ?? '[]') as string[];
    } else {
      log.push(`${keyword} ${args.join(' ')}: not applied here`);
    }
  }
  if (cmd[0] !== 'node') fail(`CMD ${JSON.stringify(cmd)}: expected a node command`);
  const image = dir;
  const startedAt = Date.now();
  // Started as the container would be, but without a config file: it must get as far as reading it.
  const started = spawnSync(process.execPath, cmd.slice(1), {
    cwd: image,
    env: { PATH: process.env.PATH, ...env, MLFLOW_DECOMMISSION_CONFIG: join(image, 'no-such-config.json') },
    encoding: 'utf8',
    timeout: 60_000,
  });
  log.push(`CMD ${cmd.join(' ')}: exit ${started.status} (${((Date.now() - startedAt) / 1000).toFixed(1)} s)`);
  if (started.status !== 1 || !started.stderr.includes('no-such-config.json cannot be read')) {
    fail(`CMD ${cmd.join(' ')} should stop at the missing config file; it exited ${started.status}:\n${started.stderr}`);
  }
  // The worker bundles the workflows at start-up, from dist/ with only production packages.
  await run(process.execPath, ['-e', "require('@temporalio/worker').bundleWorkflowCode({ workflowsPath: require.resolve('./dist/workflows') }).then((b) => console.log(b.code.length))"], {
    cwd: image,
    env: { PATH: process.env.PATH, ...env },
  });
  log.push('bundleWorkflowCode(dist/workflows): ok');
  return { log, cmd, startup: started.stderr, image, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

function fail(message: string): never {
  throw new Error(`check-image: ${message}`);
}

if (require.main === module) {
  checkImage().then(
    (res) => {
      console.log(res.log.join('\n'));
      console.log(`startup without a config file: ${res.startup.trim()}`);
      res.cleanup();
    },
    (err: Error) => {
      console.error(err.message);
      process.exit(1);
    },
  );
}
