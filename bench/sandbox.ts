import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { bwrapArgs, probeBwrap } from '../src/exec/bwrap.js';
import { createLocalExecutor, type DatumRun } from '../src/exec/executor.js';

// bench/sandbox: what the executor adds on top of starting a sandbox. In the
// same run, sequentially, N times each (after a warm-up):
//   bare /bin/true          node spawn, no sandbox: the floor
//   bare bwrap /bin/true    node spawn of bwrap with exactly the argv a datum
//                           gets (host root binds, one input, /pfs/out)
//   executor.run bwrap      the sandboxed executor running /bin/true
//   executor.run unsandboxed
// and the per-run overhead of executor.run over the bare bwrap spawn, which
// bench/pipeline compares against.
// Usage: node dist/bench/sandbox.js [runs=200]

const runs = Number(process.argv[2] ?? 200);
const warmup = 10;
const work = mkdtempSync(join(tmpdir(), 'strata-bench-sandbox-'));
const input = join(work, 'in');
const output = join(work, 'out');
mkdirSync(input);
mkdirSync(output);
writeFileSync(join(input, 'f'), 'x');

const sink = () => new Writable({ write: (_chunk, _enc, cb) => cb() });
const datum = (): DatumRun => ({
  jobId: 'bench',
  datumId: 'd',
  cmd: ['/bin/true'],
  env: {},
  inputs: [{ name: 'in', hostPath: input }],
  outputDir: output,
  network: false,
  hide: [],
  stdout: sink(),
  stderr: sink(),
});

function spawnAndWait(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: 'ignore', env: { PATH: process.env.PATH ?? '' } });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${command} exited with ${code}`))));
  });
}

interface Stats {
  mean: number;
  p50: number;
  p95: number;
}

async function measure(label: string, once: () => Promise<unknown>): Promise<Stats> {
  for (let i = 0; i < warmup; i++) await once();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    await once();
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  const stats = { mean: times.reduce((a, b) => a + b, 0) / times.length, p50: times[Math.floor(times.length / 2)]!, p95: times[Math.floor(times.length * 0.95)]! };
  console.log(`${label.padEnd(28)} mean ${stats.mean.toFixed(2).padStart(7)} ms   p50 ${stats.p50.toFixed(2).padStart(7)} ms   p95 ${stats.p95.toFixed(2).padStart(7)} ms`);
  return stats;
}

async function main() {
  console.log(`bench/sandbox: ${runs} sequential runs each (${warmup} warm-up)\n`);
  const floor = await measure('bare /bin/true', () => spawnAndWait('/bin/true', []));

  const probe = probeBwrap();
  const unsandboxed = createLocalExecutor({ forceUnsandboxed: true, warn: () => {} });
  const direct = await measure('executor.run unsandboxed', async () => {
    const outcome = await unsandboxed.run(datum());
    if (outcome.exitCode !== 0) throw new Error(`unsandboxed run failed: ${JSON.stringify(outcome)}`);
  });
  console.log(`  overhead over bare /bin/true: ${(direct.mean - floor.mean).toFixed(2)} ms (${(direct.mean / floor.mean).toFixed(2)}x)\n`);

  if (!probe.available) {
    console.log(`SKIPPED bwrap: ${probe.reason}`);
    return;
  }
  const bare = await measure('bare bwrap /bin/true', () => spawnAndWait(probe.path, bwrapArgs(datum(), probe.hardening)));
  const sandboxed = createLocalExecutor();
  const executor = await measure('executor.run bwrap', async () => {
    const outcome = await sandboxed.run(datum());
    if (outcome.exitCode !== 0) throw new Error(`sandboxed run failed: ${JSON.stringify(outcome)}`);
  });
  console.log(`  executor.run / bare bwrap spawn: ${(executor.mean / bare.mean).toFixed(2)}x (overhead ${(executor.mean - bare.mean).toFixed(2)} ms per run)`);
  console.log(`  bare bwrap over bare /bin/true: ${(bare.mean - floor.mean).toFixed(2)} ms (the sandbox itself)`);
}

try {
  await main();
} finally {
  rmSync(work, { recursive: true, force: true });
}
