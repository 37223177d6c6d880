import assert from 'node:assert/strict';
import { utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '../fixtures.js';
import { Instance } from '../../src/instance.js';
import { HttpClient } from '../../src/sdk/http-client.js';
import { StrataError } from '../../src/errors.js';
import { cli, startServerProcess, strata } from './run.js';

// Users, tokens and roles end to end: a real `strata server --auth required`
// on 127.0.0.1 and real CLI processes sending STRATA_TOKEN, plus the
// in-process CLI path with the same tokens.

describe('access control (server --auth required, real CLI)', () => {
  const dir = tempDir();
  const home = join(dir.path, '.strata');
  const base: NodeJS.ProcessEnv = { STRATA_HOME: home, STRATA_AUTHOR: 'boss' };
  let server: Awaited<ReturnType<typeof startServerProcess>>;
  let adminToken: string;
  const as = (token: string | undefined, extra: NodeJS.ProcessEnv = {}) => cli({ ...base, STRATA_SERVER: server.url, ...(token ? { STRATA_TOKEN: token } : {}), ...extra });
  const admin = () => as(adminToken);
  const file = (name: string, content: string) => {
    const path = join(dir.path, name);
    writeFileSync(path, content);
    return path;
  };
  const newUser = (name: string) => {
    admin().ok('user', 'create', name);
    return admin().json('token', 'create', '--user', name).token as string;
  };
  const get = async (path: string, token?: string) => {
    const res = await fetch(server.url + path, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    return { status: res.status, text: await res.text() };
  };

  before(async () => {
    const init = strata(['init', '--json'], { env: base });
    assert.equal(init.code, 0, init.stderr);
    const out = JSON.parse(init.stdout);
    assert.equal(out.user, 'boss');
    adminToken = out.token;
    server = await startServerProcess(base, ['--auth', 'required']);
    admin().ok('repo', 'create', 'emails');
    admin().ok('repo', 'create', 'secret');
    admin().ok('put', 'emails@master:/a.txt', file('a.txt', 'hello\n'));
    admin().ok('put', 'secret@master:/s.txt', file('s.txt', 'TOP-SECRET\n'));
  });
  after(async () => {
    await server?.stop();
    dir.cleanup();
  });

  it('init printed a working admin token', () => {
    const who = admin().json('whoami');
    assert.equal(who.user, 'boss');
    assert.equal(who.owner, false);
    assert.deepEqual(who.grants.map((g: any) => [g.role, g.on]), [['admin', '*']]);
  });

  it('refuses requests without a token or with a wrong one: 401, exit 2, saying what to do', async () => {
    as(undefined).fails(2, ['repo', 'list'], /requires an API token: set STRATA_TOKEN/);
    as('st_AAAAAAAAAAAAAAAA_' + 'A'.repeat(43)).fails(2, ['cat', 'emails@master:/a.txt'], /token is not valid: set STRATA_TOKEN/);
    as('not-a-token').fails(2, ['repo', 'list'], /malformed/);
    const res = await get('/api/v1/file?ref=secret@master:/s.txt');
    assert.equal(res.status, 401);
    assert.equal(JSON.parse(res.text).error.code, 'UNAUTHENTICATED');
    assert.doesNotMatch(res.text, /TOP-SECRET/);
    // Health stays public; a presented bad token is still refused there.
    assert.equal((await get('/v2/health/live')).status, 200);
    assert.equal((await get('/v2/health/live', 'st_bad')).status, 401);
  });

  it('refuses expired and revoked tokens', async () => {
    const token = newUser('eve');
    admin().ok('grant', 'reader', 'eve');
    assert.equal(as(token).ok('cat', 'emails@master:/a.txt').stdout, 'hello\n');
    const id = admin().json('token', 'list', '--user', 'eve')[0].id;
    admin().ok('token', 'revoke', id);
    as(token).fails(2, ['cat', 'emails@master:/a.txt'], /revoked/);
    // No CLI lifetime is shorter than a minute: make a 1 ms token in process.
    const instance = await Instance.open(home);
    const short = await instance.access.createToken('eve', { expiresInMs: 1 });
    await instance.close();
    await new Promise((r) => setTimeout(r, 20));
    as(short.token).fails(2, ['cat', 'emails@master:/a.txt'], /expired/);
    admin().fails(2, ['token', 'create', '--user', 'eve', '--expires', 'soon'], /--expires "soon" is not a duration/);
    const listed = admin().json('token', 'list', '--user', 'eve');
    assert.ok(listed.every((t: any) => !('token' in t) && !('hash' in t)), 'listings never show secrets');
  });

  it('a reader cannot write: 403 FORBIDDEN naming user, role and target, and nothing changes', async () => {
    const ann = newUser('ann');
    admin().ok('grant', 'reader', 'ann', '--on', 'repo:emails');
    assert.equal(as(ann).ok('cat', 'emails@master:/a.txt').stdout, 'hello\n');
    const before = admin().json('log', 'emails@master').length;
    as(ann).fails(2, ['put', 'emails@master:/b.txt', file('b.txt', 'new\n')], /user "ann" needs the writer role on repo:emails but is only reader there/);
    as(ann).fails(2, ['repo', 'delete', 'emails'], /writer role on repo:emails/);
    as(ann).fails(2, ['cat', 'secret@master:/s.txt'], /user "ann" needs the reader role on repo:secret but has no role there/);
    as(ann).fails(2, ['user', 'create', 'mallory'], /admin role on the instance/);
    as(ann).fails(2, ['grant', 'admin', 'ann'], /admin role on the instance/);
    assert.equal(admin().json('log', 'emails@master').length, before, 'no commit was made');
    assert.deepEqual(admin().json('ls', 'emails@master').map((f: any) => f.path), ['/a.txt']);
    const res = await fetch(`${server.url}/api/v1/repos/emails`, { method: 'DELETE', headers: { authorization: `Bearer ${ann}` } });
    assert.equal(res.status, 403);
    assert.equal(((await res.json()) as any).error.code, 'FORBIDDEN');
    // The in-process path (no server) applies the same rules to the same token.
    const local = cli({ ...base, STRATA_TOKEN: ann });
    local.fails(2, ['put', 'emails@master:/b.txt', file('b.txt', 'new\n')], /user "ann" needs the writer role on repo:emails/);
    assert.equal(local.ok('cat', 'emails@master:/a.txt').stdout, 'hello\n');
  });

  it('a per-repo writer commits to that repo only, as themself; grant and revoke take effect at once', () => {
    const wes = newUser('wes');
    as(wes).fails(2, ['put', 'emails@master:/w.txt', file('w.txt', 'w\n')], /writer role on repo:emails/);
    admin().ok('grant', 'writer', 'wes', '--on', 'repo:emails');
    as(wes).ok('put', 'emails@master:/w.txt', file('w.txt', 'w\n'));
    assert.equal(admin().json('log', 'emails@master')[0].author, 'wes', 'the authenticated user is the author');
    as(wes).fails(2, ['put', 'secret@master:/w.txt', file('w.txt', 'w\n')], /writer role on repo:secret/);
    as(wes).fails(2, ['repo', 'create', 'other'], /writer role on the instance/);
    admin().ok('revoke', 'writer', 'wes', '--on', 'repo:emails');
    as(wes).fails(2, ['put', 'emails@master:/w2.txt', file('w.txt', 'w\n')], /has no role there/);
    as(wes).fails(2, ['repo', 'list'], /no role on this instance/);
    const who = as(wes).json('whoami');
    assert.deepEqual(who.grants, [], 'whoami works with no role');
    assert.deepEqual(admin().json('ls', 'secret@master').map((f: any) => f.path), ['/s.txt']);
  });

  it('only an admin places stored content by its hash: a writer cannot link in what they cannot read', async () => {
    const wil = newUser('wil');
    admin().ok('grant', 'writer', 'wil', '--on', 'repo:emails');
    const [secret] = admin().json('ls', 'secret@master:/s.txt');
    const secretTree = admin().json('inspect', 'secret@master').tree as string;
    const asWil = new HttpClient(server.url, { token: wil });
    const refused = async (changes: Parameters<HttpClient['commit']>[2], pattern: RegExp) => {
      await assert.rejects(asWil.commit('emails', 'master', changes), (err: unknown) => err instanceof StrataError && err.code === 'FORBIDDEN' && pattern.test(err.message));
    };
    const head = admin().json('log', 'emails@master')[0].id;
    await refused([{ op: 'link', path: '/stolen.txt', hash: secret.hash }], /link:\/stolen\.txt.*needs admin.*wil sends the file's bytes/);
    // After a file that was sent: the whole commit is refused, nothing lands.
    await refused(
      [
        { op: 'put', path: '/fine.txt', content: new TextEncoder().encode('fine\n') },
        { op: 'link', type: 'dir', path: '/stolen', hash: secretTree },
      ],
      /link-dir:\/stolen.*needs admin/,
    );
    assert.equal(admin().json('log', 'emails@master')[0].id, head, 'nothing was committed');
    // Sending the bytes works (and stores nothing twice); an admin may link.
    await asWil.commit('emails', 'master', [{ op: 'put', path: '/own.txt', content: new TextEncoder().encode('TOP-SECRET\n') }]);
    const linked = await new HttpClient(server.url, { token: adminToken }).commit('emails', 'master', [{ op: 'link', path: '/linked.txt', hash: secret.hash }]);
    assert.equal(linked.new_bytes, 0);
    // The in-process CLI with the same token refuses the same way (and its puts send bytes, not links).
    const local = cli({ ...base, STRATA_TOKEN: wil });
    const again = file('again.txt', 'again\n');
    const old = new Date(Date.now() - 60_000);
    utimesSync(again, old, old); // not racy: the owner's stat cache would send it as a link next time
    local.ok('put', 'emails@master:/again.txt', again);
    local.ok('put', 'emails@master:/again.txt', again);
  });

  it('path tricks in refs are rejected and never reach another repo', async () => {
    const ann = admin().json('token', 'create', '--user', 'ann').token as string;
    as(ann).fails(2, ['cat', 'emails/../secret@master:/s.txt'], /repo name "emails\/..\/secret" is invalid/);
    as(ann).fails(2, ['cat', 'emails@master:/../secret/s.txt'], /cannot leave its root/);
    for (const path of [
      `/api/v1/file?ref=${encodeURIComponent('emails/../secret@master:/s.txt')}`,
      '/api/v1/file?ref=emails%2F..%2Fsecret%40master%3A%2Fs.txt',
      '/api/v1/file?ref=emails@master:/..%2F..%2Fsecret%2Fs.txt',
      '/api/v1/repos/emails%2F..%2Fsecret',
      '/api/v1/repos/..%2Fsecret/branches',
      '/api/v1/ls?ref=emails/..%2Fsecret',
    ]) {
      const res = await get(path, ann);
      assert.ok(res.status === 400 || res.status === 403 || res.status === 404, `${path}: ${res.status} ${res.text}`);
      assert.doesNotMatch(res.text, /TOP-SECRET|s\.txt"/, path);
    }
  });

  it('records denials in the audit log with the user, action, target and client address', async () => {
    const instance = await Instance.open(home);
    try {
      const audit = (instance as unknown as { audit: { list(f?: object): Promise<any[]> } }).audit;
      assert.ok(audit, 'the instance has an audit log');
      const entries = await audit.list({ actor: 'ann' });
      const denied = entries.filter((e) => e.outcome === 'denied');
      assert.ok(denied.some((e) => e.action === 'commit.create' && e.target.startsWith('repo:emails') && e.client === '127.0.0.1'), JSON.stringify(denied));
      assert.ok(denied.some((e) => e.action === 'commit.create' && e.client === 'local'), 'the in-process path audits too');
      assert.ok(denied.some((e) => e.action === 'file.read' && e.target.includes('secret')));
      assert.ok(entries.some((e) => e.action === 'file.read' && e.outcome === 'ok' && e.target === 'repo:emails@master:/a.txt'), 'data reads are audited');
      const unauthenticated = (await audit.list({ actor: 'anonymous' })).filter((e) => e.outcome === 'denied');
      assert.ok(unauthenticated.length > 0, 'requests without a valid token are audited');
    } finally {
      await instance.close();
    }
  });
});
