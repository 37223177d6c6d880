import type { Kysely } from 'kysely';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from '../errors.js';
import type { DataService } from '../data/service.js';
import type { JobTable, Schema } from '../meta/schema.js';
import { detectCycle, inputRepos, specHash, validateSpec, type PipelineSpec } from './spec.js';
import type { DatumInfo, JobInfo, JobState, PipelineInfo } from './types.js';

// Pipelines, their versions, jobs and datums as records: creating and
// updating specs, and reading what jobs did. Running jobs is the
// Scheduler's work (scheduler.ts); this file never starts a process.

export interface CreatePipelineOptions {
  creator?: string;
  /** Replace an existing pipeline's spec (a new version). */
  update?: boolean;
  /** With update: forget every datum's output, so the next job processes all of them. */
  reprocess?: boolean;
}

export class PipelineService {
  private savedListeners = new Set<(spec: PipelineSpec, info: { creator: string; update: boolean }) => Promise<void> | void>();

  constructor(
    private db: Kysely<Schema>,
    private data: DataService,
  ) {}

  /** Calls `listener` after every pipeline create or update, and waits for it (governance records what specs declare); returns the unsubscribe function. */
  onSaved(listener: (spec: PipelineSpec, info: { creator: string; update: boolean }) => Promise<void> | void): () => void {
    this.savedListeners.add(listener);
    return () => this.savedListeners.delete(listener);
  }

  /** Validates and stores a spec (an object parsed from YAML/JSON). Creates the output repo. */
  async create(raw: unknown, opts: CreatePipelineOptions = {}): Promise<PipelineInfo> {
    const spec = validateSpec(raw);
    const name = spec.pipeline.name;
    const existing = await this.db.selectFrom('pipelines').selectAll().where('name', '=', name).executeTakeFirst();
    if (existing && !opts.update) throw new AlreadyExistsError(`pipeline "${name}" already exists; use \`strata pipeline update\` to change it`);
    if (!existing && opts.update) throw new NotFoundError(`pipeline "${name}" not found; use \`strata pipeline create\``);

    const repos = inputRepos(spec);
    for (const input of repos) {
      if (input.kind !== 'pfs') continue;
      const found = await this.db.selectFrom('repos').select('name').where('name', '=', input.repo).executeTakeFirst();
      if (!found) throw new NotFoundError(`input ${input.name}: repo "${input.repo}" does not exist (create it, or the pipeline that outputs it, first)`);
    }
    const others = (await this.db.selectFrom('pipelines').select('spec').where('name', '!=', name).execute()).map((r) => JSON.parse(r.spec) as PipelineSpec);
    const cycle = detectCycle([...others, spec]);
    if (cycle) throw new InvalidArgumentError(`pipeline graph would have a cycle: ${cycle.join(' -> ')}`);

    const outputRepo = await this.db.selectFrom('repos').select('name').where('name', '=', name).executeTakeFirst();
    if (outputRepo && !existing) {
      throw new AlreadyExistsError(`repo "${name}" already exists; a pipeline writes to a repo of its own name, so choose another pipeline name`);
    }

    const now = new Date().toISOString();
    const hash = specHash(spec);
    const text = JSON.stringify(spec);
    const version = existing ? (existing.spec_hash === hash ? existing.version : existing.version + 1) : 1;
    if (!outputRepo) {
      await this.data.createRepo({ name, description: `output of pipeline ${name}${spec.description ? `: ${spec.description}` : ''}`, owner: opts.creator ?? '' });
    }
    for (const input of repos) {
      if (input.kind === 'pfs') continue;
      // Cron ticks and git checkouts are committed to a repo of their own, then read like any input.
      const exists = await this.db.selectFrom('repos').select('name').where('name', '=', input.repo).executeTakeFirst();
      if (!exists) await this.data.createRepo({ name: input.repo, description: `${input.kind} input ${input.name} of pipeline ${name}` });
    }
    await this.db.transaction().execute(async (trx) => {
      if (existing) {
        await trx.updateTable('pipelines').set({ version, spec: text, spec_hash: hash, updated_at: now }).where('name', '=', name).execute();
      } else {
        await trx
          .insertInto('pipelines')
          .values({ name, version, spec: text, spec_hash: hash, creator: opts.creator ?? '', stopped: 0, created_at: now, updated_at: now })
          .execute();
      }
      if (!existing || existing.version !== version) {
        await trx.insertInto('pipeline_versions').values({ pipeline: name, version, spec: text, spec_hash: hash, created_at: now }).execute();
      }
      if (opts.reprocess) await trx.deleteFrom('datum_outputs').where('pipeline', '=', name).execute();
    });
    for (const listener of this.savedListeners) await listener(spec, { creator: opts.creator ?? '', update: !!existing });
    return this.inspect(name);
  }

  async spec(name: string): Promise<{ spec: PipelineSpec; version: number }> {
    const row = await this.db.selectFrom('pipelines').select(['spec', 'version']).where('name', '=', name).executeTakeFirst();
    if (!row) throw new NotFoundError(`pipeline "${name}" not found (strata pipeline list shows the pipelines)`);
    return { spec: JSON.parse(row.spec), version: row.version };
  }

  async specVersion(name: string, version: number): Promise<PipelineSpec> {
    const row = await this.db.selectFrom('pipeline_versions').select('spec').where('pipeline', '=', name).where('version', '=', version).executeTakeFirst();
    if (!row) throw new NotFoundError(`pipeline "${name}" has no version ${version}`);
    return JSON.parse(row.spec);
  }

  async list(): Promise<PipelineInfo[]> {
    const rows = await this.db.selectFrom('pipelines').selectAll().orderBy('name').execute();
    return Promise.all(rows.map((r) => this.info(r)));
  }

  async inspect(name: string): Promise<PipelineInfo> {
    const row = await this.db.selectFrom('pipelines').selectAll().where('name', '=', name).executeTakeFirst();
    if (!row) throw new NotFoundError(`pipeline "${name}" not found (strata pipeline list shows the pipelines)`);
    return { ...(await this.info(row)), spec: JSON.parse(row.spec) };
  }

  /** Deletes a pipeline, its jobs and datum records, and its output repo. */
  async delete(name: string, opts: { keepRepo?: boolean } = {}): Promise<void> {
    const { spec } = await this.spec(name);
    const dependents = (await this.db.selectFrom('pipelines').select(['name', 'spec']).where('name', '!=', name).execute()).filter((r) =>
      inputRepos(JSON.parse(r.spec)).some((i) => i.repo === name),
    );
    if (dependents.length) {
      throw new InvalidArgumentError(`pipeline "${name}" feeds ${dependents.map((d) => `"${d.name}"`).join(', ')}; delete those first`);
    }
    await this.db.transaction().execute(async (trx) => {
      const jobs = (await trx.selectFrom('jobs').select('id').where('pipeline', '=', name).execute()).map((j) => j.id);
      for (let i = 0; i < jobs.length; i += 500) {
        await trx.deleteFrom('datums').where('job', 'in', jobs.slice(i, i + 500)).execute();
        await trx.deleteFrom('job_inputs').where('job', 'in', jobs.slice(i, i + 500)).execute();
      }
      await trx.deleteFrom('jobs').where('pipeline', '=', name).execute();
      await trx.deleteFrom('datum_outputs').where('pipeline', '=', name).execute();
      await trx.deleteFrom('pipeline_versions').where('pipeline', '=', name).execute();
      await trx.deleteFrom('pipelines').where('name', '=', name).execute();
    });
    if (!opts.keepRepo) {
      await this.data.deleteRepo(name).catch(() => {});
      for (const input of inputRepos(spec)) if (input.kind !== 'pfs') await this.data.deleteRepo(input.repo).catch(() => {});
    }
  }

  private async info(row: Schema['pipelines']): Promise<PipelineInfo> {
    const spec = JSON.parse(row.spec) as PipelineSpec;
    const last = await this.db
      .selectFrom('jobs')
      .select(['id', 'state'])
      .where('pipeline', '=', row.name)
      .orderBy('seq', 'desc')
      .limit(1)
      .executeTakeFirst();
    return {
      name: row.name,
      version: row.version,
      description: spec.description ?? '',
      creator: row.creator,
      inputs: inputRepos(spec).map((i) => `${i.repo}@${i.branch}`),
      created: row.created_at,
      updated: row.updated_at,
      state: row.stopped ? 'stopped' : 'running',
      last_job: last ? { id: last.id, state: last.state as JobState } : null,
    };
  }

  // ---- jobs and datums ----

  async listJobs(opts: { pipeline?: string; commitSet?: string; limit?: number } = {}): Promise<JobInfo[]> {
    let q = this.db.selectFrom('jobs').selectAll().orderBy('seq', 'desc');
    if (opts.pipeline) {
      await this.spec(opts.pipeline);
      q = q.where('pipeline', '=', opts.pipeline);
    }
    if (opts.commitSet) q = q.where('commit_set', '=', opts.commitSet);
    if (opts.limit) q = q.limit(opts.limit);
    return (await q.execute()).map(jobInfo);
  }

  async inspectJob(id: string): Promise<JobInfo> {
    const row = await this.jobRow(id);
    const info = jobInfo(row);
    if (row.state === 'failure') {
      const d = await this.db
        .selectFrom('datums')
        .select(['id', 'error', 'log'])
        .where('job', '=', row.id)
        .where('state', '=', 'failed')
        .orderBy('id')
        .limit(1)
        .executeTakeFirst();
      if (d) info.failed_datum = { id: d.id, error: d.error, log_tail: d.log.split('\n').slice(-20).join('\n') };
    }
    return info;
  }

  /** A job by id or unique id prefix. */
  async jobRow(id: string): Promise<JobTable> {
    return findJob(this.db, id);
  }

  async listDatums(jobId: string): Promise<DatumInfo[]> {
    const job = await this.jobRow(jobId);
    const rows = await this.db.selectFrom('datums').selectAll().where('job', '=', job.id).orderBy('id').execute();
    return rows.map((r) => ({
      id: r.id,
      job: r.job,
      state: r.state as DatumInfo['state'],
      inputs: JSON.parse(r.inputs),
      attempts: r.attempts,
      duration_ms: r.duration_ms,
      error: r.error,
      started: r.started_at,
      finished: r.finished_at,
    }));
  }

  /** The captured output of a job's datums (or one datum, by id prefix). */
  async logs(jobId: string, datum?: string): Promise<{ datum: string; state: string; log: string }[]> {
    const job = await this.jobRow(jobId);
    let q = this.db.selectFrom('datums').select(['id', 'state', 'log']).where('job', '=', job.id).orderBy('id');
    if (datum) {
      if (!/^[0-9a-f]{1,64}$/.test(datum)) throw new InvalidArgumentError(`datum id "${datum}" is invalid: datum ids are hex`);
      q = q.where('id', '>=', datum).where('id', '<', datum + 'g');
    }
    const rows = await q.execute();
    if (datum && rows.length === 0) throw new NotFoundError(`job ${job.id} has no datum ${datum}`);
    return rows.map((r) => ({ datum: r.id, state: r.state, log: r.log }));
  }

  /** Marks a job killed; the runner holding it sees this within a lease renewal and stops. */
  async stopJob(id: string): Promise<JobInfo> {
    const job = await this.jobRow(id);
    if (job.state === 'created' || job.state === 'running') {
      await this.db
        .updateTable('jobs')
        .set({ state: 'killed', reason: 'stopped by user', finished_at: new Date().toISOString() })
        .where('id', '=', job.id)
        .where('state', 'in', ['created', 'running'])
        .execute();
    }
    return this.inspectJob(job.id);
  }
}

export function jobInfo(row: JobTable): JobInfo {
  return {
    id: row.id,
    pipeline: row.pipeline,
    pipeline_version: row.version,
    state: row.state as JobState,
    reason: row.reason,
    commit_set: row.commit_set,
    inputs: JSON.parse(row.inputs),
    output_commit: row.output_commit,
    datums: { total: row.total, processed: row.processed, skipped: row.skipped, failed: row.failed, recovered: row.recovered },
    created: row.created_at,
    started: row.started_at,
    finished: row.finished_at,
  };
}

/** A job by id or unique id prefix. */
export async function findJob(db: Kysely<Schema>, id: string): Promise<JobTable> {
  if (!/^[0-9a-f]{1,64}$/.test(id)) throw new InvalidArgumentError(`job id "${id}" is invalid: job ids are hex`);
  const rows = await db.selectFrom('jobs').selectAll().where('id', '>=', id).where('id', '<', id + 'g').limit(2).execute();
  if (rows.length === 0) throw new NotFoundError(`job ${id} not found (strata job list shows the jobs)`);
  if (rows.length > 1) throw new InvalidArgumentError(`job id prefix ${id} is ambiguous; give more characters`);
  return rows[0]!;
}
