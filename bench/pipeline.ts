import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { bwrapArgs, hostRootArgs, probeBwrap } from '../src/exec/bwrap.js';
import type { DatumRun } from '../src/exec/executor.js';
import { stepEnv } from '../src/exec/step-env.js';

// bench/pipeline: the per-datum cost of a pipeline, against the bare sandbox
// spawn measured in the same run (issue 3, "Performance").
//   (a) `bwrap <the argv a datum gets> /bin/true`, N times sequentially: the
//       floor a sandboxed datum cannot go under (and bare /bin/true, the floor
//       under that); and the same sandbox running the datum's own command,
//       2 at a time, as the job runs it: the work without Strata around it;
//   (b) repo `in` with 10,000 small files in one commit, a pipeline with glob
//       /*, parallelism 2 and `cp /pfs/in/* /pfs/out/`; `strata wait` timed
//       for the first job: total and per-datum time;
//   (c) with `strata server` running (event-driven scheduler), one input file
//       changed over HTTP: exactly 1 datum processed, and the latency from
//       the input commit's time to the output commit's time.
// Strata runs as the real CLI (bin/strata.js), start-up included, as a user
// would run it. Per-datum figures are wall clock over the whole job; with 2
// datums in flight on 2 cores, per-datum × parallelism is what one datum
// costs a core.
// Usage: node dist/bench/pipeline.js [--datums N] [--spawns N] [--keep]

const argv = process.argv.slice(2);
const flag = (name: string, fallback: number): number => {
  const i = argv.indexOf(name);
  if (i < 0) return fallback;
  const n = Number(argv[i + 1]);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name}: expected a positive whole number, got "${argv[i + 1]}"`);
  return n;
};
const datums = flag('--datums', 10_000);
const spawns = flag('--spawns', 200);
const keep = argv.includes('--keep');
const parallelism = 2;
const transform = ['sh', '-c', 'cp /pfs/in/* /pfs/out/'];

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const strataBin = join(root, 'bin', 'strata.js');
const work = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'strata-bench-pipeline-'));
const home = join(work, '.strata');
const baseEnv = { STRATA_HOME: home, STRATA_NO_PROGRESS: '1' };

interface Timed {
  secs: number;
  stdout: string;
  stderr: string;
}

function strata(args: string[], env: NodeJS.ProcessEnv = {}): Timed {
  const started = performance.now();
  const res = spawnSync(process.execPath, [strataBin, ...args], { cwd: work, env: { ...process.env, ...baseEnv, ...env }, encoding: 'utf8', maxBuffer: 256 << 20 });
  const secs = (performance.now() - started) / 1000;
  if (res.status !== 0) throw new Error(`strata ${args.join(' ')} failed (${res.status}): ${res.stderr}`);
  return { secs, stdout: res.stdout, stderr: res.stderr };
}

function spawnAndWait(command: string, args: string[], env: Record<string, string>): Promise<void> {
  return new Promise((done, fail) => {
    const child = spawn(command, args, { stdio: 'ignore', env });
    child.on('error', fail);
    child.on('close', (code) => (code === 0 ? done() : fail(new Error(`${command} exited with ${code}`))));
  });
}

/** Mean milliseconds of `once`, run `runs` times one after another after a short warm-up. */
async function meanMs(label: string, runs: number, once: () => Promise<void>): Promise<number> {
  for (let i = 0; i < 10; i++) await once();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    await once();
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  const p50 = times[Math.floor(times.length / 2)]!;
  const p95 = times[Math.floor(times.length * 0.95)]!;
  console.log(`${label.padEnd(36)} mean ${mean.toFixed(2).padStart(6)} ms   p50 ${p50.toFixed(2).padStart(6)} ms   p95 ${p95.toFixed(2).padStart(6)} ms   (${runs} runs)`);
  return mean;
}

/** Wall milliseconds per run of `once`, `runs` runs with `concurrency` in flight (after a short warm-up). */
async function wallPerRunMs(label: string, runs: number, concurrency: number, once: () => Promise<void>): Promise<number> {
  for (let i = 0; i < 10; i++) await once();
  let left = runs;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (left > 0) {
        left--;
        await once();
      }
    }),
  );
  const per = (performance.now() - started) / runs;
  console.log(`${label.padEnd(36)} ${per.toFixed(2).padStart(6)} ms wall per run, ${concurrency} at a time   (${runs} runs)`);
  return per;
}

/**
 * (a) The bare sandbox spawn: the argv the executor builds for a one-input
 * datum (instance dir hidden) running /bin/true, one at a time; and the same
 * sandbox running the datum's own command, `parallelism` at a time: the
 * pipeline's work without Strata around it.
 */
async function bareSpawn(): Promise<{ trueMs: number; bwrapMs?: number; workMs?: number; why?: string }> {
  const input = join(work, 'spawn-in');
  const output = join(work, 'spawn-out');
  mkdirSync(input);
  mkdirSync(output);
  writeFileSync(join(input, 'f00000'), 'x\n');
  const run: DatumRun = {
    jobId: 'bench',
    datumId: 'd',
    cmd: ['/bin/true'],
    env: {},
    inputs: [{ name: 'in', hostPath: input }],
    outputDir: output,
    network: false,
    hide: [home],
    stdout: process.stdout,
    stderr: process.stderr,
  };
  const env = stepEnv(run, { home: '/tmp' }, '/pfs');
  const trueMs = await meanMs('bare /bin/true', spawns, () => spawnAndWait('/bin/true', [], env));
  const probe = probeBwrap();
  if (!probe.available) return { trueMs, why: probe.reason };
  console.log(`  (bwrap argv: ${hostRootArgs().length} host-root args + ${bwrapArgs(run, probe.hardening).length - hostRootArgs().length} per datum)`);
  const bwrapMs = await meanMs('bare bwrap <datum argv> /bin/true', spawns, () => spawnAndWait(probe.path, bwrapArgs(run, probe.hardening), env));
  const workArgs = bwrapArgs({ ...run, cmd: transform }, probe.hardening);
  const workMs = await wallPerRunMs('bare bwrap <datum argv> sh -c cp', spawns, parallelism, () => spawnAndWait(probe.path, workArgs, env));
  return { trueMs, bwrapMs, workMs };
}

interface JobJson {
  id: string;
  state: string;
  reason: string;
  commit_set: string;
  output_commit: string | null;
  datums: { total: number; processed: number; skipped: number; failed: number };
  started: string | null;
  finished: string | null;
}

/** (b) The first job over `datums` files, driven by `strata wait` in-process. */
function firstJob(): { putSecs: number; waitSecs: number; jobSecs: number; job: JobJson } {
  const data = join(work, 'data');
  mkdirSync(data);
  const width = Math.max(5, String(datums - 1).length);
  for (let i = 0; i < datums; i++) writeFileSync(join(data, `f${String(i).padStart(width, '0')}`), `${i}\n`);
  strata(['init']);
  strata(['repo', 'create', 'in']);
  const put = strata(['put', 'in@master', `${data}/`, '-m', `${datums} files`, '--json']);
  const spec = join(work, 'copy.yaml');
  writeFileSync(
    spec,
    [
      'pipeline:',
      '  name: copy',
      'input:',
      '  pfs:',
      '    repo: in',
      '    glob: /*',
      'parallelism_spec:',
      `  constant: ${parallelism}`,
      'transform:',
      `  cmd: ${JSON.stringify(transform)}`,
      '',
    ].join('\n'),
  );
  strata(['pipeline', 'create', '-f', spec]);
  process.stdout.write(`strata wait: ${datums} datums, parallelism ${parallelism} ... `);
  const wait = strata(['wait', '--json']);
  const jobs = JSON.parse(wait.stdout) as JobJson[];
  const job = jobs.find((j) => j.datums.total === datums);
  if (!job || job.state !== 'success') throw new Error(`the first job did not succeed: ${wait.stdout}`);
  if (job.datums.processed !== datums) throw new Error(`expected ${datums} datums processed, got ${JSON.stringify(job.datums)}`);
  const jobSecs = (Date.parse(job.finished!) - Date.parse(job.started!)) / 1000;
  console.log(`${wait.secs.toFixed(2)} s`);
  return { putSecs: put.secs, waitSecs: wait.secs, jobSecs, job };
}

/** Starts `strata server --port 0` and resolves with its URL once it listens. */
async function startServer(): Promise<{ url: string; stop(): Promise<void> }> {
  const child = spawn(process.execPath, [strataBin, 'server', '--port', '0'], { cwd: work, env: { ...process.env, ...baseEnv }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  const url = await new Promise<string>((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`strata server did not start within 30 s: ${stderr}`)), 30_000);
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        done(m[1]!);
      }
    });
    child.on('exit', (code) => fail(new Error(`strata server exited with ${code}: ${stderr}`)));
  });
  return {
    url,
    stop: () =>
      new Promise((done) => {
        if (child.exitCode !== null) return done();
        child.once('exit', () => done());
        child.kill('SIGTERM');
      }),
  };
}

/** (c) One input file changed, committed over HTTP to a running server: latency from input commit to output commit. */
async function oneChange(): Promise<{ latencyMs: number; observedMs: number; putSecs: number; job: JobJson }> {
  const server = await startServer();
  try {
    const edited = join(work, 'f05000.edited');
    writeFileSync(edited, 'changed\n');
    const target = `f${String(Math.min(5000, datums - 1)).padStart(Math.max(5, String(datums - 1).length), '0')}`;
    const started = performance.now();
    const put = strata(['put', `in@master:/${target}`, edited, '-m', 'one file changed', '--json'], { STRATA_SERVER: server.url });
    const commit = (JSON.parse(put.stdout) as { commit: string }).commit;
    let job: JobJson | undefined;
    const deadline = Date.now() + 120_000;
    for (;;) {
      const res = await fetch(`${server.url}/api/v1/jobs?commit_set=${commit}`);
      if (!res.ok) throw new Error(`GET /api/v1/jobs: ${res.status} ${await res.text()}`);
      job = ((await res.json()) as JobJson[]).find((j) => j.state !== 'created' && j.state !== 'running');
      if (job) break;
      if (Date.now() > deadline) throw new Error(`no finished job for commit ${commit} after 120 s`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const observedMs = performance.now() - started;
    if (job.state !== 'success') throw new Error(`the incremental job failed: ${job.reason}`);
    const input = JSON.parse(strata(['inspect', 'in@master', '--json'], { STRATA_SERVER: server.url }).stdout) as { id: string; time: string };
    const output = JSON.parse(strata(['inspect', 'copy@master', '--json'], { STRATA_SERVER: server.url }).stdout) as { id: string; time: string };
    if (input.id !== commit) throw new Error(`in@master moved past the bench's commit ${commit}`);
    if (output.id !== job.output_commit) throw new Error(`copy@master is ${output.id}, not the job's output ${job.output_commit}`);
    if (job.datums.processed !== 1 || job.datums.skipped !== datums - 1) {
      throw new Error(`expected exactly 1 datum processed and ${datums - 1} skipped, got ${JSON.stringify(job.datums)}`);
    }
    return { latencyMs: Date.parse(output.time) - Date.parse(input.time), observedMs, putSecs: put.secs, job };
  } finally {
    await server.stop();
  }
}

function row(label: string, secs: number, note?: string) {
  console.log(`${label.padEnd(36)} ${secs.toFixed(3).padStart(8)} s${note ? `   (${note})` : ''}`);
}

async function main() {
  console.log(`# bench/pipeline  (${new Date().toISOString()}, node ${process.version}, work dir ${work})\n`);
  console.log('## bare spawns');
  const bare = await bareSpawn();
  if (bare.why) console.log(`bwrap unavailable (${bare.why}): the pipeline runs unsandboxed, ratios are against bare /bin/true`);

  console.log(`\n## first job: ${datums} datums of cp, parallelism ${parallelism}`);
  const first = firstJob();
  const perDatumMs = (first.waitSecs * 1000) / datums;
  const perDatumJobMs = (first.jobSecs * 1000) / datums;
  row(`strata put (${datums} files)`, first.putSecs);
  row('strata wait (CLI start to exit)', first.waitSecs, `${perDatumMs.toFixed(2)} ms per datum wall clock, ${(perDatumMs * parallelism).toFixed(2)} ms × parallelism`);
  row('job started -> finished (from job)', first.jobSecs, `${perDatumJobMs.toFixed(2)} ms per datum wall clock, ${(perDatumJobMs * parallelism).toFixed(2)} ms × parallelism`);

  console.log(`\n## one input file changed, committed over HTTP to strata server`);
  const change = await oneChange();
  const d = change.job.datums;
  row('strata put (1 file, over HTTP)', change.putSecs);
  console.log(`${'datums'.padEnd(36)} ${d.processed} processed, ${d.skipped} skipped, ${d.failed} failed of ${d.total}`);
  row('input commit time -> output commit', change.latencyMs / 1000);
  row('put start -> job success seen', change.observedMs / 1000, 'includes CLI start-up and polling');

  const base = bare.bwrapMs ?? bare.trueMs;
  const baseName = bare.bwrapMs ? 'bare bwrap spawn' : 'bare /bin/true';
  const r = (x: number) => x.toFixed(2);
  const line = (label: string, value: string) => console.log(`${label.padEnd(64)} = ${value}`);
  console.log('\n## Ratios (target)');
  line(`per datum, wall clock / ${baseName}`, `${r(perDatumMs / base)}  (<= 3.0)`);
  line(`per datum × parallelism / ${baseName}`, `${r((perDatumMs * parallelism) / base)}  (<= 3.0; what one datum costs a slot)`);
  line(`per datum inside the job × parallelism / ${baseName}`, `${r((perDatumJobMs * parallelism) / base)}  (without CLI start-up and planning)`);
  if (bare.workMs) {
    line(`per datum, wall clock / bare bwrap sh -c cp, ${parallelism} at a time`, `${r(perDatumMs / bare.workMs)}  (the same work without Strata: what Strata adds)`);
  }
  line('1 file changed: input commit -> output commit', `${(change.latencyMs / 1000).toFixed(3)} s  (<= 1 s); ${d.processed} datum processed (== 1)`);
  console.log(`\n${baseName}: ${r(base)} ms here. For comparison, Pachyderm users report ~1 ms per datum just to skip it, Airflow ~2.9 s per trivial task.`);
}

try {
  await main();
} finally {
  if (!keep) rmSync(work, { recursive: true, force: true });
}
