import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { AuditLog, entryBytes, leafHash, type AuditVerifyResult } from '../../src/governance/audit.js';
import { Instance } from '../../src/instance.js';
import { backends, rejectsWith } from '../fixtures.js';

// The audit log (issue 6): appends, filters, signed checkpoints, and verify
// against direct tampering with the database rows (each case starts from ten
// fresh entries), on SQLite and PostgreSQL.

const instanceModule = fileURLToPath(new URL('../../src/instance.js', import.meta.url));

/** Appends `count` entries from a separate Node process (a second writer on the same database). */
function appendFromProcess(home: string, count: number, tag: string): Promise<void> {
  const code = `
    const { Instance } = await import(${JSON.stringify(instanceModule)});
    const inst = await Instance.open(${JSON.stringify(home)});
    for (let i = 0; i < ${count}; i++) await inst.audit.append({ actor: ${JSON.stringify(tag)}, action: 'file.read', target: 'repo:r@master:/f' + i, outcome: 'ok' });
    await inst.close();`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (c) => (c === 0 ? resolve() : reject(new Error(`appender ${tag} exited ${c}: ${err}`))));
  });
}

const first = (r: AuditVerifyResult) => r.problems[0];

for (const backend of await backends()) {
  describe(`audit log on ${backend.name}`, { skip: backend.skip }, () => {
    let instance: Instance;
    let home: string;
    let dispose: () => Promise<void>;
    let audit: AuditLog;
    before(async () => {
      ({ instance, home, dispose } = await backend.instance());
      audit = instance.audit;
    });
    after(async () => dispose?.());

    const db = () => instance.meta.db;
    const reset = async (n = 10) => {
      await db().deleteFrom('audit_entries').execute();
      await db().deleteFrom('audit_checkpoints').execute();
      for (let i = 1; i <= n; i++) {
        await audit.append({ actor: i % 2 ? 'alice' : 'bob', action: i % 3 ? 'commit.create' : 'file.read', target: `repo:r${i % 2}@master:/f${i}`, outcome: 'ok', client: '127.0.0.1', detail: { n: i } });
      }
    };
    /** Rewrites a row and recomputes its leaf, as someone who knows the format would. */
    const rewriteConsistently = async (seq: number, actor: string) => {
      const r = await db().selectFrom('audit_entries').selectAll().where('seq', '=', seq).executeTakeFirstOrThrow();
      const leaf = leafHash(entryBytes(seq, Number(r.time), actor, r.action, r.target, r.outcome, r.client, r.detail)).toString('hex');
      await db().updateTable('audit_entries').set({ actor, leaf }).where('seq', '=', seq).execute();
    };

    describe('appending and listing', () => {
      beforeEach(() => reset());

      it('numbers entries 1..n and records who, what, target, outcome, time and client', async () => {
        const e = await audit.append({ actor: 'carol', action: 'repo.delete', target: 'repo:gone', outcome: 'denied', detail: { code: 'FORBIDDEN' } });
        assert.equal(e.seq, 11);
        assert.equal(e.client, 'local');
        assert.deepEqual(e.detail, { code: 'FORBIDDEN' });
        assert.ok(Math.abs(Date.parse(e.time) - Date.now()) < 10_000);
        const all = await audit.list();
        assert.deepEqual(all.map((x) => x.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        assert.equal(all[0].client, '127.0.0.1');
      });

      it('filters by actor, action, target prefix, time and limit', async () => {
        assert.deepEqual((await audit.list({ actor: 'bob' })).map((x) => x.seq), [2, 4, 6, 8, 10]);
        assert.deepEqual((await audit.list({ action: 'file.read' })).map((x) => x.seq), [3, 6, 9]);
        // A target matches itself and what lies under it, but not a longer name.
        await audit.append({ actor: 'x', action: 'repo.create', target: 'repo:r1', outcome: 'ok' });
        await audit.append({ actor: 'x', action: 'repo.create', target: 'repo:r10', outcome: 'ok' });
        assert.deepEqual((await audit.list({ target: 'repo:r1' })).map((x) => x.seq), [1, 3, 5, 7, 9, 11]);
        assert.deepEqual((await audit.list({ limit: 2 })).map((x) => x.seq), [11, 12]);
        assert.equal((await audit.list({ since: '1h' })).length, 12);
        assert.equal((await audit.list({ since: new Date(Date.now() + 60_000).toISOString() })).length, 0);
        await rejectsWith(audit.list({ since: 'yesterday-ish' }), 'INVALID_ARGUMENT', /duration/);
      });

      it('rejects malformed entries with clear errors and records nothing', async () => {
        await rejectsWith(audit.append({ actor: '', action: 'a', target: 't', outcome: 'ok' }), 'INVALID_ARGUMENT', /actor/);
        await rejectsWith(audit.append({ actor: 'a', action: 'a', target: 't', outcome: 'maybe' as never }), 'INVALID_ARGUMENT', /outcome/);
        await rejectsWith(audit.append({ actor: 'a', action: 'a', target: 't', outcome: 'ok', detail: [] as never }), 'INVALID_ARGUMENT', /detail/);
        assert.equal((await audit.list()).length, 10);
        assert.ok((await audit.verify()).ok);
      });

      it('stores text the database cannot keep as given (unpaired surrogates, NUL) so verify and checkpoints still pass', async () => {
        // A request's field (e.g. an experiment name "\ud800" in a JSON body) ends up in the target of
        // its entry, even a denied one: any user could otherwise break verify and checkpoints for good.
        for (const target of ['experiment:x\ud800', 'experiment:\udc00y', 'repo:a@master:/n\u0000ul']) {
          const e = await audit.append({ actor: 'mallory', action: 'experiment.create', target, outcome: 'denied' });
          assert.ok(!e.target.includes('\u0000') && e.target.includes('\ufffd'), JSON.stringify(e.target));
        }
        const stored = (await audit.list({ actor: 'mallory' })).map((e) => e.target);
        assert.deepEqual(stored, ['experiment:x\ufffd', 'experiment:\ufffdy', 'repo:a@master:/n\ufffdul']);
        const r = await audit.verify();
        assert.deepEqual(r.problems, []);
        assert.equal(r.size, 13);
        assert.equal((await audit.checkpoint()).size, 13);
      });

      it('never gaps or duplicates seq with concurrent appenders in this and other processes', async () => {
        await Promise.all([
          appendFromProcess(home, 60, 'p1'),
          appendFromProcess(home, 60, 'p2'),
          (async () => {
            await Promise.all(Array.from({ length: 60 }, (_, i) => audit.append({ actor: 'me', action: 'file.read', target: `t${i}`, outcome: 'ok' })));
          })(),
        ]);
        const all = await audit.list({ limit: 10_000 });
        assert.equal(all.length, 190);
        assert.deepEqual(all.map((x) => x.seq), Array.from({ length: 190 }, (_, i) => i + 1));
        const r = await audit.verify();
        assert.ok(r.ok, JSON.stringify(r.problems));
        assert.equal(r.size, 190);
      });
    });

    describe('checkpoints and verify', () => {
      beforeEach(() => reset());

      it('verifies an untouched log and signs checkpoints with the instance key', async () => {
        const cp = await audit.checkpoint();
        assert.equal(cp.size, 10);
        assert.match(cp.root, /^[0-9a-f]{64}$/);
        const r = await audit.verify({ checkpoint: cp });
        assert.deepEqual(r.problems, []);
        assert.equal(r.ok, true);
        assert.equal(r.root, cp.root);
        assert.equal(r.checked_checkpoints, 2); // the stored one and the given one
        // The private key is the owner's alone.
        assert.equal(statSync(join(home, 'keys', 'instance-ed25519.pem')).mode & 0o777, 0o600);
        // A later checkpoint extends the earlier one.
        await audit.append({ actor: 'a', action: 'b', target: 'c', outcome: 'ok' });
        const later = await audit.checkpoint();
        assert.equal(later.size, 11);
        assert.ok((await audit.verify({ checkpoint: cp })).ok);
      });

      it('names a modified entry (UPDATE of a row)', async () => {
        await db().updateTable('audit_entries').set({ actor: 'mallory' }).where('seq', '=', 4).execute();
        const r = await audit.verify();
        assert.equal(r.ok, false);
        assert.deepEqual([first(r).seq, first(r).kind], [4, 'modified']);
      });

      it('names a deleted entry, with or without renumbering the rest', async () => {
        await db().deleteFrom('audit_entries').where('seq', '=', 5).execute();
        let r = await audit.verify();
        assert.deepEqual([first(r).seq, first(r).kind], [5, 'missing']);
        await reset();
        await db().deleteFrom('audit_entries').where('seq', '=', 5).execute();
        // In two steps: PostgreSQL checks the key row by row, so seq - 1 in place can collide.
        await sql`update audit_entries set seq = seq + 1000 where seq > 5`.execute(db());
        await sql`update audit_entries set seq = seq - 1001 where seq > 1005`.execute(db());
        r = await audit.verify();
        assert.deepEqual([first(r).seq, first(r).kind], [5, 'missing'], JSON.stringify(r.problems));
      });

      it('names a forged entry inserted in the middle', async () => {
        await sql`update audit_entries set seq = seq + 1000 where seq >= 4`.execute(db());
        await sql`update audit_entries set seq = seq - 999 where seq >= 1004`.execute(db());
        const time = Date.now();
        const forged = { seq: 4, time, actor: 'alice', action: 'repo.delete', target: 'repo:r0', outcome: 'ok', client: 'local', detail: '{}' };
        const leaf = leafHash(entryBytes(4, time, forged.actor, forged.action, forged.target, forged.outcome, forged.client, forged.detail)).toString('hex');
        await db().insertInto('audit_entries').values({ ...forged, leaf }).execute();
        const r = await audit.verify();
        assert.deepEqual([first(r).seq, first(r).kind], [4, 'inserted'], JSON.stringify(r.problems));
      });

      it('names reordered entries (two rows swap seq)', async () => {
        const swap = async (a: number, b: number) => {
          await sql`update audit_entries set seq = -1 where seq = ${a}`.execute(db());
          await sql`update audit_entries set seq = ${a} where seq = ${b}`.execute(db());
          await sql`update audit_entries set seq = ${b} where seq = -1`.execute(db());
        };
        await swap(3, 7);
        let r = await audit.verify();
        assert.deepEqual([first(r).seq, first(r).kind], [3, 'reordered'], JSON.stringify(r.problems));
        assert.match(first(r).message, /originally at seq 7/);
        await reset();
        await swap(6, 7);
        r = await audit.verify();
        assert.deepEqual([first(r).seq, first(r).kind], [6, 'reordered'], JSON.stringify(r.problems));
        assert.match(first(r).message, /6 and 7 were swapped/);
      });

      it('catches a consistent rewrite (row and leaf) through the checkpoint that covers it', async () => {
        const cp = await audit.checkpoint();
        await rewriteConsistently(2, 'mallory');
        let r = await audit.verify();
        assert.equal(r.ok, false);
        assert.equal(first(r).kind, 'checkpoint');
        assert.match(first(r).message, /size 10 .*entries 1\.\.10/);
        // Deleting the stored checkpoints does not help against one the user kept.
        await db().deleteFrom('audit_checkpoints').execute();
        assert.ok((await audit.verify()).ok, 'without any checkpoint a consistent rewrite is undetectable (documented)');
        r = await audit.verify({ checkpoint: cp });
        assert.equal(r.ok, false);
        assert.match(first(r).message, /the given checkpoint of size 10/);
      });

      it('catches a truncated tail through a checkpoint larger than the log', async () => {
        const cp = await audit.checkpoint();
        await db().deleteFrom('audit_entries').where('seq', '>', 8).execute();
        const r = await audit.verify({ checkpoint: cp });
        assert.equal(r.ok, false);
        assert.equal(r.size, 8);
        assert.match(first(r).message, /covers entries 1\.\.10, but the log now has 8/);
      });

      it('rejects checkpoints that were altered or signed by another key', async () => {
        const cp = await audit.checkpoint();
        const other = await backend.instance();
        try {
          const foreign = await other.instance.audit.checkpoint();
          let r = await audit.verify({ checkpoint: { ...foreign } });
          assert.equal(r.ok, false);
          assert.match(first(r).message, /different key/);
          r = await audit.verify({ checkpoint: { ...cp, root: foreign.root } });
          assert.match(first(r).message, /bad signature/);
        } finally {
          await other.dispose();
        }
        await db().updateTable('audit_checkpoints').set({ time: '2000-01-01T00:00:00.000Z' }).execute();
        const r = await audit.verify();
        assert.match(first(r).message, /stored checkpoint of size 10 .*bad signature/);
      });

      it('refuses to sign a checkpoint over entries that do not match their hash', async () => {
        await db().updateTable('audit_entries').set({ target: 'repo:other' }).where('seq', '=', 7).execute();
        await rejectsWith(audit.checkpoint(), 'DATA_CORRUPTION', /entry 7/);
      });

      it('takes a checkpoint every 1000 appends, which catches later rewrites', async () => {
        await reset(1001);
        const cps = await audit.checkpoints();
        assert.deepEqual(cps.map((c) => c.size), [1000]);
        assert.ok((await audit.verify()).ok);
        await rewriteConsistently(500, 'mallory');
        const r = await audit.verify();
        assert.equal(r.ok, false);
        assert.match(first(r).message, /entries 1\.\.1000/);
      });
    });

    it('makes the instance key lazily for instances created before it existed', async () => {
      rmSync(join(home, 'keys'), { recursive: true, force: true });
      const reopened = await Instance.open(home);
      try {
        await reset(3);
        const cp = await reopened.audit.checkpoint();
        assert.equal(cp.size, 3);
        assert.ok(existsSync(join(home, 'keys', 'instance-ed25519.pem')));
        assert.ok((await reopened.audit.verify({ checkpoint: cp })).ok);
      } finally {
        await reopened.close();
      }
    });
  });
}
