import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { sql, type Kysely } from 'kysely';
import type { DataService } from '../data/service.js';
import type { Executor } from '../exec/executor.js';
import type { JobTable, Schema } from '../meta/schema.js';
import { runJob, type JobInput } from './job-runner.js';
import type { PipelineService } from './service.js';
import type { TrackingService } from '../tracking/service.js';
import type { Registry } from '../tracking/registry.js';
import { StrataError } from '../errors.js';
import { inputRepos, type PipelineSpec } from './spec.js';

// Decides which jobs should exist and runs them.
//
// The rule is declarative, so it survives crashes and needs no event log:
// for every pipeline, the heads of its input branches name one job
// (key = spec version + input commits). reconcile() creates the jobs that
// are missing; runNext() claims the oldest created job with a compare-and-swap
// and runs it under a lease that it renews; a job whose lease ran out (its
// runner died) is taken up again, reusing every datum output it persisted.
// Upstream output commits move downstream input branches, so draining
// (reconcile + run until idle) walks the whole DAG of a commit set.

const LEASE_MS = 15_000;
const RENEW_MS = 3_000;

export interface SchedulerOptions {
  scratch: string;
  hide: string[];
  /** Where a spec's `model` section registers the model its job wrote. */
  registry?: Registry;
  /** Whether the pipeline's creator may still run this job: a FORBIDDEN message (the job fails with it), or null. */
  authorize?: (job: JobTable, spec: PipelineSpec) => Promise<string | null>;
}

/** A job's lifecycle, told to onJobEvent listeners (the OpenLineage export). */
export interface JobEvent {
  type: 'start' | 'complete' | 'fail' | 'abort';
  job: { id: string; commitSet: string; version: number };
  pipeline: string;
  /** The spec version the job runs; absent when it could not be read. */
  spec?: PipelineSpec;
  inputs: { name: string; repo: string; commit: string }[];
  /** The output commit, on complete. */
  output?: { repo: string; commit: string };
  /** Why the job failed or was stopped. */
  error?: string;
  time: string;
}

export type JobEventListener = (event: JobEvent) => void | Promise<void>;

export class Scheduler {
  private running = new Map<string, AbortController>();
  private jobListeners = new Set<JobEventListener>();
  private loop?: { stop: boolean; wake: () => void; done: Promise<void> };

  constructor(
    private db: Kysely<Schema>,
    private data: DataService,
    private pipelines: PipelineService,
    private tracking: TrackingService,
    private executor: Executor,
    private opts: SchedulerOptions,
  ) {}

  /**
   * Creates the jobs the current input heads call for. Returns how many were
   * created. A pipeline waits while a pipeline upstream of it has not caught
   * up with its own inputs yet, so a commit flows through the DAG once
   * (montage runs after edges, not once before and once after).
   */
  async reconcile(): Promise<number> {
    let created = 0;
    const rows = await this.db.selectFrom('pipelines').select(['name', 'version', 'spec']).where('stopped', '=', 0).orderBy('name').execute();
    const plans = new Map<string, { version: number; inputs: JobInput[]; key: string; commitSet: string; upstream: string[] } | null>();
    for (const p of rows) {
      const spec = JSON.parse(p.spec) as PipelineSpec;
      const inputs: JobInput[] = [];
      let newest: { time: string; commitSet: string } | undefined;
      let ready = true;
      for (const i of inputRepos(spec)) {
        const branch = await this.db.selectFrom('branches').select('head').where('repo', '=', i.repo).where('name', '=', i.branch).executeTakeFirst();
        if (!branch?.head) {
          ready = false; // Pachyderm waits until every input has a commit
          break;
        }
        const c = await this.db.selectFrom('commits').select(['time', 'commit_set', 'id']).where('id', '=', branch.head).executeTakeFirstOrThrow();
        inputs.push({ name: i.name, repo: i.repo, branch: i.branch, commit: c.id });
        if (!newest || c.time > newest.time) newest = { time: c.time, commitSet: c.commit_set ?? c.id };
      }
      if (!ready || !newest) {
        plans.set(p.name, null);
        continue;
      }
      const key = createHash('sha256')
        .update(JSON.stringify([p.version, inputs.map((i) => [i.name, i.commit]).sort()]))
        .digest('hex');
      const upstream = inputRepos(spec).map((i) => i.repo).filter((r) => rows.some((o) => o.name === r));
      plans.set(p.name, { version: p.version, inputs, key, commitSet: newest.commitSet, upstream });
    }
    // Settled: the pipeline's job for its current inputs has finished, and so has everything upstream.
    const settled = new Map<string, Promise<boolean>>();
    const isSettled = (name: string): Promise<boolean> => {
      let s = settled.get(name);
      if (!s) {
        s = (async () => {
          const plan = plans.get(name);
          if (!plan) return true;
          const job = await this.db.selectFrom('jobs').select('state').where('pipeline', '=', name).where('input_key', '=', plan.key).executeTakeFirst();
          if (!job || job.state === 'created' || job.state === 'running') return false;
          for (const u of plan.upstream) if (!(await isSettled(u))) return false;
          return true;
        })();
        settled.set(name, s);
      }
      return s;
    };
    for (const p of rows) {
      const plan = plans.get(p.name);
      if (!plan) continue;
      const { inputs, key } = plan;
      const newest = { commitSet: plan.commitSet };
      let waiting = false;
      for (const u of plan.upstream) if (!(await isSettled(u))) waiting = true;
      if (waiting) continue;
      const exists = await this.db.selectFrom('jobs').select('id').where('pipeline', '=', p.name).where('input_key', '=', key).executeTakeFirst();
      if (exists) continue;
      const seq = await this.db.selectFrom('jobs').select(sql<number>`coalesce(max(seq), 0) + 1`.as('next')).executeTakeFirstOrThrow();
      const id = randomBytes(16).toString('hex');
      const inserted = await this.db.transaction().execute(async (trx) => {
        const res = await trx
          .insertInto('jobs')
          .values({
            id,
            pipeline: p.name,
            version: p.version,
            input_key: key,
            inputs: JSON.stringify(inputs),
            commit_set: newest.commitSet,
            state: 'created',
            reason: '',
            total: 0,
            processed: 0,
            skipped: 0,
            failed: 0,
            recovered: 0,
            created_at: new Date().toISOString(),
            seq: Number(seq.next),
          })
          .onConflict((oc) => oc.columns(['pipeline', 'input_key']).doNothing()) // another process reconciled first
          .executeTakeFirst();
        if (Number(res.numInsertedOrUpdatedRows ?? 0n) === 0) return false;
        await trx.insertInto('job_inputs').values(inputs.map((i) => ({ job: id, name: i.name, repo: i.repo, commit: i.commit }))).execute();
        return true;
      });
      if (!inserted) continue;
      created++;
    }
    return created;
  }

  /** Claims and runs the oldest runnable job. Returns false when there was none. */
  async runNext(): Promise<boolean> {
    const now = new Date().toISOString();
    const candidates = await this.db
      .selectFrom('jobs')
      .selectAll()
      .where((eb) => eb.or([eb('state', '=', 'created'), eb.and([eb('state', '=', 'running'), eb('lease_until', '<', now)])]))
      .orderBy('seq')
      .limit(10)
      .execute();
    for (const job of candidates) {
      const lease = new Date(Date.now() + LEASE_MS).toISOString();
      const claimed = await this.db
        .updateTable('jobs')
        .set({ state: 'running', lease_until: lease, started_at: job.started_at ?? now })
        .where('id', '=', job.id)
        .where('state', '=', job.state)
        .where((eb) => (job.lease_until ? eb('lease_until', '=', job.lease_until) : eb('lease_until', 'is', null)))
        .executeTakeFirst();
      if (Number(claimed.numUpdatedRows) === 0) continue; // another runner took it
      await this.run({ ...job, state: 'running', lease_until: lease });
      return true;
    }
    return false;
  }

  /** Reconciles and runs jobs until there is nothing left to do. */
  async drain(): Promise<void> {
    for (;;) {
      await this.reconcile();
      if (!(await this.runNext())) {
        // Jobs held by another live runner: wait for them rather than returning early.
        const busy = await this.db.selectFrom('jobs').select('id').where('state', 'in', ['created', 'running']).limit(1).executeTakeFirst();
        if (!busy) return;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  /**
   * Waits until no job of the commit set (of any, when omitted) is created or
   * running. Reconciles on every turn, so downstream jobs that an upstream
   * output commit calls for are waited on too. Jobs are run by whichever
   * scheduler loop is active (drain() in this process, or a server's).
   */
  async waitIdle(commitSet?: string, signal?: AbortSignal): Promise<void> {
    for (;;) {
      await this.reconcile();
      let q = this.db.selectFrom('jobs').select('id').where('state', 'in', ['created', 'running']);
      if (commitSet) q = q.where('commit_set', '=', commitSet);
      if (!(await q.limit(1).executeTakeFirst())) return;
      if (signal?.aborted) return;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Server mode: run jobs as commits arrive, and reconcile every second for commits made by other processes. */
  start(): void {
    if (this.loop) return;
    let wake = () => {};
    const state = { stop: false, wake: () => wake(), done: Promise.resolve() };
    const unsubscribe = this.data.onCommit(() => state.wake());
    state.done = (async () => {
      while (!state.stop) {
        try {
          await this.reconcile();
          while (!state.stop && (await this.runNext())) await this.reconcile();
        } catch (err) {
          process.stderr.write(`strata scheduler: ${(err as Error).message}\n`);
        }
        if (state.stop) break;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 1000);
          wake = () => (clearTimeout(timer), resolve());
        });
      }
      unsubscribe();
    })();
    this.loop = state;
  }

  async stop(): Promise<void> {
    if (!this.loop) return;
    this.loop.stop = true;
    this.loop.wake();
    for (const c of this.running.values()) c.abort('scheduler shutting down');
    await this.loop.done;
    this.loop = undefined;
  }

  /** Calls `listener` as jobs start and end. Listeners must not block: they are not awaited, and their errors are only logged. Returns an unsubscribe function. */
  onJobEvent(listener: JobEventListener): () => void {
    this.jobListeners.add(listener);
    return () => this.jobListeners.delete(listener);
  }

  private tellJob(type: JobEvent['type'], job: JobTable, spec: PipelineSpec | undefined, extra: Pick<JobEvent, 'output' | 'error'> = {}): void {
    if (this.jobListeners.size === 0) return;
    const inputs = (JSON.parse(job.inputs) as JobInput[]).map((i) => ({ name: i.name, repo: i.repo, commit: i.commit }));
    const event: JobEvent = { type, job: { id: job.id, commitSet: job.commit_set, version: job.version }, pipeline: job.pipeline, spec, inputs, ...extra, time: new Date().toISOString() };
    const warn = (err: unknown) => process.stderr.write(`strata scheduler: job event listener: ${(err as Error)?.message ?? String(err)}\n`);
    for (const listener of this.jobListeners) {
      try {
        void Promise.resolve(listener(event)).catch(warn);
      } catch (err) {
        warn(err);
      }
    }
  }

  private async run(job: JobTable): Promise<void> {
    const controller = new AbortController();
    this.running.set(job.id, controller);
    const dir = join(this.opts.scratch, job.id);
    let timeout: NodeJS.Timeout | undefined;
    // Renew the lease, and notice a `job stop` made by any process.
    const renew = setInterval(async () => {
      try {
        const row = await this.db.selectFrom('jobs').select('state').where('id', '=', job.id).executeTakeFirst();
        if (row?.state === 'killed') controller.abort('stopped by user');
        else await this.db.updateTable('jobs').set({ lease_until: new Date(Date.now() + LEASE_MS).toISOString() }).where('id', '=', job.id).execute();
      } catch {
        // the next renewal tries again; an expired lease only lets another runner resume the job
      }
    }, RENEW_MS);
    let runId: string | undefined;
    let spec: PipelineSpec | undefined;
    let started = false;
    let ended = false;
    try {
      spec = await this.pipelines.specVersion(job.pipeline, job.version);
      runId = await this.runFor(job, spec);
      const denied = await this.opts.authorize?.(job, spec);
      if (denied) {
        await this.finish(job.id, 'failure', denied);
        await this.tracking.updateRun(runId, { status: 'FAILED', end_time: Date.now() });
        return;
      }
      this.tellJob('start', job, spec);
      started = true;
      const jobTimeout = spec.jobTimeout;
      if (spec.jobTimeoutMs) timeout = setTimeout(() => controller.abort(`timed out after ${jobTimeout}`), spec.jobTimeoutMs);
      mkdirSync(dir, { recursive: true });
      const result = await runJob(
        {
          db: this.db,
          data: this.data,
          tracking: this.tracking,
          runId,
          executor: this.executor,
          scratch: this.opts.scratch,
          hide: this.opts.hide,
          signal: controller.signal,
        },
        job,
        spec,
      );
      const state = controller.signal.aborted && String(controller.signal.reason).startsWith('timed out') ? 'failure' : result.state;
      let reason = result.reason;
      if (state === 'success' && result.outputCommit) reason = await this.registerModel(job, spec, result.outputCommit, runId);
      await this.finish(job.id, state, reason, result.outputCommit);
      if (state === 'success') this.tellJob('complete', job, spec, result.outputCommit ? { output: { repo: job.pipeline, commit: result.outputCommit } } : {});
      else this.tellJob(state === 'killed' ? 'abort' : 'fail', job, spec, { error: reason });
      ended = true;
      await this.tracking.updateRun(runId, {
        status: state === 'success' ? 'FINISHED' : state === 'killed' ? 'KILLED' : 'FAILED',
        end_time: Date.now(),
        output_commit: result.outputCommit,
      });
    } catch (err) {
      await this.finish(job.id, 'failure', `internal error: ${(err as Error).message}`);
      if (!started) this.tellJob('start', job, spec);
      if (!ended) this.tellJob('fail', job, spec, { error: `internal error: ${(err as Error).message}` });
      if (runId) await this.tracking.updateRun(runId, { status: 'FAILED', end_time: Date.now() }).catch(() => {});
    } finally {
      clearInterval(renew);
      clearTimeout(timeout);
      this.running.delete(job.id);
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /**
   * A spec's `model: {name, path, promote_to}` section: register the file the
   * job wrote as a new model version, linked to the job's run, and move the
   * alias if asked — subject to the alias's gates. A refused promotion does
   * not fail the job; it is said in the job's reason and a run tag.
   */
  private async registerModel(job: JobTable, spec: PipelineSpec, outputCommit: string, runId: string): Promise<string> {
    const model = spec.model as { name?: unknown; path?: unknown; promote_to?: unknown } | undefined;
    if (!model || !this.opts.registry) return '';
    const name = String(model.name ?? spec.pipeline.name);
    const path = String(model.path ?? '/model.onnx');
    const actor = `pipeline:${spec.pipeline.name}`;
    try {
      const version = await this.opts.registry.registerVersion(name, {
        from: `${spec.pipeline.name}@${outputCommit}:${path.startsWith('/') ? path : `/${path}`}`,
        run_id: runId,
        user: actor,
        description: `from job ${job.id}`,
      });
      await this.tracking.setTag(runId, 'strata.model_version', `${name}/${version.version}`);
      let note = `registered ${name} version ${version.version}`;
      if (typeof model.promote_to === 'string' && model.promote_to) {
        try {
          await this.opts.registry.setAlias(name, model.promote_to, version.version, { actor, reason: `job ${job.id}` });
          note += `, promoted to ${model.promote_to}`;
        } catch (err) {
          if (!(err instanceof StrataError) || err.code !== 'POLICY_VIOLATION') throw err;
          note += `; promotion to ${model.promote_to} refused: ${err.message}`;
          await this.tracking.setTag(runId, 'strata.promotion_refused', err.message.slice(0, 7000));
        }
      }
      return note;
    } catch (err) {
      return `model registration failed: ${(err as Error).message}`;
    }
  }

  /** The job's tracked run: created on first start, reused when a job is resumed. */
  private async runFor(job: JobTable, spec: PipelineSpec): Promise<string> {
    const existing = await this.db.selectFrom('runs').select('id').where('job', '=', job.id).executeTakeFirst();
    if (existing) return existing.id;
    const inputs = JSON.parse(job.inputs) as JobInput[];
    // Code version: the git commit of a git input, else the pipeline spec's hash.
    let codeVersion: string | undefined;
    for (const input of inputRepos(spec)) {
      if (input.kind !== 'git') continue;
      const commit = inputs.find((i) => i.name === input.name)?.commit;
      if (commit) codeVersion = (await this.data.inspectCommit(`${input.repo}@${commit}`)).provenance[0]?.commit;
    }
    codeVersion ??= (await this.db.selectFrom('pipeline_versions').select('spec_hash').where('pipeline', '=', job.pipeline).where('version', '=', job.version).executeTakeFirst())?.spec_hash;
    const pipeline = await this.db.selectFrom('pipelines').select('creator').where('name', '=', job.pipeline).executeTakeFirst();
    const experiment = await this.tracking.ensureExperiment(job.pipeline);
    const run = await this.tracking.createRun({
      experiment_id: experiment.experiment_id,
      run_name: `${job.pipeline}-${job.id.slice(0, 8)}`,
      user_id: pipeline?.creator ?? '',
      pipeline: job.pipeline,
      job: job.id,
      code_version: codeVersion,
      input_commits: inputs.map((i) => ({ repo: i.repo, commit: i.commit })),
      tags: { 'strata.pipeline': job.pipeline, 'strata.job': job.id, 'strata.commit_set': job.commit_set, 'strata.pipeline_version': String(job.version) },
    });
    return run.info.run_id;
  }

  private async finish(id: string, state: string, reason: string, outputCommit?: string) {
    await this.db
      .updateTable('jobs')
      .set({ state, reason, output_commit: outputCommit ?? null, finished_at: new Date().toISOString(), lease_until: null })
      .where('id', '=', id)
      .where('state', '=', 'running') // a concurrent `job stop` wins
      .execute();
  }
}
