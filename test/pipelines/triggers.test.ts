import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readText, tempDir, until } from '../fixtures.js';
import { Instance } from '../../src/instance.js';
import { startServer, type RunningServer } from '../../src/api/server.js';

// Triggers that are not commits: a git branch (polled, and pushed through the
// webhook — the CI/CD loop) and a cron schedule, against a real server.

const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', args, {
    cwd,
    env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' },
  }).toString();



describe('git and cron triggers', () => {
  const dir = tempDir();
  const code = join(dir.path, 'code');
  let instance: Instance;
  let server: RunningServer;

  before(async () => {
    mkdirSync(code);
    git(code, 'init', '-q', '-b', 'main');
    writeFileSync(join(code, 'train.sh'), 'echo "model v1 trained on $(cat /pfs/data/* | wc -l) lines" > /pfs/out/model.txt\n');
    git(code, 'add', '.');
    git(code, 'commit', '-q', '-m', 'v1');
    instance = await Instance.init(join(dir.path, '.strata'));
    await instance.data.createRepo({ name: 'data' });
    await instance.data.commit('data', 'master', [{ op: 'put', path: '/rows.txt', content: new TextEncoder().encode('a\nb\nc\n') }]);
  });
  after(async () => {
    await server?.close();
    await instance?.close();
    dir.cleanup();
  });

  it('runs a pipeline on a git checkout and re-runs it when a push arrives through the webhook', async () => {
    await instance.pipelines.create({
      pipeline: { name: 'train' },
      input: { cross: [{ pfs: { repo: 'data', glob: '/' } }, { git: { url: code, branch: 'main', name: 'code' } }] },
      transform: { cmd: ['sh', '/pfs/code/train.sh'] },
    });
    // Without a server, `strata wait` looks at git inputs once and drives the jobs.
    await instance.triggers.syncGit();
    await instance.scheduler.drain();
    assert.equal((await readText(instance, 'train@master:/model.txt')).trim(), 'model v1 trained on 3 lines');
    const first = await instance.data.inspectCommit('train_code@master');
    const sha1 = git(code, 'rev-parse', 'HEAD').trim();
    assert.deepEqual(first.provenance, [{ repo: `git:${code}`, commit: sha1 }]);

    server = await startServer({ instance, port: 0 });
    writeFileSync(join(code, 'train.sh'), 'echo "model v2 trained on $(cat /pfs/data/* | wc -l) lines" > /pfs/out/model.txt\n');
    git(code, 'commit', '-q', '-am', 'v2');
    const sha2 = git(code, 'rev-parse', 'HEAD').trim();
    const res = await fetch(`${server.url}/api/v1/webhooks/git`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ref: 'refs/heads/main', after: sha2, repository: { url: code, full_name: 'local/code' } }),
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { triggered: { pipeline: string; sha: string; changed: boolean }[] };
    assert.deepEqual(body.triggered, [{ pipeline: 'train', input: 'code', sha: sha2, changed: true }]);
    await until('the retrained model', 15_000, async () => ((await readText(instance, 'train@master:/model.txt')).includes('v2') ? true : undefined));
    const lineage = await instance.lineage.graph('train@master', 'upstream');
    assert.ok(lineage.nodes.some((n) => n.id === `git:${code}@${sha2}`), 'the git commit is in the lineage');

    const bad = await fetch(`${server.url}/api/v1/webhooks/git`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"zen":"hi"}' });
    assert.equal(bad.status, 400);
  });

  it('ticks a cron input on schedule and runs the pipeline on every tick', async () => {
    await instance.pipelines.create({
      pipeline: { name: 'ticker' },
      input: { cron: { name: 'tick', spec: '@every 1s', overwrite: true } },
      transform: { cmd: ['sh', '-c', 'ls /pfs/tick > /pfs/out/ticks'] },
    });
    const jobs = await until('two cron jobs', 15_000, async () => {
      const j = (await instance.pipelines.listJobs({ pipeline: 'ticker' })).filter((x) => x.state === 'success');
      return j.length >= 2 ? j : undefined;
    });
    assert.ok(jobs.length >= 2);
    const ticks = (await readText(instance, 'ticker@master:/ticks')).trim().split('\n');
    assert.equal(ticks.length, 1, 'overwrite keeps only the latest tick');
    assert.match(ticks[0]!, /^\d{4}-\d\d-\d\dT/);
  });
});
