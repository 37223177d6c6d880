import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import { sql } from 'kysely';
import { startServer, type RunningServer } from '../../src/api/server.js';
import { authorizedClient } from '../../src/cli/authorized-client.js';
import { localClient } from '../../src/cli/local-client.js';
import type { AuditEntry } from '../../src/governance/audit.js';
import { Instance } from '../../src/instance.js';
import { serve } from '../api/harness.js';
import { backends, until } from '../fixtures.js';

// An audited operation's entry commits in the operation's own transaction
// (issue 6's audit log, written through meta/driver.ts): the change and
// its entry are kept or lost together, on SQLite and PostgreSQL.

async function post(url: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

for (const backend of await backends()) {
  describe(`audit entries in the operation's transaction (${backend.name})`, { skip: backend.skip }, () => {
    let instance: Instance;
    let dispose: () => Promise<void>;
    let server: RunningServer;
    let runId: string;
    const db = () => instance.meta.db;
    const entries = async (action?: string): Promise<AuditEntry[]> => (await instance.audit.list({ action, limit: 100_000 })).filter((e) => e.actor !== 'test');
    const points = async () => Number((await db().selectFrom('metrics').select(sql<number>`count(*)`.as('n')).where('run_id', '=', runId).executeTakeFirstOrThrow()).n);
    const refuseAuditInserts = async (on: boolean) => {
      if (backend.name === 'sqlite') {
        if (on) await sql`create trigger audit_refused before insert on audit_entries begin select raise(abort, 'the audit store refused the entry'); end`.execute(db());
        else await sql`drop trigger audit_refused`.execute(db());
      } else if (on) {
        await sql`create function audit_refused() returns trigger language plpgsql as $$ begin raise exception 'the audit store refused the entry'; end $$`.execute(db());
        await sql`create trigger audit_refused before insert on audit_entries for each row execute function audit_refused()`.execute(db());
      } else {
        await sql`drop trigger audit_refused on audit_entries`.execute(db());
        await sql`drop function audit_refused()`.execute(db());
      }
    };

    before(async () => {
      ({ instance, dispose } = await backend.instance());
      server = await startServer({ instance, port: 0, scheduler: false });
      runId = (await instance.tracking.createRun({ run_name: 'audited' })).info.run_id;
    });
    after(async () => {
      await server?.close();
      await dispose?.();
    });
    beforeEach(async () => {
      await db().deleteFrom('audit_entries').execute();
      await db().deleteFrom('audit_checkpoints').execute();
    });

    it('writes the entry of a change in the change’s transaction: one entry, before the answer, and the log verifies', async () => {
      const res = await post(`${server.url}/api/v1/runs/${runId}/log`, { metrics: [{ key: 'loss', value: 0.5, step: 1 }] });
      assert.equal(res.status, 204, JSON.stringify(res.body));
      // Already there when the answer arrives: it committed with the metric, not after the response.
      const [entry, ...rest] = await entries('run.log');
      assert.deepEqual(rest, []);
      assert.equal(entry!.outcome, 'ok');
      assert.equal(entry!.target, `run:${runId}`);
      assert.equal(entry!.client, '127.0.0.1');
      // Written inside the transaction, before the status existed: the method only.
      assert.deepEqual(entry!.detail, { method: 'POST' });
      assert.equal((await instance.audit.verify()).ok, true);
    });

    it('refuses the change when its entry cannot be written, and changes nothing', async () => {
      const before = await points();
      await refuseAuditInserts(true);
      const stderr = process.stderr.write;
      let warned = '';
      process.stderr.write = ((chunk: string) => ((warned += chunk), true)) as typeof process.stderr.write;
      try {
        const res = await post(`${server.url}/api/v1/runs/${runId}/log`, { metrics: [{ key: 'loss', value: 0.25, step: 2 }] });
        assert.equal(res.status, 500, JSON.stringify(res.body));
        // The server then tries to append the failure's entry after answering: refused as well, and said so.
        await until('the failure entry to be refused', 5000, async () => (/could not write the audit entry for run\.log/.test(warned) ? true : undefined));
      } finally {
        process.stderr.write = stderr;
        await refuseAuditInserts(false);
      }
      assert.equal(await points(), before, 'the metric was stored without its audit entry');
      assert.deepEqual(await entries(), []);
      const res = await post(`${server.url}/api/v1/runs/${runId}/log`, { metrics: [{ key: 'loss', value: 0.25, step: 2 }] });
      assert.equal(res.status, 204);
      assert.equal(await points(), before + 1);
    });

    it('appends the entry with the outcome when the operation fails before committing', async () => {
      const res = await post(`${server.url}/api/v1/runs/${runId}/log`, { metrics: [{ key: 'loss', value: 'not a number' }] });
      assert.equal(res.status, 400);
      // Appended once the response is sent.
      const [entry, ...rest] = await until('the error entry', 5000, async () => ((await entries('run.log')).length ? entries('run.log') : undefined));
      assert.deepEqual(rest, []);
      assert.equal(entry!.outcome, 'error');
      assert.deepEqual(entry!.detail, { method: 'POST', status: 400 });
    });

    it('gives concurrent operations one entry each with no gap or duplicate seq', async () => {
      const n = 24;
      const results = await Promise.all(
        Array.from({ length: n }, (_, i) => post(`${server.url}/api/v1/runs/${runId}/log`, { metrics: [{ key: `c${i}`, value: i, step: 0 }] })),
      );
      assert.deepEqual(
        results.map((r) => r.status),
        Array(n).fill(204),
      );
      const logged = await entries('run.log');
      assert.equal(logged.length, n);
      assert.deepEqual(
        (await instance.audit.list({ limit: 1000 })).map((e) => e.seq),
        Array.from({ length: n }, (_, i) => i + 1),
      );
      assert.equal((await instance.audit.verify()).ok, true);
    });

    it('records both what committed and the failure when an operation fails after a transaction of it committed', async () => {
      const audit = instance.audit;
      const pending = audit.pending({ actor: 'alice', action: 'run.log', target: `run:${runId}`, client: 'local' });
      await assert.rejects(
        audit.run(pending, async () => {
          await instance.tracking.logBatch(runId, { metrics: [{ key: 'partial', value: 1 }] });
          // A read-only transaction afterwards writes nothing more.
          await db().transaction().execute((trx) => trx.selectFrom('runs').selectAll().execute());
          throw new Error('the second half failed');
        }),
        /second half/,
      );
      await audit.finish(pending, 'error', { code: 'INTERNAL' });
      const [ok, failed, ...rest] = await entries('run.log');
      assert.deepEqual(rest, []);
      assert.equal(ok!.outcome, 'ok');
      assert.equal(failed!.outcome, 'error');
      assert.deepEqual(failed!.detail, { code: 'INTERNAL', committed_entry: ok!.seq });
    });

    it('leaves read-only transactions alone and appends the entry at the end instead', async () => {
      const audit = instance.audit;
      const pending = audit.pending({ actor: 'bob', action: 'run.inspect', target: `run:${runId}`, client: 'local' });
      await audit.run(pending, () => db().transaction().execute((trx) => trx.selectFrom('runs').selectAll().execute()));
      assert.deepEqual(await entries(), []);
      await audit.finish(pending, 'ok');
      const [entry, ...rest] = await entries();
      assert.deepEqual(rest, []);
      assert.equal(entry!.actor, 'bob');
      // A second finish (or a late transaction of the same operation) adds nothing.
      await audit.finish(pending, 'ok');
      await audit.run(pending, () => instance.tracking.logBatch(runId, { metrics: [{ key: 'late', value: 1 }] }));
      assert.equal((await entries()).length, 1);
    });

    it('writes the in-process CLI’s entries in the call’s transaction too', async () => {
      const client = authorizedClient(instance, localClient(instance, 'carol'), { user: 'carol', owner: true });
      await client.logBatch(runId, { metrics: [{ key: 'cli', value: 1 }] });
      const [entry, ...rest] = await entries('run.log');
      assert.deepEqual(rest, []);
      assert.equal(entry!.actor, 'carol');
      assert.equal(entry!.client, 'local');
      assert.deepEqual(entry!.detail, {});
    });
  });
}

describe('a listing the in-process caller stops early', () => {
  it('is still recorded', async () => {
    const [sqlite] = await backends();
    const { instance, dispose } = await sqlite!.instance();
    try {
      await instance.data.createRepo({ name: 'many' });
      await instance.data.commit('many', 'master', Array.from({ length: 20 }, (_, i) => ({ op: 'put' as const, path: `/f${i}`, content: new Uint8Array([i]) })));
      const client = authorizedClient(instance, localClient(instance, 'dave'), { user: 'dave', owner: true });
      for await (const file of client.walk('many@master:/')) {
        assert.ok(file.path);
        break;
      }
      const [entry, ...rest] = await instance.audit.list({ action: 'file.walk' });
      assert.deepEqual(rest, []);
      assert.equal(entry!.actor, 'dave');
      assert.equal(entry!.outcome, 'ok');
    } finally {
      await dispose();
    }
  });
});

describe('a download the client cuts short', () => {
  it('is still recorded, as an aborted read', async () => {
    const s = await serve();
    try {
      await s.instance.data.createRepo({ name: 'big' });
      // Random bytes: 64 MiB cannot sit in socket buffers, so the server is still writing when the client leaves.
      await s.instance.data.commit('big', 'master', [{ op: 'put', path: '/blob.bin', content: randomBytes(64 << 20) }]);
      const abort = new AbortController();
      const res = await fetch(`${s.url}/api/v1/file?ref=${encodeURIComponent('big@master:/blob.bin')}`, { signal: abort.signal });
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      await reader.read();
      abort.abort();
      await reader.cancel().catch(() => {});
      const entry = await until('the read to be recorded', 10_000, async () =>
        (await s.instance.audit.list({ action: 'file.read' })).find((e) => e.target.startsWith('repo:big')),
      );
      assert.equal(entry.outcome, 'error');
      assert.equal(entry.detail.aborted, true);
      assert.equal(entry.detail.status, 200);
    } finally {
      await s.close();
    }
  });
});
