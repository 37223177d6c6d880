import type BetterSqlite3 from 'better-sqlite3';
import { CompiledQuery, SqliteDialect, type DatabaseConnection, type Dialect, type Driver, type QueryResult, type TransactionSettings } from 'kysely';

// The metadata database's driver, wrapped for two things Kysely has no place for:
//
// Commit hooks write into a transaction just before it commits: what a hook
// writes commits with the change or not at all. The audit log uses this so an
// audited change and its entry are one transaction (one fsync, and no crash
// between them). Only transactions that changed rows run the hooks: a
// read-only transaction never turns into a writer (which, on SQLite, could
// fail on a snapshot another process has moved past).
//
// Bulk inserts (bulkInsert) of thousands of rows, such as a batch of metric
// points: building them with the query builder costs more than the insert.
// On SQLite they run one cached prepared statement per row on the
// transaction's connection, as a hand-written loop would; on PostgreSQL, as
// multi-row INSERTs of up to 1,000 rows.

const BULK = Symbol('strata bulk insert');

interface Bulk {
  table: string;
  columns: readonly string[];
  rows: readonly unknown[][];
  onConflict: string;
}

/**
 * A query that inserts `rows` (values in `columns` order) into `table`; run it with `db.executeQuery(...)`
 * inside a transaction. `onConflict` is an ON CONFLICT clause both databases read alike (a constant of the
 * caller's, never input). Its numAffectedRows counts the rows inserted or updated.
 */
export function bulkInsert(table: string, columns: readonly string[], rows: readonly unknown[][], onConflict = ''): CompiledQuery {
  // CompiledQuery.raw's object is frozen: a copy carries the rows.
  return { ...CompiledQuery.raw(`-- bulk insert into ${table}`), [BULK]: { table, columns, rows, onConflict } satisfies Bulk } as CompiledQuery;
}

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;
const BULK_ROWS = 1000;

/**
 * Runs on the transaction's connection before COMMIT. May run queries on it;
 * a throw rolls the transaction back. The returned callback, if any, learns
 * whether the commit then succeeded.
 */
export type CommitHook = (connection: DatabaseConnection) => Promise<((committed: boolean) => void) | undefined>;

export interface CommitHooks {
  /** Adds a hook; returns a function that removes it. */
  beforeCommit(hook: CommitHook): () => void;
}

/**
 * A connection that notes whether its open transaction has changed any row (by the statements'
 * affected-row counts; on SQLite an INSERT ... RETURNING reports none, and Strata uses none).
 */
class TrackedConnection implements DatabaseConnection {
  inTransaction = false;
  wrote = false;

  constructor(
    readonly inner: DatabaseConnection,
    private readonly sqlite: SqliteStatements | undefined,
  ) {}

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    const bulk = (query as { [BULK]?: Bulk })[BULK];
    const result = bulk ? ((await this.insertMany(bulk)) as QueryResult<R>) : await this.inner.executeQuery<R>(query);
    if (this.inTransaction && result.numAffectedRows !== undefined && result.numAffectedRows > 0n) this.wrote = true;
    return result;
  }

  streamQuery<R>(query: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    return this.inner.streamQuery<R>(query, chunkSize);
  }

  private async insertMany(bulk: Bulk): Promise<QueryResult<never>> {
    // All rows or none: outside a transaction, SQLite would also commit (and fsync) once per row.
    if (!this.inTransaction) throw new Error(`a bulk insert into ${bulk.table} must run inside a transaction`);
    const head = `insert into ${quote(bulk.table)} (${bulk.columns.map(quote).join(', ')}) values `;
    const tail = bulk.onConflict ? ` ${bulk.onConflict}` : '';
    let affected = 0n;
    if (this.sqlite) {
      // The connection is this process's one SQLite handle; Kysely holds it for this query.
      const statement = this.sqlite.prepare(`${head}(${bulk.columns.map(() => '?').join(', ')})${tail}`);
      for (const row of bulk.rows) affected += BigInt(statement.run(row).changes);
    } else {
      for (let i = 0; i < bulk.rows.length; i += BULK_ROWS) {
        const rows = bulk.rows.slice(i, i + BULK_ROWS);
        const params: unknown[] = [];
        const tuples = rows.map((row) => `(${row.map((v) => (params.push(v), `$${params.length}`)).join(', ')})`);
        affected += (await this.inner.executeQuery(CompiledQuery.raw(head + tuples.join(', ') + tail, params))).numAffectedRows ?? 0n;
      }
    }
    return { rows: [], numAffectedRows: affected };
  }
}

/** The most statements kept prepared per SQLite handle (the oldest unused one goes first). */
const STATEMENT_CACHE = 500;

/**
 * Prepared statements of a SQLite handle, kept by their text: Kysely's SQLite
 * driver prepares every query anew, which costs more than running a small one.
 */
export class SqliteStatements {
  private readonly cache = new Map<string, BetterSqlite3.Statement>();

  constructor(readonly db: BetterSqlite3.Database) {}

  prepare(text: string): BetterSqlite3.Statement {
    let statement = this.cache.get(text);
    // A statement still stepping through rows (an open iterate()) cannot run again: prepare another.
    if (statement?.busy) return this.db.prepare(text);
    if (statement) {
      this.cache.delete(text); // re-inserted below as the most recently used
    } else {
      statement = this.db.prepare(text);
      if (this.cache.size >= STATEMENT_CACHE) this.cache.delete(this.cache.keys().next().value!);
    }
    this.cache.set(text, statement);
    return statement;
  }
}

class HookedDriver implements Driver {
  constructor(
    private readonly inner: Driver,
    private readonly hooks: Set<CommitHook>,
    private readonly sqlite: SqliteStatements | undefined,
  ) {
    // Savepoints only where the wrapped driver has them (Kysely checks for the methods).
    for (const name of ['savepoint', 'rollbackToSavepoint', 'releaseSavepoint'] as const) {
      const method = inner[name];
      if (method) this[name] = (connection, ...rest) => method.call(inner, (connection as TrackedConnection).inner, ...rest);
    }
  }

  savepoint?: Driver['savepoint'];
  rollbackToSavepoint?: Driver['rollbackToSavepoint'];
  releaseSavepoint?: Driver['releaseSavepoint'];

  init(): Promise<void> {
    return this.inner.init();
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    return new TrackedConnection(await this.inner.acquireConnection(), this.sqlite);
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    const c = connection as TrackedConnection;
    await this.inner.beginTransaction(c.inner, settings);
    c.inTransaction = true;
    c.wrote = false;
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    const c = connection as TrackedConnection;
    const settle: ((committed: boolean) => void)[] = [];
    try {
      if (c.wrote) {
        for (const hook of this.hooks) {
          const done = await hook(c);
          if (done) settle.push(done);
        }
      }
      await this.inner.commitTransaction(c.inner);
    } catch (err) {
      for (const done of settle) done(false);
      throw err;
    } finally {
      c.inTransaction = false;
    }
    for (const done of settle) done(true);
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    const c = connection as TrackedConnection;
    c.inTransaction = false;
    await this.inner.rollbackTransaction(c.inner);
  }

  releaseConnection(connection: DatabaseConnection): Promise<void> {
    return this.inner.releaseConnection((connection as TrackedConnection).inner);
  }

  destroy(): Promise<void> {
    return this.inner.destroy();
  }
}

/**
 * `dialect` with commit hooks (run before each writing transaction commits) and bulk inserts.
 * `statements` is the cache of the handle a SqliteDialect was made with (see sqliteDialect).
 */
export function wrapDialect(dialect: Dialect, statements?: SqliteStatements): { dialect: Dialect; hooks: CommitHooks } {
  const hooks = new Set<CommitHook>();
  return {
    dialect: {
      createAdapter: () => dialect.createAdapter(),
      createDriver: () => new HookedDriver(dialect.createDriver(), hooks, statements),
      createIntrospector: (db) => dialect.createIntrospector(db),
      createQueryCompiler: () => dialect.createQueryCompiler(),
    },
    hooks: {
      beforeCommit(hook) {
        hooks.add(hook);
        return () => hooks.delete(hook);
      },
    },
  };
}

/** Kysely's SQLite dialect over `sqlite`, preparing each distinct query once. */
export function sqliteDialect(sqlite: BetterSqlite3.Database): { dialect: Dialect; statements: SqliteStatements } {
  const statements = new SqliteStatements(sqlite);
  return { dialect: new SqliteDialect({ database: { close: () => sqlite.close(), prepare: (text: string) => statements.prepare(text) } }), statements };
}
