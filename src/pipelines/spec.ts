import { createHash } from 'node:crypto';
import { lazyRequire } from '../lazy.js';
import { InvalidArgumentError } from '../errors.js';
import { parseDuration } from './duration.js';
import { compileGlob, templateRefs } from './glob.js';

// The pipeline spec. The format is Pachyderm's (JSON or YAML, snake_case or
// camelCase keys, as Pachyderm's protobuf JSON accepts both), so existing
// Pachyderm specs run unmodified; Strata adds `input.git`, `sandbox`,
// `tracking`, `model` and `declassifies`. Validation reports every problem at
// once, each naming its field by path (`input.cross[1].pfs.glob: required`),
// and rejects unknown fields with a did-you-mean, so a typo never silently
// turns into a default. The returned spec is normalized: camelCase keys,
// defaults filled in, durations also in milliseconds.

// ---------------------------------------------------------------- types

export interface PfsInput {
  name: string;
  repo: string;
  branch: string;
  /** Normalized glob ("/*", never "*" or "/a/"). */
  glob: string;
  joinOn?: string;
  groupBy?: string;
  outerJoin: boolean;
  lazy: boolean;
  emptyFiles: boolean;
  /** Pachyderm project; recorded, Strata has one namespace. */
  project?: string;
}

export interface CronInput {
  name: string;
  /** Cron schedule: 5 fields, optionally prefixed by TZ=..., or @daily, @every 1h, ... */
  spec: string;
  /** Repo the ticks are committed to: `<pipeline>_<name>` unless given. */
  repo: string;
  /** Keep only the latest tick file instead of accumulating them. */
  overwrite: boolean;
  /** RFC 3339 time to start ticking from. */
  start?: string;
}

/** Strata extension: a git repository branch whose checkout is an input. */
export interface GitInput {
  name: string;
  /** Local path or any URL git can fetch. */
  url: string;
  branch: string;
  /** Repo the checkouts are committed to: `<pipeline>_<name>`. */
  repo: string;
}

export type Input =
  | { pfs: PfsInput }
  | { cross: Input[] }
  | { union: Input[] }
  | { join: Input[] }
  | { group: Input[] }
  | { cron: CronInput }
  | { git: GitInput };

export interface Transform {
  cmd: string[];
  stdin?: string[];
  env: Record<string, string>;
  image?: string;
  workingDir?: string;
  /** Exit codes, besides 0, that count as success. */
  acceptReturnCode: number[];
  errCmd?: string[];
  errStdin?: string[];
  /** Kept as given (Pachyderm secret references). */
  secrets?: Record<string, unknown>[];
  // Pachyderm container settings, recorded for container executors.
  imagePullSecrets?: string[];
  user?: string;
  debug?: boolean;
  memoryVolume?: boolean;
  dockerfile?: string;
}

/** Recorded as given; the units are the spec author's (Kubernetes quantities). */
export interface Resources {
  cpu?: number | string;
  memory?: string | number;
  gpu?: { type?: string; number: number };
  disk?: string | number;
}

export type ReprocessSpec = 'until_success' | 'every_job';

export interface PipelineSpec {
  pipeline: { name: string; project?: string };
  description?: string;
  input: Input;
  transform: Transform;
  parallelismSpec: { constant: number };
  datumTries: number;
  datumTimeout?: string;
  datumTimeoutMs?: number;
  jobTimeout?: string;
  jobTimeoutMs?: number;
  resourceRequests?: Resources;
  resourceLimits?: Resources;
  salt?: string;
  reprocessSpec: ReprocessSpec;
  /** Strata extension: what the step's sandbox allows. */
  sandbox: { network: boolean };
  /** Later issues define these; any object is accepted for now. */
  tracking?: Record<string, unknown>;
  model?: Record<string, unknown>;
  declassifies?: string[];
  /**
   * Pachyderm settings that have no effect when Strata runs the pipeline
   * (autoscaling, pod_spec, tolerations, ...): accepted so Pachyderm specs run
   * unmodified, kept (camelCase keys) so inspect shows them.
   */
  pachyderm?: Record<string, unknown>;
}

/** An invalid spec. `problems` holds one `path: what is wrong` line per problem. */
export class InvalidSpecError extends InvalidArgumentError {
  constructor(readonly problems: string[]) {
    super(
      problems.length === 1
        ? problems[0]!
        : `${problems.length} problems in pipeline spec:\n${problems.map((p) => `  ${p}`).join('\n')}`,
    );
  }
}

// ---------------------------------------------------------------- parsing

/** Parses one pipeline spec from YAML or JSON (sniffed when `format` is omitted). */
export function parseSpec(text: string, format?: 'yaml' | 'json'): PipelineSpec {
  const docs = parseDocuments(text, format);
  if (docs.length === 0) throw new InvalidArgumentError('the pipeline spec is empty');
  if (docs.length !== 1) {
    throw new InvalidArgumentError(`expected one pipeline spec, found ${docs.length} (use parseSpecs for a file with several)`);
  }
  return validateSpec(docs[0]);
}

/**
 * Parses a file holding one or more specs: YAML documents separated by `---`,
 * a JSON object, or a JSON array of objects.
 */
export function parseSpecs(text: string, format?: 'yaml' | 'json'): PipelineSpec[] {
  const docs = parseDocuments(text, format);
  const specs: PipelineSpec[] = [];
  const problems: string[] = [];
  docs.forEach((doc, i) => {
    try {
      specs.push(validateSpec(doc));
    } catch (err) {
      if (!(err instanceof InvalidSpecError) || docs.length === 1) throw err;
      problems.push(...err.problems.map((p) => `spec ${i + 1}: ${p}`));
    }
  });
  if (problems.length > 0) throw new InvalidSpecError(problems);
  return specs;
}

function parseDocuments(text: string, format?: 'yaml' | 'json'): unknown[] {
  const body = text.replace(/^\uFEFF/, '');
  const kind = format ?? (/^\s*[[{]/.test(body) ? 'json' : 'yaml');
  if (kind === 'json') {
    let value: unknown;
    try {
      value = JSON.parse(body);
    } catch (err) {
      throw new InvalidArgumentError(`pipeline spec is not valid JSON: ${jsonErrorWhere(body, err as Error)}`, { cause: err });
    }
    return Array.isArray(value) ? value : [value];
  }
  const docs = (lazyRequire('yaml') as typeof import('yaml')).parseAllDocuments(body);
  if (!Array.isArray(docs)) return []; // an empty stream
  const values: unknown[] = [];
  for (const doc of docs) {
    const err = doc.errors[0];
    if (err) throw new InvalidArgumentError(`pipeline spec is not valid YAML: ${err.message}`, { cause: err });
    const value: unknown = doc.toJS();
    if (value !== null && value !== undefined) values.push(value);
  }
  return values;
}

// Node 20 reports some JSON errors without a position ("Unexpected token '}',
// "<text>" is not valid JSON"); people want a line and column, so find the
// first offending character ourselves.
function jsonErrorWhere(text: string, err: Error): string {
  const what = err.message.replace(/, (\.\.\.)?".*" is not valid JSON$/s, '').replace(/ in JSON at position \d+.*$/s, '');
  const at = jsonErrorOffset(text);
  if (at === undefined) return what;
  const before = text.slice(0, at).split('\n');
  return `${what} at line ${before.length}, column ${before.at(-1)!.length + 1}`;
}

/** Offset of the first character that makes `text` invalid JSON (undefined if it is valid). */
function jsonErrorOffset(text: string): number | undefined {
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const fail = (): never => {
    throw i;
  };
  const literal = (word: string) => {
    if (!text.startsWith(word, i)) fail();
    i += word.length;
  };
  const string = () => {
    if (text[i] !== '"') fail();
    for (i++; i < text.length; i++) {
      const c = text[i]!;
      if (c === '"') return void i++;
      if (c < ' ') fail();
      if (c === '\\') {
        i++;
        if (text[i] === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) fail();
          i += 4;
        } else if (!'"\\/bfnrt'.includes(text[i] ?? 'x')) fail();
      }
    }
    fail();
  };
  const number = () => {
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?/.exec(text.slice(i));
    if (!m) fail();
    i += m![0].length;
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') return void i++;
      for (;;) {
        ws();
        string();
        ws();
        if (text[i] !== ':') fail();
        i++;
        value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === '}') return void i++;
        else fail();
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') return void i++;
      for (;;) {
        value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === ']') return void i++;
        else fail();
      }
    }
    if (c === '"') return string();
    if (c === 't') return literal('true');
    if (c === 'f') return literal('false');
    if (c === 'n') return literal('null');
    return number();
  };
  try {
    value();
    ws();
    return i < text.length ? i : undefined;
  } catch (offset) {
    return offset as number;
  }
}

// ---------------------------------------------------------------- validation

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const NAME_RULE = "use letters, digits, '_', '-' and '.', starting with a letter or digit, at most 128 characters";

const TOP_KEYS = [
  'pipeline',
  'description',
  'input',
  'transform',
  'parallelism_spec',
  'datum_tries',
  'datum_timeout',
  'job_timeout',
  'resource_requests',
  'resource_limits',
  'salt',
  'reprocess_spec',
  'sandbox',
  'tracking',
  'model',
  'declassifies',
] as const;
/** Pachyderm fields without meaning for Strata's executors: accepted and kept. */
const PACHYDERM_ONLY_KEYS = [
  'autoscaling',
  'metadata',
  'pod_spec',
  'pod_patch',
  'scheduling_spec',
  'sidecar_resource_limits',
  'sidecar_resource_requests',
  'tolerations',
  'datum_set_spec',
  'output_branch',
  's3_out',
  'reprocess',
  'update',
] as const;
/** Pachyderm features Strata does not implement: rejected with a clear message. */
const UNSUPPORTED_KEYS = ['egress', 'service', 'spout', 'tf_job', 'spec_commit'] as const;

const INPUT_KINDS = ['pfs', 'cross', 'union', 'join', 'group', 'cron', 'git'] as const;
const PFS_KEYS = [
  'name',
  'repo',
  'branch',
  'glob',
  'join_on',
  'outer_join',
  'group_by',
  'lazy',
  'empty_files',
  'project',
  'repo_type',
  's3',
  'trigger',
  'commit',
] as const;
const TRANSFORM_KEYS = [
  'cmd',
  'stdin',
  'env',
  'image',
  'working_dir',
  'accept_return_code',
  'err_cmd',
  'err_stdin',
  'secrets',
  'image_pull_secrets',
  'user',
  'debug',
  'memory_volume',
  'dockerfile',
] as const;
const RESOURCE_KEYS = ['cpu', 'memory', 'gpu', 'disk'] as const;

/**
 * Validates and normalizes a parsed spec. Throws InvalidSpecError listing every
 * problem, one `path: what is wrong` per line.
 */
export function validateSpec(raw: unknown): PipelineSpec {
  const problems = new Problems();
  const top = Fields.read(raw, '', [...TOP_KEYS, ...PACHYDERM_ONLY_KEYS, ...UNSUPPORTED_KEYS], problems, TOP_KEYS);
  if (!top) throw new InvalidSpecError(problems.list);

  for (const key of UNSUPPORTED_KEYS) {
    if (top.has(key)) problems.add(top.pathOf(key), 'not supported by Strata (a Pachyderm feature with no local equivalent)');
  }

  const pipeline = readPipeline(top);
  const name = pipeline?.name;
  let input: Input | undefined;
  if (top.has('input')) {
    input = readInput(top.get('input')!.value, 'input', { pipeline: name, problems, names: new Map(), parent: undefined });
  } else {
    top.required('input');
  }
  const transform = readTransform(top, problems);

  const parallelism = top.object('parallelism_spec', ['constant']);
  const constant = parallelism?.int('constant', { min: 1 }) ?? 1;

  const datumTries = top.int('datum_tries', { min: 1 }) ?? 3;
  const datumTimeout = top.duration('datum_timeout');
  const jobTimeout = top.duration('job_timeout');
  const reprocess = top.string('reprocess_spec');
  if (reprocess !== undefined && reprocess !== 'until_success' && reprocess !== 'every_job') {
    problems.add(top.pathOf('reprocess_spec'), `expected "until_success" or "every_job", got "${reprocess}"`);
  }
  const sandbox = top.object('sandbox', ['network']);

  const pachyderm: Record<string, unknown> = {};
  for (const key of PACHYDERM_ONLY_KEYS) {
    const field = top.get(key);
    if (field) pachyderm[camel(key)] = field.value;
  }
  if (top.has('output_branch') && top.get('output_branch')!.value !== 'master') {
    problems.add(top.pathOf('output_branch'), 'Strata pipelines always write to the "master" branch of their output repo');
  }
  if (top.get('s3_out')?.value === true) {
    problems.add(top.pathOf('s3_out'), 'not supported by Strata (outputs are written to /pfs/out)');
  }

  const spec: PipelineSpec = {
    pipeline: pipeline ?? { name: '' },
    ...optional('description', top.string('description')),
    input: input ?? { union: [] },
    transform: transform ?? { cmd: [], env: {}, acceptReturnCode: [] },
    parallelismSpec: { constant },
    datumTries,
    ...optional('datumTimeout', datumTimeout?.text),
    ...optional('datumTimeoutMs', datumTimeout?.ms),
    ...optional('jobTimeout', jobTimeout?.text),
    ...optional('jobTimeoutMs', jobTimeout?.ms),
    ...optional('resourceRequests', readResources(top, 'resource_requests')),
    ...optional('resourceLimits', readResources(top, 'resource_limits')),
    ...optional('salt', top.string('salt')),
    reprocessSpec: (reprocess as ReprocessSpec | undefined) ?? 'until_success',
    sandbox: { network: sandbox?.boolean('network') ?? false },
    ...optional('tracking', top.record('tracking')),
    ...optional('model', top.record('model')),
    ...optional('declassifies', top.strings('declassifies')),
    ...optional('pachyderm', Object.keys(pachyderm).length > 0 ? pachyderm : undefined),
  };
  if (problems.list.length > 0) throw new InvalidSpecError(problems.list);
  return spec;
}

function readPipeline(top: Fields): PipelineSpec['pipeline'] | undefined {
  if (!top.has('pipeline')) {
    top.required('pipeline', 'pipeline.name');
    return undefined;
  }
  const pipeline = top.object('pipeline', ['name', 'project']);
  if (!pipeline) return undefined;
  const name = pipeline.name('name', { required: true });
  const project = pipeline.project('project');
  return name === undefined ? undefined : { name, ...optional('project', project) };
}

function readTransform(top: Fields, problems: Problems): Transform | undefined {
  if (!top.has('transform')) {
    top.required('transform', 'transform.cmd');
    return undefined;
  }
  const t = top.object('transform', TRANSFORM_KEYS);
  if (!t) return undefined;
  const cmd = t.strings('cmd', { required: true, nonEmpty: true });
  const codes = t.array('accept_return_code');
  const acceptReturnCode: number[] = [];
  codes?.forEach(({ value, path }) => {
    if (typeof value === 'number' && Number.isInteger(value)) acceptReturnCode.push(value);
    else problems.add(path, `expected an integer exit code, got ${describe(value)}`);
  });
  const secrets = t.array('secrets')?.flatMap(({ value, path }) => {
    if (isPlainObject(value)) return [value];
    problems.add(path, `expected an object, got ${describe(value)}`);
    return [];
  });
  return {
    cmd: cmd ?? [],
    ...optional('stdin', t.strings('stdin')),
    env: t.env('env') ?? {},
    ...optional('image', t.string('image')),
    ...optional('workingDir', t.string('working_dir')),
    acceptReturnCode,
    ...optional('errCmd', t.strings('err_cmd')),
    ...optional('errStdin', t.strings('err_stdin')),
    ...optional('secrets', secrets),
    ...optional('imagePullSecrets', t.strings('image_pull_secrets')),
    ...optional('user', t.string('user')),
    ...optional('debug', t.boolean('debug')),
    ...optional('memoryVolume', t.boolean('memory_volume')),
    ...optional('dockerfile', t.string('dockerfile')),
  };
}

function readResources(top: Fields, key: string): Resources | undefined {
  const r = top.object(key, RESOURCE_KEYS);
  if (!r) return undefined;
  const out: Resources = {};
  const cpu = r.get('cpu');
  if (cpu) {
    if (typeof cpu.value === 'number' || typeof cpu.value === 'string') out.cpu = cpu.value;
    else r.problem('cpu', `expected a number or a quantity like "500m", got ${describe(cpu.value)}`);
  }
  for (const k of ['memory', 'disk'] as const) {
    const f = r.get(k);
    if (!f) continue;
    if (typeof f.value === 'number' || typeof f.value === 'string') out[k] = f.value;
    else r.problem(k, `expected a quantity like "2G", got ${describe(f.value)}`);
  }
  const gpu = r.object('gpu', ['type', 'number']);
  if (gpu) {
    const number = gpu.int('number', { min: 0, required: true });
    if (number !== undefined) out.gpu = { ...optional('type', gpu.string('type')), number };
  }
  return out;
}

interface InputContext {
  pipeline: string | undefined;
  problems: Problems;
  /** Input names visible in this scope, each with the path that declared it. */
  names: Map<string, string>;
  /** The combinator this input sits directly under, if any. */
  parent: 'cross' | 'union' | 'join' | 'group' | undefined;
}

function readInput(raw: unknown, path: string, ctx: InputContext): Input | undefined {
  const { problems } = ctx;
  const fields = Fields.read(raw, path, INPUT_KINDS, problems);
  if (!fields) return undefined;
  const kinds = INPUT_KINDS.filter((k) => fields.has(k));
  if (kinds.length === 0) {
    problems.add(path, `expected one of ${INPUT_KINDS.join(', ')}`);
    return undefined;
  }
  if (kinds.length > 1) {
    problems.add(path, `only one of ${INPUT_KINDS.join(', ')} may be set, found ${kinds.join(' and ')}`);
    return undefined;
  }
  const kind = kinds[0]!;
  switch (kind) {
    case 'pfs': {
      const pfs = readPfs(fields, ctx);
      return pfs && { pfs };
    }
    case 'cron': {
      const cron = readCron(fields, ctx);
      return cron && { cron };
    }
    case 'git': {
      const git = readGit(fields, ctx);
      return git && { git };
    }
    default: {
      const items = fields.array(kind);
      if (!items) return undefined;
      if (items.length === 0) {
        problems.add(fields.pathOf(kind), 'expected at least one input');
        return undefined;
      }
      const children: Input[] = [];
      if (kind === 'union') {
        // Pachyderm lets the branches of a union share names (a datum only ever
        // comes from one branch), but names seen in any branch stay taken for
        // whatever the union is crossed or joined with.
        const seen = new Map<string, string>();
        for (const { value, path: p } of items) {
          const branch = new Map(ctx.names);
          const child = readInput(value, p, { ...ctx, names: branch, parent: kind });
          if (child) children.push(child);
          for (const [n, where] of branch) if (!ctx.names.has(n) && !seen.has(n)) seen.set(n, where);
        }
        for (const [n, where] of seen) ctx.names.set(n, where);
      } else {
        for (const { value, path: p } of items) {
          const child = readInput(value, p, { ...ctx, parent: kind });
          if (child) children.push(child);
        }
      }
      if (children.length !== items.length) return undefined;
      return { [kind]: children } as Input;
    }
  }
}

function readPfs(fields: Fields, ctx: InputContext): PfsInput | undefined {
  const f = fields.object('pfs', PFS_KEYS);
  if (!f) return undefined;
  const repo = f.name('repo', { required: true });
  const branch = f.name('branch') ?? 'master';
  const explicitName = f.name('name');
  const rawGlob = f.string('glob', { required: true, nonEmpty: true });
  const joinOn = f.string('join_on');
  const groupBy = f.string('group_by');
  const project = f.project('project');
  const outerJoin = f.boolean('outer_join') ?? false;
  const lazy = f.boolean('lazy') ?? false;
  const emptyFiles = f.boolean('empty_files') ?? false;
  for (const key of ['s3', 'trigger', 'commit'] as const) {
    const v = f.get(key)?.value;
    if (v !== undefined && v !== false && v !== '') {
      const what = { s3: 'S3 gateway inputs', trigger: 'branch triggers', commit: 'pinning an input to a commit' }[key];
      f.problem(key, `not supported by Strata (${what})`);
    }
  }
  const repoType = f.string('repo_type');
  if (repoType !== undefined && repoType !== 'user') f.problem('repo_type', `only "user" repos can be inputs, got "${repoType}"`);

  let glob: string | undefined;
  let groups = 0;
  if (rawGlob !== undefined) {
    try {
      const compiled = compileGlob(rawGlob);
      glob = compiled.pattern;
      groups = compiled.groups;
    } catch (err) {
      f.problem('glob', (err as Error).message.replace(/^glob "[^"]*" is invalid: /, 'invalid glob: '));
    }
  }
  if (ctx.parent === 'join' && joinOn === undefined) {
    f.problem('join_on', 'required in a join input (e.g. "$1", naming a capture group of the glob)');
  }
  if (ctx.parent === 'group' && groupBy === undefined) {
    f.problem('group_by', 'required in a group input (e.g. "$1", naming a capture group of the glob)');
  }
  if (glob !== undefined) {
    for (const key of ['join_on', 'group_by'] as const) {
      const template = key === 'join_on' ? joinOn : groupBy;
      if (template === undefined) continue;
      const refs = templateRefs(template);
      const missing = refs.numbers.filter((n) => n > groups);
      if (missing.length > 0) {
        f.problem(key, `"${template}" refers to capture group ${missing[0]} but glob "${glob}" has ${groups === 0 ? 'none' : groups} (put parentheses around the part to capture, e.g. "/(*).txt")`);
      } else if (refs.names.length > 0) {
        f.problem(key, `"${template}" refers to "${refs.names[0]}" but globs only have numbered groups ($1, $2, ...)`);
      }
    }
  }

  if (repo === undefined) return undefined;
  if (explicitName === undefined && repo === 'out') {
    f.problem('name', 'required for a repo named "out" (/pfs/out is where the pipeline writes its output)');
  }
  if (explicitName === 'out') f.problem('name', '"out" is reserved for the output directory /pfs/out');
  if (ctx.pipeline !== undefined && repo === ctx.pipeline) {
    f.problem('repo', `"${repo}" is this pipeline's own output repo; a pipeline cannot read its own output`);
  }
  const name = explicitName ?? repo;
  claimName(name, f, explicitName === undefined, ctx);
  if (glob === undefined) return undefined;
  return {
    name,
    repo,
    branch,
    glob,
    ...optional('joinOn', joinOn),
    ...optional('groupBy', groupBy),
    outerJoin,
    lazy,
    emptyFiles,
    ...optional('project', project),
  };
}

function readCron(fields: Fields, ctx: InputContext): CronInput | undefined {
  const f = fields.object('cron', ['name', 'spec', 'repo', 'overwrite', 'start']);
  if (!f) return undefined;
  const name = f.name('name', { required: true });
  const spec = f.string('spec', { required: true, nonEmpty: true });
  const explicitRepo = f.name('repo');
  const start = f.string('start');
  const overwrite = f.boolean('overwrite') ?? false;
  if (spec !== undefined) {
    const problem = cronProblem(spec);
    if (problem) f.problem('spec', problem);
  }
  if (start !== undefined && Number.isNaN(Date.parse(start))) {
    f.problem('start', `"${start}" is not an RFC 3339 time like "2024-01-01T00:00:00Z"`);
  }
  if (name === undefined) return undefined;
  claimName(name, f, false, ctx);
  const repo = explicitRepo ?? derivedRepo(name, f, ctx);
  if (spec === undefined || repo === undefined) return undefined;
  return { name, spec, repo, overwrite, ...optional('start', start) };
}

function readGit(fields: Fields, ctx: InputContext): GitInput | undefined {
  const f = fields.object('git', ['url', 'branch', 'name']);
  if (!f) return undefined;
  const url = f.string('url', { required: true, nonEmpty: true });
  const branch = f.string('branch', { nonEmpty: true }) ?? 'master';
  let name = f.name('name');
  if (name === undefined && url !== undefined && !f.has('name')) {
    // Like Pachyderm 1.x git inputs: the repository's name, from its URL.
    const derived = url.replace(/[/\\]+$/, '').split(/[/\\:]/).at(-1)!.replace(/\.git$/, '');
    if (NAME.test(derived)) name = derived;
    else f.problem('name', `could not derive an input name from url "${url}"; set name`);
  }
  if (name === undefined || url === undefined) return undefined;
  claimName(name, f, false, ctx);
  const repo = derivedRepo(name, f, ctx);
  if (repo === undefined) return undefined;
  return { name, url, branch, repo };
}

// Cron and git inputs commit into a repo named after the pipeline and input.
function derivedRepo(name: string, f: Fields, ctx: InputContext): string | undefined {
  if (ctx.pipeline === undefined) return undefined;
  const repo = `${ctx.pipeline}_${name}`;
  if (!NAME.test(repo)) {
    f.problem('name', `the input's repo "${repo}" (<pipeline>_<name>) is longer than 128 characters`);
    return undefined;
  }
  return repo;
}

function claimName(name: string, f: Fields, defaulted: boolean, ctx: InputContext): void {
  const other = ctx.names.get(name);
  if (other !== undefined) {
    f.problem(
      defaulted ? 'repo' : 'name',
      `input name "${name}"${defaulted ? ' (the repo name, as name is not set)' : ''} is already used by ${other}; ` +
        'input names must be unique (except between the branches of a union): set name to tell them apart',
    );
    return;
  }
  ctx.names.set(name, f.path);
}

const CRON_MACROS = new Set(['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly']);

// The schedule itself is interpreted by the scheduler; here we only catch
// specs that can never be valid, with the same rules as Pachyderm's parser
// (robfig/cron ParseStandard: 5 fields or a macro, optional TZ= prefix).
function cronProblem(spec: string): string | undefined {
  const s = spec.trim().replace(/^(CRON_)?TZ=\S+\s+/, '');
  if (s.startsWith('@every ')) {
    const ms = parseDuration(s.slice('@every '.length));
    return ms !== undefined && ms > 0 ? undefined : `"${spec}": @every needs a positive duration like "@every 1h30m"`;
  }
  if (s.startsWith('@')) {
    return CRON_MACROS.has(s) ? undefined : `"${spec}" is not a cron macro (${[...CRON_MACROS].join(', ')}, @every <duration>)`;
  }
  const parts = s.split(/\s+/);
  if (parts.length !== 5 || !parts.every((p) => /^[0-9A-Za-z*?,/-]+$/.test(p))) {
    return `"${spec}" is not a cron schedule: use 5 fields (minute hour day-of-month month day-of-week, e.g. "*/10 * * * *") or a macro like "@daily"`;
  }
  return undefined;
}

// ---------------------------------------------------------------- hashes

/** SHA-256 (hex) of the canonical JSON of the normalized spec: changes whenever the spec does. */
export function specHash(spec: PipelineSpec): string {
  return sha256(canonicalJson(spec));
}

/**
 * SHA-256 (hex) over what decides a datum's output: the transform, the salt,
 * and which inputs present their files empty (`empty_files`). Not the
 * description, parallelism, timeouts or resources. A datum's id covers this
 * hash, so changing the transform or salt reprocesses every datum.
 */
export function transformHash(spec: PipelineSpec): string {
  const emptyFiles = inputLeaves(spec.input)
    .filter((l) => l.kind === 'pfs' && l.emptyFiles)
    .map((l) => l.name)
    .sort();
  return sha256(canonicalJson({ transform: spec.transform, salt: spec.salt ?? '', emptyFiles }));
}

/** JSON with object keys sorted and undefined members dropped, so equal values hash equally. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (!isPlainObject(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) if (v[k] !== undefined) sorted[k] = v[k];
    return sorted;
  });
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

// ---------------------------------------------------------------- the pipeline graph

/** A repo an input reads: what the scheduler watches. Cron and git inputs read their own `<pipeline>_<name>` repo. */
export interface InputRepo {
  name: string;
  repo: string;
  branch: string;
  kind: 'pfs' | 'cron' | 'git';
}

/** Every leaf input's repo and branch, in spec order. */
export function inputRepos(spec: PipelineSpec): InputRepo[] {
  return inputLeaves(spec.input).map((l) => ({ name: l.name, repo: l.repo, branch: l.branch, kind: l.kind }));
}

type Leaf = (PfsInput & { kind: 'pfs' }) | (CronInput & { kind: 'cron'; branch: string }) | (GitInput & { kind: 'git' });

function inputLeaves(input: Input): Leaf[] {
  if ('pfs' in input) return [{ ...input.pfs, kind: 'pfs' }];
  if ('cron' in input) return [{ ...input.cron, kind: 'cron', branch: 'master' }];
  if ('git' in input) return [{ ...input.git, kind: 'git', branch: 'master' }];
  return childInputs(input).flatMap(inputLeaves);
}

/** The children of a cross, union, join or group input ([] for a leaf). */
export function childInputs(input: Input): Input[] {
  if ('cross' in input) return input.cross;
  if ('union' in input) return input.union;
  if ('join' in input) return input.join;
  if ('group' in input) return input.group;
  return [];
}

/**
 * Finds a cycle in the pipeline graph: each pipeline writes the repo named
 * after it, and there is an edge from every repo a pipeline reads to it.
 * Returns the cycle as pipeline names, first repeated last (["a", "b", "a"]),
 * or null when the graph is acyclic.
 */
export function detectCycle(specs: readonly PipelineSpec[]): string[] | null {
  const pipelines = new Set(specs.map((s) => s.pipeline.name));
  const downstream = new Map<string, string[]>();
  for (const spec of specs) {
    for (const { repo } of inputRepos(spec)) {
      if (!pipelines.has(repo)) continue;
      const list = downstream.get(repo) ?? [];
      if (!list.includes(spec.pipeline.name)) list.push(spec.pipeline.name);
      downstream.set(repo, list);
    }
  }
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string): string[] | null => {
    state.set(node, 'open');
    stack.push(node);
    for (const next of [...(downstream.get(node) ?? [])].sort()) {
      if (state.get(next) === 'open') return [...stack.slice(stack.indexOf(next)), next];
      if (!state.has(next)) {
        const cycle = visit(next);
        if (cycle) return cycle;
      }
    }
    stack.pop();
    state.set(node, 'done');
    return null;
  };
  for (const name of [...pipelines].sort()) {
    if (state.has(name)) continue;
    const cycle = visit(name);
    if (cycle) return cycle;
  }
  return null;
}

// ---------------------------------------------------------------- field reading

class Problems {
  readonly list: string[] = [];
  add(path: string, message: string): void {
    this.list.push(`${path || 'spec'}: ${message}`);
  }
}

/** A reader's verdict that a value is wrong, with the message to report. */
class Bad {
  constructor(readonly message: string) {}
}
const bad = (message: string) => new Bad(message);

interface Field {
  /** The key as written (snake_case or camelCase). */
  key: string;
  value: unknown;
  path: string;
}

const joinPath = (parent: string, key: string) => (parent ? `${parent}.${key}` : key);

/**
 * One object of the spec: its fields by snake_case name, whichever case style
 * the author used. Readers return undefined (and record a problem) for a field
 * of the wrong type, so validation carries on and reports everything.
 */
class Fields {
  private constructor(
    readonly path: string,
    private readonly fields: Map<string, Field>,
    /** Keys a misspelled key was taken for: "required" would only repeat the did-you-mean. */
    private readonly suggested: Set<string>,
    private readonly problems: Problems,
  ) {}

  /** `shown`: the keys to list when an unknown one resembles none (default: all allowed). */
  static read(raw: unknown, path: string, allowed: readonly string[], problems: Problems, shown = allowed): Fields | undefined {
    if (!isPlainObject(raw)) {
      problems.add(path, `expected an object, got ${describe(raw)}`);
      return undefined;
    }
    const fields = new Map<string, Field>();
    const suggested = new Set<string>();
    for (const [key, value] of Object.entries(raw)) {
      const fieldPath = joinPath(path, key);
      const snake = canonicalKey(key, allowed);
      if (snake === undefined) {
        const suggestion = suggestKey(key, allowed);
        if (suggestion === undefined) {
          problems.add(fieldPath, `unknown field; expected one of ${shown.join(', ')}`);
        } else {
          problems.add(fieldPath, `unknown field; did you mean "${suggestion}"?`);
          suggested.add(canonicalKey(suggestion, allowed)!);
        }
        continue;
      }
      const prior = fields.get(snake);
      if (prior) {
        problems.add(fieldPath, `given twice, as "${prior.key}" and "${key}"`);
        continue;
      }
      // null (`key:` with no value in YAML) means "not set", as in Pachyderm's JSON.
      if (value === null || value === undefined) continue;
      fields.set(snake, { key, value, path: fieldPath });
    }
    return new Fields(path, fields, suggested, problems);
  }

  has(key: string): boolean {
    return this.fields.has(key);
  }

  /** Reports a missing required key, unless a misspelling of it was already reported. */
  required(key: string, what = key): void {
    if (!this.suggested.has(key)) this.problems.add(joinPath(this.path, what), 'required');
  }

  get(key: string): Field | undefined {
    return this.fields.get(key);
  }

  pathOf(key: string): string {
    return this.fields.get(key)?.path ?? joinPath(this.path, key);
  }

  problem(key: string, message: string): void {
    this.problems.add(this.pathOf(key), message);
  }

  private typed<T>(key: string, required: boolean | undefined, check: (value: unknown) => T | Bad): T | undefined {
    const field = this.fields.get(key);
    if (!field) {
      if (required) this.required(key);
      return undefined;
    }
    const result = check(field.value);
    if (result instanceof Bad) {
      this.problem(key, result.message);
      return undefined;
    }
    return result;
  }

  string(key: string, opts: { required?: boolean; nonEmpty?: boolean } = {}): string | undefined {
    return this.typed(key, opts.required, (v) => {
      if (typeof v !== 'string') return bad(`expected a string, got ${describe(v)}`);
      if (opts.nonEmpty && v.trim() === '') return opts.required ? bad('required') : bad('must not be empty');
      return v;
    });
  }

  /** A repo, branch or input name. */
  name(key: string, opts: { required?: boolean } = {}): string | undefined {
    return this.typed(key, opts.required, (v) => {
      if (typeof v !== 'string') return bad(`expected a string, got ${describe(v)}`);
      if (v === '') return opts.required ? bad('required') : bad('must not be empty');
      if (!NAME.test(v)) return bad(`"${v}" is not a valid name: ${NAME_RULE}`);
      return v;
    });
  }

  /** Pachyderm writes projects as "name" in inputs and {"name": ...} in `pipeline`. */
  project(key: string): string | undefined {
    return this.typed(key, false, (v) => {
      if (typeof v === 'string') return v;
      if (isPlainObject(v) && typeof v['name'] === 'string' && Object.keys(v).length === 1) return v['name'];
      return bad(`expected a project name or {"name": ...}, got ${describe(v)}`);
    });
  }

  boolean(key: string): boolean | undefined {
    return this.typed(key, false, (v) => (typeof v === 'boolean' ? v : bad(`expected true or false, got ${describe(v)}`)));
  }

  /** Integers; Pachyderm's JSON also writes 64-bit integers as strings. */
  int(key: string, opts: { min?: number; required?: boolean } = {}): number | undefined {
    return this.typed(key, opts.required, (v) => {
      const n = typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : v;
      if (typeof n !== 'number' || !Number.isInteger(n)) return bad(`expected an integer, got ${describe(v)}`);
      if (opts.min !== undefined && n < opts.min) return bad(`must be at least ${opts.min}, got ${n}`);
      return n;
    });
  }

  duration(key: string): { text: string; ms: number } | undefined {
    return this.typed(key, false, (v) => {
      if (typeof v !== 'string') return bad(`expected a duration like "30s", "1m30s" or "2h", got ${describe(v)}`);
      const ms = parseDuration(v);
      if (ms === undefined) return bad(`"${v}" is not a duration: use Go syntax like "30s", "1m30s" or "2h"`);
      if (ms <= 0) return bad(`must be greater than 0, got "${v}"`);
      return { text: v, ms };
    });
  }

  strings(key: string, opts: { required?: boolean; nonEmpty?: boolean } = {}): string[] | undefined {
    return this.typed(key, opts.required, (v) => {
      if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) {
        const hint = typeof v === 'string' ? ` (write ["${v.split(/\s+/)[0]}", ...], one element per argument)` : '';
        return bad(`expected an array of strings, got ${describe(v)}${hint}`);
      }
      if (opts.nonEmpty && v.length === 0) return opts.required ? bad('required (at least the program to run)') : bad('must not be empty');
      return v as string[];
    });
  }

  array(key: string): Array<{ value: unknown; path: string }> | undefined {
    return this.typed(key, false, (v) => {
      if (!Array.isArray(v)) return bad(`expected an array, got ${describe(v)}`);
      return v.map((value, i) => ({ value, path: `${this.pathOf(key)}[${i}]` }));
    });
  }

  /** An environment map; numbers and booleans are accepted as their text (YAML writes `PORT: 8080`). */
  env(key: string): Record<string, string> | undefined {
    return this.typed(key, false, (v) => {
      if (!isPlainObject(v)) return bad(`expected a map of names to strings, got ${describe(v)}`);
      const out: Record<string, string> = {};
      for (const [k, value] of Object.entries(v)) {
        if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') out[k] = String(value);
        else return bad(`${k}: expected a string, got ${describe(value)}`);
      }
      return out;
    });
  }

  /** Any object, kept as given (tracking, model: defined by later issues). */
  record(key: string): Record<string, unknown> | undefined {
    return this.typed(key, false, (v) => (isPlainObject(v) ? v : bad(`expected an object, got ${describe(v)}`)));
  }

  object(key: string, allowed: readonly string[]): Fields | undefined {
    const field = this.fields.get(key);
    if (!field) return undefined;
    return Fields.read(field.value, field.path, allowed, this.problems);
  }
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

function camel(snake: string): string {
  return snake.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

function canonicalKey(key: string, allowed: readonly string[]): string | undefined {
  if (allowed.includes(key)) return key;
  const snake = key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  return allowed.includes(snake) && camel(snake) === key ? snake : undefined;
}

/** The did-you-mean for an unknown key: the closest allowed key in the author's case style, if close enough. */
function suggestKey(key: string, allowed: readonly string[]): string | undefined {
  const candidates = /[A-Z]/.test(key) ? allowed.map(camel) : allowed;
  const loose = (s: string) => s.toLowerCase().replace(/[-_]/g, '');
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const d = levenshtein(key, candidate) / (loose(candidate) === loose(key) ? 100 : 1);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return bestDistance <= Math.max(2, Math.ceil(key.length / 2)) ? best : undefined;
}

function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `the string "${v.length > 40 ? v.slice(0, 37) + '...' : v}"`;
  return `${typeof v} ${String(v)}`;
}
