import type { CompiledQuery, DatabaseConnection, Dialect, Driver, QueryResult, TransactionSettings } from 'kysely';

// Hooks that write into a transaction just before it commits: what a hook
// writes commits with the change or not at all. The audit log uses this so an
// audited change and its entry are one transaction (one fsync, and no crash
// between them). Only transactions that changed rows run the hooks: a
// read-only transaction never turns into a writer (which, on SQLite, could
// fail on a snapshot another process has moved past).

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

/** A connection that notes whether its open transaction has changed any row. */
class TrackedConnection implements DatabaseConnection {
  inTransaction = false;
  wrote = false;

  constructor(readonly inner: DatabaseConnection) {}

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    const result = await this.inner.executeQuery<R>(query);
    if (this.inTransaction && result.numAffectedRows !== undefined && result.numAffectedRows > 0n) this.wrote = true;
    return result;
  }

  streamQuery<R>(query: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    return this.inner.streamQuery<R>(query, chunkSize);
  }
}

class HookedDriver implements Driver {
  constructor(
    private readonly inner: Driver,
    private readonly hooks: Set<CommitHook>,
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
    return new TrackedConnection(await this.inner.acquireConnection());
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
          const done = await hook(c.inner);
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

/** `dialect` with commit hooks: the Kysely built on it runs them before each writing transaction commits. */
export function withCommitHooks(dialect: Dialect): { dialect: Dialect; hooks: CommitHooks } {
  const hooks = new Set<CommitHook>();
  return {
    dialect: {
      createAdapter: () => dialect.createAdapter(),
      createDriver: () => new HookedDriver(dialect.createDriver(), hooks),
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
