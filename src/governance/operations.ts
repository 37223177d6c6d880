import { parseRef } from '../data/refs.js';
import { checkName } from '../data/paths.js';
import { InvalidArgumentError } from '../errors.js';
import { inputRepos, validateSpec } from '../pipelines/spec.js';
import { RESOURCE_KINDS, type Level, type Resource } from './access.js';

// The one table of what every operation is: its action name (what the audit
// log records), the level it needs, and on which resource. Both request
// boundaries use it: the HTTP server (api/auth.ts, keyed by method + route)
// and the in-process CLI client (cli/local-client.ts, keyed by client
// method), so both record the same action names.
//
// Targets are taken from the request's fields (path params, query and JSON
// body merged; the local client builds the same names from its arguments).
// Repo names come out of refs through parseRef, which rejects anything that
// is not a plain name: `emails/../secret@master` never becomes repo:emails.

export type Fields = Record<string, unknown>;

/**
 * public: no token, not checked. self: any authenticated user (whoami).
 * member: any user holding at least one grant (listings: names, not data).
 */
export type OperationLevel = Level | 'public' | 'self' | 'member';

export interface Need {
  level: Level;
  resource: Resource;
}

export interface Target {
  /** What the audit entry names: repo:emails@master:/a.txt, model:spam, pipeline:features, instance ... */
  target: string;
  /** Every level the caller must hold; empty for public/self/member operations. */
  needs: Need[];
}

/** Lookups a target may need (a job's pipeline, the repos an existing pipeline reads). */
export interface Lookup {
  jobPipeline(id: string): Promise<string>;
  /** The inputs of the pipeline's current spec ([] when there is no such pipeline). */
  pipelineInputRepos(name: string): Promise<{ kind: string; name: string; repo: string }[]>;
}

export interface Operation {
  action: string;
  level: OperationLevel;
  /** Predictions are logged by the prediction log instead; health, metrics and the OpenAPI document are not data. */
  audited: boolean;
  target(f: Fields, lookup: Lookup): Promise<Target> | Target;
}

const INSTANCE = 'instance';

function str(f: Fields, key: string): string {
  const v = f[key];
  if (typeof v === 'string' && v !== '') return v;
  if (typeof v === 'number') return String(v);
  throw new InvalidArgumentError(`missing ${key}`);
}

function optStr(f: Fields, key: string): string | undefined {
  const v = f[key];
  return typeof v === 'string' && v !== '' ? v : typeof v === 'number' ? String(v) : undefined;
}

const name = (f: Fields, key: string, what: string) => checkName(str(f, key), what);

// ---- target builders ----

const onInstance =
  (level: Level, label?: (f: Fields) => string) =>
  (f: Fields): Target => ({ target: label ? label(f) : INSTANCE, needs: [{ level, resource: '*' }] });

const nothing = (label = INSTANCE) => (): Target => ({ target: label, needs: [] });

const onRepo = (level: Level, key = 'repo') => (f: Fields): Target => {
  const repo = name(f, key, 'repo name');
  const branch = optStr(f, 'branch');
  return { target: `repo:${repo}${branch ? `@${checkName(branch, 'branch name')}` : ''}`, needs: [{ level, resource: `repo:${repo}` }] };
};

/** A ref field (repo[@rev][:/path]): the audit names the ref, the check is on its repo. */
const onRef = (level: Level, ...keys: string[]) => (f: Fields): Target => {
  const refs = keys.map((k) => str(f, k));
  const needs = refs.map((r): Need => ({ level, resource: `repo:${parseRef(r).repo}` }));
  return { target: refs.map((r) => `repo:${r}`).join(' '), needs };
};

const onKind = (kind: 'pipeline' | 'model' | 'deployment', level: Level, key = 'name') => (f: Fields): Target => {
  const n = name(f, key, `${kind} name`);
  return { target: `${kind}:${n}`, needs: [{ level, resource: `${kind}:${n}` }] };
};

/** A catalog entity (kind, name): the rights on that repo, pipeline, model or deployment; an unknown kind needs them instance-wide. */
const catalogEntity = (f: Fields, level: Level): Target => {
  const kind = str(f, 'kind');
  if (kind === 'repo') return onRepo(level, 'name')(f);
  if (kind === 'pipeline' || kind === 'model' || kind === 'deployment') return onKind(kind, level)(f);
  return { target: `${kind}:${str(f, 'name')}`, needs: [{ level, resource: '*' }] };
};

const onJob = (level: Level) => async (f: Fields, lookup: Lookup): Promise<Target> => {
  const pipeline = await lookup.jobPipeline(str(f, 'id'));
  return { target: `pipeline:${pipeline}/job:${str(f, 'id')}`, needs: [{ level, resource: `pipeline:${pipeline}` }] };
};

/** `kind` + `name` fields naming a repo, pipeline, model or deployment (NAME, NAME@VERSION or NAME@ALIAS); other kinds are instance-wide. */
const onEntity = (level: Level) => (f: Fields): Target => {
  const kind = str(f, 'kind');
  const full = str(f, 'name');
  const at = full.indexOf('@');
  const n = checkName(at >= 0 ? full.slice(0, at) : full, `${kind} name`);
  if (!(RESOURCE_KINDS as readonly string[]).includes(kind)) return { target: `${kind}:${full}`, needs: [{ level, resource: '*' }] };
  return { target: `${kind}:${full}`, needs: [{ level, resource: `${kind}:${n}` as Resource }] };
};

/**
 * What a deployment change needs besides write: read on every model it serves, and admin on the instance
 * for a process runtime `command`, which the server runs with the shell, unsandboxed, as its own OS user
 * (so it could read the instance's database and audit key): setting one is running code on the host.
 */
function deploymentNeeds(f: Fields): Need[] {
  const models = ['model', 'canary', 'shadow'].map((k) => optStr(f, k)).filter((m): m is string => m !== undefined);
  const needs = models.map((m): Need => ({ level: 'read', resource: modelOf(m) }));
  if (f.command !== undefined && f.command !== null) needs.push({ level: 'admin', resource: '*' });
  return needs;
}

/** The model a deployment target names: MODEL@ALIAS, MODEL@VERSION (canary: MODEL@VERSION=PERCENT). */
function modelOf(text: string): Resource {
  const at = text.indexOf('@');
  return `model:${checkName(at >= 0 ? text.slice(0, at) : text, `model name in "${text}"`)}`;
}

function op(action: string, level: OperationLevel, target: Operation['target'], audited = level !== 'public'): Operation {
  return { action, level, audited, target };
}

const OPERATION_LIST: Operation[] = [
  // ---- data ----
  op('repo.create', 'write', (f) => ({ target: `repo:${name(f, 'name', 'repo name')}`, needs: [{ level: 'write', resource: '*' }] })),
  op('repo.list', 'member', nothing('repos')),
  op('repo.inspect', 'read', onRepo('read')),
  op('repo.delete', 'write', onRepo('write')),
  op('branch.create', 'write', (f) => {
    const t = onRepo('write')(f);
    const from = optStr(f, 'from');
    // A bare `from` (master, a commit id) is a branch or commit of this repo, as DataService.createBranch
    // reads it, not a repo name. A full ref into another repo would copy its data: it needs read there.
    const ref = from !== undefined && (from.includes('@') || from.includes(':'));
    return { target: `${t.target}@${name(f, 'name', 'branch name')}`, needs: [...t.needs, ...(ref ? onRef('read', 'from')(f).needs : [])] };
  }),
  op('branch.list', 'read', onRepo('read')),
  op('branch.delete', 'write', onRepo('write')),
  op('commit.create', 'write', onRepo('write')),
  op('commit.inspect', 'read', onRef('read', 'ref')),
  op('commit.log', 'read', onRef('read', 'ref')),
  op('commit.diff', 'read', onRef('read', 'from', 'to')),
  op('file.list', 'read', onRef('read', 'ref')),
  op('file.walk', 'read', onRef('read', 'ref')),
  op('file.read', 'read', onRef('read', 'ref')),
  op('instance.fsck', 'admin', onInstance('admin')),
  op('instance.health', 'public', nothing()),
  op('api.openapi', 'public', nothing()),
  op('lineage.read', 'read', onRef('read', 'ref')),

  // ---- pipelines ----
  op('pipeline.create', 'write', async (f, lookup) => {
    // Validated here only to find the inputs; the service validates again and reports errors in full.
    const spec = validateSpec(f.spec);
    const pipeline = spec.pipeline.name;
    const update = f.update === true || f.update === 'true';
    // A new pipeline creates its output repo (write on the instance); updating needs write on the pipeline.
    const needs: Need[] = [{ level: 'write', resource: update ? `pipeline:${pipeline}` : '*' }];
    // Cron and git inputs commit into their repo (a cron with overwrite replaces its content), the pipeline
    // reads it, and deleting the pipeline deletes it; a cron may name any repo (cron.repo). So a cron or git
    // input repo the pipeline does not have yet needs write there.
    const own = update ? (await lookup.pipelineInputRepos(pipeline)).map((i) => i.repo) : [];
    for (const input of inputRepos(spec)) {
      if (input.kind === 'pfs') needs.push({ level: 'read', resource: `repo:${input.repo}` });
      else if (!own.includes(input.repo)) needs.push({ level: 'write', resource: `repo:${input.repo}` });
    }
    return { target: `pipeline:${pipeline}`, needs };
  }),
  op('pipeline.list', 'member', nothing('pipelines')),
  op('pipeline.inspect', 'read', onKind('pipeline', 'read')),
  op('pipeline.delete', 'write', async (f, lookup) => {
    // Deleting a pipeline deletes its cron and git input repos: one not named <pipeline>_<input> (cron.repo
    // names any repo) is someone else's, so it needs write there.
    const t = onKind('pipeline', 'write')(f);
    const pipeline = name(f, 'name', 'pipeline name');
    const foreign = (await lookup.pipelineInputRepos(pipeline)).filter((i) => i.kind !== 'pfs' && i.repo !== `${pipeline}_${i.name}`);
    return { target: t.target, needs: [...t.needs, ...foreign.map((i): Need => ({ level: 'write', resource: `repo:${i.repo}` }))] };
  }),
  op('job.list', 'member', (f) => {
    const pipeline = optStr(f, 'pipeline');
    return pipeline ? onKind('pipeline', 'read', 'pipeline')(f) : { target: 'jobs', needs: [] };
  }),
  op('job.inspect', 'read', onJob('read')),
  op('job.stop', 'write', onJob('write')),
  op('job.datums', 'read', onJob('read')),
  op('job.logs', 'read', onJob('read')),
  op('job.wait', 'member', (f) => (optStr(f, 'ref') ? onRef('read', 'ref')(f) : { target: 'jobs', needs: [] })),
  // GitHub cannot send a Strata token; the hook only makes watched git inputs fetch now, which polling does anyway.
  op('pipeline.git_webhook', 'public', nothing('git'), true),

  // ---- tracking (instance-wide: runs have no per-resource grants) ----
  op('experiment.list', 'member', nothing('experiments')),
  op('experiment.create', 'write', onInstance('write', (f) => `experiment:${optStr(f, 'name') ?? ''}`)),
  op('run.create', 'write', onInstance('write', () => 'runs')),
  op('run.search', 'read', onInstance('read', () => 'runs')),
  op('run.compare', 'read', onInstance('read', () => 'runs')),
  op('run.inspect', 'read', onInstance('read', (f) => `run:${str(f, 'id')}`)),
  op('run.update', 'write', onInstance('write', (f) => `run:${str(f, 'id')}`)),
  op('run.log', 'write', onInstance('write', (f) => `run:${str(f, 'id')}`)),
  op('run.metrics', 'read', onInstance('read', (f) => `run:${str(f, 'id')}`)),
  op('run.artifacts', 'read', onInstance('read', (f) => `run:${str(f, 'id')}`)),

  // ---- model registry ----
  op('model.create', 'write', (f) => ({ target: `model:${name(f, 'name', 'model name')}`, needs: [{ level: 'write', resource: '*' }] })),
  op('model.list', 'member', nothing('models')),
  op('model.inspect', 'read', onKind('model', 'read')),
  op('model.update', 'write', onKind('model', 'write')),
  op('model.delete', 'write', onKind('model', 'write')),
  op('model.version.create', 'write', (f) => {
    // Registering reads the file at `from`; a new model is created on first registration.
    const t = onKind('model', 'write')(f);
    return { target: t.target, needs: [...t.needs, ...onRef('read', 'from')(f).needs] };
  }),
  op('model.version.list', 'read', onKind('model', 'read')),
  op('model.version.inspect', 'read', onKind('model', 'read')),
  op('model.version.update', 'write', onKind('model', 'write')),
  op('model.version.delete', 'write', onKind('model', 'write')),
  op('model.version.tag', 'write', onKind('model', 'write')),
  op('model.alias.inspect', 'read', onKind('model', 'read')),
  op('model.alias.set', 'write', (f) => ({ ...onKind('model', 'write')(f), target: `model:${name(f, 'name', 'model name')}@${str(f, 'alias')}` })),
  op('model.alias.delete', 'write', (f) => ({ ...onKind('model', 'write')(f), target: `model:${name(f, 'name', 'model name')}@${str(f, 'alias')}` })),
  op('model.alias.at', 'read', onKind('model', 'read')),
  op('model.alias.history', 'read', onKind('model', 'read')),
  op('model.gates.inspect', 'read', onKind('model', 'read')),
  op('model.gates.set', 'write', onKind('model', 'write')),

  // ---- serving ----
  op('serving.metrics', 'public', nothing('metrics')),
  op('serving.health', 'public', nothing()),
  op('serving.server_metadata', 'public', nothing()),
  // Prediction traffic is recorded by the prediction log, not once per request in the audit log.
  op('deployment.metadata', 'read', onKind('deployment', 'read'), false),
  op('deployment.ready', 'read', onKind('deployment', 'read'), false),
  op('deployment.infer', 'read', onKind('deployment', 'read'), false),
  op('deployment.predict', 'read', onKind('deployment', 'read'), false),
  op('deployment.create', 'write', (f) => ({
    target: `deployment:${name(f, 'name', 'deployment name')}`,
    needs: [{ level: 'write', resource: '*' }, ...deploymentNeeds(f)],
  })),
  op('deployment.list', 'member', nothing('deployments')),
  op('deployment.inspect', 'read', onKind('deployment', 'read')),
  op('deployment.update', 'write', (f) => {
    const t = onKind('deployment', 'write')(f);
    return { target: t.target, needs: [...t.needs, ...deploymentNeeds(f)] };
  }),
  op('deployment.delete', 'write', onKind('deployment', 'write')),

  // ---- classification (PII) ----
  op('classification.read', 'read', onRef('read', 'ref')),
  op('classification.labels', 'read', onEntity('read')),
  op('classification.detector.list', 'member', nothing('detectors')),
  op('classification.detector.create', 'admin', onInstance('admin', (f) => `detector:${str(f, 'name')}`)),
  op('classification.detector.delete', 'admin', onInstance('admin', (f) => `detector:${str(f, 'name')}`)),

  // ---- catalog ----
  op('catalog.search', 'member', nothing('catalog')),
  op('catalog.inspect', 'read', (f) => catalogEntity(f, 'read')),
  op('catalog.annotate', 'write', (f) => catalogEntity(f, 'write')),


  // ---- audit log: it names every user and target, so reading it is for admins (and is itself recorded) ----
  op('audit.list', 'admin', onInstance('admin', () => 'audit')),
  op('audit.checkpoint', 'admin', onInstance('admin', () => 'audit')),
  op('audit.verify', 'admin', onInstance('admin', () => 'audit')),

  // ---- access control ----
  op('user.create', 'admin', onInstance('admin', (f) => `user:${str(f, 'name')}`)),
  op('user.list', 'admin', onInstance('admin', () => 'users')),
  op('user.delete', 'admin', onInstance('admin', (f) => `user:${str(f, 'name')}`)),
  op('token.create', 'admin', onInstance('admin', (f) => `user:${optStr(f, 'user') ?? 'self'}`)),
  op('token.list', 'admin', onInstance('admin', () => 'tokens')),
  op('token.revoke', 'admin', onInstance('admin', (f) => `token:${str(f, 'id')}`)),
  op('grant.create', 'admin', onInstance('admin', (f) => `user:${str(f, 'user')}`)),
  op('grant.delete', 'admin', onInstance('admin', (f) => `user:${str(f, 'user')}`)),
  op('access.whoami', 'self', nothing('self'), false),
];

export const OPERATIONS: ReadonlyMap<string, Operation> = new Map(OPERATION_LIST.map((o) => [o.action, o]));

export function operation(action: string): Operation {
  const o = OPERATIONS.get(action);
  if (!o) throw new Error(`unknown operation ${action}`);
  return o;
}

/** HTTP routes (`METHOD url` as Fastify registers them) to actions. MLflow's routes are classified by mlflowAction. */
const ROUTES: Record<string, string> = {
  'POST /api/v1/repos': 'repo.create',
  'GET /api/v1/repos': 'repo.list',
  'GET /api/v1/repos/:repo': 'repo.inspect',
  'DELETE /api/v1/repos/:repo': 'repo.delete',
  'POST /api/v1/repos/:repo/branches': 'branch.create',
  'GET /api/v1/repos/:repo/branches': 'branch.list',
  'DELETE /api/v1/repos/:repo/branches/:branch': 'branch.delete',
  'POST /api/v1/repos/:repo/branches/:branch/commits': 'commit.create',
  'GET /api/v1/commit': 'commit.inspect',
  'GET /api/v1/log': 'commit.log',
  'GET /api/v1/diff': 'commit.diff',
  'GET /api/v1/ls': 'file.list',
  'GET /api/v1/walk': 'file.walk',
  'GET /api/v1/file': 'file.read',
  'GET /api/v1/health': 'instance.health',
  'POST /api/v1/fsck': 'instance.fsck',
  'GET /openapi.json': 'api.openapi',
  'GET /api/v1/lineage': 'lineage.read',
  'POST /api/v1/pipelines': 'pipeline.create',
  'GET /api/v1/pipelines': 'pipeline.list',
  'GET /api/v1/pipelines/:name': 'pipeline.inspect',
  'DELETE /api/v1/pipelines/:name': 'pipeline.delete',
  'GET /api/v1/jobs': 'job.list',
  'GET /api/v1/jobs/:id': 'job.inspect',
  'POST /api/v1/jobs/:id/stop': 'job.stop',
  'GET /api/v1/jobs/:id/datums': 'job.datums',
  'GET /api/v1/jobs/:id/logs': 'job.logs',
  'POST /api/v1/wait': 'job.wait',
  'POST /api/v1/webhooks/git': 'pipeline.git_webhook',
  'GET /api/v1/experiments': 'experiment.list',
  'POST /api/v1/experiments': 'experiment.create',
  'POST /api/v1/runs': 'run.create',
  'POST /api/v1/runs/search': 'run.search',
  'POST /api/v1/runs/compare': 'run.compare',
  'GET /api/v1/runs/:id': 'run.inspect',
  'PATCH /api/v1/runs/:id': 'run.update',
  'POST /api/v1/runs/:id/log': 'run.log',
  'GET /api/v1/runs/:id/metrics': 'run.metrics',
  'GET /api/v1/runs/:id/artifacts': 'run.artifacts',
  'POST /api/v1/models': 'model.create',
  'GET /api/v1/models': 'model.list',
  'GET /api/v1/models/:name': 'model.inspect',
  'PATCH /api/v1/models/:name': 'model.update',
  'DELETE /api/v1/models/:name': 'model.delete',
  'POST /api/v1/models/:name/versions': 'model.version.create',
  'GET /api/v1/models/:name/versions': 'model.version.list',
  'GET /api/v1/models/:name/versions/:version': 'model.version.inspect',
  'PATCH /api/v1/models/:name/versions/:version': 'model.version.update',
  'DELETE /api/v1/models/:name/versions/:version': 'model.version.delete',
  'PUT /api/v1/models/:name/versions/:version/tags/:key': 'model.version.tag',
  'GET /api/v1/models/:name/aliases/:alias': 'model.alias.inspect',
  'PUT /api/v1/models/:name/aliases/:alias': 'model.alias.set',
  'DELETE /api/v1/models/:name/aliases/:alias': 'model.alias.delete',
  'GET /api/v1/models/:name/aliases/:alias/at': 'model.alias.at',
  'GET /api/v1/models/:name/alias-history': 'model.alias.history',
  'GET /api/v1/models/:name/gates/:alias': 'model.gates.inspect',
  'PUT /api/v1/models/:name/gates/:alias': 'model.gates.set',
  'GET /metrics': 'serving.metrics',
  'GET /v2/health/live': 'serving.health',
  'GET /v2/health/ready': 'serving.health',
  'GET /v2': 'serving.server_metadata',
  'GET /v2/models/:name': 'deployment.metadata',
  'GET /v2/models/:name/versions/:version': 'deployment.metadata',
  'GET /v2/models/:name/ready': 'deployment.ready',
  'GET /v2/models/:name/versions/:version/ready': 'deployment.ready',
  'POST /v2/models/:name/infer': 'deployment.infer',
  'POST /v2/models/:name/versions/:version/infer': 'deployment.infer',
  'POST /api/v1/deployments': 'deployment.create',
  'GET /api/v1/deployments': 'deployment.list',
  'GET /api/v1/deployments/:name': 'deployment.inspect',
  'PATCH /api/v1/deployments/:name': 'deployment.update',
  'DELETE /api/v1/deployments/:name': 'deployment.delete',
  'POST /api/v1/deployments/:name/predict': 'deployment.predict',
  'GET /api/v1/classification': 'classification.read',
  'GET /api/v1/classification/labels/:kind/:name': 'classification.labels',
  'GET /api/v1/classification/detectors': 'classification.detector.list',
  'POST /api/v1/classification/detectors': 'classification.detector.create',
  'DELETE /api/v1/classification/detectors/:name': 'classification.detector.delete',
  'GET /api/v1/catalog/search': 'catalog.search',
  'GET /api/v1/catalog/entities/:kind/:name': 'catalog.inspect',
  'PATCH /api/v1/catalog/entities/:kind/:name': 'catalog.annotate',
  'GET /api/v1/audit': 'audit.list',
  'POST /api/v1/audit/checkpoints': 'audit.checkpoint',
  'POST /api/v1/audit/verify': 'audit.verify',
  'POST /api/v1/users': 'user.create',
  'GET /api/v1/users': 'user.list',
  'DELETE /api/v1/users/:name': 'user.delete',
  'POST /api/v1/tokens': 'token.create',
  'GET /api/v1/tokens': 'token.list',
  'POST /api/v1/tokens/:id/revoke': 'token.revoke',
  'POST /api/v1/grants': 'grant.create',
  'POST /api/v1/grants/revoke': 'grant.delete',
  'GET /api/v1/whoami': 'access.whoami',
};

// ---- MLflow: classified by path, since its endpoint list is MLflow's, not ours ----

const MLFLOW = /^\/(?:ajax-)?api\/2\.0\/mlflow\/([a-z-]+)\/([a-z-]+)$/;
const MLFLOW_ARTIFACTS = /^\/(?:ajax-)?api\/2\.0\/mlflow-artifacts\/(artifacts|mpu)(\/\*)?$/;
const MLFLOW_CATCH_ALL = /^\/(?:ajax-)?api\/2\.0\/(mlflow|mlflow-artifacts)\/\*$/;
/** MLflow verbs that only read, whatever the HTTP method (search is a POST). */
const MLFLOW_READS = new Set(['get', 'get-by-name', 'search', 'get-history', 'list', 'get-download-uri', 'get-latest-versions']);

/** URI schemes a CreateModelVersion source may have that are not Strata data refs (the handler refuses them). */
const OTHER_SCHEMES = new Set(['file', 'models', 'dbfs', 's3', 'gs', 'wasbs', 'abfss', 'hdfs', 'http', 'https', 'ftp', 'sftp']);

/**
 * What registering an MLflow CreateModelVersion `source` reads: a data ref REPO[@REF]:/path needs read on
 * that repo; runs:/ and mlflow-artifacts:/ name a run's output commit, and runs are instance-wide, so they
 * need read on the instance. Other URIs are refused by the handler and read nothing.
 */
function mlflowSourceNeeds(source: string | undefined): Need[] {
  if (source === undefined) return [];
  if (source.startsWith('runs:') || source.startsWith('mlflow-artifacts:')) return [{ level: 'read', resource: '*' }];
  const scheme = /^([A-Za-z][\w+.-]*):/.exec(source);
  if (scheme && (source.slice(scheme[0].length).startsWith('//') || OTHER_SCHEMES.has(scheme[1]!.toLowerCase()))) return [];
  return [{ level: 'read', resource: `repo:${parseRef(source).repo}` }];
}

function mlflowOperation(method: string, url: string): Operation | undefined {
  const m = MLFLOW.exec(url);
  if (m) {
    const [, area, verb] = m as unknown as [string, string, string];
    const reads = method === 'GET' || MLFLOW_READS.has(verb);
    const level: Level = reads ? 'read' : 'write';
    const action = `mlflow.${area}.${verb}`;
    if (area === 'registered-models' || area === 'model-versions') {
      if (verb === 'search') return op(action, 'member', nothing('models'));
      // create makes a new model: write on the instance. rename also frees and takes names.
      if (verb === 'create' && area === 'registered-models') return op(action, 'write', onInstance('write', (f) => `model:${str(f, 'name')}`));
      // Registering reads the source file (as model.version.create reads `from`).
      if (verb === 'create' && area === 'model-versions') {
        return op(action, 'write', (f) => {
          const t = onKind('model', 'write')(f);
          return { target: t.target, needs: [...t.needs, ...mlflowSourceNeeds(optStr(f, 'source'))] };
        });
      }
      if (verb === 'rename') {
        return op(action, 'write', (f) => ({ target: `model:${str(f, 'name')}`, needs: [...onKind('model', 'write')(f).needs, { level: 'write', resource: '*' }] }));
      }
      return op(action, level, onKind('model', level));
    }
    if (verb === 'search' && area === 'experiments') return op(action, 'member', nothing('experiments'));
    return op(action, level, onInstance(level, () => area));
  }
  const a = MLFLOW_ARTIFACTS.exec(url);
  if (a) {
    const level: Level = method === 'GET' ? 'read' : 'write';
    return op(`mlflow.artifacts.${a[1] === 'mpu' ? 'mpu' : method === 'GET' ? (a[2] ? 'download' : 'list') : 'upload'}`, level, onInstance(level, () => 'artifacts'));
  }
  // Answers ENDPOINT_NOT_FOUND and touches nothing.
  if (MLFLOW_CATCH_ALL.test(url)) return op('mlflow.unknown_endpoint', 'public', nothing(), false);
  return undefined;
}

/** The operation of an HTTP route, or undefined when it is unclassified (and so refused). HEAD routes are their GET's. */
export function routeOperation(method: string, url: string): Operation | undefined {
  const m = method === 'HEAD' ? 'GET' : method;
  const action = ROUTES[`${m} ${url}`];
  if (action) return operation(action);
  return mlflowOperation(m, url);
}

/** The in-process client's methods (sdk/client.ts StrataClient) as actions and the same field names the HTTP routes give. */
export const CLIENT_METHODS: Record<string, { action: string; fields: (...args: any[]) => Fields }> = {
  createRepo: { action: 'repo.create', fields: (input) => ({ name: input?.name }) },
  listRepos: { action: 'repo.list', fields: () => ({}) },
  inspectRepo: { action: 'repo.inspect', fields: (repo) => ({ repo }) },
  deleteRepo: { action: 'repo.delete', fields: (repo) => ({ repo }) },
  createBranch: { action: 'branch.create', fields: (repo, name, from) => ({ repo, name, from }) },
  listBranches: { action: 'branch.list', fields: (repo) => ({ repo }) },
  deleteBranch: { action: 'branch.delete', fields: (repo, branch) => ({ repo, branch }) },
  commit: { action: 'commit.create', fields: (repo, branch) => ({ repo, branch }) },
  inspectCommit: { action: 'commit.inspect', fields: (ref) => ({ ref }) },
  log: { action: 'commit.log', fields: (ref) => ({ ref }) },
  diff: { action: 'commit.diff', fields: (from, to) => ({ from, to }) },
  ls: { action: 'file.list', fields: (ref) => ({ ref }) },
  walk: { action: 'file.walk', fields: (ref) => ({ ref }) },
  read: { action: 'file.read', fields: (ref) => ({ ref }) },
  fsck: { action: 'instance.fsck', fields: () => ({}) },
  createPipeline: { action: 'pipeline.create', fields: (spec, opts) => ({ spec, update: opts?.update }) },
  listPipelines: { action: 'pipeline.list', fields: () => ({}) },
  inspectPipeline: { action: 'pipeline.inspect', fields: (name) => ({ name }) },
  deletePipeline: { action: 'pipeline.delete', fields: (name) => ({ name }) },
  listJobs: { action: 'job.list', fields: (opts) => ({ pipeline: opts?.pipeline }) },
  inspectJob: { action: 'job.inspect', fields: (id) => ({ id }) },
  stopJob: { action: 'job.stop', fields: (id) => ({ id }) },
  listDatums: { action: 'job.datums', fields: (id) => ({ id }) },
  logs: { action: 'job.logs', fields: (id) => ({ id }) },
  wait: { action: 'job.wait', fields: (ref) => ({ ref }) },
  lineage: { action: 'lineage.read', fields: (ref) => ({ ref }) },
  listExperiments: { action: 'experiment.list', fields: () => ({}) },
  createExperiment: { action: 'experiment.create', fields: (name) => ({ name }) },
  createRun: { action: 'run.create', fields: () => ({}) },
  getRun: { action: 'run.inspect', fields: (id) => ({ id }) },
  updateRun: { action: 'run.update', fields: (id) => ({ id }) },
  logBatch: { action: 'run.log', fields: (id) => ({ id }) },
  searchRuns: { action: 'run.search', fields: () => ({}) },
  compareRuns: { action: 'run.compare', fields: () => ({}) },
  metricHistory: { action: 'run.metrics', fields: (id) => ({ id }) },
  listArtifacts: { action: 'run.artifacts', fields: (id) => ({ id }) },
  createModel: { action: 'model.create', fields: (input) => ({ name: input?.name }) },
  listModels: { action: 'model.list', fields: () => ({}) },
  inspectModel: { action: 'model.inspect', fields: (name) => ({ name }) },
  deleteModel: { action: 'model.delete', fields: (name) => ({ name }) },
  registerModelVersion: { action: 'model.version.create', fields: (name, input) => ({ name, from: input?.from }) },
  inspectModelVersion: { action: 'model.version.inspect', fields: (name) => ({ name }) },
  inspectModelAlias: { action: 'model.alias.inspect', fields: (name) => ({ name }) },
  listModelVersions: { action: 'model.version.list', fields: (name) => ({ name }) },
  deleteModelVersion: { action: 'model.version.delete', fields: (name) => ({ name }) },
  setModelAlias: { action: 'model.alias.set', fields: (name, alias) => ({ name, alias }) },
  deleteModelAlias: { action: 'model.alias.delete', fields: (name, alias) => ({ name, alias }) },
  aliasHistory: { action: 'model.alias.history', fields: (name) => ({ name }) },
  aliasAt: { action: 'model.alias.at', fields: (name) => ({ name }) },
  setGates: { action: 'model.gates.set', fields: (name) => ({ name }) },
  getGates: { action: 'model.gates.inspect', fields: (name) => ({ name }) },
  createDeployment: {
    action: 'deployment.create',
    fields: (input) => ({ name: input?.name, model: input?.model, canary: input?.canary, shadow: input?.shadow, command: input?.command }),
  },
  listDeployments: { action: 'deployment.list', fields: () => ({}) },
  inspectDeployment: { action: 'deployment.inspect', fields: (name) => ({ name }) },
  updateDeployment: {
    action: 'deployment.update',
    fields: (name, c) => ({ name, model: c?.model, canary: c?.canary ?? undefined, shadow: c?.shadow ?? undefined, command: c?.command }),
  },
  deleteDeployment: { action: 'deployment.delete', fields: (name) => ({ name }) },
  predict: { action: 'deployment.predict', fields: (name) => ({ name }) },
  classify: { action: 'classification.read', fields: (ref) => ({ ref }) },
  classificationLabels: { action: 'classification.labels', fields: (kind, name) => ({ kind, name }) },
  addPiiDetector: { action: 'classification.detector.create', fields: (input) => ({ name: input?.name }) },
  listPiiDetectors: { action: 'classification.detector.list', fields: () => ({}) },
  removePiiDetector: { action: 'classification.detector.delete', fields: (name) => ({ name }) },
  auditLog: { action: 'audit.list', fields: () => ({}) },
  auditCheckpoint: { action: 'audit.checkpoint', fields: () => ({}) },
  auditVerify: { action: 'audit.verify', fields: () => ({}) },
  searchCatalog: { action: 'catalog.search', fields: () => ({}) },
  inspectCatalog: { action: 'catalog.inspect', fields: (kind, name) => ({ kind, name }) },
  annotateCatalog: { action: 'catalog.annotate', fields: (kind, name) => ({ kind, name }) },
};

/** Whether a client is on this machine: `auto` mode lets loopback requests without a token act as the instance owner. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || h === '::ffff:127.0.0.1';
}

export type AuthMode = 'required' | 'auto';

/** `--auth required` always needs a token; `auto` needs one unless the server is bound to a loopback address. */
export function tokenRequired(mode: AuthMode, host: string): boolean {
  return mode === 'required' || !isLoopbackHost(host);
}
