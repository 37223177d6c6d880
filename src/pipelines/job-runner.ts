import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { Kysely } from 'kysely';
import type { DataService } from '../data/service.js';
import type { ContentStage } from '../data/stage.js';
import type { Change, Provenance } from '../data/types.js';
import type { Executor } from '../exec/executor.js';
import type { JobTable, Schema } from '../meta/schema.js';
import { datumEnv, planDatums, type Datum, type FileRef, type InputCommit } from './datums.js';
import { backoffMs, DEFAULT_RETRY, type RetryPolicy } from './retry.js';
import { transformHash, type PipelineSpec } from './spec.js';
import { MetricsFileReader } from '../tracking/metrics-file.js';
import type { TrackingService } from '../tracking/service.js';

/** Where a step's metrics file lives: inside /pfs/out (the only durable writable place), left out of the output. */
const METRICS_FILE = '.strata-metrics.jsonl';

// Runs one job: plan the datums over the job's input commits, skip those
// whose outputs are already known (same datum id = same transform, salt and
// input content), run the rest in the executor with retries, persist every
// successful datum's output as it goes, and commit the union of all current
// datums' outputs as the pipeline's output commit. The output commit is built
// from scratch each time, so datums whose inputs disappeared leave nothing
// behind. A job with a failed datum commits nothing.

export interface JobInput {
  name: string;
  repo: string;
  branch: string;
  commit: string;
}

export interface RunnerContext {
  db: Kysely<Schema>;
  data: DataService;
  tracking: TrackingService;
  /** The job's tracked run: what steps log through $STRATA_METRICS goes here. */
  runId: string;
  executor: Executor;
  /** Host directory for per-datum input and output directories. */
  scratch: string;
  /** Host paths steps must not see. */
  hide: string[];
  /** Aborted to stop the job (job stop, job_timeout, shutdown). */
  signal: AbortSignal;
}

const LOG_TAIL = 64 * 1024;
const PERSIST_EVERY = 256;
const DEFAULT_OUTPUT_LIMIT = 8 * 1024 ** 3;

interface DatumResult {
  datum: Datum;
  state: 'success' | 'skipped' | 'failed' | 'recovered';
  files: FileRef[];
  attempts: number;
  durationMs: number;
  error: string;
  log: string;
  startedAt?: string;
  finishedAt?: string;
}

export async function runJob(ctx: RunnerContext, job: JobTable, spec: PipelineSpec): Promise<{ state: 'success' | 'failure' | 'killed'; reason: string; outputCommit?: string }> {
  const inputs = JSON.parse(job.inputs) as JobInput[];
  const commits = new Map<string, InputCommit>();
  for (const input of inputs) {
    const files: FileRef[] = [];
    for await (const f of ctx.data.walk(`${input.repo}@${input.commit}`)) files.push({ path: f.path, hash: f.hash, size: f.size });
    commits.set(input.name, { repo: input.repo, commit: input.commit, files });
  }
  const datums = planDatums(spec.input, commits, transformHash(spec));
  await ctx.db.updateTable('jobs').set({ total: datums.length }).where('id', '=', job.id).execute();

  const known = spec.reprocessSpec === 'every_job' ? new Map<string, FileRef[]>() : await knownOutputs(ctx.db, spec.pipeline.name, datums);
  const stage = ctx.data.stage();
  const results: DatumResult[] = [];
  const unpersisted: DatumResult[] = [];
  const counts = { processed: 0, skipped: 0, failed: 0, recovered: 0 };
  const policy: RetryPolicy = { ...DEFAULT_RETRY, maxAttempts: Math.max(1, spec.datumTries ?? 3) };

  const flush = async () => {
    if (unpersisted.length === 0) return;
    const batch = unpersisted.splice(0);
    await stage.persist();
    await ctx.db.transaction().execute(async (trx) => {
      for (let i = 0; i < batch.length; i += 200) {
        const rows = batch.slice(i, i + 200);
        const outputs = rows.filter((r) => r.state === 'success');
        if (outputs.length) {
          await trx
            .insertInto('datum_outputs')
            .values(outputs.map((r) => ({ pipeline: spec.pipeline.name, datum: r.datum.id, files: JSON.stringify(r.files), job: job.id })))
            .onConflict((oc) => oc.columns(['pipeline', 'datum']).doUpdateSet((eb) => ({ files: eb.ref('excluded.files'), job: eb.ref('excluded.job') })))
            .execute();
        }
        await trx.insertInto('datums').values(rows.map((r) => datumRow(job.id, r))).onConflict((oc) => oc.columns(['job', 'id']).doNothing()).execute();
      }
      await trx.updateTable('jobs').set(counts).where('id', '=', job.id).execute();
    });
  };

  // Skipped datums first: their outputs are reused as they are.
  const todo: Datum[] = [];
  for (const d of datums) {
    const files = known.get(d.id);
    if (files) {
      const r: DatumResult = { datum: d, state: 'skipped', files, attempts: 0, durationMs: 0, error: '', log: '' };
      results.push(r);
      unpersisted.push(r);
      counts.skipped++;
    } else todo.push(d);
  }

  const parallelism = Math.max(1, spec.parallelismSpec?.constant ?? 1);
  let next = 0;
  const worker = async (slot: number) => {
    while (next < todo.length && !ctx.signal.aborted) {
      const datum = todo[next++]!;
      const r = await processDatum(ctx, job, spec, datum, stage, policy, slot);
      results.push(r);
      unpersisted.push(r);
      if (r.state === 'failed') counts.failed++;
      else if (r.state === 'recovered') counts.recovered++;
      else counts.processed++;
      if (unpersisted.length >= PERSIST_EVERY) await flush();
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallelism, Math.max(1, todo.length)) }, (_, i) => worker(i)));
  await flush();

  if (ctx.signal.aborted) {
    return { state: 'killed', reason: String(ctx.signal.reason ?? 'stopped') };
  }
  const failed = results.filter((r) => r.state === 'failed');
  if (failed.length > 0) {
    const first = failed.sort((a, b) => (a.datum.id < b.datum.id ? -1 : 1))[0]!;
    return {
      state: 'failure',
      reason: `${failed.length} of ${datums.length} datum(s) failed; first: datum ${first.datum.id.slice(0, 12)} (${describeDatum(first.datum)}): ${first.error}`,
    };
  }

  // The output commit: the union of every current datum's output, in datum order.
  const byPath = new Map<string, { hash: string; size: number }[]>();
  for (const r of results.sort((a, b) => (a.datum.id < b.datum.id ? -1 : a.datum.id > b.datum.id ? 1 : 0))) {
    for (const f of r.files) {
      const list = byPath.get(f.path);
      if (list) list.push(f);
      else byPath.set(f.path, [f]);
    }
  }
  const changes: Change[] = [];
  for (const [path, parts] of byPath) {
    // Several datums wrote the same path: the file is their outputs concatenated (Pachyderm's merge).
    const hash = parts.length === 1 ? parts[0]!.hash : (await stage.write(concat(ctx.data, parts))).hash;
    changes.push({ op: 'link', path, hash });
  }
  await stage.persist();
  const provenance: Provenance[] = inputs.map((i) => ({ repo: i.repo, commit: i.commit }));
  const result = await ctx.data.commit(spec.pipeline.name, 'master', changes, {
    replace: true,
    provenance,
    commitSet: job.commit_set,
    job: job.id,
    author: `pipeline:${spec.pipeline.name}`,
    message: `job ${job.id} (pipeline ${spec.pipeline.name} v${job.version}): ${counts.processed} processed, ${counts.skipped} skipped`,
  });
  return { state: 'success', reason: '', outputCommit: result.commit };
}

async function* concat(data: DataService, parts: { hash: string }[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield* data.readContent(p.hash);
}

/** The most a datum may write to /pfs/out: resource_limits.disk (a Kubernetes quantity), else 8 GiB. */
function outputLimit(spec: PipelineSpec): number {
  const disk = spec.resourceLimits?.disk;
  if (disk === undefined) return DEFAULT_OUTPUT_LIMIT;
  const m = /^(\d+(?:\.\d+)?)\s*([KMGTP]i?|[kmgtp])?$/.exec(String(disk).trim());
  if (!m) return DEFAULT_OUTPUT_LIMIT;
  const units: Record<string, number> = { K: 1e3, k: 1e3, M: 1e6, m: 1e6, G: 1e9, g: 1e9, T: 1e12, t: 1e12, P: 1e15, p: 1e15, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4, Pi: 1024 ** 5 };
  return Math.floor(Number(m[1]) * (m[2] ? units[m[2]]! : 1));
}

function describeDatum(d: Datum): string {
  return d.inputs.map((i) => `${i.name}:${i.path}`).join(', ');
}

function datumRow(job: string, r: DatumResult): Schema['datums'] {
  return {
    job,
    id: r.datum.id,
    state: r.state,
    inputs: JSON.stringify(r.datum.inputs.map((i) => ({ name: i.name, repo: i.repo, commit: i.commit, path: i.path }))),
    attempts: r.attempts,
    duration_ms: Math.round(r.durationMs),
    error: r.error,
    log: r.log,
    started_at: r.startedAt ?? null,
    finished_at: r.finishedAt ?? null,
  };
}

async function knownOutputs(db: Kysely<Schema>, pipeline: string, datums: Datum[]): Promise<Map<string, FileRef[]>> {
  const out = new Map<string, FileRef[]>();
  const ids = datums.map((d) => d.id);
  for (let i = 0; i < ids.length; i += 500) {
    const rows = await db
      .selectFrom('datum_outputs')
      .select(['datum', 'files'])
      .where('pipeline', '=', pipeline)
      .where('datum', 'in', ids.slice(i, i + 500))
      .execute();
    for (const r of rows) out.set(r.datum, JSON.parse(r.files));
  }
  return out;
}

async function processDatum(
  ctx: RunnerContext,
  job: JobTable,
  spec: PipelineSpec,
  datum: Datum,
  stage: ContentStage,
  policy: RetryPolicy,
  slot: number,
): Promise<DatumResult> {
  const dir = join(ctx.scratch, job.id, `slot-${slot}`);
  const log = new TailBuffer(LOG_TAIL);
  const startedAt = new Date().toISOString();
  let attempts = 0;
  let durationMs = 0;
  let error = '';
  try {
    for (attempts = 1; attempts <= policy.maxAttempts; attempts++) {
      if (attempts > 1) {
        await sleep(backoffMs(policy, attempts), ctx.signal);
        log.write(`--- attempt ${attempts} of ${policy.maxAttempts} ---\n`);
        await rm(dir, { recursive: true, force: true }); // a clean slate; the slot is removed after every datum
      }
      const inputs = await materialize(ctx.data, datum, join(dir, 'in'));
      const outputDir = join(dir, 'out');
      await mkdir(outputDir, { recursive: true });
      const artifacts: string[] = [];
      const metrics = new MetricsFileReader(join(outputDir, METRICS_FILE), {
        log: (batch) => ctx.tracking.logBatch(ctx.runId, batch),
        artifact: (path) => artifacts.push(path),
        problem: (message) => log.write(`strata: ${message}\n`),
      });
      metrics.start();
      const outcome = await ctx.executor.run(
        {
          jobId: job.id,
          datumId: datum.id,
          cmd: spec.transform.cmd,
          stdin: spec.transform.stdin ? spec.transform.stdin.join('\n') + '\n' : undefined,
          env: {
            ...spec.transform.env,
            ...datumEnv(datum),
            PACH_JOB_ID: job.id,
            STRATA_JOB_ID: job.id,
            STRATA_PIPELINE: spec.pipeline.name,
            STRATA_RUN_ID: ctx.runId,
            STRATA_METRICS: `/pfs/out/${METRICS_FILE}`,
          },
          workingDir: spec.transform.workingDir,
          inputs,
          outputDir,
          network: spec.sandbox?.network ?? false,
          timeoutMs: spec.datumTimeoutMs,
          outputLimitBytes: outputLimit(spec),
          hide: ctx.hide,
          stdout: log,
          stderr: log,
        },
        ctx.signal,
      );
      await metrics.finish();
      durationMs += outcome.durationMs;
      const accepted = outcome.exitCode === 0 || (outcome.exitCode !== null && (spec.transform.acceptReturnCode ?? []).includes(outcome.exitCode));
      if (accepted && !outcome.timedOut && !outcome.outputTooLarge) {
        await logArtifacts(ctx, outputDir, artifacts, log);
        const files = await collectOutputs(outputDir, stage);
        return { datum, state: 'success', files, attempts, durationMs, error: '', log: log.text(), startedAt, finishedAt: new Date().toISOString() };
      }
      error = outcome.spawnError
        ? `could not start ${JSON.stringify(spec.transform.cmd[0])}: ${outcome.spawnError}`
        : outcome.timedOut
          ? `timed out after ${spec.datumTimeout ?? `${spec.datumTimeoutMs} ms`}`
          : outcome.outputTooLarge
            ? `wrote more than ${outputLimit(spec)} bytes to /pfs/out (resource_limits.disk)`
            : outcome.signal
              ? `killed by ${outcome.signal}`
              : `exit code ${outcome.exitCode}`;
      if (ctx.signal.aborted) break;
    }
    attempts = Math.min(attempts, policy.maxAttempts);
    const tail = log.text().trimEnd().split('\n').slice(-5).join('\n');
    const full = tail ? `${error}; output tail:\n${tail}` : error;
    if (spec.transform.errCmd?.length && !ctx.signal.aborted) {
      // Pachyderm's err_cmd: if it succeeds, the failed datum is recovered (skipped, no output).
      const rec = await ctx.executor.run(
        {
          jobId: job.id,
          datumId: datum.id,
          cmd: spec.transform.errCmd,
          stdin: spec.transform.errStdin ? spec.transform.errStdin.join('\n') + '\n' : undefined,
          env: { ...spec.transform.env, ...datumEnv(datum), PACH_JOB_ID: job.id, STRATA_JOB_ID: job.id },
          workingDir: spec.transform.workingDir,
          inputs: await materialize(ctx.data, datum, join(dir, 'in')),
          outputDir: join(dir, 'err-out'),
          network: false,
          timeoutMs: spec.datumTimeoutMs,
          hide: ctx.hide,
          stdout: log,
          stderr: log,
        },
        ctx.signal,
      );
      if (rec.exitCode === 0) {
        return { datum, state: 'recovered', files: [], attempts, durationMs, error: full, log: log.text(), startedAt, finishedAt: new Date().toISOString() };
      }
    }
    return { datum, state: 'failed', files: [], attempts, durationMs, error: full, log: log.text(), startedAt, finishedAt: new Date().toISOString() };
  } catch (err) {
    return {
      datum,
      state: 'failed',
      files: [],
      attempts,
      durationMs,
      error: `internal error running the datum: ${(err as Error).message}`,
      log: log.text(),
      startedAt,
      finishedAt: new Date().toISOString(),
    };
  } finally {
    await rm(dir, { recursive: true, force: true }).catch(() => {});
  }
}

/**
 * Writes a datum's input files under `root/<input name>/<repo path>`. A group
 * or join datum can hold several matches of one input: they share its mount.
 */
async function materialize(data: DataService, datum: Datum, root: string): Promise<{ name: string; hostPath: string }[]> {
  const mounts = new Map<string, string>();
  const made = new Set<string>();
  for (const input of datum.inputs) {
    const base = join(root, input.name);
    if (!mounts.has(input.name)) {
      await mkdir(base, { recursive: true });
      mounts.set(input.name, base);
    }
    for (const f of input.files) {
      const target = join(base, f.path);
      const parent = target.slice(0, target.lastIndexOf('/'));
      if (!made.has(parent)) {
        await mkdir(parent, { recursive: true });
        made.add(parent);
      }
      const parts: Buffer[] = [];
      for await (const b of data.readContent(f.hash)) parts.push(b);
      await writeFile(target, parts.length === 1 ? parts[0]! : Buffer.concat(parts));
    }
  }
  return [...mounts].map(([name, hostPath]) => ({ name, hostPath }));
}

/** Artifacts a step named in its metrics file: files under /pfs/out, stored with the run. */
async function logArtifacts(ctx: RunnerContext, outputDir: string, paths: string[], log: NodeJS.WritableStream): Promise<void> {
  for (const path of paths) {
    const rel = path.replace(/^\/pfs\/out\/?/, '').replace(/^\$STRATA_PFS\/out\/?/, '');
    if (rel === path || rel.split('/').includes('..') || !rel) {
      log.write(`strata: STRATA_METRICS: artifact ${path} is not under /pfs/out; skipped\n`);
      continue;
    }
    try {
      await ctx.tracking.logArtifact(ctx.runId, rel, await readFile(join(outputDir, rel)));
    } catch (err) {
      log.write(`strata: STRATA_METRICS: artifact ${path}: ${(err as Error).message}\n`);
    }
  }
}

/** Stores every regular file under `dir` and returns their repo paths. Symlinks are not followed. */
async function collectOutputs(dir: string, stage: ContentStage): Promise<FileRef[]> {
  const out: FileRef[] = [];
  const visit = async (abs: string, rel: string) => {
    for (const e of (await readdir(abs, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const path = `${rel}/${e.name}`;
      const full = join(abs, e.name);
      if (path === `/${METRICS_FILE}`) continue;
      if (e.isDirectory()) await visit(full, path);
      else if (e.isFile()) {
        const size = (await stat(full)).size;
        const stored = size <= 4 << 20 ? await stage.write(await readFile(full)) : await stage.write(createReadStream(full, { highWaterMark: 4 << 20 }));
        out.push({ path, hash: stored.hash, size: stored.size });
      }
    }
  };
  await visit(dir, '');
  return out;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
  });
}

/** Keeps the last `limit` bytes written: the datum log kept in the database. */
class TailBuffer extends Writable {
  private chunks: Buffer[] = [];
  private size = 0;
  private dropped = false;

  constructor(private limit: number) {
    super();
  }

  override _write(chunk: Buffer | string, _enc: BufferEncoding, done: () => void) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    this.chunks.push(buf);
    this.size += buf.length;
    while (this.size > this.limit && this.chunks.length > 1) {
      this.size -= this.chunks.shift()!.length;
      this.dropped = true;
    }
    done();
  }

  text(): string {
    const body = Buffer.concat(this.chunks);
    const tail = body.length > this.limit ? body.subarray(body.length - this.limit) : body;
    return (this.dropped ? '[... earlier output dropped ...]\n' : '') + tail.toString('utf8');
  }
}
