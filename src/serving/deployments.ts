import type { Kysely } from 'kysely';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError, StrataError } from '../errors.js';
import type { Schema } from '../meta/schema.js';
import { checkAliasName, checkModelName, type Registry } from '../tracking/registry.js';
import type { ModelVersion } from '../tracking/types.js';

// Deployments: a name that serves one model, bound either to an alias
// (MODEL@ALIAS: follows the alias as it moves) or to a fixed version
// (MODEL@VERSION). Stored in the `deployments` table; the ServingManager
// (manager.ts) loads what they point at.

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export interface ServingStatus {
  /** loading: the first version is being loaded; failed: no version could be loaded; idle: not loaded in this process. */
  state: 'idle' | 'loading' | 'ready' | 'failed';
  /** The version taking traffic. */
  version: number | null;
  /** The last load failure, if any (a failed swap keeps the old version serving). */
  error?: string;
}

export interface DeploymentInfo {
  name: string;
  /** MODEL@ALIAS or MODEL@VERSION, as given. */
  model: string;
  model_name: string;
  /** An alias name or a version number as text. */
  target: string;
  target_kind: 'alias' | 'version';
  config: Record<string, unknown>;
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

export class DeploymentService {
  constructor(
    private db: Kysely<Schema>,
    private registry: Registry,
  ) {}

  async create(input: { name: string; model: string; creator: string }): Promise<DeploymentInfo> {
    const name = checkDeploymentName(input?.name);
    const target = parseModelTarget(input.model);
    await this.servable(target);
    const now = Date.now();
    const inserted = await this.db
      .insertInto('deployments')
      .values({ name, model: target.model_name, target: target.target, config: '{}', creator: input.creator, created_at: now, updated_at: now })
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

  /** Points a deployment at another model target; a server swaps to it without downtime. */
  async update(name: string, changes: { model: string }): Promise<DeploymentInfo> {
    await this.inspect(name);
    const target = parseModelTarget(changes?.model);
    await this.servable(target);
    await this.db
      .updateTable('deployments')
      .set({ model: target.model_name, target: target.target, updated_at: Date.now() })
      .where('name', '=', name)
      .execute();
    return this.inspect(name);
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

  /** The target must exist now and be an ONNX model with a signature. */
  private async servable(target: ModelTarget): Promise<void> {
    const version = await this.resolve({ model_name: target.model_name, target: target.target, target_kind: target.kind });
    if (version.format !== 'onnx' || !version.signature) {
      throw new StrataError(
        'FAILED_PRECONDITION',
        `${version.name} version ${version.version} (${version.path ?? version.source}) is not an ONNX model; only .onnx versions can be deployed`,
      );
    }
  }
}

function infoOf(row: Schema['deployments']): DeploymentInfo {
  const kind = /^\d+$/.test(row.target) ? 'version' : 'alias';
  return {
    name: row.name,
    model: `${row.model}@${row.target}`,
    model_name: row.model,
    target: row.target,
    target_kind: kind,
    config: JSON.parse(row.config) as Record<string, unknown>,
    creator: row.creator,
    created_at: Number(row.created_at),
    updated_at: Number(row.updated_at),
  };
}
