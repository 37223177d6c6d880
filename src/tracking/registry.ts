import type { Kysely, Transaction } from 'kysely';
import { sql } from 'kysely';
import type { DataService } from '../data/service.js';
import { defaultAuthor } from '../data/service.js';
import { parseRef } from '../data/refs.js';
import {
  AlreadyExistsError,
  ConflictError,
  InvalidArgumentError,
  NotFoundError,
  StrataError,
} from '../errors.js';
import type { Lineage } from '../lineage/graph.js';
import type { Schema } from '../meta/schema.js';
import { isOnnxPath, readOnnxSignature } from '../onnx/signature.js';
import { needsLabels, PromotionGates, type GateSubject } from './gates.js';
import type { AliasChange, GateRule, ModelVersion, RegisteredModel } from './types.js';

// The model registry: named models, their versions (a file in a commit, with
// its content hash, ONNX signature, run and data lineage), aliases that point
// at versions, and the history of every alias move, so "what was in
// production last Tuesday" has an answer (aliasAt).
//
// Version numbers and alias history sequence numbers are allocated inside a
// transaction as max + 1 and protected by the tables' primary keys; when two
// writers collide (a unique violation, or SQLite's busy snapshot across
// processes) the loser retries. A version number is never handed out twice for
// one model name, even after deletes: registered_models.last_version remembers
// the highest number handed out, and the next is also above every version
// alias_history mentions.

const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const ALIAS_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;
/** Resolves to the highest version; cannot be set. */
export const LATEST = 'latest';

const MAX_RETRIES = 20;

type Db = Kysely<Schema>;
type VersionRow = Schema['model_versions'];

export interface RegisterVersionInput {
  /** REPO[@BRANCH|@COMMIT]:/path of the model file, e.g. train@master:/model.onnx */
  from: string;
  run_id?: string;
  description?: string;
  tags?: Record<string, string>;
  user?: string;
}

export interface AliasAt {
  name: string;
  alias: string;
  /** The instant asked about (epoch ms). */
  time: number;
  /** The version that held the alias then, or null. */
  version: number | null;
}

export function checkModelName(name: string): string {
  if (typeof name !== 'string' || !MODEL_NAME.test(name)) {
    throw new InvalidArgumentError(
      `model name "${name}" is invalid: use letters, digits, '_', '-' and '.', starting with a letter or digit, at most 128 characters`,
    );
  }
  return name;
}

/** Validates an alias name; `latest` is reserved (it always means the highest version). */
export function checkAliasName(alias: string): string {
  if (typeof alias !== 'string' || !ALIAS_NAME.test(alias)) {
    throw new InvalidArgumentError(
      `alias "${alias}" is invalid: use letters, digits, '_' and '-', starting with a letter, at most 64 characters`,
    );
  }
  if (alias.toLowerCase() === LATEST) throw new InvalidArgumentError(`alias "${alias}" is reserved: it always means the highest version`);
  return alias;
}

export function checkVersion(version: number | string): number {
  const n = typeof version === 'string' && /^\d+$/.test(version.trim()) ? Number(version) : version;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) {
    throw new InvalidArgumentError(`model version "${version}" is invalid: versions are whole numbers from 1`);
  }
  return n;
}

/** An instant given as epoch milliseconds or an ISO-8601 date/time. */
export function parseInstant(value: number | string, what = 'time'): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new InvalidArgumentError(`${what} must be a finite number of epoch milliseconds`);
    return value;
  }
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const t = Date.parse(text);
  if (!text || Number.isNaN(t)) {
    throw new InvalidArgumentError(`${what} "${value}" is not a date/time: use ISO-8601 (2024-05-07T09:00:00Z) or epoch milliseconds`);
  }
  return t;
}

function checkTags(tags: unknown, what: string): Record<string, string> {
  if (tags === undefined) return {};
  if (typeof tags !== 'object' || tags === null || Array.isArray(tags)) throw new InvalidArgumentError(`${what} must be an object of string values`);
  for (const [k, v] of Object.entries(tags)) {
    checkTagKey(k);
    if (typeof v !== 'string') throw new InvalidArgumentError(`${what}: value of "${k}" must be a string`);
  }
  return { ...(tags as Record<string, string>) };
}

function checkTagKey(key: string): string {
  if (typeof key !== 'string' || !key.trim() || key.length > 250) throw new InvalidArgumentError(`tag key "${key}" is invalid: a non-empty name of at most 250 characters`);
  return key;
}

function checkText(value: unknown, what: string): string {
  if (value === undefined) return '';
  if (typeof value !== 'string') throw new InvalidArgumentError(`${what} must be a string`);
  return value;
}

function checkActor(actor: unknown): string {
  if (typeof actor !== 'string' || !actor.trim()) throw new InvalidArgumentError('actor (who moves the alias) must be a non-empty string');
  return actor;
}

export class Registry {
  readonly gates: PromotionGates;
  /** A version's classification labels, for no_label gates (Instance sets it to PII classification). */
  labelsOf?: (name: string, version: number) => Promise<string[]>;

  constructor(
    private db: Db,
    private data: DataService,
    private lineage: Lineage,
  ) {
    this.gates = new PromotionGates(db);
  }

  // ---- models ----

  async createModel(name: string, opts: { description?: string; tags?: Record<string, string> } = {}): Promise<RegisteredModel> {
    checkModelName(name);
    const now = Date.now();
    const row = { name, description: checkText(opts.description, 'description'), tags: JSON.stringify(checkTags(opts.tags, 'tags')), last_version: 0, created_at: now, updated_at: now };
    const inserted = await this.db.insertInto('registered_models').values(row).onConflict((oc) => oc.column('name').doNothing()).executeTakeFirst();
    if (Number(inserted.numInsertedOrUpdatedRows ?? 0) === 0) throw new AlreadyExistsError(`model "${name}" already exists`);
    return this.getModel(name);
  }

  async getModel(name: string): Promise<RegisteredModel> {
    const row = await this.modelRow(this.db, name);
    const latest = await this.db.selectFrom('model_versions').select((eb) => eb.fn.max('version').as('v')).where('name', '=', name).executeTakeFirst();
    const aliases = await this.db.selectFrom('model_aliases').select(['alias', 'version']).where('name', '=', name).orderBy('alias').execute();
    return modelOf(row, latest?.v == null ? null : Number(latest.v), aliases);
  }

  /** Models by name; `filter` keeps those whose name contains it (case-insensitive). */
  async listModels(opts: { filter?: string } = {}): Promise<RegisteredModel[]> {
    const needle = opts.filter?.toLowerCase();
    const rows = (await this.db.selectFrom('registered_models').selectAll().orderBy('name').execute()).filter(
      (r) => !needle || r.name.toLowerCase().includes(needle),
    );
    if (rows.length === 0) return [];
    const latest = new Map(
      (await this.db.selectFrom('model_versions').select(['name', (eb) => eb.fn.max('version').as('v')]).groupBy('name').execute()).map((r) => [r.name, Number(r.v)]),
    );
    const aliases = await this.db.selectFrom('model_aliases').select(['name', 'alias', 'version']).orderBy('alias').execute();
    return rows.map((r) => modelOf(r, latest.get(r.name) ?? null, aliases.filter((a) => a.name === r.name)));
  }

  async updateModel(name: string, changes: { description?: string }): Promise<RegisteredModel> {
    await this.modelRow(this.db, name);
    if (changes.description !== undefined) {
      await this.db
        .updateTable('registered_models')
        .set({ description: checkText(changes.description, 'description'), updated_at: Date.now() })
        .where('name', '=', name)
        .execute();
    }
    return this.getModel(name);
  }

  /** Sets (or with value null, removes) a tag of a model. */
  async setModelTag(name: string, key: string, value: string | null): Promise<RegisteredModel> {
    checkTagKey(key);
    if (value !== null && typeof value !== 'string') throw new InvalidArgumentError(`tag value of "${key}" must be a string`);
    await retrying(`tagging model ${name}`, () =>
      this.db.transaction().execute(async (trx) => {
        const row = await this.modelRow(trx, name);
        const tags = JSON.parse(row.tags) as Record<string, string>;
        if (value === null) delete tags[key];
        else tags[key] = value;
        await trx.updateTable('registered_models').set({ tags: JSON.stringify(tags), updated_at: Date.now() }).where('name', '=', name).execute();
      }),
    );
    return this.getModel(name);
  }

  /** Deletes a model with its versions, aliases and gates. The alias history is kept (it is the audit trail). */
  async deleteModel(name: string): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await this.modelRow(trx, name);
      await trx.deleteFrom('model_aliases').where('name', '=', name).execute();
      await trx.deleteFrom('model_versions').where('name', '=', name).execute();
      await trx.deleteFrom('promotion_gates').where('name', '=', name).execute();
      await trx.deleteFrom('registered_models').where('name', '=', name).execute();
    });
  }

  // ---- versions ----

  /**
   * Registers the file at `from` (REPO[@REF]:/path) as the next version of
   * `name`, creating the model if needed. Everything is checked before
   * anything is written: a missing path, a directory, an unknown run or an
   * invalid ONNX file registers nothing.
   */
  async registerVersion(name: string, input: RegisterVersionInput): Promise<ModelVersion> {
    checkModelName(name);
    if (typeof input?.from !== 'string') throw new InvalidArgumentError('from is required: the model file as REPO[@REF]:/path');
    const ref = parseRef(input.from);
    if (!ref.hasPath || ref.path === '/') {
      throw new InvalidArgumentError(`from "${input.from}" names no file: expected REPO[@BRANCH|@COMMIT]:/path/to/model`);
    }
    const description = checkText(input.description, 'description');
    const tags = checkTags(input.tags, 'tags');
    const user = input.user === undefined ? defaultAuthor() : checkText(input.user, 'user');

    const { repo, commit, path } = await this.data.resolve(ref);
    const where = `${repo}@${commit.id.slice(0, 12)}:${path}`;
    const entry = await this.data.trees.lookup(commit.tree, path);
    if (!entry) throw new NotFoundError(`${where} does not exist (strata ls ${repo}@${commit.id.slice(0, 12)} shows what is there)`);
    if (entry.type !== 'file') throw new InvalidArgumentError(`${where} is a directory; register a file such as ${path}/model.onnx`);

    let format: 'onnx' | 'file' = 'file';
    let signature: ModelVersion['signature'] = null;
    if (isOnnxPath(path)) {
      format = 'onnx';
      const bytes = await readAll(this.data.readContent(entry.hash));
      try {
        signature = readOnnxSignature(bytes);
      } catch (err) {
        if (err instanceof StrataError) throw new StrataError(err.code, `${where}: ${err.message}`, { cause: err });
        throw err;
      }
    }

    let runId: string | null = null;
    if (input.run_id !== undefined && input.run_id !== null) {
      const run = await this.db.selectFrom('runs').select('id').where('id', '=', checkText(input.run_id, 'run_id')).executeTakeFirst();
      if (!run) throw new NotFoundError(`run "${input.run_id}" not found`);
      runId = run.id;
    } else if (commit.job) {
      // The run of the pipeline job that wrote the commit.
      const run = await this.db.selectFrom('runs').select('id').where('job', '=', commit.job).orderBy('start_time', 'desc').executeTakeFirst();
      runId = run?.id ?? null;
    }

    const version = await retrying(`registering a version of model ${name}`, () =>
      this.db.transaction().execute(async (trx) => {
        const now = Date.now();
        await trx
          .insertInto('registered_models')
          .values({ name, description: '', tags: '{}', last_version: 0, created_at: now, updated_at: now })
          .onConflict((oc) => oc.column('name').doNothing())
          .execute();
        const next = (await this.highestVersionEver(trx, name)) + 1;
        await trx
          .insertInto('model_versions')
          .values({
            name,
            version: next,
            source: `${repo}@${commit.id}:${path}`,
            repo,
            commit: commit.id,
            path,
            hash: entry.hash,
            size: entry.size,
            format,
            signature: JSON.stringify(signature),
            run_id: runId,
            description,
            tags: JSON.stringify(tags),
            user_id: user,
            created_at: now,
            updated_at: now,
          })
          .execute();
        await trx.updateTable('registered_models').set({ updated_at: now, last_version: next }).where('name', '=', name).execute();
        return next;
      }),
    );
    return this.getVersion(name, version);
  }

  async getVersion(name: string, version: number): Promise<ModelVersion> {
    const row = await this.versionRow(this.db, name, checkVersion(version));
    const aliases = await this.db.selectFrom('model_aliases').select('alias').where('name', '=', name).where('version', '=', row.version).orderBy('alias').execute();
    return this.versionOf(row, aliases.map((a) => a.alias));
  }

  /** Every version of a model, oldest first. */
  async listVersions(name: string): Promise<ModelVersion[]> {
    await this.modelRow(this.db, name);
    const rows = await this.db.selectFrom('model_versions').selectAll().where('name', '=', name).orderBy('version').execute();
    const aliases = await this.db.selectFrom('model_aliases').select(['alias', 'version']).where('name', '=', name).orderBy('alias').execute();
    return Promise.all(rows.map((r) => this.versionOf(r, aliases.filter((a) => a.version === r.version).map((a) => a.alias))));
  }

  /** The version an alias points at; `latest` is the highest version. */
  async getVersionByAlias(name: string, alias: string): Promise<ModelVersion> {
    if (alias === LATEST) {
      await this.modelRow(this.db, name);
      const row = await this.db.selectFrom('model_versions').select('version').where('name', '=', name).orderBy('version', 'desc').executeTakeFirst();
      if (!row) throw new NotFoundError(`model "${name}" has no versions yet`);
      return this.getVersion(name, row.version);
    }
    checkAliasName(alias);
    await this.modelRow(this.db, name);
    const row = await this.db.selectFrom('model_aliases').select('version').where('name', '=', name).where('alias', '=', alias).executeTakeFirst();
    if (!row) throw new NotFoundError(`model "${name}" has no alias "${alias}"`);
    return this.getVersion(name, row.version);
  }

  async updateVersion(name: string, version: number, changes: { description?: string }): Promise<ModelVersion> {
    await this.versionRow(this.db, name, checkVersion(version));
    if (changes.description !== undefined) {
      await this.db
        .updateTable('model_versions')
        .set({ description: checkText(changes.description, 'description'), updated_at: Date.now() })
        .where('name', '=', name)
        .where('version', '=', version)
        .execute();
    }
    return this.getVersion(name, version);
  }

  /** Sets (or with value null, removes) a tag of a version. Gates' tag rules look here first. */
  async setVersionTag(name: string, version: number, key: string, value: string | null): Promise<ModelVersion> {
    checkTagKey(key);
    if (value !== null && typeof value !== 'string') throw new InvalidArgumentError(`tag value of "${key}" must be a string`);
    await retrying(`tagging ${name} version ${version}`, () =>
      this.db.transaction().execute(async (trx) => {
        const row = await this.versionRow(trx, name, checkVersion(version));
        const tags = JSON.parse(row.tags) as Record<string, string>;
        if (value === null) delete tags[key];
        else tags[key] = value;
        await trx
          .updateTable('model_versions')
          .set({ tags: JSON.stringify(tags), updated_at: Date.now() })
          .where('name', '=', name)
          .where('version', '=', row.version)
          .execute();
      }),
    );
    return this.getVersion(name, version);
  }

  /** Deletes a version; refused while an alias points at it. Its number is never reused. */
  async deleteVersion(name: string, version: number): Promise<void> {
    checkVersion(version);
    await this.db.transaction().execute(async (trx) => {
      await this.versionRow(trx, name, version);
      const held = await trx.selectFrom('model_aliases').select('alias').where('name', '=', name).where('version', '=', version).orderBy('alias').execute();
      if (held.length) {
        const list = held.map((a) => a.alias).join(', ');
        throw new StrataError(
          'FAILED_PRECONDITION',
          `${name} version ${version} is held by alias ${list}; move or remove ${held.length > 1 ? 'those aliases' : 'that alias'} first (strata model alias rm ${name} ${held[0]!.alias})`,
        );
      }
      await trx.deleteFrom('model_versions').where('name', '=', name).where('version', '=', version).execute();
    });
  }

  // ---- aliases ----

  /**
   * Points `alias` at `version`, if the alias's gates pass, and records the
   * move in the alias history, both in one transaction. A failed gate throws
   * POLICY_VIOLATION and changes (and records) nothing. Setting an alias to
   * the version it already holds changes nothing and returns from = to.
   */
  async setAlias(name: string, alias: string, version: number, opts: { actor: string; reason?: string }): Promise<AliasChange> {
    checkModelName(name);
    checkAliasName(alias);
    checkVersion(version);
    const actor = checkActor(opts?.actor);
    const reason = checkText(opts?.reason, 'reason');
    // Classification labels come from outside the registry (governance): read before the transaction.
    const labels = this.labelsOf && needsLabels(await this.gates.getGates(name, alias)) ? await this.labelsOf(name, version) : undefined;
    const change = await retrying(`moving ${name}@${alias}`, () =>
      this.db.transaction().execute(async (trx) => {
        const candidate = await this.versionRow(trx, name, version);
        const current = await trx.selectFrom('model_aliases').select('version').where('name', '=', name).where('alias', '=', alias).executeTakeFirst();
        if (current?.version === version) {
          return { name, alias, from_version: version, to_version: version, actor, time: Date.now(), reason };
        }
        const holder = current ? await trx.selectFrom('model_versions').selectAll().where('name', '=', name).where('version', '=', current.version).executeTakeFirst() : undefined;
        await this.gates.checkGates(name, alias, { ...subjectOf(candidate), labels }, holder ? subjectOf(holder) : null, trx);
        if (current) {
          const moved = await trx
            .updateTable('model_aliases')
            .set({ version })
            .where('name', '=', name)
            .where('alias', '=', alias)
            .where('version', '=', current.version)
            .executeTakeFirst();
          if (Number(moved.numUpdatedRows) === 0) throw new Collision();
        } else {
          await trx.insertInto('model_aliases').values({ name, alias, version }).execute();
        }
        return this.record(trx, { name, alias, from_version: current?.version ?? null, to_version: version, actor, reason });
      }),
    );
    if (change.from_version !== change.to_version) this.emitAlias(change);
    return change;
  }

  /** Removes an alias, recording the removal (to_version null) in its history. */
  async deleteAlias(name: string, alias: string, opts: { actor: string; reason?: string }): Promise<AliasChange> {
    checkModelName(name);
    checkAliasName(alias);
    const actor = checkActor(opts?.actor);
    const reason = checkText(opts?.reason, 'reason');
    const change = await retrying(`removing ${name}@${alias}`, () =>
      this.db.transaction().execute(async (trx) => {
        await this.modelRow(trx, name);
        const current = await trx.selectFrom('model_aliases').select('version').where('name', '=', name).where('alias', '=', alias).executeTakeFirst();
        if (!current) throw new NotFoundError(`model "${name}" has no alias "${alias}"`);
        const gone = await trx
          .deleteFrom('model_aliases')
          .where('name', '=', name)
          .where('alias', '=', alias)
          .where('version', '=', current.version)
          .executeTakeFirst();
        if (Number(gone.numDeletedRows) === 0) throw new Collision();
        return this.record(trx, { name, alias, from_version: current.version, to_version: null, actor, reason });
      }),
    );
    this.emitAlias(change);
    return change;
  }

  private aliasListeners = new Set<(change: AliasChange) => void>();

  /**
   * Calls `listener` after every alias move this process makes (serving
   * follows aliases this way, at once); returns the unsubscribe function.
   * Moves made by other processes are seen by polling aliasHistory.
   */
  onAliasChange(listener: (change: AliasChange) => void): () => void {
    this.aliasListeners.add(listener);
    return () => this.aliasListeners.delete(listener);
  }

  private emitAlias(change: AliasChange): void {
    for (const l of this.aliasListeners) {
      try {
        l(change);
      } catch {
        // a listener's failure is its own; the alias has moved
      }
    }
  }

  /** Alias moves, newest first: of one alias, or of every alias of the model. Kept after the model is deleted. */
  async aliasHistory(name: string, alias?: string): Promise<AliasChange[]> {
    checkModelName(name);
    if (alias !== undefined) checkAliasName(alias);
    let q = this.db.selectFrom('alias_history').selectAll().where('name', '=', name);
    if (alias !== undefined) q = q.where('alias', '=', alias);
    const rows = await q.orderBy('time', 'desc').orderBy('seq', 'desc').orderBy('alias').execute();
    if (rows.length === 0) await this.modelRow(this.db, name); // an unknown model is an error; a model without moves is not
    return rows.map(changeOf);
  }

  /** The version that held `alias` at `time` (epoch ms or ISO-8601), or null if none did. */
  async aliasAt(name: string, alias: string, time: number | string): Promise<AliasAt> {
    checkModelName(name);
    checkAliasName(alias);
    const t = parseInstant(time);
    const row = await this.db
      .selectFrom('alias_history')
      .select('to_version')
      .where('name', '=', name)
      .where('alias', '=', alias)
      .where('time', '<=', t)
      .orderBy('time', 'desc')
      .orderBy('seq', 'desc')
      .executeTakeFirst();
    if (!row) {
      const known = await this.db.selectFrom('alias_history').select('seq').where('name', '=', name).executeTakeFirst();
      if (!known) await this.modelRow(this.db, name);
    }
    return { name, alias, time: t, version: row?.to_version ?? null };
  }

  // ---- gates ----

  /** Replaces the promotion gate of name@alias (an empty list removes it). */
  async setGates(name: string, alias: string, rules: GateRule[]): Promise<GateRule[]> {
    checkAliasName(alias);
    await this.modelRow(this.db, name);
    return this.gates.setGates(name, alias, rules);
  }

  async getGates(name: string, alias: string): Promise<GateRule[]> {
    checkAliasName(alias);
    await this.modelRow(this.db, name);
    return this.gates.getGates(name, alias);
  }

  // ---- plumbing ----

  private async record(trx: Transaction<Schema>, change: Omit<AliasChange, 'time'>): Promise<AliasChange> {
    const last = await trx
      .selectFrom('alias_history')
      .select(['seq', 'time'])
      .where('name', '=', change.name)
      .where('alias', '=', change.alias)
      .orderBy('seq', 'desc')
      .executeTakeFirst();
    // History time never runs backwards within an alias, even if the clock does.
    const time = Math.max(Date.now(), Number(last?.time ?? 0));
    await trx
      .insertInto('alias_history')
      .values({ ...change, seq: Number(last?.seq ?? 0) + 1, time })
      .execute();
    await trx.updateTable('registered_models').set({ updated_at: time }).where('name', '=', change.name).execute();
    return { ...change, time };
  }

  /** The highest version number this model name has ever had: existing versions and any the alias history mentions. */
  private async highestVersionEver(trx: Transaction<Schema>, name: string): Promise<number> {
    const v = await trx.selectFrom('model_versions').select((eb) => eb.fn.max('version').as('v')).where('name', '=', name).executeTakeFirst();
    const m = await trx.selectFrom('registered_models').select('last_version').where('name', '=', name).executeTakeFirst();
    const h = await trx
      .selectFrom('alias_history')
      .select([sql<number | null>`max(from_version)`.as('f'), sql<number | null>`max(to_version)`.as('t')])
      .where('name', '=', name)
      .executeTakeFirst();
    return Math.max(Number(v?.v ?? 0), Number(m?.last_version ?? 0), Number(h?.f ?? 0), Number(h?.t ?? 0));
  }

  private async modelRow(db: Db, name: string): Promise<Schema['registered_models']> {
    checkModelName(name);
    const row = await db.selectFrom('registered_models').selectAll().where('name', '=', name).executeTakeFirst();
    if (!row) throw new NotFoundError(`model "${name}" not found (strata model list shows the models)`);
    return row;
  }

  private async versionRow(db: Db, name: string, version: number): Promise<VersionRow> {
    const row = await db.selectFrom('model_versions').selectAll().where('name', '=', checkModelName(name)).where('version', '=', version).executeTakeFirst();
    if (row) return row;
    await this.modelRow(db, name);
    throw new NotFoundError(`model "${name}" has no version ${version} (strata model versions ${name} lists them)`);
  }

  private async versionOf(row: VersionRow, aliases: string[]): Promise<ModelVersion> {
    return {
      name: row.name,
      version: Number(row.version),
      source: row.source,
      repo: row.repo,
      commit: row.commit,
      path: row.path,
      hash: row.hash,
      size: Number(row.size),
      format: row.format === 'onnx' ? 'onnx' : 'file',
      signature: JSON.parse(row.signature) as ModelVersion['signature'],
      run_id: row.run_id,
      description: row.description,
      tags: JSON.parse(row.tags) as Record<string, string>,
      user_id: row.user_id,
      aliases,
      creation_timestamp: Number(row.created_at),
      last_updated_timestamp: Number(row.updated_at),
      lineage: await this.lineageOf(row.repo, row.commit),
    };
  }

  /** The commits upstream of the version's source commit (the data it was made from), excluding that commit. */
  private async lineageOf(repo: string | null, commit: string | null): Promise<{ repo: string; commit: string }[]> {
    if (!repo || !commit) return [];
    // The source repo may have been deleted since; the version stays readable, without lineage.
    const exists = await this.db.selectFrom('commits').select('id').where('id', '=', commit).where('repo', '=', repo).executeTakeFirst();
    if (!exists) return [];
    const graph = await this.lineage.graph(`${repo}@${commit}`, 'upstream');
    return graph.nodes
      .filter((n) => n.kind === 'commit' && !(n.repo === repo && n.commit === commit))
      .map((n) => ({ repo: n.repo!, commit: n.commit! }));
  }
}

function modelOf(row: Schema['registered_models'], latest: number | null, aliases: { alias: string; version: number }[]): RegisteredModel {
  return {
    name: row.name,
    description: row.description,
    tags: JSON.parse(row.tags) as Record<string, string>,
    creation_timestamp: Number(row.created_at),
    last_updated_timestamp: Number(row.updated_at),
    latest_version: latest,
    aliases: Object.fromEntries(aliases.map((a) => [a.alias, Number(a.version)])),
  };
}

function changeOf(row: Schema['alias_history']): AliasChange {
  return {
    name: row.name,
    alias: row.alias,
    from_version: row.from_version === null ? null : Number(row.from_version),
    to_version: row.to_version === null ? null : Number(row.to_version),
    actor: row.actor,
    time: Number(row.time),
    reason: row.reason,
  };
}

function subjectOf(row: VersionRow): GateSubject {
  return { version: Number(row.version), run_id: row.run_id, tags: JSON.parse(row.tags) as Record<string, string> };
}

async function readAll(stream: AsyncIterable<Buffer>): Promise<Uint8Array> {
  const parts: Buffer[] = [];
  for await (const b of stream) parts.push(b);
  return Buffer.concat(parts);
}

/** A compare-and-swap lost to a concurrent writer: the transaction is retried. */
class Collision extends Error {}

/** Runs `fn` (one transaction) again when it collided with a concurrent writer. */
async function retrying<T>(what: string, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!isCollision(err)) throw err;
      if (attempt >= MAX_RETRIES) throw new ConflictError(`${what} kept colliding with concurrent changes; retry the operation`);
      await new Promise((r) => setTimeout(r, Math.random() * 5 * (attempt + 1)));
    }
  }
}

function isCollision(err: unknown): boolean {
  if (err instanceof Collision) return true;
  if (err instanceof StrataError) return false;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return false;
  // PostgreSQL: unique violation, serialization failure, deadlock. SQLite: primary key / unique, busy (snapshot).
  return code === '23505' || code === '40001' || code === '40P01' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code.startsWith('SQLITE_BUSY');
}
