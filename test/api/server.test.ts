import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Change } from '../../src/data/types.js';
import { HttpClient } from '../../src/sdk/http-client.js';
import { all, collect, rejectsWith, serve, type Served } from './harness.js';

// The HTTP API end to end: a real server on a loopback port, driven by the
// HttpClient and by raw fetch.

const put = (path: string, content: string | Uint8Array): Change => ({
  op: 'put',
  path,
  content: typeof content === 'string' ? Buffer.from(content) : content,
});

async function json(res: Response): Promise<any> {
  assert.match(res.headers.get('content-type') ?? '', /application\/json/);
  return res.json();
}

describe('HTTP API', () => {
  let s: Served;
  before(async () => {
    s = await serve();
  });
  after(async () => {
    await s.close();
  });

  it('reports health with the package version', async () => {
    const body = await json(await fetch(`${s.url}/api/v1/health`));
    assert.equal(body.ok, true);
    assert.match(body.version, /^\d+\.\d+\.\d+/);
  });

  it('creates, lists, inspects and deletes repos', async () => {
    const res = await fetch(`${s.url}/api/v1/repos`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'crud', description: 'a repo', owner: 'ana', labels: { team: 'ml' } }),
    });
    assert.equal(res.status, 201);
    const created = await json(res);
    assert.deepEqual(
      { name: created.name, description: created.description, owner: created.owner, labels: created.labels, branches: created.branches },
      { name: 'crud', description: 'a repo', owner: 'ana', labels: { team: 'ml' }, branches: ['master'] },
    );
    assert.equal(created.head, null);

    assert.deepEqual((await s.client.inspectRepo('crud')).labels, { team: 'ml' });
    assert.ok((await s.client.listRepos()).some((r) => r.name === 'crud'));
    await rejectsWith(s.client.createRepo({ name: 'crud' }), 'ALREADY_EXISTS');

    const del = await fetch(`${s.url}/api/v1/repos/crud`, { method: 'DELETE' });
    assert.equal(del.status, 204);
    await rejectsWith(s.client.inspectRepo('crud'), 'NOT_FOUND', /crud/);
    await rejectsWith(s.client.deleteRepo('crud'), 'NOT_FOUND');
  });

  it('creates, lists and deletes branches', async () => {
    await s.client.createRepo({ name: 'br' });
    const { commit } = await s.client.commit('br', 'master', [put('/a', 'a')]);
    const dev = await s.client.createBranch('br', 'dev', 'master');
    assert.deepEqual(dev, { repo: 'br', name: 'dev', head: commit });
    const empty = await s.client.createBranch('br', 'empty');
    assert.equal(empty.head, null);
    assert.deepEqual(
      (await s.client.listBranches('br')).map((b) => b.name),
      ['dev', 'empty', 'master'],
    );
    await rejectsWith(s.client.createBranch('br', 'dev'), 'ALREADY_EXISTS');
    await s.client.deleteBranch('br', 'dev');
    await rejectsWith(s.client.deleteBranch('br', 'dev'), 'NOT_FOUND');
    assert.deepEqual(
      (await s.client.listBranches('br')).map((b) => b.name),
      ['empty', 'master'],
    );
  });

  it('commits files and deletes through a multipart upload, and reads them back (ls, cat, log, diff, walk)', async () => {
    await s.client.createRepo({ name: 'docs' });
    // Content that looks like multipart framing must come back byte for byte.
    const tricky = Buffer.concat([Buffer.from('\r\n--strata-\r\n--\r\n\r\n'), Buffer.from([0, 255, 13, 10, 45, 45]), Buffer.alloc(70_000, 7)]);
    const first = await s.client.commit(
      'docs',
      'master',
      [put('/a.txt', 'alpha'), put('/dir/b.txt', 'bravo'), put('/dir/tricky.bin', tricky), put('/empty', '')],
      { message: 'first', author: 'ana' },
    );
    assert.equal(first.files, 4);
    assert.equal(first.bytes, 5 + 5 + tricky.length);

    const second = await s.client.commit(
      'docs',
      'master',
      (async function* () {
        yield put('/a.txt', 'alpha, changed');
        yield { op: 'delete', path: '/dir/b.txt' } as Change;
        yield put('/dir with space/ünïcode & more%.txt', 'unicode');
      })(),
      { message: 'second', author: 'bo', provenance: [{ repo: 'docs', commit: first.commit }] },
    );
    assert.equal(second.files, 2);
    assert.equal(second.deleted, 1);

    assert.deepEqual(
      (await s.client.ls('docs@master')).map((f) => [f.path, f.type]),
      [
        ['/a.txt', 'file'],
        ['/dir', 'dir'],
        ['/dir with space', 'dir'],
        ['/empty', 'file'],
      ],
    );
    assert.deepEqual(
      (await s.client.ls('docs@master', { recursive: true })).map((f) => f.path),
      ['/a.txt', '/dir/tricky.bin', '/dir with space/ünïcode & more%.txt', '/empty'],
    );
    assert.deepEqual(
      (await all(s.client.walk('docs@master:/dir'))).map((f) => [f.path, f.size]),
      [['/dir/tricky.bin', tricky.length]],
    );

    const cat = async (ref: string) => collect((await s.client.read(ref)).stream);
    assert.equal((await cat('docs@master:/a.txt')).toString(), 'alpha, changed');
    assert.equal((await cat(`docs@${first.commit}:/a.txt`)).toString(), 'alpha');
    assert.equal((await cat('docs@master^:/dir/b.txt')).toString(), 'bravo');
    assert.ok((await cat('docs:/dir/tricky.bin')).equals(tricky));
    assert.equal((await cat('docs:/empty')).length, 0);
    assert.equal((await cat('docs:/dir with space/ünïcode & more%.txt')).toString(), 'unicode');
    const { info } = await s.client.read('docs:/dir/tricky.bin');
    assert.equal(info.path, '/dir/tricky.bin');
    assert.equal(info.size, tricky.length);

    const log = await s.client.log('docs@master');
    assert.deepEqual(
      log.map((c) => [c.id, c.message, c.author]),
      [
        [second.commit, 'second', 'bo'],
        [first.commit, 'first', 'ana'],
      ],
    );
    assert.deepEqual(log[0]!.provenance, [{ repo: 'docs', commit: first.commit }]);
    assert.equal((await s.client.log('docs', { limit: 1 })).length, 1);
    assert.equal((await s.client.inspectCommit(`docs@${second.commit.slice(0, 10)}`)).id, second.commit);

    assert.deepEqual(await s.client.diff(`docs@${first.commit}`, 'docs@master'), {
      added: ['/dir with space/ünïcode & more%.txt'],
      modified: ['/a.txt'],
      deleted: ['/dir/b.txt'],
    });

    // The raw endpoints behind cat and get.
    const file = await fetch(`${s.url}/api/v1/file?ref=${encodeURIComponent('docs:/a.txt')}`);
    assert.equal(file.headers.get('content-type'), 'application/octet-stream');
    assert.equal(file.headers.get('content-length'), '14');
    assert.equal(file.headers.get('strata-file-size'), '14');
    assert.match(file.headers.get('strata-file-hash') ?? '', /^[0-9a-f]{64}$/);
    assert.equal(await file.text(), 'alpha, changed');
    const walk = await fetch(`${s.url}/api/v1/walk?ref=docs`);
    assert.equal(walk.headers.get('content-type'), 'application/x-ndjson');
    const lines = (await walk.text()).trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(
      lines.map((l) => l.path),
      ['/a.txt', '/dir/tricky.bin', '/dir with space/ünïcode & more%.txt', '/empty'],
    );
  });

  it('places already stored content at a new path by hash (link), without resending it', async () => {
    await s.client.createRepo({ name: 'links' });
    await s.client.commit('links', 'master', [put('/orig.txt', 'shared content')]);
    const [orig] = await s.client.ls('links:/orig.txt');
    const linked = await s.client.commit('links', 'master', [{ op: 'link', path: '/copy/of orig.txt', hash: orig!.hash }]);
    assert.equal(linked.files, 1);
    assert.equal(linked.new_bytes, 0);
    assert.equal((await collect((await s.client.read('links:/copy/of orig.txt')).stream)).toString(), 'shared content');
    await rejectsWith(s.client.commit('links', 'master', [{ op: 'link', path: '/x', hash: 'f'.repeat(64) }]), 'NOT_FOUND', /not stored/);

    // A whole directory by its tree id (ls --recursive with dirs lists them).
    const [copy] = (await s.client.ls('links:/', { recursive: true, dirs: true })).filter((e) => e.path === '/copy');
    assert.equal(copy!.type, 'dir');
    const tree = await s.client.commit('links', 'master', [{ op: 'link', type: 'dir', path: '/again/here', hash: copy!.hash }]);
    assert.deepEqual([tree.files, tree.new_bytes], [1, 0]);
    assert.equal((await collect((await s.client.read('links:/again/here/of orig.txt')).stream)).toString(), 'shared content');
    await rejectsWith(s.client.commit('links', 'master', [{ op: 'link', type: 'dir', path: '/y', hash: 'f'.repeat(64) }]), 'NOT_FOUND', /directory tree/);
  });

  it('accepts a commit built with standard FormData (what curl -F and browsers send)', async () => {
    await s.client.createRepo({ name: 'forms' });
    await s.client.commit('forms', 'master', [put('/old.txt', 'old')]);
    await s.client.createBranch('forms', 'feature', 'master');
    const form = new FormData();
    form.append(`put:${encodeURIComponent('/in/x y.txt')}`, new Blob(['from a form']), 'x y.txt');
    form.append('delete', '/old.txt');
    const res = await fetch(`${s.url}/api/v1/repos/forms/branches/feature/commits?message=hi`, { method: 'POST', body: form });
    assert.equal(res.status, 201);
    const result = await json(res);
    assert.equal(result.branch, 'feature');
    assert.equal(result.files, 1);
    assert.equal(result.deleted, 1);
    assert.deepEqual(
      (await s.client.ls('forms@feature', { recursive: true })).map((f) => f.path),
      ['/in/x y.txt'],
    );
    assert.equal((await s.client.inspectCommit('forms@feature')).message, 'hi');
  });

  it('answers errors as {"error":{"code","message"}} with the status of the code', async () => {
    const get = async (path: string, init?: RequestInit) => {
      const res = await fetch(`${s.url}${path}`, init);
      return { status: res.status, body: await json(res) };
    };
    const postJson = (path: string, body: string) =>
      get(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

    let r = await get('/api/v1/repos/no-such-repo');
    assert.equal(r.status, 404);
    assert.equal(r.body.error.code, 'NOT_FOUND');
    assert.match(r.body.error.message, /no-such-repo/);

    r = await postJson('/api/v1/repos', JSON.stringify({ name: 'bad name!' }));
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'INVALID_ARGUMENT');
    assert.match(r.body.error.message, /repo name "bad name!" is invalid/);

    r = await postJson('/api/v1/repos', '{"name": ');
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'INVALID_ARGUMENT');
    assert.match(r.body.error.message, /not valid JSON/);

    r = await postJson('/api/v1/repos', JSON.stringify({ description: 'no name' }));
    assert.deepEqual([r.status, r.body.error.code], [400, 'INVALID_ARGUMENT']);
    assert.match(r.body.error.message, /missing required field "name"/);

    r = await postJson('/api/v1/repos', JSON.stringify({ name: 'x', colour: 'blue' }));
    assert.match(r.body.error.message, /unknown field "colour"/);

    r = await postJson('/api/v1/repos', JSON.stringify({ name: 'x'.repeat(2 * 1024 * 1024) }));
    assert.deepEqual([r.status, r.body.error.code], [400, 'INVALID_ARGUMENT']);
    assert.match(r.body.error.message, /too large/);

    r = await get('/api/v1/repos', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'name=x' });
    assert.deepEqual([r.status, r.body.error.code], [400, 'INVALID_ARGUMENT']);
    assert.match(r.body.error.message, /content-type "text\/plain"/);

    r = await get('/api/v1/log');
    assert.deepEqual([r.status, r.body.error.code], [400, 'INVALID_ARGUMENT']);
    assert.match(r.body.error.message, /querystring is missing required field "ref"/);

    r = await get('/api/v1/log?ref=docs&limit=zero');
    assert.match(r.body.error.message, /querystring\.limit must be integer/);

    r = await get('/api/v1/ls?ref=docs&recursiv=true');
    assert.match(r.body.error.message, /querystring has unknown field "recursiv"/);

    r = await get('/api/v1/nowhere');
    assert.deepEqual([r.status, r.body.error.code], [404, 'NOT_FOUND']);
    assert.match(r.body.error.message, /no such endpoint: GET \/api\/v1\/nowhere/);

    r = await get('/api/v1/file?ref=docs:/dir');
    assert.deepEqual([r.status, r.body.error.code], [400, 'INVALID_ARGUMENT']);

    // The client turns the same responses into the same StrataErrors as the in-process client.
    await rejectsWith(s.client.inspectRepo('no-such-repo'), 'NOT_FOUND', /no-such-repo/);
    await rejectsWith(s.client.createRepo({ name: '-bad' }), 'INVALID_ARGUMENT', /repo name/);
    await rejectsWith(s.client.ls('docs@nobranch'), 'NOT_FOUND', /nobranch/);
    await rejectsWith(s.client.read('docs:/missing.txt'), 'NOT_FOUND', /missing\.txt/);
    await rejectsWith(all(s.client.walk('no-such-repo')), 'NOT_FOUND');
    await rejectsWith(s.client.log('docs', { limit: 0 }), 'INVALID_ARGUMENT', /limit/);
  });

  it('rejects malformed uploads without changing the branch', async () => {
    await s.client.createRepo({ name: 'up' });
    const { commit } = await s.client.commit('up', 'master', [put('/keep', 'k')]);
    const post = (body: BodyInit, type: string) =>
      fetch(`${s.url}/api/v1/repos/up/branches/master/commits`, { method: 'POST', headers: { 'content-type': type }, body });

    let res = await post('{"files":[]}', 'application/json');
    assert.equal(res.status, 400);
    assert.match((await json(res)).error.message, /multipart\/form-data/);

    const form = new FormData();
    form.append('file', new Blob(['x']), 'x');
    res = await fetch(`${s.url}/api/v1/repos/up/branches/master/commits`, { method: 'POST', body: form });
    assert.equal(res.status, 400);
    assert.match((await json(res)).error.message, /unexpected multipart part "file"/);

    res = await post('--b\r\nContent-Disposition: form-data; name="put:%2Fhalf"\r\n\r\nhalf a fi', 'multipart/form-data; boundary=b');
    assert.equal(res.status, 400);
    assert.match((await json(res)).error.message, /truncated/);

    res = await post('--b--\r\n', 'multipart/form-data; boundary=b');
    assert.equal(res.status, 400);
    assert.match((await json(res)).error.message, /nothing to commit/);

    await rejectsWith(s.client.commit('up', 'master', [put('/ok', 'fine'), put('/../escape', 'no')]), 'INVALID_ARGUMENT', /\.\./);
    await rejectsWith(s.client.commit('nope', 'master', [put('/x', 'x')]), 'NOT_FOUND', /nope/);
    await rejectsWith(s.client.commit('up', 'bad branch', [put('/x', 'x')]), 'INVALID_ARGUMENT', /branch name/);

    // A source that fails mid-upload: the caller sees its error, and nothing is committed.
    const failing = (async function* () {
      yield put('/first', 'ok');
      yield {
        op: 'put',
        path: '/second',
        content: (async function* () {
          yield Buffer.alloc(100_000, 1);
          throw new Error('disk on fire');
        })(),
      } as Change;
    })();
    await assert.rejects(s.client.commit('up', 'master', failing), /disk on fire/);

    assert.equal((await s.client.inspectCommit('up@master')).id, commit);
    assert.deepEqual(
      (await s.client.ls('up', { recursive: true })).map((f) => f.path),
      ['/keep'],
    );
  });

  it('stops sending when the server refuses an upload early', async () => {
    let sent = 0;
    const endless = (async function* () {
      for (let i = 0; i < 4096; i++) {
        sent += 1 << 20;
        yield Buffer.alloc(1 << 20, i);
      }
    })();
    await rejectsWith(s.client.commit('up', 'master', [{ op: 'put', path: '/../big', content: endless }]), 'INVALID_ARGUMENT');
    assert.ok(sent < 512 * 1024 * 1024, `the client kept sending (${sent} bytes) after the server refused`);
    assert.ok((await s.client.listRepos()).length > 0, 'the server still answers');
  });

  it('runs fsck', async () => {
    const res = await fetch(`${s.url}/api/v1/fsck`, { method: 'POST' });
    assert.equal(res.status, 200);
    const body = await json(res);
    assert.equal(body.ok, true, JSON.stringify(body.problems));
    assert.deepEqual(await s.client.fsck(), body);
  });

  it('serves an OpenAPI 3 document listing every route', async () => {
    const doc = await json(await fetch(`${s.url}/openapi.json`));
    assert.match(doc.openapi, /^3\./);
    assert.equal(doc.info.title, 'Strata');
    const expected: Record<string, string[]> = {
      '/api/v1/health': ['get'],
      '/api/v1/repos': ['get', 'post'],
      '/api/v1/repos/{repo}': ['delete', 'get'],
      '/api/v1/repos/{repo}/branches': ['get', 'post'],
      '/api/v1/repos/{repo}/branches/{branch}': ['delete'],
      '/api/v1/repos/{repo}/branches/{branch}/commits': ['post'],
      '/api/v1/commit': ['get'],
      '/api/v1/log': ['get'],
      '/api/v1/diff': ['get'],
      '/api/v1/ls': ['get'],
      '/api/v1/walk': ['get'],
      '/api/v1/file': ['get'],
      '/api/v1/fsck': ['post'],
    };
    for (const [path, methods] of Object.entries(expected)) {
      assert.ok(doc.paths[path], `${path} is missing from the document`);
      assert.deepEqual(Object.keys(doc.paths[path]).filter((m) => m !== 'head').sort(), methods, path);
    }
    const createRepo = doc.paths['/api/v1/repos'].post;
    assert.deepEqual(createRepo.requestBody.content['application/json'].schema.required, ['name']);
    assert.ok(doc.paths['/api/v1/repos/{repo}/branches/{branch}/commits'].post.requestBody.content['multipart/form-data']);
    assert.ok(doc.components.schemas.RepoInfo);
  });
});

describe('unexpected failures', () => {
  it('answer 500 INTERNAL with a generic message, and log the details', async () => {
    const served = await serve();
    const logged: unknown[][] = [];
    const consoleError = console.error;
    console.error = (...args: unknown[]) => void logged.push(args);
    try {
      await served.instance.close(); // the database is gone: every query now fails unexpectedly
      const res = await fetch(`${served.url}/api/v1/repos`);
      assert.equal(res.status, 500);
      const body = await res.json();
      assert.equal(body.error.code, 'INTERNAL');
      assert.match(body.error.message, /^internal server error \(request [^)]+\); the server log has the details$/);
      assert.equal(logged.length, 1);
      assert.match(String(logged[0]![0]), /internal error on GET \/api\/v1\/repos/);
    } finally {
      console.error = consoleError;
      await served.close();
    }
  });
});

describe('HttpClient without a server', () => {
  it('reports an unreachable server as UNAVAILABLE, naming the URL', async () => {
    const served = await serve();
    const url = served.url;
    await served.close(); // the port is now closed
    const client = new HttpClient(url);
    await rejectsWith(client.listRepos(), 'UNAVAILABLE', new RegExp(`cannot reach Strata server at ${url.replaceAll('.', '\\.')}`));
  });

  it('refuses a base URL that is not http(s)', () => {
    assert.throws(() => new HttpClient('localhost:7070'), /http:\/\/ or https:\/\//);
    assert.throws(() => new HttpClient('not a url'), /not a URL/);
  });
});
