import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Instance } from '../src/instance.js';
import { startServer } from '../src/api/server.js';

// bench/tracking (issue 4): metric logging throughput — from a step's
// $STRATA_METRICS file, in-process, and over the HTTP API in batches —
// against raw SQLite inserts of the same rows in the same run (target
// >= 0.5x); and `run list` with a filter and a sort over 100k runs (target
// <= 200 ms). Usage: node dist/bench/tracking.js [--points N] [--runs N]

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const POINTS = arg('--points', 100_000);
const RUNS = arg('--runs', 100_000);
const BATCH = 1000;
const work = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'strata-bench-tracking-'));

const secs = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9;
const rate = (n: number, s: number) => `${Math.round(n / s).toLocaleString('en-US')} points/s`;
const points = () => Array.from({ length: POINTS }, (_, i) => ({ key: `m${i % 10}`, value: Math.random(), step: Math.floor(i / 10) }));

/** The raw baseline's database: Strata's metrics table and index, the same durability. */
function rawDb(name: string): { insertBatch(runId: string, rows: { key: string; value: number; step: number }[]): void; close(): void } {
  const db = new Database(join(work, name));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec('create table metrics (run_id text not null, key text not null, value real not null, step integer not null, timestamp integer not null)');
  db.exec('create index metrics_run_key_step on metrics (run_id, key, step)');
  const insert = db.prepare('insert into metrics values (?, ?, ?, ?, ?)');
  return {
    insertBatch: (runId, rows) =>
      db.transaction(() => {
        for (const r of rows) insert.run(runId, r.key, r.value, r.step, Date.now());
      })(),
    close: () => db.close(),
  };
}

function rawSqlite(): number {
  const db = rawDb('raw.db');
  // The same rows as Strata stores: a run id of the same form (32 hex digits) in every row.
  const runId = randomBytes(16).toString('hex');
  const rows = points();
  const started = process.hrtime.bigint();
  for (let i = 0; i < rows.length; i += BATCH) db.insertBatch(runId, rows.slice(i, i + BATCH));
  const s = secs(started);
  db.close();
  return s;
}

/**
 * The floor of any HTTP API here: a bare node:http server that JSON.parses each batch and does the raw
 * inserts, posted to by the same fetch loop as Strata's HTTP API. What it loses against the raw inserts is
 * the cost of HTTP and JSON alone.
 */
async function bareHttp(): Promise<number> {
  const db = rawDb('bare-http.db');
  const server = createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (text += d));
    req.on('end', () => {
      const body = JSON.parse(text) as { run_id: string; metrics: { key: string; value: number; step: number }[] };
      db.insertBatch(body.run_id, body.metrics);
      res.statusCode = 204;
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/log`;
  const runId = randomBytes(16).toString('hex');
  const rows = points();
  const started = process.hrtime.bigint();
  for (let i = 0; i < rows.length; i += BATCH) {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ run_id: runId, metrics: rows.slice(i, i + BATCH) }) });
    if (res.status !== 204) throw new Error(`bare server answered ${res.status}`);
  }
  const s = secs(started);
  server.close();
  db.close();
  return s;
}

const instance = await Instance.init(join(work, '.strata'));
const results: [string, number][] = [];
try {
  process.stdout.write(`# bench/tracking (${new Date().toISOString()}, node ${process.version}, ${POINTS.toLocaleString('en-US')} points, batches of ${BATCH})\n\n`);
  const raw = rawSqlite();
  results.push(['raw SQLite inserts (better-sqlite3, same index, same durability)', raw]);
  const floor = await bareHttp();
  results.push(['bare node:http + JSON.parse + the raw inserts (HTTP floor)', floor]);

  const inProc = await instance.tracking.createRun({ run_name: 'in-process' });
  const rows = points();
  let started = process.hrtime.bigint();
  for (let i = 0; i < rows.length; i += BATCH) await instance.tracking.logBatch(inProc.info.run_id, { metrics: rows.slice(i, i + BATCH) });
  results.push(['Strata logBatch, in-process', secs(started)]);

  const server = await startServer({ instance, port: 0, scheduler: false });
  try {
    const run = await instance.tracking.createRun({ run_name: 'http' });
    started = process.hrtime.bigint();
    for (let i = 0; i < rows.length; i += BATCH) {
      const res = await fetch(`${server.url}/api/v1/runs/${run.info.run_id}/log`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ metrics: rows.slice(i, i + BATCH) }),
      });
      if (res.status !== 204) throw new Error(`log failed: ${res.status} ${await res.text()}`);
    }
    results.push(['Strata HTTP API, POST /api/v1/runs/:id/log', secs(started)]);
  } finally {
    await server.close();
  }

  // A step that writes every point to $STRATA_METRICS; the job is timed end to end.
  await instance.data.createRepo({ name: 'bench-in' });
  await instance.data.commit('bench-in', 'master', [{ op: 'put', path: '/x', content: new TextEncoder().encode('x') }]);
  const script = `awk 'BEGIN { for (i = 0; i < ${POINTS}; i++) printf "{\\"metric\\":\\"m%d\\",\\"value\\":%f,\\"step\\":%d}\\n", i % 10, rand(), int(i / 10) }' >> "$STRATA_METRICS"`;
  await instance.pipelines.create({ pipeline: { name: 'metrics-step' }, input: { pfs: { repo: 'bench-in', glob: '/' } }, transform: { cmd: ['sh', '-c', script] } });
  started = process.hrtime.bigint();
  await instance.scheduler.drain();
  const stepSecs = secs(started);
  const job = (await instance.pipelines.listJobs({ pipeline: 'metrics-step' }))[0]!;
  const stepRun = (await instance.tracking.searchRuns({ pipeline: 'metrics-step' })).runs[0]!;
  const logged = (await instance.tracking.metricHistory(stepRun.info.run_id, 'm0')).length * 10;
  if (job.state !== 'success' || logged !== POINTS) throw new Error(`step job ${job.state}: ${job.reason}; logged ${logged}`);
  results.push(['Strata job writing $STRATA_METRICS (whole job, sandbox included)', stepSecs]);

  for (const [what, s] of results) process.stdout.write(`${what.padEnd(70)} ${s.toFixed(2).padStart(6)} s  ${rate(POINTS, s)}\n`);
  process.stdout.write('\nratios against raw SQLite (target >= 0.5):\n');
  for (const [what, s] of results.slice(1)) process.stdout.write(`  ${what.padEnd(68)} ${(raw / s).toFixed(2)}x\n`);
  const http = results.find(([what]) => what.startsWith('Strata HTTP'))![1];
  process.stdout.write(`\nStrata's HTTP API against the bare HTTP floor: ${(floor / http).toFixed(2)}x\n`);

  // 100k runs, each with params, a metric and a tag, seeded in bulk (seeding is not what is measured).
  process.stdout.write(`\nseeding ${RUNS.toLocaleString('en-US')} runs...\n`);
  const exp = await instance.tracking.createExperiment('search-bench');
  const db = instance.meta.db;
  for (let i = 0; i < RUNS; i += 2000) {
    const ids = Array.from({ length: Math.min(2000, RUNS - i) }, () => randomBytes(16).toString('hex'));
    await db.transaction().execute(async (trx) => {
      for (let j = 0; j < ids.length; j += 400) {
        const slice = ids.slice(j, j + 400);
        await trx
          .insertInto('runs')
          .values(
            slice.map((id, k) => ({
              id,
              experiment_id: exp.experiment_id,
              name: `r${i + j + k}`,
              status: 'FINISHED',
              start_time: Date.now() - (i + j + k),
              end_time: Date.now(),
              lifecycle_stage: 'active',
              user_id: 'bench',
              pipeline: null,
              job: null,
              code_version: null,
              input_commits: '[]',
              output_commit: null,
            })),
          )
          .execute();
        await trx.insertInto('params').values(slice.map((id, k) => ({ run_id: id, key: 'lr', value: (i + j + k) % 4 === 0 ? '0.01' : '0.1' }))).execute();
        await trx.insertInto('latest_metrics').values(slice.map((id) => ({ run_id: id, key: 'accuracy', value: Math.random(), step: 0, timestamp: Date.now() }))).execute();
        await trx.insertInto('run_tags').values(slice.map((id) => ({ run_id: id, key: 'team', value: 'ml' }))).execute();
      }
    });
  }
  const query = { experiment_ids: [exp.experiment_id], filter: "metrics.accuracy > 0.9 and params.lr = '0.01'", order_by: ['-metrics.accuracy'], max_results: 100 };
  await instance.tracking.searchRuns(query); // warm
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    started = process.hrtime.bigint();
    const found = await instance.tracking.searchRuns(query);
    times.push(secs(started) * 1000);
    if (found.runs.length === 0) throw new Error('search found nothing');
  }
  times.sort((a, b) => a - b);
  process.stdout.write(`run list --filter "${query.filter}" --sort ${query.order_by[0]} over ${RUNS.toLocaleString('en-US')} runs: median ${times[2]!.toFixed(0)} ms (target <= 200 ms)\n`);
} finally {
  await instance.close();
  rmSync(work, { recursive: true, force: true });
}
