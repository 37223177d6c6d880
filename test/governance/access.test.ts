import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { backends, readText, rejectsWith } from '../fixtures.js';
import type { Instance } from '../../src/instance.js';
import type { Change } from '../../src/data/types.js';
import { buildServer } from '../../src/api/server.js';
import { registeredRoutes } from '../../src/api/auth.js';
import { isLoopbackHost, routeOperation, tokenRequired, OPERATIONS, CLIENT_METHODS } from '../../src/governance/operations.js';
import { authorizedClient } from '../../src/cli/authorized-client.js';
import { localClient } from '../../src/cli/local-client.js';
import { defaultAuthor } from '../../src/data/service.js';
import { parseExpiry } from '../../src/governance/access.js';

// Access control in process: tokens, grants and role checks on both
// databases, the operations table covering every route and client method,
// and pipelines running with their creator's rights.

const put = (path: string, content: string): Change => ({ op: 'put', path, content: new TextEncoder().encode(content) });

describe('the auth mode decision', () => {
  it('requires a token off loopback in auto mode, and always in required mode', () => {
    for (const host of ['127.0.0.1', '127.0.0.53', 'localhost', '::1', '[::1]']) {
      assert.equal(isLoopbackHost(host), true, host);
      assert.equal(tokenRequired('auto', host), false, host);
      assert.equal(tokenRequired('required', host), true, host);
    }
    for (const host of ['0.0.0.0', '::', '192.168.1.10', 'example.com', '10.0.0.1']) {
      assert.equal(isLoopbackHost(host), false, host);
      assert.equal(tokenRequired('auto', host), true, host);
    }
  });
});

for (const backend of await backends()) {
  describe(`access control on ${backend.name}`, { skip: backend.skip }, () => {
    let instance: Instance;
    let dispose: () => Promise<void>;
    before(async () => ({ instance, dispose } = await backend.instance()));
    after(async () => dispose?.());

    it('init made an admin user with a working token, stored only as a hash', async () => {
      const token = instance.initAdmin!.token;
      assert.match(token, /^st_[\w-]{16}_[\w-]{43}$/);
      const who = await instance.access.authenticate(token);
      assert.equal(who.user, defaultAuthor());
      assert.equal(await instance.access.roleOn(who, 'repo:anything'), 'admin');
      const rows = await instance.meta.db.selectFrom('tokens').selectAll().execute();
      assert.equal(rows.length, 1);
      assert.ok(!JSON.stringify(rows).includes(token.split('_').pop()!), 'the secret is not stored');
    });

    it('refuses wrong, malformed, expired, revoked tokens and deleted users, saying what to do', async () => {
      await instance.access.createUser('tess', 'admin');
      const good = await instance.access.createToken('tess', { name: 'ci' });
      assert.equal((await instance.access.authenticate(good.token)).user, 'tess');
      const wrongSecret = good.token.slice(0, -4) + (good.token.endsWith('AAAA') ? 'BBBB' : 'AAAA');
      await rejectsWith(instance.access.authenticate(wrongSecret), 'UNAUTHENTICATED', /not valid: set STRATA_TOKEN/);
      await rejectsWith(instance.access.authenticate('hunter2'), 'UNAUTHENTICATED', /malformed/);
      const short = await instance.access.createToken('tess', { expiresInMs: 1 });
      await new Promise((r) => setTimeout(r, 10));
      await rejectsWith(instance.access.authenticate(short.token), 'UNAUTHENTICATED', /expired/);
      await instance.access.revokeToken(good.id);
      await rejectsWith(instance.access.authenticate(good.token), 'UNAUTHENTICATED', /revoked/);
      const other = await instance.access.createToken('tess');
      await instance.access.deleteUser('tess');
      await rejectsWith(instance.access.authenticate(other.token), 'UNAUTHENTICATED', /revoked|deleted/);
      assert.ok(!(await instance.access.listUsers()).some((u) => u.name === 'tess'));
      assert.ok((await instance.access.listTokens({ user: 'tess' })).every((t) => t.revoked !== null), 'all of its tokens are revoked');
    });

    it('refuses a token lifetime no date can hold, so listing and revoking tokens keep working', async () => {
      await instance.access.createUser('ivy', 'admin');
      const keep = await instance.access.createToken('ivy');
      await rejectsWith(instance.access.createToken('ivy', { expiresInMs: parseExpiry('99999999d') }), 'INVALID_ARGUMENT', /at most 100 years/);
      assert.ok((await instance.access.createToken('ivy', { expiresInMs: parseExpiry('36500d') })).expires);
      // A row stored with such an expiry before it was refused lists as never expiring instead of breaking every listing.
      await instance.meta.db.updateTable('tokens').set({ expires_at: 9e15 }).where('id', '=', keep.id).execute();
      assert.equal((await instance.access.inspectToken(keep.id)).expires, null);
      assert.ok((await instance.access.revokeToken(keep.id)).revoked, 'tokens can still be revoked');
      await rejectsWith(instance.access.authenticate(keep.token), 'UNAUTHENTICATED', /revoked/);
    });

    it('orders roles, scopes grants to one resource, and names user, role and target when it refuses', async () => {
      await instance.access.createUser('rita', 'admin');
      const rita = { user: 'rita' };
      await rejectsWith(instance.access.check(rita, 'read', 'repo:emails'), 'FORBIDDEN', /user "rita" needs the reader role on repo:emails but has no role/);
      await instance.access.grant('writer', 'rita', 'repo:emails', 'admin');
      await instance.access.check(rita, 'read', 'repo:emails');
      await instance.access.check(rita, 'write', 'repo:emails');
      await rejectsWith(instance.access.check(rita, 'admin', 'repo:emails'), 'FORBIDDEN', /needs the admin role on repo:emails but is only writer/);
      await rejectsWith(instance.access.check(rita, 'read', 'repo:secret'), 'FORBIDDEN', /repo:secret/);
      await rejectsWith(instance.access.check(rita, 'write', '*'), 'FORBIDDEN', /the instance/);
      await instance.access.grant('reader', 'rita', undefined, 'admin');
      await instance.access.check(rita, 'read', 'repo:secret');
      await rejectsWith(instance.access.check(rita, 'write', 'repo:secret'), 'FORBIDDEN');
      await instance.access.revoke('reader', 'rita', undefined);
      await rejectsWith(instance.access.check(rita, 'read', 'repo:secret'), 'FORBIDDEN');
      await rejectsWith(instance.access.grant('owner', 'rita', undefined, 'admin'), 'INVALID_ARGUMENT', /expected admin, writer or reader/);
      await rejectsWith(instance.access.grant('reader', 'rita', 'repo:../secret', 'admin'), 'INVALID_ARGUMENT');
      await rejectsWith(instance.access.grant('reader', 'rita', 'bucket:x', 'admin'), 'INVALID_ARGUMENT', /repo:NAME/);
      await rejectsWith(instance.access.grant('reader', 'nobody', undefined, 'admin'), 'NOT_FOUND');
    });

    it('authorizes the in-process client per call: a per-repo writer commits there only, path tricks never reach another repo', async () => {
      await instance.data.createRepo({ name: 'emails' });
      await instance.data.createRepo({ name: 'secret' });
      await instance.data.commit('secret', 'master', [put('/s.txt', 'top secret')]);
      await instance.access.createUser('wendy', 'admin');
      await instance.access.grant('writer', 'wendy', 'repo:emails', 'admin');
      const client = authorizedClient(instance, localClient(instance, 'wendy'), { user: 'wendy' });
      const done = await client.commit('emails', 'master', [put('/a.txt', 'hello')], { author: 'someone-else' });
      assert.equal((await instance.data.inspectCommit(`emails@${done.commit}`)).author, 'wendy', 'a token user commits as themself');
      await rejectsWith(client.commit('secret', 'master', [put('/x.txt', 'overwrite')]), 'FORBIDDEN', /wendy.*writer.*repo:secret/);
      await rejectsWith(client.read('secret@master:/s.txt'), 'FORBIDDEN');
      await rejectsWith(client.read('emails/../secret@master:/s.txt'), 'INVALID_ARGUMENT', /repo name/);
      await rejectsWith(client.read('emails@master:/../../secret/s.txt'), 'INVALID_ARGUMENT', /cannot leave its root/);
      await assert.rejects(async () => {
        for await (const _ of client.walk('secret@master')) assert.fail('walk yielded a file of a repo it may not read');
      }, /FORBIDDEN|needs the reader role/);
      assert.deepEqual((await instance.data.ls('secret@master')).map((f) => f.path), ['/s.txt'], 'nothing changed in secret');
      await rejectsWith(client.createRepo({ name: 'new' }), 'FORBIDDEN', /writer role on the instance/);
      await rejectsWith(client.fsck(), 'FORBIDDEN', /admin/);
      // Revocation takes effect on the very next call.
      await instance.access.revoke('writer', 'wendy', 'repo:emails');
      await rejectsWith(client.ls('emails@master'), 'FORBIDDEN');
      await rejectsWith(client.listRepos(), 'FORBIDDEN', /no role on this instance/);
      const audited = await instance.audit.list({ actor: 'wendy' });
      const seen = audited.map((e) => [e.action, e.target, e.outcome, e.client].join(' '));
      assert.ok(seen.includes('commit.create repo:emails@master ok local'), seen.join('\n'));
      assert.ok(seen.includes('commit.create repo:secret@master denied local'), seen.join('\n'));
      assert.ok(seen.includes('file.read repo:secret@master:/s.txt denied local'), seen.join('\n'));
      assert.ok(seen.includes('file.walk repo:secret@master denied local'), seen.join('\n'));
    });

    it('runs a pipeline with its creator\'s rights: losing read on an input fails the next job FORBIDDEN', async () => {
      await instance.data.createRepo({ name: 'docs' });
      await instance.data.commit('docs', 'master', [put('/a.txt', 'one')]);
      await instance.access.createUser('pat', 'admin');
      await instance.access.grant('writer', 'pat', undefined, 'admin');
      const client = authorizedClient(instance, localClient(instance, 'pat'), { user: 'pat' });
      const spec = { pipeline: { name: 'copy' }, input: { pfs: { repo: 'docs', glob: '/' } }, transform: { cmd: ['sh', '-c', 'P=${STRATA_PFS:-/pfs}; cat $P/docs/* > $P/out/all.txt'] } };
      const created = await client.createPipeline(spec);
      assert.equal(created.creator, 'pat');
      await instance.scheduler.drain();
      let job = (await instance.pipelines.listJobs({ pipeline: 'copy' }))[0]!;
      assert.equal(job.state, 'success', job.reason);

      // pat keeps write on the pipeline's output repo but loses read on its input.
      await instance.access.revoke('writer', 'pat', undefined);
      await instance.access.grant('writer', 'pat', 'repo:copy', 'admin');
      await instance.data.commit('docs', 'master', [put('/b.txt', 'two')]);
      await instance.scheduler.drain();
      job = (await instance.pipelines.listJobs({ pipeline: 'copy' }))[0]!;
      assert.equal(job.state, 'failure');
      assert.match(job.reason ?? '', /^FORBIDDEN: .*"pat" needs the reader role on repo:docs/);
      assert.equal(await readText(instance, 'copy@master:/all.txt'), 'one', 'nothing of the new commit was copied');
      const [denial] = await instance.audit.list({ actor: 'pipeline:copy' });
      assert.equal(denial?.outcome, 'denied');
      assert.equal(denial?.target, `pipeline:copy/job:${job.id}`);
      assert.equal(denial?.detail.on_behalf_of, 'pat');

      // Creating a pipeline needs write on the instance (it makes a repo); changing one, write on it and read on its inputs.
      await rejectsWith(client.createPipeline({ ...spec, pipeline: { name: 'copy2' } }), 'FORBIDDEN', /writer role on the instance/);
      await instance.data.createRepo({ name: 'hidden' });
      await instance.access.grant('writer', 'pat', 'pipeline:copy', 'admin');
      await rejectsWith(client.createPipeline({ ...spec, input: { pfs: { repo: 'hidden', glob: '/' } } }, { update: true }), 'FORBIDDEN', /reader role on repo:hidden/);
      assert.equal((await instance.pipelines.inspect('copy')).version, created.version, 'the pipeline is unchanged');
    });

    it('classifies every HTTP route and every client method', async () => {
      const app = buildServer(instance);
      await app.ready();
      const routes = registeredRoutes(app);
      assert.ok(routes.length > 100, `only ${routes.length} routes collected`);
      const unclassified = routes.filter((r) => !routeOperation(r.method, r.url)).map((r) => `${r.method} ${r.url}`);
      assert.deepEqual(unclassified, [], 'every route is in governance/operations.ts');
      await app.close();
      const methods = Object.keys(localClient(instance)).filter((m) => m !== 'close');
      assert.deepEqual(methods.filter((m) => !CLIENT_METHODS[m]), [], 'every client method is in governance/operations.ts');
      for (const { action } of Object.values(CLIENT_METHODS)) assert.ok(OPERATIONS.has(action), action);
      // Only health, metadata, metrics and the OpenAPI document are public.
      const publicRoutes = routes.filter((r) => routeOperation(r.method, r.url)!.level === 'public').map((r) => r.url);
      for (const url of publicRoutes) assert.match(url, /^\/(v2\/health\/|v2$|metrics$|openapi\.json$|api\/v1\/health$|api\/v1\/webhooks\/git$|(ajax-)?api\/2\.0\/mlflow(-artifacts)?\/\*$)/, url);
    });
  });
}
