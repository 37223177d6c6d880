import type { Kysely } from 'kysely';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError, StrataError } from '../errors.js';
import type { Schema } from '../meta/schema.js';
import { checkAliasName, checkModelName, type Registry } from '../tracking/registry.js';
import type { ModelVersion } from '../tracking/types.js';
import { checkBatching, type BatchingConfig } from './batcher.js';
import type { LoggingStats } from './prediction-log.js';
import { checkProcessSpec } from './process-runtime.js';
import type { ProcessStatus } from './runtime.js';

// Deployments: a name that serves one model, bound either to an alias
// (MODEL@ALIAS: follows the alias as it moves) or to a fixed version
// (MODEL@VERSION). Stored in the `deployments` table; the ServingManager
// (manager.ts) loads what they point at.

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export interface ServingStatus {
  /**
   * loading: the first version is being loaded; restarting: its model process died and is being started again
   * (requests get 503 meanwhile); failed: no version could be loaded; idle: not loaded in this process.
   */
  state: 'idle' | 'loading' | 'ready' | 'restarting' | 'failed';
  /** The version taking traffic. */
  version: number | null;
  /** The last load failure, if any (a failed swap keeps the old version serving). */
  error?: string;
  /** The canary version, when the deployment has one, and the percent of requests it takes. */
  canary?: LaneStatus & { weight: number };
  /** The shadow version, when the deployment has one, and how its responses compared with the primary's. */
  shadow?: LaneStatus & { stats: ShadowStats };
  /** Requests served per version (MODEL@VERSION), counted in memory since this server started serving the deployment. */
  traffic?: { since: number; versions: Record<string, { requests: number; failures: number }> };
  /** Adaptive batching as configured; `active` is false for a model without a dynamic batch dimension (`reason` says why). */
  batching?: BatchingConfig & { active: boolean; reason?: string };
  /** The prediction log, when the deployment samples predictions (or did, and has records still to write). */
  logging?: LoggingStats;
  /** The primary's model process, for a deployment on the process runtime. */
  process?: ProcessStatus;
}

export interface LaneStatus {
  /** MODEL@VERSION, as configured. */
  model: string;
  /** The loaded version, null while loading or after a failed load. */
  version: number | null;
  state: 'idle' | 'loading' | 'ready' | 'restarting' | 'failed';
  error?: string;
  /** The lane's model process, on the process runtime. */
  process?: ProcessStatus;
}

export interface OutputComparison {
  /** Responses where both the primary and the shadow returned this output. */
  compared: number;
  /** Of those, how many differed (numbers by more than 1e-6, anything else at all). */
  differing: number;
  /** Largest absolute difference seen over numeric values; null for non-numeric outputs or before any comparison. */
  max_abs_diff: number | null;
}

export interface ShadowStats {
  /** Requests mirrored to the shadow. */
  requests: number;
  /** Mirrored requests the shadow failed (bad input for its signature, runtime errors, not loaded). */
  failures: number;
  /** Requests not mirrored because too many shadow requests were in flight. */
  dropped: number;
  /** Shadow responses compared with the primary's. */
  compared: number;
  /** Of those, responses where any output differed. */
  differing: number;
  max_abs_diff: number | null;
  outputs: Record<string, OutputComparison>;
  last_error?: string;
}

/** Traffic settings kept in the deployments.config column. */
export interface DeploymentConfig {
  /** A fixed version taking `weight` percent of requests (sticky by request id). */
  canary?: { model: string; weight: number };
  /** A fixed version every request is mirrored to; its responses are compared, never returned. */
  shadow?: { model: string };
  /** Prediction logging: `rate` of requests (0 to 1) committed to the repo `<deployment>-predictions`. */
  logging?: { rate: number };
  /** Adaptive batching: concurrent requests coalesced into one model run of up to max_batch_size, waiting at most max_batch_delay_us. */
  batching?: BatchingConfig;
  /** What runs the model: ONNX Runtime in the server (absent) or `command`, a process serving the Open Inference Protocol. */
  runtime?: 'process';
  /** The process runtime's command (run by the shell, in a directory holding the version's file). */
  command?: string;
  /** The process runtime's wait for GET /v2/health/ready, in seconds. */
  ready_timeout_s?: number;
}

/** The runtime given to create (onnx, the default, or process with a command) or to update (a new command or ready timeout). */
export interface RuntimeChanges {
  runtime?: 'onnx' | 'process';
  command?: string;
  ready_timeout_s?: number;
}

export interface DeploymentInfo {
  name: string;
  /** MODEL@ALIAS or MODEL@VERSION, as given. */
  model: string;
  model_name: string;
  /** An alias name or a version number as text. */
  target: string;
  target_kind: 'alias' | 'version';
  config: DeploymentConfig & Record<string, unknown>;
  creator: string;
  created_at: number;
  updated_at: number;
  /** Set by the server that serves it (and by the local client after a predict). */
  serving?: ServingStatus;
}

export interface ModelTarget {
  model_name: string;
  target: string;
  kind: 'alias' | 'version';
}

export function checkDeploymentName(name: string): string {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new InvalidArgumentError(
      `deployment name "${name}" is invalid: use letters, digits, '_', '-' and '.', starting with a letter or digit, at most 128 characters`,
    );
  }
  return name;
}

/** Parses MODEL@ALIAS or MODEL@VERSION. */
export function parseModelTarget(text: string): ModelTarget {
  const at = typeof text === 'string' ? text.lastIndexOf('@') : -1;
  if (at <= 0 || at === text.length - 1) {
    throw new InvalidArgumentError(`model "${text}" must be MODEL@ALIAS (follows the alias, e.g. spam@production) or MODEL@VERSION (e.g. spam@3)`);
  }
  const model_name = checkModelName(text.slice(0, at));
  const target = text.slice(at + 1);
  if (/^\d+$/.test(target)) {
    if (Number(target) < 1) throw new InvalidArgumentError(`model "${text}": versions are whole numbers from 1`);
    return { model_name, target: String(Number(target)), kind: 'version' };
  }
  if (target !== 'latest') checkAliasName(target);
  return { model_name, target, kind: 'alias' };
}

/** A canary or shadow target: MODEL@VERSION (a fixed version). */
function fixedTarget(text: string, flag: string): ModelTarget {
  const target = parseModelTarget(text);
  if (target.kind !== 'version') throw new InvalidArgumentError(`${flag} "${text}" must name a fixed version, MODEL@VERSION (e.g. spam@3)`);
  return target;
}

/** Parses a canary spec, MODEL@VERSION=WEIGHT with WEIGHT the percent of requests (0 to 100). */
export function parseCanary(text: string): { target: ModelTarget; weight: number } {
  const m = typeof text === 'string' ? /^(.*)=([^=]*)$/.exec(text) : null;
  if (!m) throw new InvalidArgumentError(`canary "${text}" must be MODEL@VERSION=WEIGHT, e.g. spam@3=10 (10% of requests)`);
  const weight = /^\d+(\.\d+)?$/.test(m[2]!) ? Number(m[2]) : NaN;
  if (!(weight >= 0 && weight <= 100)) throw new InvalidArgumentError(`canary "${text}": the weight "${m[2]}" must be a percent from 0 to 100`);
  return { target: fixedTarget(m[1]!, 'canary'), weight };
}

export function parseShadow(text: string): ModelTarget {
  return fixedTarget(text, 'shadow');
}

/** Batching settings as given to create or update: both on create; either on update (the other is kept). A max size of 1 turns batching off. */
export interface BatchingChanges {
  max_batch_size?: number;
  max_batch_delay_us?: number;
}

/** A prediction logging rate: the fraction of requests logged, 0 (off) to 1 (all). */
export function checkLogRate(rate: unknown): number {
  if (typeof rate !== 'number' || !Number.isFinite(rate) || rate < 0 || rate > 1) {
    throw new InvalidArgumentError(`prediction logging rate "${String(rate)}" must be a number from 0 (off) to 1 (every request), e.g. 0.1 for 10%`);
  }
  return rate;
}

const textOf = (t: ModelTarget) => `${t.model_name}@${t.target}`;

export class DeploymentService {
  constructor(
    private db: Kysely<Schema>,
    private registry: Registry,
  ) {}

  async create(input: { name: string; model: string; creator: string; canary?: string; shadow?: string; log_predictions?: number } & BatchingChanges & RuntimeChanges): Promise<DeploymentInfo> {
    const name = checkDeploymentName(input?.name);
    const target = parseModelTarget(input.model);
    const runtime = runtimeConfig({}, input, true);
    await this.servable(target, runtime);
    const config = await this.traffic(runtime, input);
    const now = Date.now();
    const inserted = await this.db
      .insertInto('deployments')
      .values({ name, model: target.model_name, target: target.target, config: JSON.stringify(config), creator: input.creator, created_at: now, updated_at: now })
      .onConflict((oc) => oc.column('name').doNothing())
      .executeTakeFirst();
    if (Number(inserted.numInsertedOrUpdatedRows ?? 0) === 0) throw new AlreadyExistsError(`deployment "${name}" already exists (strata deploy update ${name} --model ... changes its model)`);
    return this.inspect(name);
  }

  async list(): Promise<DeploymentInfo[]> {
    const rows = await this.db.selectFrom('deployments').selectAll().orderBy('name').execute();
    return rows.map(infoOf);
  }

  async inspect(name: string): Promise<DeploymentInfo> {
    checkDeploymentName(name);
    const row = await this.db.selectFrom('deployments').selectAll().where('name', '=', name).executeTakeFirst();
    if (!row) throw new NotFoundError(`deployment "${name}" not found (strata deploy list shows the deployments)`);
    return infoOf(row);
  }

  /**
   * Points a deployment at another model target and/or changes its canary
   * or shadow (null removes one); a server swaps without downtime.
   */
  async update(
    name: string,
    changes: { model?: string; canary?: string | null; shadow?: string | null; log_predictions?: number } & BatchingChanges & Omit<RuntimeChanges, 'runtime'>,
  ): Promise<DeploymentInfo> {
    const info = await this.inspect(name);
    const given = [changes?.model, changes?.canary, changes?.shadow, changes?.log_predictions, changes?.max_batch_size, changes?.max_batch_delay_us, changes?.command, changes?.ready_timeout_s];
    if (given.every((v) => v === undefined)) {
      throw new InvalidArgumentError('nothing to update: give a model, a canary, a shadow, a prediction logging rate, batching or a process command');
    }
    const config = runtimeConfig(info.config, changes, false);
    const set: { model?: string; target?: string; config: string; updated_at: number } = {
      config: JSON.stringify(await this.traffic(config, changes)),
      updated_at: Date.now(),
    };
    if (changes.model !== undefined) {
      const target = parseModelTarget(changes.model);
      await this.servable(target, config);
      set.model = target.model_name;
      set.target = target.target;
    }
    await this.db.updateTable('deployments').set(set).where('name', '=', name).execute();
    return this.inspect(name);
  }

  /** The config with a canary or shadow set (a string), removed (null) or kept (undefined). */
  private async traffic(
    config: DeploymentConfig & Record<string, unknown>,
    changes: { canary?: string | null; shadow?: string | null; log_predictions?: number } & BatchingChanges,
  ): Promise<Record<string, unknown>> {
    const next: Record<string, unknown> = { ...config };
    if (changes.max_batch_size !== undefined || changes.max_batch_delay_us !== undefined) {
      const old = config.batching as BatchingConfig | undefined;
      const size = changes.max_batch_size ?? old?.max_batch_size;
      const delay = changes.max_batch_delay_us ?? old?.max_batch_delay_us;
      if (size === undefined || delay === undefined) {
        throw new InvalidArgumentError('batching needs both a max batch size and a max batch delay (max_batch_size and max_batch_delay_us)');
      }
      const batching = checkBatching(size, delay);
      if (batching.max_batch_size === 1) delete next.batching;
      else next.batching = batching;
    }
    if (changes.log_predictions !== undefined) {
      const rate = checkLogRate(changes.log_predictions);
      if (rate === 0) delete next.logging;
      else next.logging = { rate };
    }
    if (changes.canary === null) delete next.canary;
    else if (changes.canary !== undefined) {
      const { target, weight } = parseCanary(changes.canary);
      await this.servable(target, config);
      next.canary = { model: textOf(target), weight };
    }
    if (changes.shadow === null) delete next.shadow;
    else if (changes.shadow !== undefined) {
      const target = parseShadow(changes.shadow);
      await this.servable(target, config);
      next.shadow = { model: textOf(target) };
    }
    return next;
  }

  async delete(name: string): Promise<void> {
    await this.inspect(name);
    await this.db.deleteFrom('deployments').where('name', '=', name).execute();
  }

  /** The model version a deployment points at now. */
  async resolve(info: Pick<DeploymentInfo, 'model_name' | 'target' | 'target_kind'>): Promise<ModelVersion> {
    return info.target_kind === 'version'
      ? this.registry.getVersion(info.model_name, Number(info.target))
      : this.registry.getVersionByAlias(info.model_name, info.target);
  }

  /** The target must exist now; on ONNX Runtime it must be an ONNX model with a signature (a model process reports its own). */
  private async servable(target: ModelTarget, config: DeploymentConfig): Promise<void> {
    const version = await this.resolve({ model_name: target.model_name, target: target.target, target_kind: target.kind });
    if (config.runtime !== 'process' && (version.format !== 'onnx' || !version.signature)) {
      throw new StrataError(
        'FAILED_PRECONDITION',
        `${version.name} version ${version.version} (${version.path ?? version.source}) is not an ONNX model; deploy it with --runtime process --command "..." (a process serving the Open Inference Protocol), or deploy an .onnx version`,
      );
    }
  }
}

/**
 * The config with the runtime fields applied: on create, runtime process
 * needs a command and onnx takes none; on update, a command or ready
 * timeout only applies to a process deployment.
 */
function runtimeConfig(config: Record<string, unknown>, changes: RuntimeChanges, creating: boolean): DeploymentConfig & Record<string, unknown> {
  const next: DeploymentConfig & Record<string, unknown> = { ...config };
  const runtime = creating ? (changes.runtime ?? 'onnx') : next.runtime === 'process' ? 'process' : 'onnx';
  if (runtime !== 'onnx' && runtime !== 'process') throw new InvalidArgumentError(`runtime "${String(runtime)}" is unknown: use onnx (the default) or process`);
  if (runtime === 'onnx') {
    if (changes.command !== undefined || changes.ready_timeout_s !== undefined) {
      throw new InvalidArgumentError(
        creating ? 'a command and a ready timeout are for --runtime process; the onnx runtime runs the .onnx file itself' : 'this deployment runs on ONNX Runtime: a command or ready timeout applies only to --runtime process deployments',
      );
    }
    return next;
  }
  const spec = checkProcessSpec({ command: changes.command ?? next.command, ready_timeout_s: changes.ready_timeout_s ?? next.ready_timeout_s });
  next.runtime = 'process';
  next.command = spec.command;
  if (spec.ready_timeout_s !== undefined) next.ready_timeout_s = spec.ready_timeout_s;
  return next;
}

function infoOf(row: Schema['deployments']): DeploymentInfo {
  const kind = /^\d+$/.test(row.target) ? 'version' : 'alias';
  return {
    name: row.name,
    model: `${row.model}@${row.target}`,
    model_name: row.model,
    target: row.target,
    target_kind: kind,
    config: JSON.parse(row.config) as DeploymentConfig & Record<string, unknown>,
    creator: row.creator,
    created_at: Number(row.created_at),
    updated_at: Number(row.updated_at),
  };
}
