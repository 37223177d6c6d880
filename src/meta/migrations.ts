import type { Kysely, Migration, MigrationProvider } from 'kysely';

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
};

export const migrationProvider: MigrationProvider = {
  async getMigrations() {
    return migrations;
  },
};
