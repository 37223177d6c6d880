import { PostgresAdapter, sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';

// Migrations are code, listed in order; a name once released never changes.
// `bigint` sizes: SQLite stores any integer in INTEGER, PostgreSQL needs int8.

const migrations: Record<string, Migration> = {
  '0001_data_layer': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('repos')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('owner', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('labels', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('branches')
        .addColumn('repo', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('head', 'text')
        .addPrimaryKeyConstraint('branches_pk', ['repo', 'name'])
        .execute();
      await db.schema
        .createTable('commits')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('repo', 'text', (c) => c.notNull())
        .addColumn('tree', 'text', (c) => c.notNull())
        .addColumn('parents', 'text', (c) => c.notNull())
        .addColumn('provenance', 'text', (c) => c.notNull())
        .addColumn('message', 'text', (c) => c.notNull())
        .addColumn('author', 'text', (c) => c.notNull())
        .addColumn('time', 'text', (c) => c.notNull())
        .addColumn('seq', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('commits_repo_seq').on('commits').columns(['repo', 'seq']).execute();
      await db.schema
        .createTable('trees')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('entries', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('files')
        .addColumn('hash', 'text', (c) => c.primaryKey())
        .addColumn('size', 'bigint', (c) => c.notNull())
        .addColumn('chunks', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('chunks')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('pack', 'text', (c) => c.notNull())
        .addColumn('offset', 'bigint', (c) => c.notNull())
        .addColumn('length', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('packs')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('size', 'bigint', (c) => c.notNull())
        .addColumn('chunks', 'bigint', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
    },
  },
  '0002_pipelines': {
    async up(db: Kysely<any>) {
      // Which user commit a commit descends from (Pachyderm's global id), and the job that made it.
      await db.schema.alterTable('commits').addColumn('commit_set', 'text').execute();
      await db.schema.alterTable('commits').addColumn('job', 'text').execute();
      await db.schema.createIndex('commits_commit_set').on('commits').column('commit_set').execute();
      await db.schema
        .createTable('pipelines')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('spec', 'text', (c) => c.notNull())
        .addColumn('spec_hash', 'text', (c) => c.notNull())
        .addColumn('creator', 'text', (c) => c.notNull())
        .addColumn('stopped', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('pipeline_versions')
        .addColumn('pipeline', 'text', (c) => c.notNull())
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('spec', 'text', (c) => c.notNull())
        .addColumn('spec_hash', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('pipeline_versions_pk', ['pipeline', 'version'])
        .execute();
      await db.schema
        .createTable('jobs')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('pipeline', 'text', (c) => c.notNull())
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('input_key', 'text', (c) => c.notNull())
        .addColumn('inputs', 'text', (c) => c.notNull())
        .addColumn('commit_set', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('reason', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('output_commit', 'text')
        .addColumn('total', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('processed', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('skipped', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('failed', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('recovered', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('started_at', 'text')
        .addColumn('finished_at', 'text')
        .addColumn('lease_until', 'text')
        .addColumn('seq', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('jobs_pipeline_key').unique().on('jobs').columns(['pipeline', 'input_key']).execute();
      await db.schema.createIndex('jobs_state').on('jobs').columns(['state', 'seq']).execute();
      await db.schema.createIndex('jobs_commit_set').on('jobs').column('commit_set').execute();
      await db.schema
        .createTable('datums')
        .addColumn('job', 'text', (c) => c.notNull())
        .addColumn('id', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('inputs', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('duration_ms', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('error', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('log', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('started_at', 'text')
        .addColumn('finished_at', 'text')
        .addPrimaryKeyConstraint('datums_pk', ['job', 'id'])
        .execute();
      // Which commits each job read: the downstream direction of lineage.
      await db.schema
        .createTable('job_inputs')
        .addColumn('job', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('repo', 'text', (c) => c.notNull())
        .addColumn('commit', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('job_inputs_pk', ['job', 'name'])
        .execute();
      await db.schema.createIndex('job_inputs_commit').on('job_inputs').column('commit').execute();
      // Outputs of datums that succeeded, by pipeline and datum id: what incremental runs reuse.
      await db.schema
        .createTable('datum_outputs')
        .addColumn('pipeline', 'text', (c) => c.notNull())
        .addColumn('datum', 'text', (c) => c.notNull())
        .addColumn('files', 'text', (c) => c.notNull())
        .addColumn('job', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('datum_outputs_pk', ['pipeline', 'datum'])
        .execute();
    },
  },
  '0003_tracking': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('experiments')
        .addColumn('id', 'text', (c) => c.primaryKey()) // decimal string, as MLflow clients expect ("0" is the default)
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('artifact_location', 'text', (c) => c.notNull())
        .addColumn('lifecycle_stage', 'text', (c) => c.notNull())
        .addColumn('tags', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.insertInto('experiments').values({
        id: '0', name: 'Default', artifact_location: 'strata-artifacts:/0', lifecycle_stage: 'active', tags: '{}', created_at: Date.now(), updated_at: Date.now(),
      }).execute();
      await db.schema
        .createTable('runs')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('experiment_id', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('start_time', 'bigint', (c) => c.notNull())
        .addColumn('end_time', 'bigint')
        .addColumn('lifecycle_stage', 'text', (c) => c.notNull())
        .addColumn('user_id', 'text', (c) => c.notNull())
        .addColumn('pipeline', 'text')
        .addColumn('job', 'text')
        .addColumn('code_version', 'text')
        .addColumn('input_commits', 'text', (c) => c.notNull().defaultTo('[]'))
        .addColumn('output_commit', 'text')
        .execute();
      await db.schema.createIndex('runs_experiment_start').on('runs').columns(['experiment_id', 'start_time']).execute();
      await db.schema.createIndex('runs_pipeline').on('runs').columns(['pipeline', 'start_time']).execute();
      await db.schema.createIndex('runs_job').on('runs').column('job').execute();
      await db.schema
        .createTable('params')
        .addColumn('run_id', 'text', (c) => c.notNull())
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('value', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('params_pk', ['run_id', 'key'])
        .execute();
      await db.schema.createIndex('params_key_value').on('params').columns(['key', 'value']).execute();
      await db.schema
        .createTable('metrics')
        .addColumn('run_id', 'text', (c) => c.notNull())
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('value', 'double precision', (c) => c.notNull())
        .addColumn('step', 'bigint', (c) => c.notNull())
        .addColumn('timestamp', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('metrics_run_key_step').on('metrics').columns(['run_id', 'key', 'step']).execute();
      // The latest value per run and key (highest step, then newest): what filters and sorts use.
      await db.schema
        .createTable('latest_metrics')
        .addColumn('run_id', 'text', (c) => c.notNull())
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('value', 'double precision', (c) => c.notNull())
        .addColumn('step', 'bigint', (c) => c.notNull())
        .addColumn('timestamp', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('latest_metrics_pk', ['run_id', 'key'])
        .execute();
      await db.schema.createIndex('latest_metrics_key_value').on('latest_metrics').columns(['key', 'value']).execute();
      await db.schema
        .createTable('run_tags')
        .addColumn('run_id', 'text', (c) => c.notNull())
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('value', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('run_tags_pk', ['run_id', 'key'])
        .execute();
      await db.schema.createIndex('run_tags_key_value').on('run_tags').columns(['key', 'value']).execute();
      await db.schema
        .createTable('run_artifacts')
        .addColumn('run_id', 'text', (c) => c.notNull())
        .addColumn('path', 'text', (c) => c.notNull())
        .addColumn('hash', 'text', (c) => c.notNull())
        .addColumn('size', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('run_artifacts_pk', ['run_id', 'path'])
        .execute();
      await db.schema
        .createTable('registered_models')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('tags', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('model_versions')
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('source', 'text', (c) => c.notNull())
        .addColumn('repo', 'text')
        .addColumn('commit', 'text')
        .addColumn('path', 'text')
        .addColumn('hash', 'text', (c) => c.notNull())
        .addColumn('size', 'bigint', (c) => c.notNull())
        .addColumn('format', 'text', (c) => c.notNull())
        .addColumn('signature', 'text', (c) => c.notNull().defaultTo('null'))
        .addColumn('run_id', 'text')
        .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('tags', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('user_id', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('model_versions_pk', ['name', 'version'])
        .execute();
      await db.schema
        .createTable('model_aliases')
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('alias', 'text', (c) => c.notNull())
        .addColumn('version', 'integer', (c) => c.notNull())
        .addPrimaryKeyConstraint('model_aliases_pk', ['name', 'alias'])
        .execute();
      await db.schema
        .createTable('alias_history')
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('alias', 'text', (c) => c.notNull())
        .addColumn('seq', 'bigint', (c) => c.notNull())
        .addColumn('from_version', 'integer')
        .addColumn('to_version', 'integer')
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('time', 'bigint', (c) => c.notNull())
        .addColumn('reason', 'text', (c) => c.notNull().defaultTo(''))
        .addPrimaryKeyConstraint('alias_history_pk', ['name', 'alias', 'seq'])
        .execute();
      await db.schema
        .createTable('promotion_gates')
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('alias', 'text', (c) => c.notNull())
        .addColumn('rules', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('promotion_gates_pk', ['name', 'alias'])
        .execute();
    },
  },
  '0004_serving': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('deployments')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('model', 'text', (c) => c.notNull())
        .addColumn('target', 'text', (c) => c.notNull()) // an alias name or a version number, as text
        .addColumn('config', 'text', (c) => c.notNull().defaultTo('{}')) // JSON: canary, shadow, batching, logging
        .addColumn('creator', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
    },
  },
  '0009_model_last_version': {
    async up(db: Kysely<any>) {
      // Remembers the highest version number handed out, so deleting the highest version never frees its number.
      await db.schema.alterTable('registered_models').addColumn('last_version', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      await sql`update registered_models set last_version = coalesce((select max(version) from model_versions v where v.name = registered_models.name), 0)`.execute(db);
    },
  },
  '0010_tree_file_counts': {
    async up(db: Kysely<any>) {
      // Files beneath each tree, so placing a stored tree (link-dir) need not walk it to count them.
      // Trees stored before this migration have none (null) and are counted by walking them.
      await db.schema.alterTable('trees').addColumn('files', 'integer').execute();
    },
  },
  '0006_access': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('users')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        // Deleted users are kept (without grants), so what they created never runs with someone else's rights.
        .addColumn('deleted_at', 'bigint')
        .execute();
      await db.schema
        .createTable('tokens')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_name', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('hash', 'text', (c) => c.notNull()) // hex SHA-256 of the secret part
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint')
        .addColumn('revoked_at', 'bigint')
        .addColumn('last_used_at', 'bigint')
        .execute();
      await db.schema.createIndex('tokens_user').on('tokens').column('user_name').execute();
      await db.schema
        .createTable('grants')
        .addColumn('user_name', 'text', (c) => c.notNull())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('resource', 'text', (c) => c.notNull()) // '*' (instance-wide) or kind:name
        .addColumn('granted_by', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('grants_pk', ['user_name', 'role', 'resource'])
        .execute();
    },
  },
  '0007_catalog': {
    async up(db: Kysely<any>) {
      // The catalog's searchable entries (governance/catalog.ts). `source` is
      // the fingerprint of what an entry was built from, compared at search
      // time to find entries another process made stale.
      await db.schema
        .createTable('catalog_entries')
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('id', 'bigint', (c) => c.notNull()) // the SQLite full-text row
        .addColumn('source', 'text', (c) => c.notNull())
        .addColumn('description', 'text', (c) => c.notNull())
        .addColumn('owners', 'text', (c) => c.notNull()) // JSON array
        .addColumn('labels', 'text', (c) => c.notNull()) // JSON object, annotations and derived labels merged in
        .addColumn('readme', 'text')
        .addColumn('schemas', 'text', (c) => c.notNull().defaultTo('{}')) // JSON {path: FileSchema}
        .addColumn('columns', 'text', (c) => c.notNull().defaultTo('')) // column names, space separated
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('catalog_entries_pk', ['kind', 'name'])
        .execute();
      await db.schema.createIndex('catalog_entries_id').on('catalog_entries').column('id').execute();
      await db.schema
        .createTable('catalog_labels')
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('value', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('catalog_labels_pk', ['kind', 'name', 'key'])
        .execute();
      await db.schema.createIndex('catalog_labels_key').on('catalog_labels').columns(['key', 'value']).execute();
      await db.schema
        .createTable('catalog_annotations')
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('description', 'text') // null: not overridden
        .addColumn('owners', 'text') // JSON array; null: not overridden
        .addColumn('labels', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('unlabel', 'text', (c) => c.notNull().defaultTo('[]')) // natural label keys hidden
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('catalog_annotations_pk', ['kind', 'name'])
        .execute();
      await db.schema
        .createTable('catalog_schemas')
        .addColumn('key', 'text', (c) => c.primaryKey()) // format:content hash
        .addColumn('schema', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      if (db.getExecutor().adapter instanceof PostgresAdapter) {
        await sql`alter table catalog_entries add column document tsvector`.execute(db);
        await sql`create index catalog_entries_document on catalog_entries using gin (document)`.execute(db);
      } else {
        // Weighted columns for bm25 (name > labels, columns > description, owners > readme); rowid = catalog_entries.id.
        await sql`create virtual table catalog_fts using fts5(name, labels, columns, description, owners, readme, tokenize = 'unicode61')`.execute(db);
      }
    },
  },
  '0008_classification': {
    async up(db: Kysely<any>) {
      // PII scan results per file content (governance/classifier.ts): counts only, never values.
      // `ruleset` fingerprints the detectors that produced them: another set of detectors scans again.
      await db.schema
        .createTable('pii_scans')
        .addColumn('hash', 'text', (c) => c.notNull())
        .addColumn('ruleset', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull()) // scanned | binary | truncated
        .addColumn('bytes_scanned', 'bigint', (c) => c.notNull())
        .addColumn('findings', 'text', (c) => c.notNull()) // JSON {type: count}
        .addColumn('timed_out', 'text', (c) => c.notNull().defaultTo('[]')) // JSON array of custom detector names
        .addColumn('scanned_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('pii_scans_pk', ['hash', 'ruleset'])
        .execute();
      await db.schema
        .createTable('pii_detectors')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('pattern', 'text', (c) => c.notNull())
        .addColumn('flags', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('creator', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
    },
  },
  '0005_audit': {
    async up(db: Kysely<any>) {
      // One row per audit entry; seq is 1..n without gaps (the primary key makes
      // concurrent appenders retry instead of duplicating). leaf = RFC 6962 leaf hash.
      await db.schema
        .createTable('audit_entries')
        .addColumn('seq', 'bigint', (c) => c.primaryKey())
        .addColumn('time', 'bigint', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('target', 'text', (c) => c.notNull())
        .addColumn('outcome', 'text', (c) => c.notNull())
        .addColumn('client', 'text', (c) => c.notNull())
        .addColumn('detail', 'text', (c) => c.notNull())
        .addColumn('leaf', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('audit_entries_time').on('audit_entries').column('time').execute();
      await db.schema
        .createTable('audit_checkpoints')
        .addColumn('size', 'bigint', (c) => c.primaryKey())
        .addColumn('root', 'text', (c) => c.notNull())
        .addColumn('time', 'text', (c) => c.notNull())
        .addColumn('public_key', 'text', (c) => c.notNull())
        .addColumn('signature', 'text', (c) => c.notNull())
        .addColumn('frontier', 'text', (c) => c.notNull()) // JSON: perfect-subtree roots, to extend the tree without rereading it
        .execute();
    },
  },
};

export const migrationProvider: MigrationProvider = {
  async getMigrations() {
    return migrations;
  },
};
