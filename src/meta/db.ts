import Database from 'better-sqlite3';
import { DEFAULT_MIGRATION_TABLE, Kysely, Migrator, type Dialect, PostgresDialect, sql } from 'kysely';
import { InvalidArgumentError, StrataError } from '../errors.js';
import { sqliteDialect, wrapDialect, type CommitHooks, type SqliteStatements } from './driver.js';
import { migrationProvider } from './migrations.js';
import type { Schema } from './schema.js';

export type DialectName = 'sqlite' | 'postgres';

export interface MetaDb {
  db: Kysely<Schema>;
  dialect: DialectName;
  /** Where it lives, with any password removed: for messages and `inspect`. */
  location: string;
  /** Writes that commit with each writing transaction (the audit entry of the change). */
  hooks: CommitHooks;
  close(): Promise<void>;
}

/**
 * Opens the metadata database and brings its schema up to date.
 * `target` is a SQLite file path or a postgres:// URL.
 */
export async function openMetaDb(target: string): Promise<MetaDb> {
  const isPostgres = /^postgres(ql)?:\/\//.test(target);
  let dialect: Dialect;
  let statements: SqliteStatements | undefined;
  if (isPostgres) {
    // Loaded on demand: the embedded default should not pay for pg's start-up.
    const { default: pg } = await import('pg');
    // int8 columns (sizes, offsets) come back as strings; they fit in a double
    // for every size Strata deals in (< 2^53 bytes).
    pg.types.setTypeParser(20, (v) => Number(v));
    const pool = new pg.Pool({ connectionString: target, max: 10 });
    // An idle client whose server connection drops must not crash the process;
    // the pool discards it and the next query opens a new one.
    pool.on('error', () => {});
    dialect = new PostgresDialect({ pool });
  } else {
    let sqlite: Database.Database;
    try {
      sqlite = new Database(target);
    } catch (err) {
      throw new InvalidArgumentError(`cannot open database ${target}: ${(err as Error).message}`, { cause: err });
    }
    // WAL: readers never block the writer, and a crash mid-write rolls back.
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = FULL');
    sqlite.pragma('busy_timeout = 10000');
    // 64 MiB of page cache (default 2 MiB): searches over 100k runs otherwise re-read pages from the OS.
    sqlite.pragma('cache_size = -65536');
    sqlite.pragma('foreign_keys = ON');
    ({ dialect, statements } = sqliteDialect(sqlite));
  }
  const hooked = wrapDialect(dialect, statements);
  const db = new Kysely<Schema>({ dialect: hooked.dialect });
  const location = isPostgres ? target.replace(/:\/\/([^:@/]+):[^@/]*@/, '://$1:***@') : target;
  const { error } = (await isUpToDate(db)) ? { error: undefined } : await new Migrator({ db, provider: migrationProvider }).migrateToLatest();
  if (error) {
    await db.destroy();
    throw new StrataError('INTERNAL', `migrating the metadata database at ${location} failed: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return { db, dialect: isPostgres ? 'postgres' : 'sqlite', location, hooks: hooked.hooks, close: () => db.destroy() };
}

/**
 * Whether every migration is recorded as applied: one query, where Kysely's
 * migrator inspects the schema and takes its lock on every open (~10 ms of
 * each CLI command). A new, older or newer database goes through the migrator.
 */
async function isUpToDate(db: Kysely<Schema>): Promise<boolean> {
  try {
    const { rows } = await sql<{ name: string }>`select name from ${sql.table(DEFAULT_MIGRATION_TABLE)}`.execute(db);
    const applied = new Set(rows.map((r) => r.name));
    const known = Object.keys(await migrationProvider.getMigrations());
    // One this version does not know (a newer Strata's): the migrator reports it.
    return applied.size === known.length && known.every((name) => applied.has(name));
  } catch {
    return false; // no migration table yet
  }
}
