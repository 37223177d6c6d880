import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { Instance } from '../../src/instance.js';
import { tempDir } from '../fixtures.js';
import { cli, startServerProcess, strata } from './run.js';

// `strata audit log|checkpoint|verify` as a user runs them: in-process and
// over HTTP against a real server; then the database is tampered with directly
// and verify must exit 1 naming the first bad entry or the checkpoint range.

describe('strata audit (real CLI, SQLite)', () => {
  const dir = tempDir();
  const home = join(dir.path, '.strata');
  const base: NodeJS.ProcessEnv = { STRATA_HOME: home, STRATA_AUTHOR: 'auditor' };
  let token: string;
  let server: Awaited<ReturnType<typeof startServerProcess>> | undefined;
  const local = () => cli({ ...base, STRATA_TOKEN: token });
  const remote = () => cli({ ...base, STRATA_TOKEN: token, STRATA_SERVER: server!.url });
  const checkpointFile = join(dir.path, 'checkpoint.json');
  const tamper = (statement: string) => {
    const db = new Database(join(home, 'strata.db'));
    try {
      db.prepare(statement).run();
    } finally {
      db.close();
    }
  };
  let firstSeq = 0;

  before(async () => {
    const init = strata(['init', '--json'], { env: base });
    assert.equal(init.code, 0, init.stderr);
    token = JSON.parse(init.stdout).token;
    const instance = await Instance.open(home);
    try {
      for (let i = 1; i <= 5; i++) {
        const e = await instance.audit.append({ actor: 'tester', action: i === 3 ? 'file.read' : 'commit.create', target: `repo:emails@master:/f${i}`, outcome: 'ok', client: '127.0.0.1' });
        if (i === 1) firstSeq = e.seq;
      }
    } finally {
      await instance.close();
    }
  });
  after(async () => {
    await server?.stop();
    dir.cleanup();
  });

  it('lists entries as a table and as JSON, with filters', () => {
    const table = local().ok('audit', 'log', '--actor', 'tester').stdout.split('\n');
    assert.match(table[0], /^SEQ\s+TIME\s+ACTOR\s+ACTION\s+TARGET\s+OUTCOME$/);
    assert.match(table[1], new RegExp(`^${firstSeq}\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\s+tester\\s+commit\\.create\\s+repo:emails@master:/f1\\s+ok$`));
    const entries = local().json('audit', 'log', '--actor', 'tester', '--since', '1h');
    assert.equal(entries.length, 5);
    assert.equal(entries[0].client, '127.0.0.1');
    assert.match(entries[0].leaf, /^[0-9a-f]{64}$/);
    assert.deepEqual(local().json('audit', 'log', '--actor', 'tester', '--action', 'file.read').map((e: any) => e.target), ['repo:emails@master:/f3']);
    assert.equal(local().json('audit', 'log', '--target', 'repo:emails', '--actor', 'tester').length, 5);
    assert.equal(local().json('audit', 'log', '--actor', 'tester', '--since', '2999-01-01T00:00:00Z').length, 0);
    local().fails(2, ['audit', 'log', '--since', 'last tuesday'], /--since "last tuesday" is neither a time/);
  });

  it('signs a checkpoint and verifies against it, in-process and over HTTP', async () => {
    const out = local().ok('audit', 'checkpoint');
    const cp = JSON.parse(out.stdout);
    assert.ok(cp.size >= 5);
    assert.match(cp.signature, /^[A-Za-z0-9+/]+=*$/);
    writeFileSync(checkpointFile, out.stdout);
    const r = local().json('audit', 'verify', '--checkpoint', checkpointFile);
    assert.equal(r.ok, true, JSON.stringify(r.problems));
    assert.ok(r.checked_checkpoints >= 2);
    assert.match(local().ok('audit', 'verify').stdout, /\nok\n$/);
    assert.match(local().ok('audit', 'verify', '--checkpoint', checkpointFile).stdout, new RegExp(`entries 1\\.\\.${cp.size} still hash to the root signed at .*\\nok\\n$`));

    server = await startServerProcess({ ...base });
    assert.equal(remote().json('audit', 'log', '--actor', 'tester').length, 5);
    const viaHttp = JSON.parse(remote().ok('audit', 'checkpoint').stdout);
    assert.ok(viaHttp.size >= cp.size);
    assert.equal(viaHttp.public_key, cp.public_key);
    assert.equal(remote().json('audit', 'verify', '--checkpoint', checkpointFile).ok, true);
  });

  it('rejects a checkpoint file that is not one, with exit 2', () => {
    const bad = join(dir.path, 'bad.json');
    writeFileSync(bad, '{"size": 3}');
    local().fails(2, ['audit', 'verify', '--checkpoint', bad], /not an audit checkpoint: "root"/);
    writeFileSync(bad, 'nope');
    local().fails(2, ['audit', 'verify', '--checkpoint', bad], /is not JSON/);
  });

  it('exits 1 naming the first modified entry, locally and over HTTP', () => {
    tamper(`update audit_entries set actor = 'mallory' where seq = ${firstSeq + 1}`);
    for (const c of [local(), remote()]) {
      const r = c.run('audit', 'verify');
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stdout, new RegExp(`problem: modified at entry ${firstSeq + 1}: audit entry ${firstSeq + 1} was modified`));
      assert.match(r.stdout, /problem\(s\) found; the first: /);
      const j = c.run('audit', 'verify', '--json');
      assert.equal(j.code, 1);
      assert.deepEqual(JSON.parse(j.stdout).problems[0], { seq: firstSeq + 1, kind: 'modified', message: `audit entry ${firstSeq + 1} was modified: its content does not match its recorded hash` });
    }
    tamper(`update audit_entries set actor = 'tester' where seq = ${firstSeq + 1}`);
    assert.equal(local().json('audit', 'verify').ok, true);
  });

  it('exits 1 when the tail covered by a kept checkpoint was deleted', async () => {
    await server?.stop();
    server = undefined;
    const cp = JSON.parse(local().ok('audit', 'checkpoint').stdout);
    writeFileSync(checkpointFile, JSON.stringify(cp));
    tamper(`delete from audit_checkpoints`);
    tamper(`delete from audit_entries where seq > ${cp.size - 2}`);
    const r = local().run('audit', 'verify', '--checkpoint', checkpointFile);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, new RegExp(`the given checkpoint of size ${cp.size} .*(covers entries 1\\.\\.${cp.size}|entries 1\\.\\.${cp.size} were changed)`));
  });
});
