import { sql, type RawBuilder, type Transaction } from 'kysely';
import type { DataService } from '../data/service.js';
import { DEFAULT_BRANCH } from '../data/refs.js';
import { InvalidArgumentError, NotFoundError } from '../errors.js';
import type { MetaDb } from '../meta/db.js';
import type { Schema } from '../meta/schema.js';
import { inputRepos, type PipelineSpec } from '../pipelines/spec.js';
import { readPrefix, schemaFormat, SchemaCache, type ColumnInfo, type FileSchema } from './schema-infer.js';

// The catalog: one searchable entry per repo, pipeline, model and deployment,
// built from the entity's own metadata (repo description/owner/labels,
// pipeline spec description and creator, model description and tags,
// deployment creator), `strata catalog set` annotations on top, labels from
// registered providers (classification), and for repos the README.md and the
// column names of CSV/TSV/JSON-lines files at the head of the default branch.
//
// Entries live in the metadata database next to a full-text index (SQLite
// FTS5 with bm25, PostgreSQL tsvector + GIN with ts_rank_cd). They never go
// stale: a commit to a default branch re-indexes the repo in the background
// (drain() finishes that work before the instance closes), and every search
// first compares each entity's fingerprint (`source`) with its entry's in one
// query per kind, so changes made by another process are picked up too.

export const CATALOG_KINDS = ['repo', 'pipeline', 'model', 'deployment'] as const;
export type CatalogKind = (typeof CATALOG_KINDS)[number];

export interface CatalogEntity {
  kind: CatalogKind;
  name: string;
}

export interface CatalogHit {
  kind: CatalogKind;
  name: string;
  /** Relevance: higher is better; comparable within one result list only. */
  score: number;
  description: string;
  owners: string[];
  labels: Record<string, string>;
  /** Fields a query term was found in: name, labels, columns, description, owners, readme. */
  matched: string[];
}

export interface CatalogAnnotation {
  /** Replaces the entity's own description. */
  description?: string;
  /** Replaces the entity's own owners. */
  owners?: string[];
  /** Added to (or overriding) the entity's labels. */
  labels?: Record<string, string>;
  /** Label keys to remove: annotation labels, and the entity's own labels are hidden. */
  unlabel?: string[];
}

export interface CatalogDetails extends CatalogEntity {
  description: string;
  owners: string[];
  labels: Record<string, string>;
  /** Repos: the README.md at the root of the default branch's head, if any. */
  readme: string | null;
  /** Repos: inferred schemas of CSV/TSV/JSON-lines files by path. */
  schemas: Record<string, FileSchema>;
  /** Entities one hop away. */
  lineage: { upstream: CatalogEntity[]; downstream: CatalogEntity[] };
  /** What `catalog set` changed on top of the entity's own metadata. */
  annotations: CatalogAnnotation;
  /** From the classification provider, when one is registered. */
  classification?: unknown;
  updated: string;
}

export interface CatalogSearchOptions {
  kind?: string;
  /** `key=value` (exact) or `key` (present). All must hold. */
  labels?: string[];
  limit?: number;
  /** Only entities this says yes to are returned (a user sees what they may read); all when absent. */
  visible?: (kind: CatalogKind, name: string) => Promise<boolean>;
}

export type LabelSource = (kind: CatalogKind, name: string) => Promise<Record<string, string>>;
export type ClassificationProvider = (kind: CatalogKind, name: string) => Promise<unknown>;

const README_LIMIT = 256 * 1024;
/** Of the README, this much goes into the full-text index. */
const INDEXED_README = 64 * 1024;
/** Files looked at per repo for schemas, and schemas inferred per repo: a huge tree costs a bounded amount. */
const MAX_WALK = 20_000;
const MAX_SCHEMA_FILES = 100;
const DEFAULT_LIMIT = 20;
const SYNC_BATCH = 200;
const MAX_LIMIT = 1000;
/** Relevance of a match by field: name > labels, columns > description, owners > README (the engines use the same order). */
const FIELD_WEIGHTS: Record<string, number> = { name: 10, labels: 5, columns: 5, description: 2, owners: 2, readme: 1 };
const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9_.:/-]*$/;

// Each kind's entities with their fingerprint: what an entry is built from.
// A change to any part re-indexes the entry. The same SQL finds stale entries
// in bulk and loads one entity, so the two can never disagree.
const SOURCES: Record<CatalogKind, string> = {
  repo: `select r.name as name, r.description as description, r.owner as owner, r.labels as labels, b.head as head,
           coalesce(b.head, '') || '|' || r.created_at || '|' || r.description || '|' || r.owner || '|' || r.labels as fp
         from repos r left join branches b on b.repo = r.name and b.name = '${DEFAULT_BRANCH}'`,
  pipeline: `select p.name as name, p.spec as spec, p.creator as creator, p.spec_hash || '|' || p.creator as fp from pipelines p`,
  // last_version: a new version can bring new labels (its training data's PII).
  model: `select m.name as name, m.description as description, m.tags as tags, m.description || '|' || m.tags || '|' || m.last_version as fp from registered_models m`,
  deployment: `select d.name as name, d.model as model, d.target as target, d.creator as creator,
                 d.model || '|' || d.target || '|' || d.creator as fp from deployments d`,
};

type SourceRow = { name: string; fp: string } & Record<string, string | null>;

interface Built {
  description: string;
  owners: string[];
  labels: Record<string, string>;
  readme: string | null;
  schemas: Record<string, FileSchema>;
}

export class Catalog {
  private readonly schemaCache: SchemaCache;
  private labelSources: LabelSource[] = [];
  private classification?: ClassificationProvider;
  private pending = new Set<string>();
  private worker?: Promise<void>;
  private unsubscribe?: () => void;

  constructor(
    private meta: MetaDb,
    private data: DataService,
  ) {
    this.schemaCache = new SchemaCache(meta.db);
  }

  private get db() {
    return this.meta.db;
  }

  /** Re-indexes a repo whenever its default branch moves in this process. */
  watch(): void {
    this.unsubscribe ??= this.data.onCommit((event) => {
      if (event.branch === DEFAULT_BRANCH) this.enqueue('repo', event.repo);
    });
  }

  unwatch(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  /** Resolves when the re-indexing that commits triggered is done (Instance.close calls it). */
  async drain(): Promise<void> {
    while (this.worker) await this.worker;
  }

  /** Labels from elsewhere (e.g. PII classification) merged into every entry; searchable and filterable. */
  addLabelSource(source: LabelSource): void {
    this.labelSources.push(source);
  }

  /** What `inspect` shows as `classification`. */
  setClassificationProvider(provider: ClassificationProvider): void {
    this.classification = provider;
  }

  /** Re-indexes every entry whose entity changed and drops entries of deleted entities; returns how many changed. */
  async sync(): Promise<number> {
    let changed = 0;
    for (const kind of CATALOG_KINDS) {
      const stale = await sql<{ name: string }>`
        select x.name as name from (${sql.raw(SOURCES[kind])}) x
        left join catalog_entries e on e.kind = ${kind} and e.name = x.name
        where e.source is null or e.source <> x.fp order by x.name`.execute(this.db);
      const names = stale.rows.map((r) => r.name);
      // In batches: one transaction per batch keeps a first index of many thousand entities to seconds.
      for (let i = 0; i < names.length; i += SYNC_BATCH) await this.refreshBatch(kind, names.slice(i, i + SYNC_BATCH));
      changed += names.length;
      const gone = await sql<{ name: string }>`
        select e.name as name from catalog_entries e
        where e.kind = ${kind} and not exists (select 1 from (${sql.raw(SOURCES[kind])}) x where x.name = e.name)`.execute(this.db);
      for (const { name } of gone.rows) {
        await this.remove(kind, name);
        changed++;
      }
    }
    return changed;
  }

  /**
   * Marks entries stale so the next search (in any process) rebuilds them: for label sources whose answer
   * changed, e.g. after classification of a repo finished. Without `name`, every entry of the kind.
   */
  async invalidate(kind: CatalogKind, name?: string): Promise<void> {
    let q = this.db.updateTable('catalog_entries').set({ source: '' }).where('kind', '=', checkKind(kind));
    if (name !== undefined) q = q.where('name', '=', name);
    await q.execute();
  }

  /** Rebuilds one entry from its entity now (e.g. after its classification changed); removes it if the entity is gone. */
  async refresh(kind: CatalogKind, name: string): Promise<void> {
    const row = await this.sourceRow(kind, name);
    if (!row) return this.remove(kind, name);
    const built = await this.build(kind, row);
    await this.write(kind, name, row.fp, built);
  }

  private async refreshBatch(kind: CatalogKind, names: string[]): Promise<void> {
    const rows = (await sql<SourceRow>`select * from (${sql.raw(SOURCES[kind])}) x where x.name in (${sql.join(names)})`.execute(this.db)).rows;
    const annotations = await this.db.selectFrom('catalog_annotations').selectAll().where('kind', '=', kind).where('name', 'in', names).execute();
    const byName = new Map(annotations.map((a) => [a.name, annotationFromRow(a)]));
    const built: { row: SourceRow; built: Built }[] = [];
    for (const row of rows) built.push({ row, built: await this.build(kind, row, byName.get(row.name) ?? {}) });
    await this.db.transaction().execute(async (trx) => {
      for (const b of built) await this.writeIn(trx, kind, b.row.name, b.row.fp, b.built);
    });
    // Entities deleted since the stale query ran: the next sync drops their entries.
  }

  async search(query: string, opts: CatalogSearchOptions = {}): Promise<CatalogHit[]> {
    const kind = opts.kind === undefined || opts.kind === '' ? undefined : checkKind(opts.kind);
    const filters = (opts.labels ?? []).map(parseLabelFilter);
    const limit = opts.limit ?? DEFAULT_LIMIT;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) throw new InvalidArgumentError(`limit must be 1-${MAX_LIMIT}, got ${limit}`);
    // The engines rank a window of candidates; the final order adds field weights (below), because bm25's
    // document frequencies say little in a small catalog (every term is "common" among five repos).
    const window = Math.min(MAX_LIMIT, limit * 10);
    const words = queryWords(query ?? '');
    if (words.length === 0 && filters.length === 0) {
      throw new InvalidArgumentError('empty search query: give words to look for (names, labels, columns, descriptions), or filter with --label k=v');
    }
    await this.sync();

    const conditions: RawBuilder<unknown>[] = [];
    if (kind) conditions.push(sql`e.kind = ${kind}`);
    for (const f of filters) {
      conditions.push(
        f.value === undefined
          ? sql`exists (select 1 from catalog_labels l where l.kind = e.kind and l.name = e.name and l.key = ${f.key})`
          : sql`exists (select 1 from catalog_labels l where l.kind = e.kind and l.name = e.name and l.key = ${f.key} and l.value = ${f.value})`,
      );
    }
    const where = (first: RawBuilder<unknown>) => sql.join([first, ...conditions], sql` and `);
    // READMEs (up to 256 KiB each) are not read for the whole candidate window, only for the hits returned.
    const columns = sql`e.kind as kind, e.name as name, e.description as description, e.owners as owners, e.labels as labels, e.columns as columns`;
    type Row = { kind: CatalogKind; name: string; description: string; owners: string; labels: string; columns: string; rank: number };
    let rows: Row[];
    if (words.length === 0) {
      const most = opts.visible ? window : limit;
      rows = (await sql<Row>`select ${columns}, 0 as rank from catalog_entries e where ${where(sql`1 = 1`)} order by e.kind, e.name limit ${most}`.execute(this.db)).rows;
    } else if (this.meta.dialect === 'postgres') {
      rows = (
        await sql<Row>`select ${columns}, ts_rank_cd(e.document, q) as rank
          from catalog_entries e, to_tsquery('simple', ${tsQuery(words)}) q
          where ${where(sql`e.document @@ q`)} order by rank desc, e.kind, e.name limit ${window}`.execute(this.db)
      ).rows;
    } else {
      // bm25 is lower-is-better; weights follow the fts5 column order: name, labels, columns, description, owners, readme.
      rows = (
        await sql<Row>`select ${columns}, -bm25(catalog_fts, 10.0, 5.0, 5.0, 2.0, 2.0, 1.0) as rank
          from catalog_fts join catalog_entries e on e.id = catalog_fts.rowid
          where ${where(sql`catalog_fts match ${ftsQuery(words)}`)} order by rank desc, e.kind, e.name limit ${window}`.execute(this.db)
      ).rows;
    }
    if (opts.visible) {
      const shown = await Promise.all(rows.map((r) => opts.visible!(r.kind, r.name)));
      rows = rows.filter((_, i) => shown[i]);
    }
    const hits = rows.map((r) => {
      const labels = JSON.parse(r.labels) as Record<string, string>;
      const owners = JSON.parse(r.owners) as string[];
      const fields: Record<string, string> = {
        name: r.name,
        labels: labelText(labels),
        columns: r.columns,
        description: r.description,
        owners: owners.join(' '),
      };
      const matched = Object.keys(fields).filter((f) => matches(fields[f]!, words));
      // Every word matched somewhere: one that no other field holds is in the README.
      const elsewhere = Object.values(fields).join(' ');
      if (words.length > 0 && !words.every((w, i) => matches(elsewhere, [w], i === words.length - 1))) matched.push('readme');
      const exact = words.length > 0 && words.map((w) => w.join(' ')).join(' ') === (r.name.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []).join(' ');
      const weight = matched.reduce((sum, f) => sum + FIELD_WEIGHTS[f]!, exact ? FIELD_WEIGHTS.name! : 0);
      const hit: CatalogHit = { kind: r.kind, name: r.name, score: Math.round((weight + Number(r.rank)) * 1e4) / 1e4, description: r.description, owners, labels, matched };
      return hit;
    });
    const top = hits.sort((a, b) => b.score - a.score || a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name)).slice(0, limit);
    if (words.length > 0 && top.length > 0) {
      // Whether the README matched too, for the `matched` list of what is returned.
      const readmes = await this.db
        .selectFrom('catalog_entries')
        .select(['kind', 'name', 'readme'])
        .where((eb) => eb.or(top.map((h) => eb.and([eb('kind', '=', h.kind), eb('name', '=', h.name)]))))
        .execute();
      const byKey = new Map(readmes.map((r) => [`${r.kind}:${r.name}`, r.readme ?? '']));
      for (const h of top) {
        const inReadme = matches(byKey.get(`${h.kind}:${h.name}`) ?? '', words);
        if (inReadme !== h.matched.includes('readme')) h.matched = inReadme ? [...h.matched, 'readme'] : h.matched.filter((f) => f !== 'readme');
      }
    }
    return top;
  }

  /** Everything about one entity: its entry, lineage neighbours and classification. */
  async inspect(kind: string, name: string): Promise<CatalogDetails> {
    const k = checkKind(kind);
    await this.refreshIfStale(k, name);
    const entry = await this.db.selectFrom('catalog_entries').selectAll().where('kind', '=', k).where('name', '=', name).executeTakeFirst();
    if (!entry) throw notFound(k, name);
    const annotation = await this.annotation(k, name);
    const details: CatalogDetails = {
      kind: k,
      name,
      description: entry.description,
      owners: JSON.parse(entry.owners),
      labels: JSON.parse(entry.labels),
      readme: entry.readme,
      schemas: JSON.parse(entry.schemas),
      lineage: await this.neighbours(k, name),
      annotations: annotation,
      updated: new Date(Number(entry.updated_at)).toISOString(),
    };
    if (this.classification) details.classification = await this.classification(k, name);
    return details;
  }

  /** Adds `catalog set` annotations to an entity and re-indexes it. */
  async annotate(kind: string, name: string, changes: CatalogAnnotation): Promise<CatalogDetails> {
    const k = checkKind(kind);
    checkAnnotation(changes);
    if (!(await this.sourceRow(k, name))) throw notFound(k, name);
    await this.db.transaction().execute(async (trx) => {
      const current = await annotationOf(trx, k, name);
      const labels = { ...current.labels };
      const unlabel = new Set(current.unlabel);
      for (const key of changes.unlabel ?? []) {
        delete labels[key];
        unlabel.add(key);
      }
      for (const [key, value] of Object.entries(changes.labels ?? {})) {
        labels[key] = value;
        unlabel.delete(key);
      }
      const row = {
        description: changes.description ?? current.description ?? null,
        owners: changes.owners ? JSON.stringify(changes.owners) : current.owners ? JSON.stringify(current.owners) : null,
        labels: JSON.stringify(labels),
        unlabel: JSON.stringify([...unlabel].sort()),
        updated_at: Date.now(),
      };
      await trx
        .insertInto('catalog_annotations')
        .values({ kind: k, name, ...row })
        .onConflict((oc) => oc.columns(['kind', 'name']).doUpdateSet(row))
        .execute();
    });
    await this.refresh(k, name);
    return this.inspect(k, name);
  }

  // ---- indexing ----

  private enqueue(kind: CatalogKind, name: string): void {
    this.pending.add(`${kind}\0${name}`);
    this.worker ??= (async () => {
      while (this.pending.size > 0) {
        const key = this.pending.values().next().value as string;
        this.pending.delete(key);
        const [k, n] = key.split('\0') as [CatalogKind, string];
        try {
          await this.refresh(k, n);
        } catch (err) {
          // Nobody awaits this work: say so, and leave the entry for the next search's sync to rebuild.
          process.stderr.write(`strata: warning: catalog: could not index ${k} "${n}": ${(err as Error).message}\n`);
        }
      }
      this.worker = undefined;
    })();
  }

  private async sourceRow(kind: CatalogKind, name: string): Promise<SourceRow | undefined> {
    const res = await sql<SourceRow>`select * from (${sql.raw(SOURCES[kind])}) x where x.name = ${name}`.execute(this.db);
    return res.rows[0];
  }

  private async refreshIfStale(kind: CatalogKind, name: string): Promise<void> {
    const row = await this.sourceRow(kind, name);
    if (!row) {
      await this.remove(kind, name);
      throw notFound(kind, name);
    }
    const entry = await this.db.selectFrom('catalog_entries').select('source').where('kind', '=', kind).where('name', '=', name).executeTakeFirst();
    if (entry?.source !== row.fp) await this.write(kind, name, row.fp, await this.build(kind, row));
  }

  /** The entity's own metadata, with annotations and derived labels applied; for repos also README and schemas. */
  private async build(kind: CatalogKind, row: SourceRow, annotation?: CatalogAnnotation): Promise<Built> {
    const own = naturalMetadata(kind, row);
    annotation ??= await this.annotation(kind, row.name);
    const labels = { ...own.labels };
    for (const key of annotation.unlabel ?? []) delete labels[key];
    for (const source of this.labelSources) Object.assign(labels, await source(kind, row.name));
    Object.assign(labels, annotation.labels ?? {});
    const built: Built = {
      description: annotation.description ?? own.description,
      owners: annotation.owners ?? own.owners,
      labels,
      readme: null,
      schemas: {},
    };
    if (kind === 'repo' && row.head) Object.assign(built, await this.repoDocuments(row.head));
    return built;
  }

  /**
   * The columns of a commit's tabular files (CSV/TSV/JSON-lines), merged by name in first-seen order; null when
   * it has none. Cached per content hash, so asking again for a commit that shares files is cheap.
   */
  async columnsAt(commit: string): Promise<ColumnInfo[] | null> {
    const row = await this.db.selectFrom('commits').select('tree').where('id', '=', commit).executeTakeFirst();
    if (!row) return null;
    const columns = new Map<string, ColumnInfo>();
    for (const schema of Object.values(await this.schemasIn(row.tree))) {
      for (const c of schema.columns) {
        const seen = columns.get(c.name);
        if (!seen) columns.set(c.name, { ...c });
        else if (seen.type !== c.type) seen.type = 'string';
      }
    }
    return columns.size ? [...columns.values()] : null;
  }

  /** README.md and file schemas at a commit, bounded in bytes read and files looked at. */
  private async repoDocuments(commit: string): Promise<{ readme: string | null; schemas: Record<string, FileSchema> }> {
    const row = await this.db.selectFrom('commits').select('tree').where('id', '=', commit).executeTakeFirst();
    if (!row) return { readme: null, schemas: {} };
    const root = await this.data.trees.get(row.tree);
    const readmeEntry = root.find((e) => e.type === 'file' && e.name === 'README.md') ?? root.find((e) => e.type === 'file' && /^readme\.md$/i.test(e.name));
    let readme: string | null = null;
    if (readmeEntry) {
      const { bytes } = await readPrefix(this.data.readContent(readmeEntry.hash), README_LIMIT);
      readme = clean(bytes.toString('utf8'));
    }
    return { readme, schemas: await this.schemasIn(row.tree) };
  }

  private async schemasIn(tree: string): Promise<Record<string, FileSchema>> {
    const schemas: Record<string, FileSchema> = {};
    let walked = 0;
    let inferred = 0;
    for await (const file of this.data.trees.walk(tree, '/')) {
      if (++walked > MAX_WALK || inferred >= MAX_SCHEMA_FILES) break;
      const format = schemaFormat(file.path);
      if (!format) continue;
      schemas[file.path] = await this.schemaCache.get(file.hash, format, () => this.data.readContent(file.hash));
      inferred++;
    }
    return schemas;
  }

  /**
   * After `name`'s labels under `prefix` were recomputed elsewhere (PII classification finished): when they differ
   * from its entry's, marks every entry stale, since labels derived through lineage may have changed downstream too.
   */
  async labelsChanged(kind: CatalogKind, name: string, prefix: string, labels: string[]): Promise<boolean> {
    const rows = await this.db.selectFrom('catalog_labels').select('key').where('kind', '=', kind).where('name', '=', name).execute();
    const indexed = rows.map((r) => r.key).filter((k) => k.startsWith(prefix)).sort();
    const now = labels.filter((k) => k.startsWith(prefix)).sort();
    if (indexed.join('\n') === now.join('\n')) return false;
    for (const k of CATALOG_KINDS) await this.invalidate(k);
    return true;
  }

  private async write(kind: CatalogKind, name: string, source: string, built: Built): Promise<void> {
    await this.db.transaction().execute((trx) => this.writeIn(trx, kind, name, source, built));
  }

  private async writeIn(trx: Transaction<Schema>, kind: CatalogKind, name: string, source: string, built: Built): Promise<void> {
    const { values: fields, text } = entryValues(name, built);
    const values = { source, ...fields };
    // The write comes first, so a SQLite transaction takes the write lock at once (no read-then-upgrade deadlock).
    await trx
      .insertInto('catalog_entries')
      .values({ kind, name, id: sql<number>`(select coalesce(max(id), 0) + 1 from catalog_entries)`, ...values })
      .onConflict((oc) => oc.columns(['kind', 'name']).doUpdateSet(values))
      .execute();
    await trx.deleteFrom('catalog_labels').where('kind', '=', kind).where('name', '=', name).execute();
    const labelRows = Object.entries(built.labels).map(([key, value]) => ({ kind, name, key, value: clean(value) }));
    // Upserts: a concurrent rebuild of the same entry (another process's sync) may have inserted them since the delete.
    for (let i = 0; i < labelRows.length; i += 200) {
      await trx
        .insertInto('catalog_labels')
        .values(labelRows.slice(i, i + 200))
        .onConflict((oc) => oc.columns(['kind', 'name', 'key']).doUpdateSet((eb) => ({ value: eb.ref('excluded.value') })))
        .execute();
    }
    if (this.meta.dialect === 'postgres') {
      await sql`update catalog_entries set document =
          setweight(to_tsvector('simple', ${text.name}), 'A') ||
          setweight(to_tsvector('simple', ${`${text.labels} ${text.columns}`}), 'B') ||
          setweight(to_tsvector('simple', ${`${text.description} ${text.owners}`}), 'C') ||
          setweight(to_tsvector('simple', ${text.readme}), 'D')
        where kind = ${kind} and name = ${name}`.execute(trx);
    } else {
      const { id } = await trx.selectFrom('catalog_entries').select('id').where('kind', '=', kind).where('name', '=', name).executeTakeFirstOrThrow();
      await sql`delete from catalog_fts where rowid = ${id}`.execute(trx);
      await sql`insert into catalog_fts (rowid, name, labels, columns, description, owners, readme)
        values (${id}, ${text.name}, ${text.labels}, ${text.columns}, ${text.description}, ${text.owners}, ${text.readme})`.execute(trx);
    }
  }

  /** Drops an entry and the annotations of an entity that no longer exists. */
  private async remove(kind: CatalogKind, name: string): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const entry = await trx.selectFrom('catalog_entries').select('id').where('kind', '=', kind).where('name', '=', name).executeTakeFirst();
      if (entry && this.meta.dialect === 'sqlite') await sql`delete from catalog_fts where rowid = ${entry.id}`.execute(trx);
      await trx.deleteFrom('catalog_entries').where('kind', '=', kind).where('name', '=', name).execute();
      await trx.deleteFrom('catalog_labels').where('kind', '=', kind).where('name', '=', name).execute();
      await trx.deleteFrom('catalog_annotations').where('kind', '=', kind).where('name', '=', name).execute();
    });
  }

  private annotation(kind: CatalogKind, name: string): Promise<CatalogAnnotation> {
    return annotationOf(this.db, kind, name);
  }

  // ---- lineage ----

  /** Entities one hop up- and downstream, from pipeline specs, commit provenance, model versions and deployments. */
  private async neighbours(kind: CatalogKind, name: string): Promise<{ upstream: CatalogEntity[]; downstream: CatalogEntity[] }> {
    const upstream: CatalogEntity[] = [];
    const downstream: CatalogEntity[] = [];
    const pipelines = async () =>
      (await this.db.selectFrom('pipelines').select(['name', 'spec']).orderBy('name').execute()).map((p) => ({
        name: p.name,
        inputs: [...new Set(inputRepos(JSON.parse(p.spec) as PipelineSpec).map((i) => i.repo))],
      }));
    if (kind === 'repo') {
      const producer = await this.db.selectFrom('pipelines').select('name').where('name', '=', name).executeTakeFirst();
      if (producer) upstream.push({ kind: 'pipeline', name });
      else {
        // A repo no pipeline writes: the provenance its head commit was given.
        const head = await this.db
          .selectFrom('branches')
          .innerJoin('commits', 'commits.id', 'branches.head')
          .select('commits.provenance')
          .where('branches.repo', '=', name)
          .where('branches.name', '=', DEFAULT_BRANCH)
          .executeTakeFirst();
        const repos = head ? (JSON.parse(head.provenance) as { repo: string }[]).map((p) => p.repo) : [];
        for (const repo of new Set(repos)) if (repo !== name) upstream.push({ kind: 'repo', name: repo });
      }
      for (const p of await pipelines()) if (p.inputs.includes(name)) downstream.push({ kind: 'pipeline', name: p.name });
      const models = await this.db.selectFrom('model_versions').select('name').distinct().where('repo', '=', name).orderBy('name').execute();
      for (const m of models) downstream.push({ kind: 'model', name: m.name });
    } else if (kind === 'pipeline') {
      const p = (await pipelines()).find((x) => x.name === name);
      for (const repo of p?.inputs ?? []) upstream.push({ kind: 'repo', name: repo });
      if (await this.db.selectFrom('repos').select('name').where('name', '=', name).executeTakeFirst()) downstream.push({ kind: 'repo', name });
    } else if (kind === 'model') {
      const repos = await this.db.selectFrom('model_versions').select('repo').distinct().where('name', '=', name).where('repo', 'is not', null).orderBy('repo').execute();
      for (const r of repos) upstream.push({ kind: 'repo', name: r.repo! });
      const deployments = await this.db.selectFrom('deployments').select('name').where('model', '=', name).orderBy('name').execute();
      for (const d of deployments) downstream.push({ kind: 'deployment', name: d.name });
    } else {
      const d = await this.db.selectFrom('deployments').select('model').where('name', '=', name).executeTakeFirst();
      if (d) upstream.push({ kind: 'model', name: d.model });
    }
    return { upstream, downstream };
  }
}

function entryValues(name: string, built: Built) {
  const columnNames = [...new Set(Object.values(built.schemas).flatMap((s) => s.columns.map((c) => c.name)))];
  const columns = clean(columnNames.join(' ')).slice(0, INDEXED_README);
  const values = {
    description: clean(built.description),
    owners: JSON.stringify(built.owners.map(clean)),
    labels: JSON.stringify(built.labels),
    readme: built.readme,
    schemas: clean(JSON.stringify(built.schemas)),
    columns,
    updated_at: Date.now(),
  };
  const text = {
    name: name,
    labels: clean(labelText(built.labels)),
    columns,
    description: values.description,
    owners: clean(built.owners.join(' ')),
    readme: (built.readme ?? '').slice(0, INDEXED_README),
  };
  return { values, text };
}

// ---- references, filters and queries ----

/** `repo:NAME`, `pipeline:NAME`, `model:NAME`, `deployment:NAME`, or a bare NAME (a repo). */
export function parseCatalogRef(ref: string): CatalogEntity {
  const colon = ref.indexOf(':');
  const kind = colon < 0 ? 'repo' : ref.slice(0, colon);
  const name = colon < 0 ? ref : ref.slice(colon + 1);
  if (!name) throw new InvalidArgumentError(`"${ref}" names no entity: expected KIND:NAME (${CATALOG_KINDS.join(', ')}) or a repo name`);
  return { kind: checkKind(kind), name };
}

export function checkKind(kind: string): CatalogKind {
  if (!(CATALOG_KINDS as readonly string[]).includes(kind)) {
    throw new InvalidArgumentError(`unknown catalog kind "${kind}": expected one of ${CATALOG_KINDS.join(', ')}`);
  }
  return kind as CatalogKind;
}

/** `key=value` or `key`. */
export function parseLabelFilter(text: string): { key: string; value?: string } {
  const eq = text.indexOf('=');
  const key = eq < 0 ? text : text.slice(0, eq);
  if (!LABEL_KEY.test(key)) {
    throw new InvalidArgumentError(`label filter "${text}": expected key=value or key, with a key of letters, digits and _ . : / -`);
  }
  return eq < 0 ? { key } : { key, value: text.slice(eq + 1) };
}

function checkAnnotation(a: CatalogAnnotation): void {
  if (a.description !== undefined && typeof a.description !== 'string') throw new InvalidArgumentError('description must be a string');
  if (a.owners !== undefined) {
    if (!Array.isArray(a.owners) || a.owners.some((o) => typeof o !== 'string' || !o.trim())) {
      throw new InvalidArgumentError('owners must be a list of non-empty names');
    }
  }
  for (const [key, value] of Object.entries(a.labels ?? {})) {
    if (!LABEL_KEY.test(key)) throw new InvalidArgumentError(`label key "${key}" is invalid: use letters, digits and _ . : / - (starting with a letter or digit)`);
    if (typeof value !== 'string') throw new InvalidArgumentError(`label "${key}" must have a string value`);
  }
  for (const key of a.unlabel ?? []) {
    if (typeof key !== 'string' || !LABEL_KEY.test(key)) throw new InvalidArgumentError(`unlabel: "${key}" is not a label key`);
  }
}

async function annotationOf(db: Transaction<Schema> | MetaDb['db'], kind: CatalogKind, name: string): Promise<CatalogAnnotation> {
  const row = await db.selectFrom('catalog_annotations').selectAll().where('kind', '=', kind).where('name', '=', name).executeTakeFirst();
  return row ? annotationFromRow(row) : {};
}

function annotationFromRow(row: Schema['catalog_annotations']): CatalogAnnotation {
  const out: CatalogAnnotation = {};
  if (row.description !== null) out.description = row.description;
  if (row.owners !== null) out.owners = JSON.parse(row.owners);
  const labels = JSON.parse(row.labels) as Record<string, string>;
  if (Object.keys(labels).length) out.labels = labels;
  const unlabel = JSON.parse(row.unlabel) as string[];
  if (unlabel.length) out.unlabel = unlabel;
  return out;
}

function naturalMetadata(kind: CatalogKind, row: SourceRow): { description: string; owners: string[]; labels: Record<string, string> } {
  switch (kind) {
    case 'repo':
      return { description: row.description ?? '', owners: row.owner ? [row.owner] : [], labels: JSON.parse(row.labels ?? '{}') };
    case 'pipeline': {
      const spec = JSON.parse(row.spec ?? '{}') as PipelineSpec;
      return { description: spec.description ?? '', owners: row.creator ? [row.creator] : [], labels: {} };
    }
    case 'model':
      return { description: row.description ?? '', owners: [], labels: JSON.parse(row.tags ?? '{}') };
    case 'deployment':
      return { description: '', owners: row.creator ? [row.creator] : [], labels: {} };
  }
}

function notFound(kind: CatalogKind, name: string): NotFoundError {
  return new NotFoundError(`${kind} "${name}" not found (strata catalog search finds entities; refer to one as KIND:NAME)`);
}

/** Query words, each split into the tokens the full-text indexes make of it ("email_address" -> email, address). */
function queryWords(query: string): string[][] {
  return query
    .split(/\s+/)
    .map((w) => w.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [])
    .filter((parts) => parts.length > 0);
}

/** FTS5: every word must match (as a phrase of its tokens); the last one may be a prefix ("emai" finds "emails"). */
function ftsQuery(words: string[][]): string {
  return words.map((parts, i) => `"${parts.join(' ')}"${i === words.length - 1 ? '*' : ''}`).join(' AND ');
}

/** PostgreSQL tsquery with the same meaning as ftsQuery. */
function tsQuery(words: string[][]): string {
  return words
    .map((parts, i) => parts.map((p, j) => `'${p}'${i === words.length - 1 && j === parts.length - 1 ? ':*' : ''}`).join(' <-> '))
    .join(' & ');
}

/** Whether any query token occurs in a field (the very last one as a prefix). */
function matches(field: string, words: string[][], lastIsPrefix = true): boolean {
  if (!field || words.length === 0) return false;
  const tokens = new Set(field.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []);
  const last = words[words.length - 1]!;
  const prefix = last[last.length - 1]!;
  for (const parts of words) for (const p of parts) if (tokens.has(p)) return true;
  if (lastIsPrefix) for (const t of tokens) if (t.startsWith(prefix)) return true;
  return false;
}

function labelText(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k} ${v}`)
    .join(' ');
}

/** PostgreSQL text cannot hold NUL. */
function clean(text: string): string {
  return text.replace(/\0/g, '');
}
