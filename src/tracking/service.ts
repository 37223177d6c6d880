import { randomBytes } from 'node:crypto';
import { sql, type Kysely, type SelectQueryBuilder } from 'kysely';
import type { DataService } from '../data/service.js';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from '../errors.js';
import type { Schema } from '../meta/schema.js';
import { ATTRIBUTES, parseFilter, parseOrderBy, type Condition } from './filter.js';
import { bulkInsert } from '../meta/driver.js';
import type {
  ArtifactInfo,
  CreateRunInput,
  Experiment,
  MetricPoint,
  Run,
  RunComparison,
  RunInfo,
  RunStatus,
  SearchRunsInput,
} from './types.js';

// Experiments and runs: params (write-once), metrics (many points per key,
// written in batches, with the latest value per key kept alongside for
// search), tags, and artifacts stored content-addressed in the object store.
// Every pipeline job is a run (job-runner.ts); notebooks and scripts create
// runs directly through the API, the SDK or the MLflow-compatible endpoints.

const STATUSES: RunStatus[] = ['RUNNING', 'SCHEDULED', 'FINISHED', 'FAILED', 'KILLED'];
const MAX_KEY = 250;
const MAX_PARAM_VALUE = 6000;
const MAX_TAG_VALUE = 8000;

export interface LogBatch {
  metrics?: { key: string; value: unknown; step?: number; timestamp?: number }[];
  params?: { key: string; value: unknown }[];
  tags?: { key: string; value: unknown }[];
}

type RunRow = Schema['runs'];

export class TrackingService {
  constructor(
    private db: Kysely<Schema>,
    private data: DataService,
  ) {}

  // ---- experiments ----

  async createExperiment(name: string, opts: { artifact_location?: string; tags?: Record<string, string> } = {}): Promise<Experiment> {
    if (!name || name.length > 500) throw new InvalidArgumentError('experiment name: required, at most 500 characters');
    const existing = await this.db.selectFrom('experiments').select('id').where('name', '=', name).executeTakeFirst();
    if (existing) throw new AlreadyExistsError(`experiment "${name}" already exists (id ${existing.id})`);
    for (let attempt = 0; ; attempt++) {
      const max = await this.db.selectFrom('experiments').select(sql<number>`max(cast(id as bigint))`.as('m')).executeTakeFirstOrThrow();
      const id = String(Number(max.m ?? 0) + 1);
      const now = Date.now();
      try {
        await this.db
          .insertInto('experiments')
          .values({
            id,
            name,
            artifact_location: opts.artifact_location ?? `strata-artifacts:/${id}`,
            lifecycle_stage: 'active',
            tags: JSON.stringify(opts.tags ?? {}),
            created_at: now,
            updated_at: now,
          })
          .execute();
        return this.getExperiment(id);
      } catch (err) {
        if (attempt < 5 && !(await this.db.selectFrom('experiments').select('id').where('name', '=', name).executeTakeFirst())) continue;
        throw new AlreadyExistsError(`experiment "${name}" already exists`);
      }
    }
  }

  async getExperiment(id: string): Promise<Experiment> {
    const row = await this.db.selectFrom('experiments').selectAll().where('id', '=', String(id)).executeTakeFirst();
    if (!row) throw new NotFoundError(`experiment ${id} not found`);
    return experimentOf(row);
  }

  async getExperimentByName(name: string): Promise<Experiment> {
    const row = await this.db.selectFrom('experiments').selectAll().where('name', '=', name).executeTakeFirst();
    if (!row) throw new NotFoundError(`experiment "${name}" not found`);
    return experimentOf(row);
  }

  /** The experiment named `name`, created if missing (pipelines get one each). */
  async ensureExperiment(name: string): Promise<Experiment> {
    try {
      return await this.getExperimentByName(name);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      try {
        return await this.createExperiment(name);
      } catch (e) {
        if (e instanceof AlreadyExistsError) return this.getExperimentByName(name);
        throw e;
      }
    }
  }

  async listExperiments(view: 'active' | 'deleted' | 'all' = 'active'): Promise<Experiment[]> {
    let q = this.db.selectFrom('experiments').selectAll().orderBy(sql`cast(id as bigint)`);
    if (view !== 'all') q = q.where('lifecycle_stage', '=', view);
    return (await q.execute()).map(experimentOf);
  }

  async updateExperiment(id: string, changes: { name?: string; lifecycle_stage?: 'active' | 'deleted'; tags?: Record<string, string> }): Promise<Experiment> {
    const current = await this.getExperiment(id);
    if (changes.name && changes.name !== current.name) {
      const clash = await this.db.selectFrom('experiments').select('id').where('name', '=', changes.name).executeTakeFirst();
      if (clash) throw new AlreadyExistsError(`experiment "${changes.name}" already exists`);
    }
    await this.db
      .updateTable('experiments')
      .set({
        ...(changes.name ? { name: changes.name } : {}),
        ...(changes.lifecycle_stage ? { lifecycle_stage: changes.lifecycle_stage } : {}),
        ...(changes.tags ? { tags: JSON.stringify({ ...current.tags, ...changes.tags }) } : {}),
        updated_at: Date.now(),
      })
      .where('id', '=', current.experiment_id)
      .execute();
    return this.getExperiment(id);
  }

  // ---- runs ----

  async createRun(input: CreateRunInput = {}): Promise<Run> {
    const experimentId = input.experiment_id ?? '0';
    const exp = await this.getExperiment(experimentId);
    if (exp.lifecycle_stage !== 'active') throw new InvalidArgumentError(`experiment ${experimentId} is deleted; restore it or use another`);
    if (input.status && !STATUSES.includes(input.status)) throw new InvalidArgumentError(`status: must be one of ${STATUSES.join(', ')}`);
    const id = randomBytes(16).toString('hex');
    const name = input.run_name || `run-${id.slice(0, 8)}`;
    await this.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('runs')
        .values({
          id,
          experiment_id: exp.experiment_id,
          name,
          status: input.status ?? 'RUNNING',
          start_time: input.start_time ?? Date.now(),
          end_time: null,
          lifecycle_stage: 'active',
          user_id: input.user_id ?? '',
          pipeline: input.pipeline ?? null,
          job: input.job ?? null,
          code_version: input.code_version ?? null,
          input_commits: JSON.stringify(input.input_commits ?? []),
          output_commit: null,
        })
        .execute();
      const tags = Object.entries({ ...input.tags, 'mlflow.runName': name });
      if (tags.length) await trx.insertInto('run_tags').values(tags.map(([key, value]) => ({ run_id: id, key, value: String(value) }))).execute();
    });
    return this.getRun(id);
  }

  async getRun(id: string): Promise<Run> {
    const row = await this.runRow(id);
    const [params, metrics, tags] = await Promise.all([
      this.db.selectFrom('params').select(['key', 'value']).where('run_id', '=', row.id).execute(),
      this.db.selectFrom('latest_metrics').select(['key', 'value', 'step', 'timestamp']).where('run_id', '=', row.id).execute(),
      this.db.selectFrom('run_tags').select(['key', 'value']).where('run_id', '=', row.id).execute(),
    ]);
    return {
      info: runInfo(row),
      data: {
        params: Object.fromEntries(params.map((p) => [p.key, p.value])),
        metrics: Object.fromEntries(metrics.map((m) => [m.key, { value: Number(m.value), step: Number(m.step), timestamp: Number(m.timestamp) }])),
        tags: Object.fromEntries(tags.map((t) => [t.key, t.value])),
      },
    };
  }

  /** A run by id or unique id prefix (the CLI shows 12-character prefixes). */
  async runRow(id: string): Promise<RunRow> {
    if (!/^[0-9a-f]{1,64}$/.test(id)) throw new InvalidArgumentError(`run id "${id}" is invalid: run ids are hex`);
    const rows = await this.db.selectFrom('runs').selectAll().where('id', '>=', id).where('id', '<', id + 'g').limit(2).execute();
    if (rows.length === 0) throw new NotFoundError(`run ${id} not found`);
    if (rows.length > 1 && rows[0]!.id !== id) throw new InvalidArgumentError(`run id prefix ${id} is ambiguous; give more characters`);
    return rows[0]!;
  }

  async updateRun(id: string, changes: { status?: RunStatus; end_time?: number | null; run_name?: string; output_commit?: string }): Promise<RunInfo> {
    const row = await this.runRow(id);
    if (changes.status && !STATUSES.includes(changes.status)) throw new InvalidArgumentError(`status: must be one of ${STATUSES.join(', ')}`);
    await this.db
      .updateTable('runs')
      .set({
        ...(changes.status ? { status: changes.status } : {}),
        ...(changes.end_time !== undefined ? { end_time: changes.end_time } : {}),
        ...(changes.run_name ? { name: changes.run_name } : {}),
        ...(changes.output_commit ? { output_commit: changes.output_commit } : {}),
      })
      .where('id', '=', row.id)
      .execute();
    if (changes.run_name) await this.setTag(row.id, 'mlflow.runName', changes.run_name);
    return runInfo(await this.runRow(row.id));
  }

  async setRunLifecycle(id: string, stage: 'active' | 'deleted'): Promise<void> {
    const row = await this.runRow(id);
    await this.db.updateTable('runs').set({ lifecycle_stage: stage }).where('id', '=', row.id).execute();
  }

  // ---- logging ----

  async logParam(runId: string, key: string, value: unknown): Promise<void> {
    await this.logBatch(runId, { params: [{ key, value }] });
  }

  async logMetric(runId: string, key: string, value: unknown, step?: number, timestamp?: number): Promise<void> {
    await this.logBatch(runId, { metrics: [{ key, value, step, timestamp }] });
  }

  async setTag(runId: string, key: string, value: unknown): Promise<void> {
    await this.logBatch(runId, { tags: [{ key, value }] });
  }

  async deleteTag(runId: string, key: string): Promise<void> {
    const row = await this.runRow(runId);
    const res = await this.db.deleteFrom('run_tags').where('run_id', '=', row.id).where('key', '=', key).executeTakeFirst();
    if (Number(res.numDeletedRows) === 0) throw new NotFoundError(`run ${row.id} has no tag "${key}"`);
  }

  /**
   * Params, metrics and tags in one transaction: all are validated first, so
   * one bad entry rejects the batch and changes nothing.
   */
  async logBatch(runId: string, batch: LogBatch): Promise<void> {
    const row = await this.runRow(runId);
    if (row.lifecycle_stage !== 'active') throw new InvalidArgumentError(`run ${row.id} is deleted; restore it before logging to it`);
    const now = Date.now();
    const keys = new Set<string>(); // a batch repeats a few keys: each is checked once
    const metrics = (batch.metrics ?? []).map((m, i) => {
      if (!keys.has(m.key)) {
        checkKey(m.key, `metrics[${i}].key`);
        keys.add(m.key);
      }
      const value = typeof m.value === 'string' && m.value.trim() !== '' ? Number(m.value) : m.value;
      if (typeof value !== 'number' || !Number.isFinite(value)) {
        throw new InvalidArgumentError(`metric "${m.key}": value must be a finite number, got ${JSON.stringify(m.value)}`);
      }
      const step = m.step ?? 0;
      if (!Number.isInteger(step)) throw new InvalidArgumentError(`metric "${m.key}": step must be an integer, got ${JSON.stringify(m.step)}`);
      const timestamp = m.timestamp ?? now;
      if (!Number.isInteger(timestamp)) throw new InvalidArgumentError(`metric "${m.key}": timestamp must be integer milliseconds`);
      return { run_id: row.id, key: m.key, value, step, timestamp };
    });
    const params = (batch.params ?? []).map((p, i) => {
      checkKey(p.key, `params[${i}].key`);
      const value = String(p.value ?? '');
      if (value.length > MAX_PARAM_VALUE) throw new InvalidArgumentError(`param "${p.key}": value longer than ${MAX_PARAM_VALUE} characters`);
      return { run_id: row.id, key: p.key, value };
    });
    const tags = (batch.tags ?? []).map((t, i) => {
      checkKey(t.key, `tags[${i}].key`);
      const value = String(t.value ?? '');
      if (value.length > MAX_TAG_VALUE) throw new InvalidArgumentError(`tag "${t.key}": value longer than ${MAX_TAG_VALUE} characters`);
      return { run_id: row.id, key: t.key, value };
    });
    const seen = new Map<string, string>();
    for (const p of params) {
      const prior = seen.get(p.key);
      if (prior !== undefined && prior !== p.value) throw new InvalidArgumentError(`param "${p.key}" is given twice with different values`);
      seen.set(p.key, p.value);
    }
    if (params.length) {
      for (let i = 0; i < params.length; i += 500) {
        const existing = await this.db
          .selectFrom('params')
          .select(['key', 'value'])
          .where('run_id', '=', row.id)
          .where('key', 'in', params.slice(i, i + 500).map((p) => p.key))
          .execute();
        for (const e of existing) {
          if (seen.get(e.key) !== e.value) {
            throw new InvalidArgumentError(`param "${e.key}" is already "${e.value}" for run ${row.id}; params are write-once (log a new run, or use a tag)`);
          }
        }
      }
    }

    await this.db.transaction().execute(async (trx) => {
      for (let i = 0; i < params.length; i += 500) {
        await trx.insertInto('params').values(params.slice(i, i + 500)).onConflict((oc) => oc.columns(['run_id', 'key']).doNothing()).execute();
      }
      for (let i = 0; i < tags.length; i += 500) {
        await trx
          .insertInto('run_tags')
          .values(tags.slice(i, i + 500))
          .onConflict((oc) => oc.columns(['run_id', 'key']).doUpdateSet((eb) => ({ value: eb.ref('excluded.value') })))
          .execute();
      }
      if (metrics.length) await insertPoints(trx, row.id, metrics);
      // The latest point per key of this batch, then upserted where newer (higher step, then later).
      const latest = new Map<string, (typeof metrics)[number]>();
      for (const m of metrics) {
        const cur = latest.get(m.key);
        if (!cur || m.step > cur.step || (m.step === cur.step && m.timestamp >= cur.timestamp)) latest.set(m.key, m);
      }
      const rows = [...latest.values()].map((m) => [m.run_id, m.key, m.value, m.step, m.timestamp]);
      if (rows.length) await trx.executeQuery(bulkInsert('latest_metrics', ['run_id', 'key', 'value', 'step', 'timestamp'], rows, NEWER_POINT));
    });
  }

  async metricHistory(runId: string, key: string): Promise<MetricPoint[]> {
    const row = await this.runRow(runId);
    const rows = await this.db
      .selectFrom('metrics')
      .select(['key', 'value', 'step', 'timestamp'])
      .where('run_id', '=', row.id)
      .where('key', '=', key)
      .orderBy('step')
      .orderBy('timestamp')
      .execute();
    if (rows.length === 0) {
      const any = await this.db.selectFrom('latest_metrics').select('key').where('run_id', '=', row.id).execute();
      throw new NotFoundError(`run ${row.id} has no metric "${key}"${any.length ? ` (it has: ${any.map((a) => a.key).join(', ')})` : ''}`);
    }
    return rows.map((r) => ({ key: r.key, value: Number(r.value), step: Number(r.step), timestamp: Number(r.timestamp) }));
  }

  // ---- search ----

  async searchRuns(input: SearchRunsInput = {}): Promise<{ runs: Run[]; next_page_token?: string }> {
    const conditions = parseFilter(input.filter);
    const order = parseOrderBy(input.order_by);
    const max = Math.min(Math.max(1, input.max_results ?? 1000), 50_000);
    const offset = input.page_token ? Number(Buffer.from(input.page_token, 'base64').toString()) : 0;
    if (!Number.isInteger(offset) || offset < 0) throw new InvalidArgumentError('page_token is invalid');

    let q = this.db.selectFrom('runs').selectAll('runs') as SelectQueryBuilder<any, any, RunRow>;
    if (input.experiment_ids?.length) q = q.where('runs.experiment_id', 'in', input.experiment_ids.map(String));
    if (input.pipeline) q = q.where('runs.pipeline', '=', input.pipeline);
    const view = input.view ?? 'active';
    if (view !== 'all') q = q.where('runs.lifecycle_stage', '=', view);
    // How conditions on metrics, params and tags are written depends on the sort, so the database can
    // stop early where it can. A condition on the field sorted by is an inner join on its (run_id, key) row
    // (one per run) and the sort uses that row: the (key, value) index is walked in order up to the page's
    // end ("accuracy > 0.9, best first"). When sorting by a field no condition needs, every match is sorted
    // anyway: then all conditions are joins, so the database starts from the most selective index. Otherwise
    // (sorted by time or another attribute) each run is tested in sort order (EXISTS) up to the page's end.
    const field = (x: { entity: string; key: string }) => `${x.entity}:${x.key}`;
    const conditionFields = new Set(conditions.map(field));
    const orderFields = new Set(order.filter((o) => o.entity !== 'attribute').map(field));
    const joinAll = [...orderFields].some((f) => !conditionFields.has(f));
    const joined = new Map<string, string>();
    conditions.forEach((c, i) => {
      if (c.entity === 'attribute') {
        q = q.where((eb: any) => compare(eb, eb.ref(`runs.${ATTRIBUTES[c.key]!}`), c));
      } else if (joinAll || (orderFields.has(field(c)) && !joined.has(field(c)))) {
        const alias = `c${i}`;
        q = q.innerJoin(`${FIELD_TABLES[c.entity]} as ${alias}`, (join: any) =>
          join
            .onRef(`${alias}.run_id`, '=', 'runs.id')
            .on(`${alias}.key`, '=', c.key)
            .on((eb: any) => compare(eb, eb.ref(`${alias}.value`), c)),
        );
        if (!joined.has(field(c))) joined.set(field(c), alias);
      } else {
        const table = FIELD_TABLES[c.entity];
        q = q.where((eb: any) =>
          eb.exists(
            eb
              .selectFrom(`${table} as f`)
              .select(sql`1`.as('one'))
              .whereRef('f.run_id', '=', 'runs.id')
              .where('f.key', '=', c.key)
              .where((inner: any) => compare(inner, inner.ref('f.value'), c)),
          ),
        );
      }
    });
    order.forEach((o, i) => {
      if (o.entity === 'attribute') {
        q = q.orderBy(`runs.${ATTRIBUTES[o.key]!}`, o.desc ? 'desc' : 'asc');
        return;
      }
      const filtered = joined.get(field(o));
      if (filtered) {
        // Every run here has the key (its condition needs it), so none sorts last for lacking it.
        q = q.orderBy(`${filtered}.value`, o.desc ? 'desc' : 'asc');
        return;
      }
      const alias = `o${i}`;
      q = q.leftJoin(`${FIELD_TABLES[o.entity]} as ${alias}`, (join: any) => join.onRef(`${alias}.run_id`, '=', 'runs.id').on(`${alias}.key`, '=', o.key));
      // Runs without the key sort last either way, as in MLflow.
      q = q.orderBy(sql`${sql.ref(`${alias}.value`)} is null`).orderBy(`${alias}.value`, o.desc ? 'desc' : 'asc');
    });
    q = q.orderBy('runs.start_time', 'desc').orderBy('runs.id');
    const rows = (await q.limit(max + 1).offset(offset).execute()) as RunRow[];
    const page = rows.slice(0, max);
    const runs = await this.hydrate(page);
    return rows.length > max ? { runs, next_page_token: Buffer.from(String(offset + max)).toString('base64') } : { runs };
  }

  /** Params, latest metrics and tags for many runs at once. */
  private async hydrate(rows: RunRow[]): Promise<Run[]> {
    const ids = rows.map((r) => r.id);
    const params = new Map<string, Record<string, string>>();
    const metrics = new Map<string, Run['data']['metrics']>();
    const tags = new Map<string, Record<string, string>>();
    for (let i = 0; i < ids.length; i += 500) {
      const slice = ids.slice(i, i + 500);
      for (const p of await this.db.selectFrom('params').select(['run_id', 'key', 'value']).where('run_id', 'in', slice).execute()) {
        (params.get(p.run_id) ?? params.set(p.run_id, {}).get(p.run_id)!)[p.key] = p.value;
      }
      for (const m of await this.db.selectFrom('latest_metrics').selectAll().where('run_id', 'in', slice).execute()) {
        (metrics.get(m.run_id) ?? metrics.set(m.run_id, {}).get(m.run_id)!)[m.key] = {
          value: Number(m.value),
          step: Number(m.step),
          timestamp: Number(m.timestamp),
        };
      }
      for (const t of await this.db.selectFrom('run_tags').select(['run_id', 'key', 'value']).where('run_id', 'in', slice).execute()) {
        (tags.get(t.run_id) ?? tags.set(t.run_id, {}).get(t.run_id)!)[t.key] = t.value;
      }
    }
    return rows.map((r) => ({ info: runInfo(r), data: { params: params.get(r.id) ?? {}, metrics: metrics.get(r.id) ?? {}, tags: tags.get(r.id) ?? {} } }));
  }

  async compareRuns(ids: string[]): Promise<RunComparison> {
    if (ids.length < 2) throw new InvalidArgumentError('compare needs at least two run ids');
    const runs = await Promise.all(ids.map((id) => this.getRun(id)));
    const paramKeys = [...new Set(runs.flatMap((r) => Object.keys(r.data.params)))].sort();
    const metricKeys = [...new Set(runs.flatMap((r) => Object.keys(r.data.metrics)))].sort();
    return {
      runs: runs.map((r) => ({ run_id: r.info.run_id, run_name: r.info.run_name, status: r.info.status })),
      params: paramKeys.map((key) => ({ key, values: runs.map((r) => r.data.params[key] ?? null) })),
      metrics: metricKeys.map((key) => {
        const values = runs.map((r) => r.data.metrics[key]?.value ?? null);
        const base = values[0];
        return { key, values, deltas: values.map((v) => (v === null || base === null || base === undefined ? null : v - base)) };
      }),
    };
  }

  // ---- artifacts ----

  async logArtifact(runId: string, path: string, content: AsyncIterable<Uint8Array> | Uint8Array): Promise<ArtifactInfo> {
    const row = await this.runRow(runId);
    const clean = artifactPath(path);
    const stage = this.data.stage();
    try {
      const stored = await stage.write(content);
      await stage.persist();
      await this.db
        .insertInto('run_artifacts')
        .values({ run_id: row.id, path: clean, hash: stored.hash, size: stored.size })
        .onConflict((oc) => oc.columns(['run_id', 'path']).doUpdateSet((eb) => ({ hash: eb.ref('excluded.hash'), size: eb.ref('excluded.size') })))
        .execute();
      return { path: clean, is_dir: false, file_size: stored.size, hash: stored.hash };
    } catch (err) {
      await stage.abort();
      throw err;
    }
  }

  /** Entries directly under `dir` ('' for the root), directories first-class as in MLflow. */
  async listArtifacts(runId: string, dir = ''): Promise<ArtifactInfo[]> {
    const row = await this.runRow(runId);
    const prefix = dir ? `${artifactPath(dir)}/` : '';
    const rows = await this.db.selectFrom('run_artifacts').selectAll().where('run_id', '=', row.id).orderBy('path').execute();
    const out = new Map<string, ArtifactInfo>();
    for (const r of rows) {
      if (!r.path.startsWith(prefix)) continue;
      const rest = r.path.slice(prefix.length);
      const slash = rest.indexOf('/');
      if (slash >= 0) out.set(prefix + rest.slice(0, slash), { path: prefix + rest.slice(0, slash), is_dir: true });
      else out.set(r.path, { path: r.path, is_dir: false, file_size: Number(r.size), hash: r.hash });
    }
    return [...out.values()];
  }

  async readArtifact(runId: string, path: string): Promise<{ size: number; stream: AsyncIterable<Buffer> }> {
    const row = await this.runRow(runId);
    const clean = artifactPath(path);
    const a = await this.db.selectFrom('run_artifacts').selectAll().where('run_id', '=', row.id).where('path', '=', clean).executeTakeFirst();
    if (!a) throw new NotFoundError(`run ${row.id} has no artifact "${clean}"`);
    return { size: Number(a.size), stream: this.data.readContent(a.hash) };
  }
}

/** Upserts a key's latest point where the new one is newer: a higher step, or the same step and a later time. */
const NEWER_POINT = `on conflict (run_id, key) do update set value = excluded.value, step = excluded.step, "timestamp" = excluded."timestamp"
  where latest_metrics.step < excluded.step or (latest_metrics.step = excluded.step and latest_metrics."timestamp" <= excluded."timestamp")`;

/** Metric points go in as a bulk insert (meta/driver.ts): a builder INSERT of 1,000 rows costs more than the insert. */
async function insertPoints(trx: Kysely<Schema>, runId: string, points: { key: string; value: number; step: number; timestamp: number }[]) {
  await trx.executeQuery(
    bulkInsert(
      'metrics',
      ['run_id', 'key', 'value', 'step', 'timestamp'],
      points.map((p) => [runId, p.key, p.value, p.step, p.timestamp]),
    ),
  );
}

/** Where a filter or sort on metrics., params. or tags. looks; each has one row per (run_id, key). */
const FIELD_TABLES = { metric: 'latest_metrics', param: 'params', tag: 'run_tags' } as const;

function compare(eb: any, ref: any, c: Condition) {
  switch (c.op) {
    case 'LIKE':
      return eb(ref, 'like', c.value);
    case 'ILIKE':
      return eb(eb.fn('lower', [ref]), 'like', String(c.value).toLowerCase());
    case 'IN':
      return eb(ref, 'in', c.value as (string | number)[]);
    case 'NOT IN':
      return eb(ref, 'not in', c.value as (string | number)[]);
    case '!=':
      return eb(ref, '<>', c.value);
    default:
      return eb(ref, c.op, c.value);
  }
}

function checkKey(key: unknown, field: string): asserts key is string {
  if (typeof key !== 'string' || key.length === 0) throw new InvalidArgumentError(`${field}: required`);
  if (key.length > MAX_KEY) throw new InvalidArgumentError(`${field}: longer than ${MAX_KEY} characters`);
  if (!/^[\w\-. /:]+$/.test(key) || key.split('/').includes('..')) {
    throw new InvalidArgumentError(`${field} "${key}": use letters, digits, '_', '-', '.', ' ', ':' and '/'`);
  }
}

function artifactPath(path: string): string {
  const parts = path.replaceAll('\\', '/').split('/').filter((p) => p && p !== '.');
  if (parts.includes('..')) throw new InvalidArgumentError(`artifact path "${path}" contains ".."`);
  if (parts.length === 0) throw new InvalidArgumentError('artifact path is empty');
  return parts.join('/');
}

function experimentOf(row: Schema['experiments']): Experiment {
  return {
    experiment_id: row.id,
    name: row.name,
    artifact_location: row.artifact_location,
    lifecycle_stage: row.lifecycle_stage as Experiment['lifecycle_stage'],
    tags: JSON.parse(row.tags),
    creation_time: Number(row.created_at),
    last_update_time: Number(row.updated_at),
  };
}

function runInfo(row: RunRow): RunInfo {
  return {
    run_id: row.id,
    run_name: row.name,
    experiment_id: row.experiment_id,
    status: row.status as RunStatus,
    start_time: Number(row.start_time),
    end_time: row.end_time === null ? null : Number(row.end_time),
    lifecycle_stage: row.lifecycle_stage as RunInfo['lifecycle_stage'],
    user_id: row.user_id,
    artifact_uri: `strata-artifacts:/${row.experiment_id}/${row.id}/artifacts`,
    pipeline: row.pipeline,
    job: row.job,
    code_version: row.code_version,
    input_commits: JSON.parse(row.input_commits),
    output_commit: row.output_commit,
  };
}
