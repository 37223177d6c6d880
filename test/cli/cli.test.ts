import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '../fixtures.js';
import { cli, startServerProcess, strata } from './run.js';

// The CLI contract (DESIGN.md): commands, --json shapes, exit codes, one-line
// errors. Every test runs twice: in-process on the instance, and through a
// real `strata server` child process with --server.

for (const mode of ['local', 'http'] as const) {
  describe(`strata CLI (${mode})`, () => {
    const dir = tempDir();
    const home = join(dir.path, '.strata');
    const env: NodeJS.ProcessEnv = { STRATA_HOME: home, STRATA_AUTHOR: 'tester' };
    let stopServer: (() => Promise<unknown>) | undefined;
    const { run, ok, json, fails } = cli(env);

    const src = join(dir.path, 'src');
    before(async () => {
      const init = strata(['init'], { env });
      assert.equal(init.code, 0, init.stderr);
      mkdirSync(join(src, 'data', 'nested'), { recursive: true });
      writeFileSync(join(src, 'data', 'a.txt'), 'alpha\n');
      writeFileSync(join(src, 'data', 'nested', 'b.csv'), 'x,y\n1,2\n');
      writeFileSync(join(src, 'single.txt'), 'single\n');
      mkdirSync(join(src, 'empty'));
      if (mode === 'http') {
        const server = await startServerProcess(env);
        env.STRATA_SERVER = server.url;
        stopServer = server.stop;
      }
    });
    after(async () => {
      await stopServer?.();
      dir.cleanup();
    });

    it('creates and lists repos with metadata', () => {
      const created = json('repo', 'create', 'emails', '--description', 'mail', '--owner', 'ana', '--label', 'team=ml');
      assert.equal(created.name, 'emails');
      const list = json('repo', 'list');
      assert.ok(Array.isArray(list));
      assert.deepEqual(list.map((r: any) => [r.name, r.owner, r.labels.team]), [['emails', 'ana', 'ml']]);
      assert.equal(json('repo', 'inspect', 'emails').description, 'mail');
    });

    it('puts a directory and a file, with the contract shape', () => {
      const r = json('put', 'emails@master', join(src, 'data'), join(src, 'single.txt'), '-m', 'first');
      assert.deepEqual(Object.keys(r).sort(), ['branch', 'bytes', 'commit', 'deleted', 'files', 'new_bytes', 'repo']);
      assert.equal(r.files, 3);
      assert.equal(r.repo, 'emails');
      assert.equal(r.branch, 'master');
      assert.equal(r.bytes, 6 + 8 + 7);
      const ls = json('ls', 'emails@master:/data', '-r');
      assert.deepEqual(ls.map((f: any) => f.path), ['/data/a.txt', '/data/nested/b.csv']);
      assert.deepEqual(Object.keys(ls[0]).sort(), ['hash', 'path', 'size', 'type']);
      assert.equal(ok('cat', 'emails@master:/single.txt').stdout, 'single\n');
    });

    it('puts stdin to a path and removes paths', () => {
      ok('put', 'emails@master:/notes/readme.md', '-', '-m', 'stdin');
      const r = strata(['put', 'emails@master:/notes/from-stdin.txt', '-'], { env, input: 'piped bytes' });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(ok('cat', 'emails@master:/notes/from-stdin.txt').stdout, 'piped bytes');
      const rm = json('rm', 'emails@master:/notes/readme.md');
      assert.equal(rm.deleted, 1);
      assert.deepEqual(json('ls', 'emails@master:/notes').map((f: any) => f.path), ['/notes/from-stdin.txt']);
    });

    it('logs, diffs and inspects history through refs', () => {
      const log = json('log', 'emails@master');
      assert.equal(log.length, 4);
      for (const key of ['author', 'id', 'message', 'parents', 'provenance', 'time']) assert.ok(key in log[0], key);
      assert.equal(log[0].author, 'tester');
      assert.equal(log[3].message, 'first');
      const diff = json('diff', 'emails@master~3', 'emails@master');
      assert.deepEqual(diff, { added: ['/notes/from-stdin.txt'], modified: [], deleted: [] });
      assert.equal(json('inspect', `emails@${log[1].id.slice(0, 10)}`).id, log[1].id);
      assert.equal(json('inspect', 'emails@master^').id, log[1].id);
    });

    it('materializes files with get', () => {
      const out = join(dir.path, `out-${mode}`);
      ok('get', 'emails@master:/data', '-o', out);
      assert.equal(readFileSync(join(out, 'a.txt'), 'utf8'), 'alpha\n');
      assert.equal(readFileSync(join(out, 'nested', 'b.csv'), 'utf8'), 'x,y\n1,2\n');
      assert.deepEqual(readdirSync(out).sort(), ['a.txt', 'nested']);
    });

    it('creates, lists and deletes branches', () => {
      json('branch', 'create', 'emails', 'dev', '--from', 'emails@master^');
      assert.deepEqual(json('branch', 'list', 'emails').map((b: any) => b.name), ['dev', 'master']);
      ok('branch', 'delete', 'emails', 'dev');
    });

    it('fsck reports a clean instance', () => {
      const r = json('fsck');
      assert.equal(r.ok, true);
      assert.deepEqual(r.problems, []);
    });

    it('runs a pipeline: create, put --wait, jobs, datums, logs, lineage, delete', () => {
      const spec = join(dir.path, `upper-${mode}.yaml`);
      writeFileSync(
        spec,
        [
          'pipeline:',
          '  name: upper',
          'description: upper-cases every file',
          'input:',
          '  pfs:',
          '    repo: emails',
          '    glob: /data/*',
          'transform:',
          '  cmd: [sh, -c, \'for f in $(find /pfs/emails -type f); do echo "saw $f"; tr a-z A-Z < "$f" > /pfs/out/$(basename "$f"); done\']',
        ].join('\n'),
      );
      const created = json('pipeline', 'create', '-f', spec);
      assert.equal(created.name, 'upper');
      assert.equal(created.version, 1);
      assert.deepEqual(json('pipeline', 'list').map((p: any) => p.name), ['upper']);
      const put = strata(['put', 'emails@master:/data/c.txt', '-', '--wait', '--json'], { env, input: 'gamma\n' });
      assert.equal(put.code, 0, put.stderr);
      const putResult = JSON.parse(put.stdout);
      assert.equal(putResult.jobs.length, 1);
      assert.equal(putResult.jobs[0].state, 'success');
      assert.equal(ok('cat', 'upper@master:/c.txt').stdout, 'GAMMA\n');
      const jobs = json('job', 'list', '--pipeline', 'upper');
      const job = json('job', 'inspect', jobs[0].id.slice(0, 10));
      assert.deepEqual(Object.keys(job.datums).sort(), ['failed', 'processed', 'recovered', 'skipped', 'total']);
      assert.equal(job.commit_set, putResult.commit);
      assert.equal(job.state, 'success');
      const datums = json('datum', 'list', job.id);
      assert.ok(datums.length >= 2);
      assert.match(ok('logs', job.id).stdout, /saw \/pfs\/emails\/data\//);
      const lineage = json('lineage', 'upper@master', '--upstream');
      assert.ok(lineage.nodes.some((n: any) => n.id === `emails@${putResult.commit}`));
      assert.ok(lineage.edges.length >= 2);
      const wait = run('wait', `emails@${putResult.commit}`);
      assert.equal(wait.code, 0, wait.stderr);
      fails(2, ['pipeline', 'create', '-f', spec], /already exists/);
      fails(2, ['job', 'inspect', 'ffffffffffff'], /not found/);
      ok('pipeline', 'delete', 'upper');
      fails(2, ['pipeline', 'inspect', 'upper'], /not found/);
    });

    it('tracks every job as a run: run list with a filter, show, compare, metrics', () => {
      const spec = join(dir.path, `scorer-${mode}.yaml`);
      writeFileSync(
        spec,
        [
          'pipeline: {name: scorer}',
          'input: {pfs: {repo: emails, glob: /data}}',
          'transform:',
          '  cmd: [sh, -c, \'n=$(find /pfs/emails -type f | wc -l); echo "{\\"param\\":\\"files\\",\\"value\\":\\"$n\\"}" >> $STRATA_METRICS; for s in 1 2; do echo "{\\"metric\\":\\"score\\",\\"value\\":$n.$s,\\"step\\":$s}" >> $STRATA_METRICS; done; echo $n > /pfs/out/n\']',
        ].join('\n'),
      );
      ok('pipeline', 'create', '-f', spec);
      assert.equal(run('wait').code, 0);
      assert.deepEqual(
        json('job', 'list').filter((j: any) => j.state === 'created' || j.state === 'running'),
        [],
        'wait returns only once every job has finished',
      );
      const put = strata(['put', 'emails@master:/data/d.txt', '-', '--wait'], { env, input: 'delta\n' });
      assert.equal(put.code, 0, put.stderr);
      const runs = json('run', 'list', '--pipeline', 'scorer', '--sort', '-metrics.score');
      assert.equal(runs.length, 2);
      assert.ok(runs[0].data.metrics.score.value > runs[1].data.metrics.score.value);
      const filtered = json('run', 'list', '--pipeline', 'scorer', '--filter', `params.files = '${runs[0].data.params.files}'`);
      assert.deepEqual(filtered.map((r: any) => r.info.run_id), [runs[0].info.run_id]);
      const shown = json('run', 'show', runs[0].info.run_id.slice(0, 12));
      assert.equal(shown.info.pipeline, 'scorer');
      assert.equal(shown.info.status, 'FINISHED');
      assert.deepEqual(json('run', 'metrics', runs[0].info.run_id, 'score').map((p: any) => p.step), [1, 2]);
      const cmp = json('run', 'compare', runs[0].info.run_id, runs[1].info.run_id);
      assert.equal(cmp.metrics[0].key, 'score');
      assert.ok(cmp.metrics[0].deltas[1] < 0);
      assert.match(ok('run', 'list', '--pipeline', 'scorer').stdout, /SCORE/);
      fails(2, ['run', 'list', '--filter', 'metrics.score >'], /filter/);
      fails(2, ['run', 'show', 'fffffffffffff'], /not found/);
      ok('pipeline', 'delete', 'scorer');
    });

    it('rejects bad input with exit 2, one clear line, and changes nothing', () => {
      const head = json('repo', 'inspect', 'emails').head;
      fails(2, ['ls', 'nosuch@master'], /repo "nosuch" not found/);
      fails(2, ['ls', 'emails@nosuch'], /nosuch/);
      fails(2, ['put', 'emails@master:/../escape', join(src, 'single.txt')], /\.\./);
      fails(2, ['put', 'emails@master', join(src, 'does-not-exist')], /does-not-exist.*does not exist/);
      fails(2, ['put', 'emails@master', join(src, 'empty')], /nothing to put/);
      fails(2, ['repo', 'create', 'bad name!'], /repo name/);
      fails(2, ['cat', 'emails@master:/data'], /directory/);
      fails(2, ['cat', 'emails@master:/nope.txt'], /does not exist/);
      fails(2, ['frobnicate'], /unknown command/);
      fails(2, ['put', 'emails@master', '-'], /stdin/);
      assert.equal(json('repo', 'inspect', 'emails').head, head);
    });
  });
}
