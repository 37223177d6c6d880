import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { backends, readText, rejectsWith, until } from '../fixtures.js';
import type { Instance } from '../../src/instance.js';
import type { Change } from '../../src/data/types.js';
import { buildServer } from '../../src/api/server.js';
import { authorizedClient, localPrincipal } from '../../src/cli/authorized-client.js';
import { localClient } from '../../src/cli/local-client.js';

// The operations table against what the handlers really do, through a real
// server (--auth required) with token users: a request must need every right
// its handler uses, and what a token user claims about who they are is
// replaced by who they are.

const put = (path: string, content: string): Change => ({ op: 'put', path, content: new TextEncoder().encode(content) });

for (const backend of await backends()) {
  describe(`operations on ${backend.name}`, { skip: backend.skip }, () => {
    let instance: Instance;
    let dispose: () => Promise<void>;
    let app: FastifyInstance;
    const tokens: Record<string, string> = {};

    /** A user with these grants ([role, on?]) and a token. */
    const user = async (name: string, ...grants: [string, string?][]) => {
      await instance.access.createUser(name, 'boss');
      for (const [role, on] of grants) await instance.access.grant(role, name, on, 'boss');
      tokens[name] = (await instance.access.createToken(name)).token;
    };
    const call = async (who: string, method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE', url: string, payload?: object) => {
      const res = await app.inject({ method, url, headers: { authorization: `Bearer ${tokens[who]}` }, ...(payload ? { payload } : {}) });
      const json = () => res.json();
      // The error's message, from Strata's {"error":{...}} or MLflow's {"error_code","message"}.
      const message = (): string => json().error?.message ?? json().message ?? '';
      return { status: res.statusCode, body: res.body, json, message };
    };
    /** The latest audit entry matching, once the server's onResponse hook has written it. */
    const audited = (filter: { actor: string; action: string }, outcome: string) =>
      until(`a ${outcome} ${filter.action} entry by ${filter.actor}`, 5000, async () => {
        const last = (await instance.audit.list(filter)).at(-1);
        return last?.outcome === outcome ? last : undefined;
      });

    before(async () => {
      ({ instance, dispose } = await backend.instance());
      await instance.data.createRepo({ name: 'secret' });
      await instance.data.commit('secret', 'master', [put('/s.txt', 'TOP-SECRET')]);
      await instance.data.createRepo({ name: 'emails' });
      await instance.data.commit('emails', 'master', [put('/a.txt', 'hello')]);
      app = buildServer(instance, { auth: { mode: 'required', host: '127.0.0.1' } });
      await app.ready();
    });
    after(async () => {
      await app?.close();
      await dispose?.();
    });

    it('MLflow CreateModelVersion needs read on the source repo, as the native registration does', async () => {
      await user('mia', ['writer', 'model:spam'], ['reader', 'repo:emails']);
      const denied = await call('mia', 'POST', '/api/2.0/mlflow/model-versions/create', { name: 'spam', source: 'secret@master:/s.txt' });
      assert.equal(denied.status, 403, denied.body);
      assert.match(denied.message(), /"mia" needs the reader role on repo:secret/);
      // A run's output commit may be any pipeline's repo: runs are instance-wide, so read on the instance.
      const viaRun = await call('mia', 'POST', '/ajax-api/2.0/mlflow/model-versions/create', { name: 'spam', source: 'runs:/0123abcd/s.txt' });
      assert.equal(viaRun.status, 403, viaRun.body);
      assert.match(viaRun.message(), /reader role on the instance/);
      await assert.rejects(instance.registry.listVersions('spam'), /not found/, 'nothing was registered');
      await audited({ actor: 'mia', action: 'mlflow.model-versions.create' }, 'denied');
      // What mia may read, she may register.
      const ok = await call('mia', 'POST', '/api/2.0/mlflow/model-versions/create', { name: 'spam', source: 'emails@master:/a.txt' });
      assert.equal(ok.status, 200, ok.body);
      assert.equal(ok.json().model_version.user_id, 'mia');
      // A URI Strata does not register is refused by the handler, not as a read of a repo named like its scheme.
      const s3 = await call('mia', 'POST', '/api/2.0/mlflow/model-versions/create', { name: 'spam', source: 's3://bucket/model.pkl' });
      assert.equal(s3.status, 400, s3.body);
    });

    it('a pipeline update cannot point a cron input at a repo it may not write (cron.repo), nor read or overwrite it', async () => {
      await instance.data.createRepo({ name: 'docs' });
      await instance.data.commit('docs', 'master', [put('/d.txt', 'doc')]);
      const transform = { cmd: ['sh', '-c', 'true'] };
      await instance.pipelines.create(
        { pipeline: { name: 'ticker' }, input: { cross: [{ pfs: { repo: 'docs', glob: '/' } }, { cron: { name: 'tick', spec: '@every 1h' } }] }, transform },
        { creator: 'boss' },
      );
      await user('pia', ['writer', 'pipeline:ticker'], ['reader', 'repo:docs'], ['reader', 'repo:ticker']);
      // Changing the pipeline, with the cron input it already has (its own repo ticker_tick), is pia's to do.
      const spec = (cron: object) => ({ pipeline: { name: 'ticker' }, input: { cross: [{ pfs: { repo: 'docs', glob: '/' } }, { cron }] }, transform });
      const changed = await call('pia', 'POST', '/api/v1/pipelines', { spec: { ...spec({ name: 'tick', spec: '@every 2h' }), description: 'v2' }, update: true });
      assert.equal(changed.status, 200, changed.body);
      // A cron input naming the secret repo would mount it into the job and commit ticks into it (overwrite: replace it).
      const hijack = await call('pia', 'POST', '/api/v1/pipelines', { spec: spec({ name: 'tick', spec: '@every 1h', repo: 'secret', overwrite: true }), update: true });
      assert.equal(hijack.status, 403, hijack.body);
      assert.match(hijack.message(), /"pia" needs the writer role on repo:secret/);
      assert.equal(JSON.stringify((await instance.pipelines.inspect('ticker')).spec).includes('secret'), false, 'the pipeline is unchanged');
      assert.equal(await readText(instance, 'secret@master:/s.txt'), 'TOP-SECRET');
      // The same goes for the in-process CLI.
      const client = authorizedClient(instance, localClient(instance, 'pia'), { user: 'pia' });
      await rejectsWith(client.createPipeline(spec({ name: 'tick', spec: '@every 1h', repo: 'secret' }), { update: true }), 'FORBIDDEN', /writer role on repo:secret/);

      // Deleting a pipeline deletes its cron repos: its own (<pipeline>_<input>) goes with it, one it names does not.
      await instance.pipelines.create(
        { pipeline: { name: 'stamper' }, input: { cross: [{ pfs: { repo: 'docs', glob: '/' } }, { cron: { name: 'tick', spec: '@every 1h', repo: 'docs' } }] }, transform },
        { creator: 'boss' },
      );
      await instance.access.grant('writer', 'pia', 'pipeline:stamper', 'boss');
      const refused = await call('pia', 'DELETE', '/api/v1/pipelines/stamper');
      assert.equal(refused.status, 403, refused.body);
      assert.match(refused.message(), /"pia" needs the writer role on repo:docs/);
      assert.equal(await readText(instance, 'docs@master:/d.txt'), 'doc');
      const deleted = await call('pia', 'DELETE', '/api/v1/pipelines/ticker');
      assert.ok(deleted.status < 300, deleted.body);
    });

    it('setting a process runtime command (run on the host, unsandboxed) needs admin on the instance', async () => {
      await user('dora', ['writer', 'deployment:lin'], ['reader', 'model:lin']);
      await user('walt', ['writer']);
      const patch = await call('dora', 'PATCH', '/api/v1/deployments/lin', { command: 'cat "$STRATA_HOME/keys/instance-ed25519.pem"' });
      assert.equal(patch.status, 403, patch.body);
      assert.match(patch.message(), /"dora" needs the admin role on the instance/);
      const create = await call('walt', 'POST', '/api/v1/deployments', { name: 'sh', model: 'lin@1', runtime: 'process', command: 'id' });
      assert.equal(create.status, 403, create.body);
      assert.match(create.message(), /"walt" needs the admin role on the instance/);
      // Without a command the deployment writer gets past authorization (and learns there is no such deployment).
      assert.equal((await call('dora', 'PATCH', '/api/v1/deployments/lin', { model: 'lin@2' })).status, 404);
      const client = authorizedClient(instance, localClient(instance, 'dora'), { user: 'dora' });
      await rejectsWith(client.updateDeployment('lin', { command: 'id' }), 'FORBIDDEN', /admin role on the instance/);
      const walt = authorizedClient(instance, localClient(instance, 'walt'), { user: 'walt' });
      await rejectsWith(walt.createDeployment({ name: 'sh', model: 'lin@1', runtime: 'process', command: 'id' }), 'FORBIDDEN', /admin role on the instance/);
    });

    it('MLflow CreateRun is attributed to the token user, whatever user_id or mlflow.user tag it claims', async () => {
      await user('rob', ['writer']);
      const res = await call('rob', 'POST', '/api/2.0/mlflow/runs/create', { experiment_id: '0', user_id: 'boss', tags: [{ key: 'mlflow.user', value: 'boss' }] });
      assert.equal(res.status, 200, res.body);
      const run = res.json().run;
      assert.equal(run.info.user_id, 'rob');
      const { info, data } = await instance.tracking.getRun(run.info.run_id);
      assert.equal(info.user_id, 'rob');
      assert.equal(data.tags['mlflow.user'], 'rob');
    });

    it('a branch from a bare branch name needs nothing beyond write on the repo; from another repo, read there', async () => {
      await user('bea', ['writer', 'repo:emails']);
      const res = await call('bea', 'POST', '/api/v1/repos/emails/branches', { name: 'dev', from: 'master' });
      assert.equal(res.status, 201, res.body);
      const client = authorizedClient(instance, localClient(instance, 'bea'), { user: 'bea' });
      assert.equal((await client.createBranch('emails', 'dev2', 'master')).name, 'dev2');
      const other = await call('bea', 'POST', '/api/v1/repos/emails/branches', { name: 'leak', from: 'secret@master' });
      assert.equal(other.status, 403, other.body);
      assert.match(other.message(), /reader role on repo:secret/);
    });

    it('audits a read whose ref is too long for an entry (padded with /./), with the target cut short', async () => {
      await user('pam', ['reader', 'repo:emails']);
      const ref = `emails@master:/${'./'.repeat(700)}a.txt`;
      const res = await call('pam', 'GET', `/api/v1/file?ref=${encodeURIComponent(ref)}`);
      assert.equal(res.status, 200, res.body);
      assert.equal(res.body, 'hello');
      const entry = await audited({ actor: 'pam', action: 'file.read' }, 'ok');
      assert.ok(entry.target.startsWith('repo:emails@master:/././') && entry.target.length <= 1000, entry.target.length.toString());
      assert.equal(entry.detail.target_length, `repo:${ref}`.length);
      const denied = await call('pam', 'GET', `/api/v1/file?ref=${encodeURIComponent(`secret@master:/${'./'.repeat(700)}s.txt`)}`);
      assert.equal(denied.status, 403);
      await audited({ actor: 'pam', action: 'file.read' }, 'denied');
      assert.ok((await instance.audit.verify()).ok);
    });

    it('the in-process CLI audits a refused STRATA_TOKEN as anonymous, as the server does', async () => {
      await user('tom', ['reader']);
      const info = (await instance.access.listTokens({ user: 'tom' }))[0]!;
      await instance.access.revokeToken(info.id);
      await rejectsWith(localPrincipal(instance, tokens.tom), 'UNAUTHENTICATED', /revoked/);
      await rejectsWith(localPrincipal(instance, 'st_nonsense'), 'UNAUTHENTICATED', /malformed/);
      const denied = (await instance.audit.list({ actor: 'anonymous', action: 'auth.denied' })).filter((e) => e.client === 'local');
      assert.equal(denied.length, 2);
      assert.ok(denied.every((e) => e.outcome === 'denied' && e.detail.code === 'UNAUTHENTICATED'));
    });

    it('catalog search shows a user only what they may read, so it cannot reveal another repo\'s columns', async () => {
      await instance.data.createRepo({ name: 'payroll' });
      await instance.data.commit('payroll', 'master', [put('/pay.csv', 'employee,salary_eur\nann,100\n')]);
      await user('una', ['reader', 'repo:emails']);
      await user('val', ['reader']);
      const names = async (who: string, q: string) => (await call(who, 'GET', `/api/v1/catalog/search?q=${q}`)).json().map((h: { name: string }) => h.name);
      assert.deepEqual(await names('una', 'salary_eur'), []);
      assert.deepEqual(await names('una', 'emails'), ['emails']);
      assert.deepEqual(await names('val', 'salary_eur'), ['payroll'], 'instance-wide readers see everything');
      // The in-process CLI filters the same way.
      const asUna = authorizedClient(instance, localClient(instance, 'una'), await localPrincipal(instance, tokens.una));
      assert.deepEqual(await asUna.searchCatalog('salary_eur'), []);
      assert.deepEqual((await asUna.searchCatalog('emails')).map((h) => h.name), ['emails']);
      // MLflow's model searches too: version sources name data refs.
      await instance.data.createRepo({ name: 'hr-models' });
      await instance.data.commit('hr-models', 'master', [put('/m.bin', 'weights')]);
      await instance.registry.registerVersion('attrition', { from: 'hr-models@master:/m.bin' });
      const models = await call('una', 'GET', '/api/2.0/mlflow/registered-models/search');
      assert.deepEqual(models.json().registered_models ?? [], []);
      const versions = await call('una', 'GET', "/api/2.0/mlflow/model-versions/search?filter=name%3D'attrition'");
      assert.deepEqual(versions.json().model_versions ?? [], []);
      assert.ok((await call('val', 'GET', '/api/2.0/mlflow/registered-models/search')).json().registered_models.some((m: { name: string }) => m.name === 'attrition'));
      const owner = authorizedClient(instance, localClient(instance), await localPrincipal(instance, undefined));
      assert.deepEqual((await owner.searchCatalog('salary_eur')).map((h) => h.name), ['payroll']);
    });
  });
}
