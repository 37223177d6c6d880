import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify';
import { defaultAuthor } from '../../data/service.js';
import { InvalidArgumentError, NotFoundError, type ErrorCode } from '../../errors.js';
import type { Registry } from '../../tracking/registry.js';
import type { TrackingService } from '../../tracking/service.js';
import type { Experiment, ModelVersion, RegisteredModel, Run, RunInfo, RunStatus } from '../../tracking/types.js';
import { errorBody, type ErrorContext } from '../errors.js';
import { authenticatedUser } from '../auth.js';

// The MLflow REST API subset the stock `mlflow` Python client (2.x) uses,
// under /api/2.0/mlflow/ and /ajax-api/2.0/mlflow/, plus the artifact proxy
// under /api/2.0/mlflow-artifacts/. Handlers only translate MLflow's
// protobuf-JSON payloads to TrackingService / Registry calls and back.
//
// Wire conventions, as MLflow's own server and client have them:
// - GET requests carry their fields in the query string (repeated keys for
//   lists); every other method sends a JSON body, DELETE included.
// - int64 fields may arrive as JSON numbers or strings; responses send numbers.
//   Model versions are strings ("1"), as in model_registry.proto.
// - Errors are {"error_code","message"} with MLflow's status for the code. The
//   client retries 5xx answers, so refusals are never given a 5xx code.
// - Runs' artifact_uri is mlflow-artifacts:/<experiment>/<run>/artifacts, which
//   the client resolves to <tracking uri>/api/2.0/mlflow-artifacts/artifacts/...
//
// Validation is by hand (no JSON schemas): a schema failure would otherwise
// leave as Strata's error shape, and MLflow ignores unknown fields.

const PREFIXES = ['/api', '/ajax-api'] as const;

type Json = Record<string, unknown>;

/** Strata's error codes as MLflow's (databricks.proto ErrorCode) with MLflow's HTTP status for each. */
const MLFLOW_ERRORS: Record<ErrorCode, [string, number]> = {
  INVALID_ARGUMENT: ['INVALID_PARAMETER_VALUE', 400],
  NOT_FOUND: ['RESOURCE_DOES_NOT_EXIST', 404],
  ALREADY_EXISTS: ['RESOURCE_ALREADY_EXISTS', 400],
  // A concurrent writer won; the operation may be retried.
  CONFLICT: ['ABORTED', 409],
  // e.g. deleting a version an alias still points at. (MLflow's INVALID_STATE is a 500, which clients retry.)
  FAILED_PRECONDITION: ['RESOURCE_CONFLICT', 409],
  // A promotion gate refused an alias move: final, so not a retried 5xx.
  POLICY_VIOLATION: ['PERMISSION_DENIED', 403],
  FORBIDDEN: ['PERMISSION_DENIED', 403],
  UNAUTHENTICATED: ['UNAUTHENTICATED', 401],
  DATA_CORRUPTION: ['DATA_LOSS', 500],
  UNAVAILABLE: ['TEMPORARILY_UNAVAILABLE', 503],
  INTERNAL: ['INTERNAL_ERROR', 500],
};

export function mlflowErrorBody(err: unknown, ctx: ErrorContext): { status: number; body: { error_code: string; message: string } } {
  const { body } = errorBody(err, ctx);
  const [code, status] = MLFLOW_ERRORS[body.error.code] ?? ['INTERNAL_ERROR', 500];
  return { status, body: { error_code: code, message: body.error.message } };
}

// ---- request fields ----

/** A request's fields: the query string merged with a JSON object body. */
class Fields {
  constructor(private values: Json) {}

  static of(req: FastifyRequest): Fields {
    const query = (req.query ?? {}) as Json;
    if (req.body === undefined || req.body === null) return new Fields({ ...query });
    if (typeof req.body !== 'object' || Array.isArray(req.body)) throw new InvalidArgumentError('request body must be a JSON object');
    return new Fields({ ...query, ...(req.body as Json) });
  }

  /** A field as sent (metric values may be numbers or protobuf-JSON's "NaN"/"Infinity" strings). */
  raw(name: string): unknown {
    return this.values[name];
  }

  str(name: string): string | undefined {
    const v = this.values[name];
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'string') return v;
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    throw new InvalidArgumentError(`Invalid value for parameter '${name}': expected a string, got ${JSON.stringify(v)}`);
  }

  need(name: string): string {
    const v = this.str(name);
    if (v === undefined || v === '') throw new InvalidArgumentError(`Missing value for required parameter '${name}'`);
    return v;
  }

  /** An int64: a JSON number or a decimal string (protobuf-JSON allows both). */
  int(name: string): number | undefined {
    const v = this.values[name];
    if (v === undefined || v === null || v === '') return undefined;
    const n = typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`Invalid value for parameter '${name}': expected an integer, got ${JSON.stringify(v)}`);
    return n;
  }

  needInt(name: string): number {
    const v = this.int(name);
    if (v === undefined) throw new InvalidArgumentError(`Missing value for required parameter '${name}'`);
    return v;
  }

  /** A repeated string field: a JSON array, or one or more query parameters. */
  list(name: string): string[] {
    const v = this.values[name];
    if (v === undefined || v === null) return [];
    const items = Array.isArray(v) ? v : [v];
    return items.map((item, i) => {
      if (typeof item === 'string') return item;
      if (typeof item === 'number') return String(item);
      throw new InvalidArgumentError(`Invalid value for parameter '${name}[${i}]': expected a string, got ${JSON.stringify(item)}`);
    });
  }

  /** A repeated message field (a JSON array of objects). */
  objects(name: string): Json[] {
    const v = this.values[name];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) throw new InvalidArgumentError(`Invalid value for parameter '${name}': expected a list`);
    return v.map((item, i) => {
      if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new InvalidArgumentError(`Invalid value for parameter '${name}[${i}]': expected an object`);
      return item as Json;
    });
  }

  /** Repeated {key, value} tags as a record. */
  tags(name = 'tags'): Record<string, string> {
    const out: Record<string, string> = {};
    for (const t of this.objects(name)) {
      const f = new Fields(t);
      out[f.need('key')] = f.str('value') ?? '';
    }
    return out;
  }

  /** run_id, or its deprecated twin run_uuid (the client sends both). */
  runId(): string {
    const id = this.str('run_id') || this.str('run_uuid');
    if (!id) throw new InvalidArgumentError("Missing value for required parameter 'run_id'");
    return id;
  }
}

// ---- wire formats ----

const artifactRoot = (experimentId: string, runId: string) => `mlflow-artifacts:/${experimentId}/${runId}/artifacts`;
const keyValues = (record: Record<string, string>) => Object.entries(record).map(([key, value]) => ({ key, value }));

function experimentWire(e: Experiment) {
  return {
    experiment_id: e.experiment_id,
    name: e.name,
    artifact_location: e.artifact_location.replace(/^strata-artifacts:/, 'mlflow-artifacts:'),
    lifecycle_stage: e.lifecycle_stage,
    last_update_time: e.last_update_time,
    creation_time: e.creation_time,
    tags: keyValues(e.tags),
  };
}

function runInfoWire(info: RunInfo) {
  return {
    run_id: info.run_id,
    run_uuid: info.run_id,
    run_name: info.run_name,
    experiment_id: info.experiment_id,
    user_id: info.user_id,
    status: info.status,
    start_time: info.start_time,
    ...(info.end_time === null ? {} : { end_time: info.end_time }),
    artifact_uri: artifactRoot(info.experiment_id, info.run_id),
    lifecycle_stage: info.lifecycle_stage,
  };
}

function runWire(run: Run) {
  return {
    info: runInfoWire(run.info),
    data: {
      metrics: Object.entries(run.data.metrics).map(([key, m]) => ({ key, value: m.value, timestamp: m.timestamp, step: m.step })),
      params: keyValues(run.data.params),
      tags: keyValues(run.data.tags),
    },
    inputs: {},
  };
}

/** Strata has no stages: every version is in MLflow's stage "None" and READY once registered. */
function versionWire(v: ModelVersion) {
  return {
    name: v.name,
    version: String(v.version),
    creation_timestamp: v.creation_timestamp,
    last_updated_timestamp: v.last_updated_timestamp,
    user_id: v.user_id,
    current_stage: 'None',
    description: v.description,
    source: v.source,
    ...(v.run_id ? { run_id: v.run_id } : {}),
    status: 'READY',
    tags: keyValues(v.tags),
    aliases: v.aliases,
  };
}

function modelWire(m: RegisteredModel, latest: ModelVersion | null) {
  return {
    name: m.name,
    creation_timestamp: m.creation_timestamp,
    last_updated_timestamp: m.last_updated_timestamp,
    description: m.description,
    latest_versions: latest ? [versionWire(latest)] : [],
    tags: keyValues(m.tags),
    aliases: Object.entries(m.aliases).map(([alias, version]) => ({ alias, version: String(version) })),
  };
}

function viewOf(value: string | undefined): 'active' | 'deleted' | 'all' {
  switch (value?.toUpperCase()) {
    case undefined:
    case 'ACTIVE_ONLY':
    case '1':
      return 'active';
    case 'DELETED_ONLY':
    case '2':
      return 'deleted';
    case 'ALL':
    case '3':
      return 'all';
    default:
      throw new InvalidArgumentError(`Invalid view type "${value}": use ACTIVE_ONLY, DELETED_ONLY or ALL`);
  }
}

// ---- search of experiments and registry entries ----
// Run search goes to TrackingService (MLflow's full run filter syntax). These
// lists are small, so their MLflow filters (`name LIKE 'x%' AND tags.k = 'v'`)
// are applied here, to the listed items.

interface Clause {
  key: string;
  op: string;
  value: string | string[];
}

const CLAUSE =
  /\s*((?:[A-Za-z_]\w*\.)?(?:`[^`]+`|"[^"]+"|[A-Za-z_][\w.]*))\s*(!=|<>|<=|>=|=|<|>|NOT\s+IN\b|IN\b|ILIKE\b|LIKE\b)\s*('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\([^)]*\)|-?\d+(?:\.\d+)?)\s*(?:(AND)\b|$)/iy;

function unquote(text: string): string {
  return /^(['"`]).*\1$/s.test(text) ? text.slice(1, -1).replace(/\\(.)/g, '$1') : text;
}

function parseClauses(text: string | undefined, what: string, keys: string[]): Clause[] {
  if (!text?.trim()) return [];
  const out: Clause[] = [];
  CLAUSE.lastIndex = 0;
  for (let pos = 0; pos < text.length && text.slice(pos).trim(); ) {
    CLAUSE.lastIndex = pos;
    const m = CLAUSE.exec(text);
    if (!m) throw new InvalidArgumentError(`Invalid filter for ${what}: cannot read "${text.slice(pos).trim().slice(0, 40)}" (conditions like name LIKE 'x%' joined by AND)`);
    const rawKey = m[1]!;
    const dot = rawKey.match(/^(tags?)\.(.+)$/i);
    const key = dot ? `tags.${unquote(dot[2]!)}` : unquote(rawKey.replace(/^attributes?\./i, ''));
    if (!dot && !keys.includes(key)) throw new InvalidArgumentError(`Invalid filter for ${what}: unknown key "${rawKey}" (use ${[...keys, 'tags.<key>'].join(', ')})`);
    const op = m[2]!.toUpperCase().replace(/\s+/g, ' ').replace('<>', '!=');
    const raw = m[3]!;
    const value = raw.startsWith('(')
      ? raw.slice(1, -1).split(',').map((s) => unquote(s.trim())).filter((s) => s !== '')
      : unquote(raw);
    if ((op === 'IN' || op === 'NOT IN') !== Array.isArray(value)) throw new InvalidArgumentError(`Invalid filter for ${what}: ${op} does not fit ${raw}`);
    out.push({ key, op, value });
    pos = CLAUSE.lastIndex;
    if (!m[4] && text.slice(pos).trim()) throw new InvalidArgumentError(`Invalid filter for ${what}: expected AND before "${text.slice(pos).trim()}"`);
  }
  return out;
}

function likeRegex(pattern: string, insensitive: boolean): RegExp {
  const body = [...pattern].map((c) => (c === '%' ? '.*' : c === '_' ? '.' : c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('');
  return new RegExp(`^${body}$`, insensitive ? 'is' : 's');
}

function matches(actual: string | number | undefined, c: Clause): boolean {
  if (actual === undefined) return c.op === '!=' || c.op === 'NOT IN';
  const text = String(actual);
  switch (c.op) {
    case '=':
      return text === c.value;
    case '!=':
      return text !== c.value;
    case 'LIKE':
    case 'ILIKE':
      return likeRegex(String(c.value), c.op === 'ILIKE').test(text);
    case 'IN':
      return (c.value as string[]).includes(text);
    case 'NOT IN':
      return !(c.value as string[]).includes(text);
    default: {
      const [a, b] = [Number(actual), Number(c.value)];
      if (Number.isNaN(a) || Number.isNaN(b)) throw new InvalidArgumentError(`Invalid filter: ${c.key} ${c.op} needs numbers`);
      return c.op === '<' ? a < b : c.op === '<=' ? a <= b : c.op === '>' ? a > b : a >= b;
    }
  }
}

type Getter<T> = (item: T, key: string) => string | number | undefined;

function filterItems<T>(items: T[], clauses: Clause[], get: Getter<T>): T[] {
  return items.filter((item) => clauses.every((c) => matches(get(item, c.key), c)));
}

function sortItems<T>(items: T[], orderBy: string[], keys: string[], get: Getter<T>, what: string): T[] {
  const terms = orderBy.map((raw) => {
    const m = /^\s*(?:attributes?\.)?([\w.]+)\s*(ASC|DESC)?\s*$/i.exec(raw);
    if (!m || !keys.includes(m[1]!)) throw new InvalidArgumentError(`Invalid order_by for ${what}: "${raw}" (use ${keys.join(', ')}, optionally with ASC or DESC)`);
    return { key: m[1]!, desc: m[2]?.toUpperCase() === 'DESC' };
  });
  return [...items].sort((x, y) => {
    for (const t of terms) {
      const [a, b] = [get(x, t.key), get(y, t.key)];
      const d = typeof a === 'number' && typeof b === 'number' ? a - b : String(a ?? '').localeCompare(String(b ?? ''));
      if (d !== 0) return t.desc ? -d : d;
    }
    return 0;
  });
}

/** One page of `items`; page tokens are opaque offsets. */
function paginate<T>(items: T[], max: number, token: string | undefined): { items: T[]; next_page_token?: string } {
  if (max < 1) throw new InvalidArgumentError(`Invalid value for parameter 'max_results': must be at least 1`);
  const offset = token ? Number(Buffer.from(token, 'base64').toString()) : 0;
  if (!Number.isSafeInteger(offset) || offset < 0) throw new InvalidArgumentError(`Invalid page_token "${token}"`);
  const page = items.slice(offset, offset + max);
  return offset + max < items.length ? { items: page, next_page_token: Buffer.from(String(offset + max)).toString('base64') } : { items: page };
}

const tagOf = (tags: Record<string, string>, key: string) => (key.startsWith('tags.') ? tags[key.slice(5)] : undefined);

// ---- the routes ----

interface Endpoint {
  method: HTTPMethods | HTTPMethods[];
  /** After /2.0/mlflow */
  path: string;
  summary: string;
  handle(f: Fields, req: FastifyRequest): Promise<object>;
}

export interface MlflowRoutesOptions {
  tracking: TrackingService;
  registry: Registry;
  /** Whether the request's user may read a model (searches list only those); everything when absent. */
  canReadModel?: (req: FastifyRequest, model: string) => Promise<boolean>;
  errors?: ErrorContext;
}

/**
 * Who moved an alias or registered a version: the token's user; on an unauthenticated loopback server the
 * Basic-auth user the MLflow client sends (MLFLOW_TRACKING_USERNAME), else the server's default author.
 */
function actorOf(req: FastifyRequest): string {
  const principal = authenticatedUser(req);
  if (principal && !principal.owner) return principal.user;
  const auth = req.headers.authorization;
  if (auth?.startsWith('Basic ')) {
    const user = Buffer.from(auth.slice(6), 'base64').toString('utf8').split(':')[0];
    if (user) return user;
  }
  return defaultAuthor();
}

export const mlflowRoutes: FastifyPluginAsync<MlflowRoutesOptions> = async (app, { tracking, registry, errors = {}, canReadModel }) => {
  /** The models among `models` the request's user may read. */
  const readable = async <T extends { name: string }>(req: FastifyRequest, models: T[]): Promise<T[]> => {
    if (!canReadModel) return models;
    const ok = await Promise.all(models.map((m) => canReadModel(req, m.name)));
    return models.filter((_, i) => ok[i]);
  };
  // Scoped to this plugin: Strata's other routes keep {"error":{...}}.
  app.setErrorHandler((err, req, reply) => {
    const { status, body } = mlflowErrorBody(err, { ...errors, req });
    return reply.code(status).type('application/json').send(body);
  });

  const latestOf = async (m: RegisteredModel) => (m.latest_version === null ? null : registry.getVersion(m.name, m.latest_version));

  /** The run a runs:/ or mlflow-artifacts:/ source names, as the Strata ref of the file in its output commit. */
  const fromRun = async (runId: string, path: string, experimentId?: string): Promise<{ from: string; run_id: string }> => {
    const { info } = await tracking.getRun(runId);
    if (experimentId !== undefined && experimentId !== info.experiment_id) throw new NotFoundError(`run ${info.run_id} is in experiment ${info.experiment_id}, not ${experimentId}`);
    if (!info.pipeline || !info.output_commit) {
      throw new InvalidArgumentError(
        `run ${info.run_id} has no output commit (it was not made by a pipeline job, or its job has not committed), so its artifacts cannot be registered. ` +
          `Register a file in versioned data instead: source REPO@COMMIT:/path, or runs:/<run_id>/<path> for a pipeline run whose output commit contains <path>`,
      );
    }
    return { from: `${info.pipeline}@${info.output_commit}:/${path.replace(/^\/+/, '')}`, run_id: info.run_id };
  };

  /** Maps a CreateModelVersion source to registerVersion's `from` (a Strata data ref). */
  const sourceToRef = async (source: string, runId: string | undefined): Promise<{ from: string; run_id?: string }> => {
    let resolved: { from: string; run_id?: string } | undefined;
    const runs = /^runs:\/([0-9a-f]+)\/(.+)$/.exec(source);
    const proxied = /^mlflow-artifacts:(?:\/\/[^/]*)?\/+([^/]+)\/([0-9a-f]+)\/artifacts\/(.+)$/.exec(source);
    if (runs) resolved = await fromRun(runs[1]!, runs[2]!);
    else if (proxied) resolved = await fromRun(proxied[2]!, proxied[3]!, proxied[1]!);
    else if (isStrataRef(source)) resolved = { from: source, ...(runId ? { run_id: runId } : {}) };
    else {
      throw new InvalidArgumentError(
        `source "${source}" is not a model file Strata can register. Accepted sources: a versioned data ref REPO@COMMIT:/path (e.g. train@master:/model.onnx), ` +
          `or runs:/<run_id>/<path> (also mlflow-artifacts:/<experiment_id>/<run_id>/artifacts/<path>) for a run made by a pipeline job whose output commit contains <path>`,
      );
    }
    if (runId && resolved.run_id && runId !== resolved.run_id) throw new InvalidArgumentError(`run_id ${runId} does not match the run ${resolved.run_id} of source "${source}"`);
    return resolved;
  };

  const endpoints: Endpoint[] = [
    // ---- experiments ----
    {
      method: 'POST',
      path: '/experiments/create',
      summary: 'Create an experiment',
      async handle(f) {
        const location = f.str('artifact_location');
        if (location) {
          throw new InvalidArgumentError(`artifact_location "${location}" is not supported: Strata stores run artifacts itself (mlflow-artifacts:/<experiment_id>/...); omit it`);
        }
        const e = await tracking.createExperiment(f.need('name'), { tags: f.tags() });
        return { experiment_id: e.experiment_id };
      },
    },
    {
      method: 'GET',
      path: '/experiments/get',
      summary: 'Get an experiment by id',
      async handle(f) {
        return { experiment: experimentWire(await tracking.getExperiment(f.need('experiment_id'))) };
      },
    },
    {
      method: 'GET',
      path: '/experiments/get-by-name',
      summary: 'Get an experiment by name',
      async handle(f) {
        return { experiment: experimentWire(await tracking.getExperimentByName(f.need('experiment_name'))) };
      },
    },
    {
      method: ['POST', 'GET'],
      path: '/experiments/search',
      summary: "Search experiments (filter on name and tags, e.g. name LIKE 'team-%')",
      async handle(f) {
        const get: Getter<Experiment> = (e, key) =>
          key === 'name' ? e.name : key === 'creation_time' ? e.creation_time : key === 'last_update_time' ? e.last_update_time : key === 'experiment_id' ? Number(e.experiment_id) : tagOf(e.tags, key);
        const keys = ['name', 'creation_time', 'last_update_time', 'experiment_id'];
        const all = await tracking.listExperiments(viewOf(f.str('view_type')));
        const found = filterItems(all, parseClauses(f.str('filter'), 'experiments', keys), get);
        const orderBy = f.list('order_by');
        const sorted = sortItems(found, [...(orderBy.length ? orderBy : ['creation_time DESC']), 'experiment_id'], keys, get, 'experiments');
        const { items, next_page_token } = paginate(sorted, f.int('max_results') ?? 1000, f.str('page_token'));
        return { experiments: items.map(experimentWire), ...(next_page_token ? { next_page_token } : {}) };
      },
    },
    {
      method: 'POST',
      path: '/experiments/update',
      summary: 'Rename an experiment',
      async handle(f) {
        const id = f.need('experiment_id');
        const name = f.str('new_name');
        await (name ? tracking.updateExperiment(id, { name }) : tracking.getExperiment(id));
        return {};
      },
    },
    {
      method: 'POST',
      path: '/experiments/delete',
      summary: 'Mark an experiment deleted',
      async handle(f) {
        await tracking.updateExperiment(f.need('experiment_id'), { lifecycle_stage: 'deleted' });
        return {};
      },
    },
    {
      method: 'POST',
      path: '/experiments/restore',
      summary: 'Restore a deleted experiment',
      async handle(f) {
        await tracking.updateExperiment(f.need('experiment_id'), { lifecycle_stage: 'active' });
        return {};
      },
    },
    {
      method: 'POST',
      path: '/experiments/set-experiment-tag',
      summary: 'Set a tag on an experiment',
      async handle(f) {
        await tracking.updateExperiment(f.need('experiment_id'), { tags: { [f.need('key')]: f.str('value') ?? '' } });
        return {};
      },
    },

    // ---- runs ----
    {
      method: 'POST',
      path: '/runs/create',
      summary: 'Create a run',
      async handle(f) {
        const tags = f.tags();
        const run = await tracking.createRun({
          experiment_id: f.str('experiment_id') || '0',
          run_name: f.str('run_name') || tags['mlflow.runName'],
          start_time: f.int('start_time'),
          user_id: f.str('user_id') ?? tags['mlflow.user'],
          tags,
        });
        return { run: runWire(run) };
      },
    },
    {
      method: 'GET',
      path: '/runs/get',
      summary: 'Get a run with its params, latest metrics and tags',
      async handle(f) {
        return { run: runWire(await tracking.getRun(f.runId())) };
      },
    },
    {
      method: 'POST',
      path: '/runs/update',
      summary: 'Update a run (status, end time, name)',
      async handle(f) {
        const status = f.str('status');
        const info = await tracking.updateRun(f.runId(), {
          ...(status ? { status: status as RunStatus } : {}),
          ...(f.int('end_time') !== undefined ? { end_time: f.int('end_time') } : {}),
          ...(f.str('run_name') ? { run_name: f.str('run_name') } : {}),
        });
        return { run_info: runInfoWire(info) };
      },
    },
    {
      method: 'POST',
      path: '/runs/delete',
      summary: 'Mark a run deleted',
      async handle(f) {
        await tracking.setRunLifecycle(f.runId(), 'deleted');
        return {};
      },
    },
    {
      method: 'POST',
      path: '/runs/restore',
      summary: 'Restore a deleted run',
      async handle(f) {
        await tracking.setRunLifecycle(f.runId(), 'active');
        return {};
      },
    },
    {
      method: 'POST',
      path: '/runs/log-parameter',
      summary: 'Log a param (write-once: another value for the same key is refused)',
      async handle(f) {
        await tracking.logParam(f.runId(), f.need('key'), f.str('value') ?? '');
        return {};
      },
    },
    {
      method: 'POST',
      path: '/runs/log-metric',
      summary: 'Log a metric point (key, value, timestamp, step)',
      async handle(f) {
        await tracking.logMetric(f.runId(), f.need('key'), f.raw('value'), f.int('step'), f.int('timestamp'));
        return {};
      },
    },
    {
      method: 'POST',
      path: '/runs/log-batch',
      summary: 'Log metrics, params and tags in one transaction',
      async handle(f) {
        const metrics = f.objects('metrics').map((m) => {
          const mf = new Fields(m);
          return { key: mf.need('key'), value: mf.raw('value'), step: mf.int('step'), timestamp: mf.int('timestamp') };
        });
        const params = f.objects('params').map((p) => ({ key: new Fields(p).need('key'), value: new Fields(p).str('value') ?? '' }));
        const tags = f.objects('tags').map((t) => ({ key: new Fields(t).need('key'), value: new Fields(t).str('value') ?? '' }));
        await tracking.logBatch(f.runId(), { metrics, params, tags });
        return {};
      },
    },
    {
      method: 'POST',
      path: '/runs/log-model',
      summary: "Record a logged model's MLmodel metadata in the run's mlflow.log-model.history tag, as MLflow does",
      async handle(f) {
        const runId = f.runId();
        let model: unknown;
        try {
          model = JSON.parse(f.need('model_json'));
        } catch (err) {
          if (err instanceof InvalidArgumentError) throw err;
          throw new InvalidArgumentError(`model_json is not valid JSON: ${(err as Error).message}`);
        }
        if (typeof model !== 'object' || model === null || Array.isArray(model)) throw new InvalidArgumentError('model_json must be a JSON object (an MLmodel)');
        for (const field of ['artifact_path', 'flavors', 'utc_time_created', 'run_id']) {
          if (!(field in model)) throw new InvalidArgumentError(`Model json is missing mandatory fields: ${field}`);
        }
        const run = await tracking.getRun(runId);
        const prior = run.data.tags['mlflow.log-model.history'];
        let history: unknown[] = [];
        if (prior) {
          try {
            const parsed: unknown = JSON.parse(prior);
            if (Array.isArray(parsed)) history = parsed;
          } catch {
            // A hand-set tag that is not a JSON list is replaced by the history.
          }
        }
        await tracking.setTag(run.info.run_id, 'mlflow.log-model.history', JSON.stringify([...history, model]));
        return {};
      },
    },
    {
      method: 'POST',
      path: '/runs/set-tag',
      summary: 'Set a tag on a run',
      async handle(f) {
        await tracking.setTag(f.runId(), f.need('key'), f.str('value') ?? '');
        return {};
      },
    },
    {
      method: 'POST',
      path: '/runs/delete-tag',
      summary: 'Delete a tag of a run',
      async handle(f) {
        await tracking.deleteTag(f.runId(), f.need('key'));
        return {};
      },
    },
    {
      method: ['POST', 'GET'],
      path: '/runs/search',
      summary: "Search runs: MLflow filter syntax (metrics.accuracy > 0.9 and params.lr = '0.01'), order_by, paging",
      async handle(f) {
        const { runs, next_page_token } = await tracking.searchRuns({
          experiment_ids: f.list('experiment_ids'),
          filter: f.str('filter'),
          order_by: f.list('order_by'),
          max_results: f.int('max_results'),
          page_token: f.str('page_token') || undefined,
          view: viewOf(f.str('run_view_type')),
        });
        return { runs: runs.map(runWire), ...(next_page_token ? { next_page_token } : {}) };
      },
    },
    {
      method: 'GET',
      path: '/metrics/get-history',
      summary: "A metric's full history (an unknown key of a known run has an empty history, as in MLflow)",
      async handle(f) {
        const runId = f.runId();
        const key = f.need('metric_key');
        await tracking.runRow(runId); // an unknown run is an error, an unknown metric is not
        let points: Awaited<ReturnType<TrackingService['metricHistory']>> = [];
        try {
          points = await tracking.metricHistory(runId, key);
        } catch (err) {
          if (!(err instanceof NotFoundError)) throw err;
        }
        const max = f.int('max_results');
        const { items, next_page_token } = max === undefined && !f.str('page_token') ? { items: points } : paginate(points, max ?? 25_000, f.str('page_token'));
        return { metrics: items.map((p) => ({ key: p.key, value: p.value, timestamp: p.timestamp, step: p.step })), ...(next_page_token ? { next_page_token } : {}) };
      },
    },
    {
      method: 'GET',
      path: '/artifacts/list',
      summary: "List a run's artifacts under a directory (paths relative to the run's artifact root)",
      async handle(f) {
        const runId = f.runId();
        const { info } = await tracking.getRun(runId);
        const files = await tracking.listArtifacts(info.run_id, f.str('path') ?? '');
        return { root_uri: artifactRoot(info.experiment_id, info.run_id), files: files.map(fileWire) };
      },
    },

    // ---- registered models ----
    {
      method: 'POST',
      path: '/registered-models/create',
      summary: 'Create a registered model',
      async handle(f) {
        const m = await registry.createModel(f.need('name'), { description: f.str('description'), tags: f.tags() });
        return { registered_model: modelWire(m, null) };
      },
    },
    {
      method: 'GET',
      path: '/registered-models/get',
      summary: 'Get a registered model with its latest version and aliases',
      async handle(f) {
        const m = await registry.getModel(f.need('name'));
        return { registered_model: modelWire(m, await latestOf(m)) };
      },
    },
    {
      method: 'GET',
      path: '/registered-models/search',
      summary: "Search registered models (filter on name and tags, e.g. name LIKE 'spam%')",
      async handle(f, req) {
        const get: Getter<RegisteredModel> = (m, key) =>
          key === 'name' ? m.name : key === 'creation_timestamp' ? m.creation_timestamp : key === 'last_updated_timestamp' ? m.last_updated_timestamp : tagOf(m.tags, key);
        const keys = ['name', 'creation_timestamp', 'last_updated_timestamp'];
        const found = filterItems(await readable(req, await registry.listModels()), parseClauses(f.str('filter'), 'registered models', keys), get);
        const sorted = sortItems(found, [...f.list('order_by'), 'name'], keys, get, 'registered models');
        const { items, next_page_token } = paginate(sorted, f.int('max_results') ?? 100, f.str('page_token'));
        const models = await Promise.all(items.map(async (m) => modelWire(m, await latestOf(m))));
        return { registered_models: models, ...(next_page_token ? { next_page_token } : {}) };
      },
    },
    {
      method: 'PATCH',
      path: '/registered-models/update',
      summary: "Update a registered model's description",
      async handle(f) {
        const m = await registry.updateModel(f.need('name'), { description: f.str('description') });
        return { registered_model: modelWire(m, await latestOf(m)) };
      },
    },
    {
      method: 'POST',
      path: '/registered-models/rename',
      summary: 'Not supported: registered models cannot be renamed in Strata (answers 400)',
      async handle(f) {
        await registry.getModel(f.need('name'));
        throw new InvalidArgumentError(
          'renaming a registered model is not supported: versions, aliases and their history stay under the name they were registered with. Create a model with the new name and register versions there',
        );
      },
    },
    {
      method: 'DELETE',
      path: '/registered-models/delete',
      summary: 'Delete a registered model with its versions and aliases (the alias history is kept)',
      async handle(f) {
        await registry.deleteModel(f.need('name'));
        return {};
      },
    },
    {
      method: 'POST',
      path: '/registered-models/set-tag',
      summary: 'Set a tag on a registered model',
      async handle(f) {
        await registry.setModelTag(f.need('name'), f.need('key'), f.str('value') ?? '');
        return {};
      },
    },
    {
      method: 'DELETE',
      path: '/registered-models/delete-tag',
      summary: 'Delete a tag of a registered model',
      async handle(f) {
        await registry.setModelTag(f.need('name'), f.need('key'), null);
        return {};
      },
    },
    {
      method: 'POST',
      path: '/registered-models/alias',
      summary: 'Point an alias at a version (promotion gates apply; the move is recorded in the alias history)',
      async handle(f, req) {
        await registry.setAlias(f.need('name'), f.need('alias'), f.needInt('version'), { actor: actorOf(req), reason: 'MLflow API' });
        return {};
      },
    },
    {
      method: 'DELETE',
      path: '/registered-models/alias',
      summary: 'Remove an alias (recorded in the alias history)',
      async handle(f, req) {
        await registry.deleteAlias(f.need('name'), f.need('alias'), { actor: actorOf(req), reason: 'MLflow API' });
        return {};
      },
    },
    {
      method: 'GET',
      path: '/registered-models/alias',
      summary: 'The version an alias points at',
      async handle(f) {
        return { model_version: versionWire(await registry.getVersionByAlias(f.need('name'), f.need('alias'))) };
      },
    },
    {
      method: ['POST', 'GET'],
      path: '/registered-models/get-latest-versions',
      summary: 'The latest version (Strata has no stages: every version is in stage "None")',
      async handle(f) {
        const m = await registry.getModel(f.need('name'));
        const stages = f.list('stages').map((s) => s.toLowerCase());
        const latest = stages.length === 0 || stages.includes('none') ? await latestOf(m) : null;
        return { model_versions: latest ? [versionWire(latest)] : [] };
      },
    },

    // ---- model versions ----
    {
      method: 'POST',
      path: '/model-versions/create',
      summary: 'Register a version from REPO@COMMIT:/path, or runs:/<run_id>/<path> of a pipeline run',
      async handle(f, req) {
        const ref = await sourceToRef(f.need('source'), f.str('run_id') || undefined);
        const v = await registry.registerVersion(f.need('name'), { ...ref, description: f.str('description'), tags: f.tags(), user: actorOf(req) });
        return { model_version: versionWire(v) };
      },
    },
    {
      method: 'GET',
      path: '/model-versions/get',
      summary: 'Get a model version',
      async handle(f) {
        return { model_version: versionWire(await registry.getVersion(f.need('name'), f.needInt('version'))) };
      },
    },
    {
      method: 'GET',
      path: '/model-versions/search',
      summary: "Search model versions (filter on name, run_id, source_path, version_number and tags, e.g. name = 'spam')",
      async handle(f, req) {
        const get: Getter<ModelVersion> = (v, key) => {
          switch (key) {
            case 'name':
              return v.name;
            case 'run_id':
              return v.run_id ?? undefined;
            case 'source_path':
              return v.source;
            case 'version_number':
              return v.version;
            case 'user_id':
              return v.user_id;
            case 'creation_timestamp':
              return v.creation_timestamp;
            case 'last_updated_timestamp':
              return v.last_updated_timestamp;
            default:
              return tagOf(v.tags, key);
          }
        };
        const keys = ['name', 'run_id', 'source_path', 'version_number', 'user_id', 'creation_timestamp', 'last_updated_timestamp'];
        const clauses = parseClauses(f.str('filter'), 'model versions', keys);
        const named = clauses.find((c) => c.key === 'name' && c.op === '=');
        const candidates: { name: string }[] = named ? [{ name: named.value as string }] : await registry.listModels();
        const names = (await readable(req, candidates)).map((m) => m.name);
        const versions: ModelVersion[] = [];
        for (const name of names) {
          try {
            versions.push(...(await registry.listVersions(name)));
          } catch (err) {
            if (!(err instanceof NotFoundError)) throw err; // name = 'unknown' matches nothing, as in MLflow
          }
        }
        const found = filterItems(versions, clauses, get);
        const sorted = sortItems(found, [...f.list('order_by'), 'name ASC', 'version_number DESC'], keys, get, 'model versions');
        const { items, next_page_token } = paginate(sorted, f.int('max_results') ?? 200_000, f.str('page_token'));
        return { model_versions: items.map(versionWire), ...(next_page_token ? { next_page_token } : {}) };
      },
    },
    {
      method: 'PATCH',
      path: '/model-versions/update',
      summary: "Update a model version's description",
      async handle(f) {
        return { model_version: versionWire(await registry.updateVersion(f.need('name'), f.needInt('version'), { description: f.str('description') })) };
      },
    },
    {
      method: 'DELETE',
      path: '/model-versions/delete',
      summary: 'Delete a model version (refused while an alias points at it)',
      async handle(f) {
        await registry.deleteVersion(f.need('name'), f.needInt('version'));
        return {};
      },
    },
    {
      method: 'POST',
      path: '/model-versions/set-tag',
      summary: 'Set a tag on a model version',
      async handle(f) {
        await registry.setVersionTag(f.need('name'), f.needInt('version'), f.need('key'), f.str('value') ?? '');
        return {};
      },
    },
    {
      method: 'DELETE',
      path: '/model-versions/delete-tag',
      summary: 'Delete a tag of a model version',
      async handle(f) {
        await registry.setVersionTag(f.need('name'), f.needInt('version'), f.need('key'), null);
        return {};
      },
    },
    {
      method: 'GET',
      path: '/model-versions/get-download-uri',
      summary: "Where a version's file is: its Strata data ref (REPO@COMMIT:/path)",
      async handle(f) {
        return { artifact_uri: (await registry.getVersion(f.need('name'), f.needInt('version'))).source };
      },
    },
    {
      method: 'POST',
      path: '/model-versions/transition-stage',
      summary: 'Not supported: Strata has aliases, not stages (answers 400)',
      async handle(f) {
        await registry.getVersion(f.need('name'), f.needInt('version'));
        throw new InvalidArgumentError(
          `model version stages are not supported (MLflow deprecated them): point an alias at the version instead (POST registered-models/alias with alias "${String(f.str('stage') ?? 'production').toLowerCase()}")`,
        );
      },
    },
  ];

  for (const prefix of PREFIXES) {
    for (const e of endpoints) {
      app.route({
        method: e.method,
        url: `${prefix}/2.0/mlflow${e.path}`,
        // One documented copy; the /ajax-api twins (for MLflow's web UI) are hidden.
        schema: prefix === '/api' ? { summary: e.summary, tags: ['mlflow'] } : { hide: true },
        handler: async (req) => e.handle(Fields.of(req), req),
      });
    }
  }

  // The artifact proxy takes any content type as raw bytes; JSON routes above keep Fastify's JSON parser.
  await app.register(async (raw) => artifactRoutes(raw, tracking));
};

function fileWire(a: { path: string; is_dir: boolean; file_size?: number }) {
  return { path: a.path, is_dir: a.is_dir, ...(a.file_size === undefined ? {} : { file_size: a.file_size }) };
}

/** A Strata data ref REPO[@REF]:/path, not a URI of some other scheme (s3://, file:, models:, dbfs:/ ...). */
function isStrataRef(source: string): boolean {
  const m = /^([A-Za-z0-9][\w.-]*)(@[^:/]+)?:(.*)$/.exec(source);
  if (!m || m[3]!.startsWith('//')) return false;
  return m[2] !== undefined || !OTHER_SCHEMES.has(m[1]!.toLowerCase());
}

const OTHER_SCHEMES = new Set(['file', 'models', 'runs', 'dbfs', 's3', 'gs', 'wasbs', 'abfss', 'hdfs', 'http', 'https', 'ftp', 'sftp', 'mlflow-artifacts']);

/**
 * The mlflow-artifacts proxy: <experiment_id>/<run_id>/artifacts/<path>, the
 * layout of the runs' artifact_uri. Uploads are streamed into the run's
 * content-addressed artifacts.
 */
async function artifactRoutes(app: FastifyInstance, tracking: TrackingService): Promise<void> {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null));

  const locate = async (path: string): Promise<{ runId: string; rest: string }> => {
    const m = /^\/*([^/]+)\/([^/]+)\/artifacts(?:\/(.*))?$/.exec(path);
    if (!m) {
      throw new InvalidArgumentError(`artifact path "${path}" is not under a run: expected <experiment_id>/<run_id>/artifacts[/<path>] (a run's artifact_uri)`);
    }
    const { info } = await tracking.getRun(m[2]!);
    if (info.experiment_id !== m[1]) throw new NotFoundError(`run ${info.run_id} is in experiment ${info.experiment_id}, not ${m[1]}`);
    return { runId: info.run_id, rest: (m[3] ?? '').replace(/\/+$/, '') };
  };

  for (const prefix of PREFIXES) {
    const base = `${prefix}/2.0/mlflow-artifacts/artifacts`;
    const doc = (summary: string) => (prefix === '/api' ? { summary, tags: ['mlflow'] } : { hide: true });

    app.get<{ Querystring: { path?: string } }>(base, { schema: doc('List artifacts: ?path=<experiment_id>/<run_id>/artifacts[/<dir>]') }, async (req) => {
      const { runId, rest } = await locate(String(req.query.path ?? ''));
      const files = await tracking.listArtifacts(runId, rest);
      // Names relative to the listed directory, as MLflow's proxy answers.
      return { files: files.map((a) => fileWire({ ...a, path: a.path.slice(a.path.lastIndexOf('/') + 1) })) };
    });

    app.put<{ Params: { '*': string } }>(`${base}/*`, { schema: doc("Upload an artifact to <experiment_id>/<run_id>/artifacts/<path> (the body is the file's bytes)") }, async (req) => {
      const { runId, rest } = await locate(req.params['*']);
      await tracking.logArtifact(runId, rest, req.raw as AsyncIterable<Uint8Array>);
      return {};
    });

    app.get<{ Params: { '*': string } }>(`${base}/*`, { schema: doc('Download an artifact from <experiment_id>/<run_id>/artifacts/<path>') }, async (req, reply) => {
      const { runId, rest } = await locate(req.params['*']);
      const { size, stream } = await tracking.readArtifact(runId, rest);
      const chunks = stream[Symbol.asyncIterator]();
      const first = await chunks.next(); // a failure here is still a proper error response
      reply.headers({ 'content-type': 'application/octet-stream', 'content-length': String(size) });
      return reply.send(Readable.from(remaining(first, chunks), { objectMode: false }));
    });

    // Large-file multipart uploads: answered exactly as MLflow's server does for a store without them,
    // so the client (MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD) falls back to a single PUT.
    app.post(`${prefix}/2.0/mlflow-artifacts/mpu/*`, { schema: { hide: true } }, async (_req, reply: FastifyReply) =>
      reply.code(501).send({ error_code: 'NOT_IMPLEMENTED', message: 'Multipart upload is not supported for the current artifact repository' }),
    );

    // Anything else under the MLflow prefixes: MLflow's ENDPOINT_NOT_FOUND, not Strata's 404 shape.
    for (const area of ['mlflow', 'mlflow-artifacts']) {
      app.all(`${prefix}/2.0/${area}/*`, { schema: { hide: true } }, async (req, reply: FastifyReply) =>
        reply.code(404).send({
          error_code: 'ENDPOINT_NOT_FOUND',
          message: `Strata's MLflow-compatible API does not serve ${req.method} ${req.url.split('?')[0]}`,
        }),
      );
    }
  }
}

async function* remaining<T>(first: IteratorResult<T>, it: AsyncIterator<T>): AsyncGenerator<T> {
  for (let r = first; !r.done; r = await it.next()) yield r.value;
}
