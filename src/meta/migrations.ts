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
};

export const migrationProvider: MigrationProvider = {
  async getMigrations() {
    return migrations;
  },
};
