import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import type { Instance } from '../../src/instance.js';
import Database from 'better-sqlite3';
import { bulkInsert, SqliteStatements } from '../../src/meta/driver.js';
import { backends } from '../fixtures.js';

// The metadata database's driver wrapper (src/meta/driver.ts): bulk inserts,
// commit hooks that run only for transactions that changed rows, and SQLite's
// prepared-statement cache, on SQLite and PostgreSQL.

for (const backend of await backends()) {
  describe(`the metadata driver on ${backend.name}`, { skip: backend.skip }, () => {
    let instance: Instance;
    let dispose: () => Promise<void>;
    let runId: string;
    before(async () => {
      ({ instance, dispose } = await backend.instance());
      runId = (await instance.tracking.createRun({ run_name: 'driver' })).info.run_id;
    });
    after(async () => dispose?.());
    const db = () => instance.meta.db;
    const count = async () => Number((await db().selectFrom('metrics').select(sql<number>`count(*)`.as('n')).where('run_id', '=', runId).executeTakeFirstOrThrow()).n);
    const rows = (n: number, from = 0) => Array.from({ length: n }, (_, i) => [runId, `k${(from + i) % 7}`, (from + i) / 3, from + i, 1_700_000_000_000 + i]);
    const columns = ['run_id', 'key', 'value', 'step', 'timestamp'];

    it('bulk-inserts more rows than one statement takes, with their values intact', async () => {
      const res = await db().transaction().execute((trx) => trx.executeQuery(bulkInsert('metrics', columns, rows(2500))));
      assert.equal(res.numAffectedRows, 2500n);
      assert.equal(await count(), 2500);
      const last = await db().selectFrom('metrics').selectAll().where('run_id', '=', runId).where('step', '=', 2499).executeTakeFirstOrThrow();
      assert.equal(last.key, `k${2499 % 7}`);
      assert.equal(Number(last.value), 2499 / 3);
      assert.equal(Number(last.timestamp), 1_700_000_000_000 + 2499);
    });

    it('keeps all or none of a bulk insert: refused outside a transaction, rolled back with it', async () => {
      const before = await count();
      await assert.rejects(db().executeQuery(bulkInsert('metrics', columns, rows(10))), /must run inside a transaction/);
      await assert.rejects(
        db()
          .transaction()
          .execute(async (trx) => {
            await trx.executeQuery(bulkInsert('metrics', columns, rows(1500, 5000)));
            throw new Error('the rest of the change failed');
          }),
        /rest of the change failed/,
      );
      // A bad row (a NULL key) fails the statement and the transaction.
      await assert.rejects(db().transaction().execute((trx) => trx.executeQuery(bulkInsert('metrics', columns, [...rows(5, 9000), [runId, null, 1, 1, 1]]))));
      assert.equal(await count(), before);
    });

    it('runs commit hooks only for transactions that changed rows, and learns whether they committed', async () => {
      const seen: string[] = [];
      const remove = instance.meta.hooks.beforeCommit(async () => {
        seen.push('before');
        return (committed) => seen.push(committed ? 'committed' : 'rolled back');
      });
      try {
        await db().transaction().execute((trx) => trx.selectFrom('runs').selectAll().execute());
        assert.deepEqual(seen, [], 'a read-only transaction ran the hook');
        // An update that matches nothing changes no row either.
        await db().transaction().execute((trx) => trx.updateTable('runs').set({ name: 'x' }).where('id', '=', 'none').execute());
        assert.deepEqual(seen, []);
        await db().transaction().execute((trx) => trx.updateTable('runs').set({ name: 'renamed' }).where('id', '=', runId).execute());
        assert.deepEqual(seen, ['before', 'committed']);
      } finally {
        remove();
      }
      await db().transaction().execute((trx) => trx.updateTable('runs').set({ name: 'again' }).where('id', '=', runId).execute());
      assert.deepEqual(seen, ['before', 'committed'], 'a removed hook still ran');
    });

    it('rolls the transaction back when a hook throws', async () => {
      const remove = instance.meta.hooks.beforeCommit(async () => {
        throw new Error('hook refused');
      });
      try {
        await assert.rejects(db().transaction().execute((trx) => trx.updateTable('runs').set({ name: 'refused' }).where('id', '=', runId).execute()), /hook refused/);
      } finally {
        remove();
      }
      const row = await db().selectFrom('runs').select('name').where('id', '=', runId).executeTakeFirstOrThrow();
      assert.notEqual(row.name, 'refused');
    });

  });
}

describe('the SQLite statement cache', () => {
  it('hands out another statement while the cached one is still stepping through rows', () => {
    const sqlite = new Database(':memory:');
    sqlite.exec('create table t (n integer)');
    sqlite.prepare('insert into t values (1), (2), (3)').run();
    const statements = new SqliteStatements(sqlite);
    const text = 'select n from t order by n';
    const first = statements.prepare(text);
    assert.equal(statements.prepare(text), first, 'a cached statement is reused');
    const seen: number[] = [];
    for (const row of first.iterate() as Iterable<{ n: number }>) {
      // `first` is busy until the loop ends: running it again would throw.
      const again = statements.prepare(text);
      assert.notEqual(again, first);
      assert.deepEqual(again.all(), [{ n: 1 }, { n: 2 }, { n: 3 }]);
      seen.push(row.n);
    }
    assert.deepEqual(seen, [1, 2, 3]);
    assert.equal(statements.prepare(text), first, 'free again once the loop ended');
    sqlite.close();
  });
});
