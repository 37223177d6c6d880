import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { backends, readText, rejectsWith } from '../fixtures.js';
import type { Instance } from '../../src/instance.js';
import type { Change } from '../../src/data/types.js';

// Pipelines end to end, in process: specs in, jobs run by the scheduler in
// the real executor (bubblewrap where installed), output commits out.

const put = (path: string, content: string): Change => ({ op: 'put', path, content: new TextEncoder().encode(content) });



const sh = (script: string) => ['sh', '-c', script];

for (const backend of await backends()) {
  describe(`pipelines on ${backend.name}`, { skip: backend.skip }, () => {
    let instance: Instance;
    let dispose: () => Promise<void>;
    before(async () => ({ instance, dispose } = await backend.instance()));
    after(async () => dispose?.());

    const lastJob = async (pipeline: string) => (await instance.pipelines.listJobs({ pipeline }))[0]!;

    it('maps every file, skips unchanged datums, and removes outputs of deleted inputs', async () => {
      await instance.data.createRepo({ name: 'docs' });
      await instance.data.commit('docs', 'master', [put('/a.txt', 'one two'), put('/b.txt', 'three'), put('/c.txt', 'four five six')]);
      await instance.pipelines.create({
        pipeline: { name: 'wc' },
        input: { pfs: { repo: 'docs', glob: '/*' } },
        transform: { cmd: sh('for f in /pfs/docs/*; do wc -w < "$f" | tr -d " " > /pfs/out/$(basename "$f"); done') },
        parallelism_spec: { constant: 2 },
      });
      await instance.scheduler.drain();
      let job = await lastJob('wc');
      assert.equal(job.state, 'success', job.reason);
      assert.deepEqual(job.datums, { total: 3, processed: 3, skipped: 0, failed: 0, recovered: 0 });
      assert.equal((await readText(instance, 'wc@master:/c.txt')).trim(), '3');

      const user = await instance.data.commit('docs', 'master', [put('/a.txt', 'one two three four'), { op: 'delete', path: '/b.txt' }]);
      await instance.scheduler.drain();
      job = await lastJob('wc');
      assert.equal(job.state, 'success', job.reason);
      assert.deepEqual(job.datums, { total: 2, processed: 1, skipped: 1, failed: 0, recovered: 0 });
      assert.equal(job.commit_set, user.commit);
      assert.deepEqual((await instance.data.ls('wc@master')).map((f) => f.path), ['/a.txt', '/c.txt'], 'output of the deleted input is gone');
      assert.equal((await readText(instance, 'wc@master:/a.txt')).trim(), '4');
      const out = await instance.data.inspectCommit('wc@master');
      assert.deepEqual(out.provenance, [{ repo: 'docs', commit: user.commit }]);
      assert.equal(out.commit_set, user.commit);
      assert.equal(out.job, job.id);
    });

    it('chains pipelines: a downstream aggregate shares the commit set, and lineage walks it', async () => {
      await instance.pipelines.create({
        pipeline: { name: 'total' },
        input: { pfs: { repo: 'wc', glob: '/' } },
        transform: { cmd: sh('cat /pfs/wc/* | awk \'{s+=$1} END {print s}\' > /pfs/out/total') },
      });
      await instance.scheduler.drain();
      assert.equal((await readText(instance, 'total@master:/total')).trim(), '7');
      const user = await instance.data.commit('docs', 'master', [put('/d.txt', 'a b c d e f g h i j')]);
      await instance.scheduler.drain();
      assert.equal((await readText(instance, 'total@master:/total')).trim(), '17');
      const jobs = await instance.pipelines.listJobs({ commitSet: user.commit });
      assert.deepEqual(jobs.map((j) => j.pipeline).sort(), ['total', 'wc']);

      const up = await instance.lineage.graph('total@master', 'upstream');
      assert.ok(up.nodes.some((n) => n.id === `docs@${user.commit}`), 'the user commit is upstream of the total');
      const down = await instance.lineage.graph(`docs@${user.commit}`, 'downstream');
      const total = await instance.data.inspectCommit('total@master');
      assert.ok(down.nodes.some((n) => n.id === `total@${total.id}`));
      assert.ok(down.edges.length >= 4);
      assert.ok(down.nodes.every((n) => n.kind === 'commit' || n.kind === 'job'));
    });

    it('fails a job whose datum keeps failing, names it, and commits nothing', async () => {
      await instance.data.createRepo({ name: 'failin' });
      await instance.data.commit('failin', 'master', [put('/ok', 'fine'), put('/bad', 'boom')]);
      await instance.pipelines.create({
        pipeline: { name: 'fails' },
        input: { pfs: { repo: 'failin', glob: '/*' } },
        transform: { cmd: sh('if [ -e /pfs/failin/bad ]; then echo "cannot parse bad" >&2; exit 3; fi; cp /pfs/failin/* /pfs/out/') },
        datum_tries: 2,
      });
      await instance.scheduler.drain();
      const job = await instance.pipelines.inspectJob((await lastJob('fails')).id);
      assert.equal(job.state, 'failure');
      assert.match(job.reason, /1 of 2 datum\(s\) failed/);
      assert.match(job.failed_datum!.error, /exit code 3/);
      assert.match(job.failed_datum!.log_tail, /cannot parse bad/);
      assert.equal(job.output_commit, null);
      assert.equal((await instance.data.inspectRepo('fails')).head, null, 'no partial output commit');
      const datums = await instance.pipelines.listDatums(job.id);
      assert.deepEqual(datums.map((d) => [d.state, d.attempts]).sort(), [['failed', 2], ['success', 1]]);
      const logs = await instance.pipelines.logs(job.id);
      assert.ok(logs.some((l) => /attempt 2 of 2/.test(l.log)));
    });

    it('accepts listed return codes, and reports a missing command and a timeout', async () => {
      await instance.data.createRepo({ name: 'misc' });
      await instance.data.commit('misc', 'master', [put('/x', 'x')]);
      await instance.pipelines.create({
        pipeline: { name: 'accepts' },
        input: { pfs: { repo: 'misc', glob: '/' } },
        transform: { cmd: sh('echo done > /pfs/out/r; exit 4'), accept_return_code: [4] },
      });
      await instance.pipelines.create({
        pipeline: { name: 'nocmd' },
        input: { pfs: { repo: 'misc', glob: '/' } },
        transform: { cmd: ['definitely-not-a-command-xyz'] },
        datum_tries: 1,
      });
      await instance.pipelines.create({
        pipeline: { name: 'hangs' },
        input: { pfs: { repo: 'misc', glob: '/' } },
        transform: { cmd: ['sleep', '60'] },
        datum_tries: 1,
        datum_timeout: '1s',
      });
      await instance.pipelines.create({
        pipeline: { name: 'floods' },
        input: { pfs: { repo: 'misc', glob: '/' } },
        transform: { cmd: sh('head -c 50000000 /dev/zero > /pfs/out/huge') },
        datum_tries: 1,
        resource_limits: { disk: '1Mi' },
      });
      const started = Date.now();
      await instance.scheduler.drain();
      assert.ok(Date.now() - started < 20_000, 'the hanging step was killed');
      assert.equal((await lastJob('accepts')).state, 'success');
      const nocmd = await instance.pipelines.inspectJob((await lastJob('nocmd')).id);
      assert.equal(nocmd.state, 'failure');
      assert.match(nocmd.failed_datum!.error + nocmd.failed_datum!.log_tail, /definitely-not-a-command-xyz/);
      const hangs = await instance.pipelines.inspectJob((await lastJob('hangs')).id);
      assert.equal(hangs.state, 'failure');
      assert.match(hangs.reason, /timed out/);
      const floods = await instance.pipelines.inspectJob((await lastJob('floods')).id);
      assert.equal(floods.state, 'failure');
      assert.match(floods.reason, /wrote more than 1048576 bytes/);
      assert.equal((await instance.data.inspectRepo('floods')).head, null);
    });

    it('concatenates outputs that several datums write to one path (word count reduce)', async () => {
      await instance.data.createRepo({ name: 'texts' });
      await instance.data.commit('texts', 'master', [put('/1.txt', 'apple pear'), put('/2.txt', 'apple fig'), put('/3.txt', 'pear apple')]);
      await instance.pipelines.create({
        pipeline: { name: 'wordmap' },
        input: { pfs: { repo: 'texts', glob: '/*' } },
        transform: { cmd: sh('for w in $(cat /pfs/texts/*); do echo 1 >> /pfs/out/$w; done') },
      });
      await instance.pipelines.create({
        pipeline: { name: 'wordreduce' },
        input: { pfs: { repo: 'wordmap', glob: '/*' } },
        transform: { cmd: sh('for f in /pfs/wordmap/*; do wc -l < "$f" | tr -d " " > /pfs/out/$(basename "$f"); done') },
      });
      await instance.scheduler.drain();
      assert.equal((await readText(instance, 'wordreduce@master:/apple')).trim(), '3');
      assert.equal((await readText(instance, 'wordreduce@master:/pear')).trim(), '2');
      assert.equal((await readText(instance, 'wordreduce@master:/fig')).trim(), '1');
    });

    it('joins inner and outer, and groups, like Pachyderm', async () => {
      await instance.data.createRepo({ name: 'left' });
      await instance.data.createRepo({ name: 'right' });
      await instance.data.commit('left', 'master', [put('/a_1.txt', 'L1'), put('/a_2.txt', 'L2'), put('/a_3.txt', 'L3')]);
      await instance.data.commit('right', 'master', [put('/b_1.txt', 'R1'), put('/b_2.txt', 'R2'), put('/b_4.txt', 'R4')]);
      const joinSpec = (name: string, outer: boolean) => ({
        pipeline: { name },
        input: {
          join: [
            { pfs: { repo: 'left', glob: '/a_(*).txt', join_on: '$1', outer_join: outer } },
            { pfs: { repo: 'right', glob: '/b_(*).txt', join_on: '$1' } },
          ],
        },
        transform: { cmd: sh('k=$PACH_DATUM_left_JOIN_ON; [ -n "$k" ] || k=$PACH_DATUM_right_JOIN_ON; cat /pfs/left/* /pfs/right/* 2>/dev/null | tr -d "\\n" > /pfs/out/$k') },
      });
      await instance.pipelines.create(joinSpec('inner', false));
      await instance.pipelines.create(joinSpec('outer', true));
      await instance.data.createRepo({ name: 'labs' });
      await instance.data.commit('labs', 'master', [put('/T1_p1.txt', 'x'), put('/T2_p1.txt', 'y'), put('/T3_p2.txt', 'z')]);
      await instance.pipelines.create({
        pipeline: { name: 'bypatient' },
        input: { group: [{ pfs: { repo: 'labs', glob: '/*_(*).txt', group_by: '$1' } }] },
        transform: { cmd: sh('ls /pfs/labs | wc -l | tr -d " " > /pfs/out/$PACH_DATUM_labs_GROUP_BY') },
      });
      await instance.scheduler.drain();
      for (const p of ['inner', 'outer', 'bypatient']) assert.equal((await lastJob(p)).state, 'success', `${p}: ${(await lastJob(p)).reason}`);
      assert.deepEqual((await instance.data.ls('inner')).map((f) => f.path), ['/1', '/2']);
      assert.equal(await readText(instance, 'inner@master:/1'), 'L1R1');
      assert.deepEqual((await instance.data.ls('outer')).map((f) => f.path), ['/1', '/2', '/3']);
      assert.equal(await readText(instance, 'outer@master:/3'), 'L3');
      assert.equal((await readText(instance, 'bypatient@master:/p1')).trim(), '2');
      assert.equal((await readText(instance, 'bypatient@master:/p2')).trim(), '1');
    });

    it('reprocesses every datum on update --reprocess, and only changed ones after a plain update', async () => {
      await instance.pipelines.create(
        {
          pipeline: { name: 'wc' },
          input: { pfs: { repo: 'docs', glob: '/*' } },
          transform: { cmd: sh('for f in /pfs/docs/*; do wc -w < "$f" | tr -d " " > /pfs/out/$(basename "$f"); done') },
          parallelism_spec: { constant: 1 },
        },
        { update: true },
      );
      await instance.scheduler.drain();
      const plain = await lastJob('wc');
      assert.equal(plain.pipeline_version, 2);
      assert.equal(plain.datums.processed, 0, 'parallelism does not change what a datum produces');
      await instance.pipelines.create(
        {
          pipeline: { name: 'wc' },
          input: { pfs: { repo: 'docs', glob: '/*' } },
          transform: { cmd: sh('for f in /pfs/docs/*; do wc -w < "$f" | tr -d " " > /pfs/out/$(basename "$f"); done') },
          parallelism_spec: { constant: 3 },
        },
        { update: true, reprocess: true },
      );
      await instance.scheduler.drain();
      const again = await lastJob('wc');
      assert.equal(again.datums.processed, again.datums.total);
    });

    it('rejects bad specs and unknown inputs without creating anything', async () => {
      await rejectsWith(instance.pipelines.create({ pipeline: { name: 'x1' }, input: { pfs: { repo: 'docs' } }, transform: { cmd: ['true'] } }), 'INVALID_ARGUMENT', /input\.pfs\.glob/);
      await rejectsWith(
        instance.pipelines.create({ pipeline: { name: 'x2' }, input: { pfs: { repo: 'docs', glob: '/' } }, transform: { comand: ['true'] } }),
        'INVALID_ARGUMENT',
        /did you mean "cmd"/,
      );
      await rejectsWith(
        instance.pipelines.create({ pipeline: { name: 'x3' }, input: { pfs: { repo: 'nope', glob: '/' } }, transform: { cmd: ['true'] } }),
        'NOT_FOUND',
        /nope/,
      );
      await rejectsWith(instance.pipelines.create({ pipeline: { name: 'wc' }, input: { pfs: { repo: 'docs', glob: '/' } }, transform: { cmd: ['true'] } }), 'ALREADY_EXISTS');
      await rejectsWith(
        instance.pipelines.create({ pipeline: { name: 'docs2' }, input: { pfs: { repo: 'total', glob: '/' } }, transform: { cmd: ['true'] } }).then(() =>
          instance.pipelines.create({ pipeline: { name: 'wc' }, input: { pfs: { repo: 'docs2', glob: '/' } }, transform: { cmd: ['true'] } }, { update: true }),
        ),
        'INVALID_ARGUMENT',
        /cycle/,
      );
      for (const name of ['x1', 'x2', 'x3']) await rejectsWith(instance.pipelines.inspect(name), 'NOT_FOUND');
      await instance.pipelines.delete('docs2');
    });

    it('a glob matching nothing makes a job with 0 datums and an empty output commit', async () => {
      await instance.pipelines.create({ pipeline: { name: 'none' }, input: { pfs: { repo: 'docs', glob: '/*.csv' } }, transform: { cmd: ['true'] } });
      await instance.scheduler.drain();
      const job = await lastJob('none');
      assert.equal(job.state, 'success');
      assert.equal(job.datums.total, 0);
      assert.deepEqual(await instance.data.ls('none'), []);
    });

    it('resumes a job whose runner died, reusing the datums it had finished', async () => {
      await instance.data.createRepo({ name: 'resume' });
      await instance.data.commit('resume', 'master', [put('/1', '1'), put('/2', '2')]);
      await instance.pipelines.create({ pipeline: { name: 'copy' }, input: { pfs: { repo: 'resume', glob: '/*' } }, transform: { cmd: sh('cp /pfs/resume/* /pfs/out/') } });
      await instance.scheduler.reconcile();
      // A runner that claimed the job and died: state running, lease expired.
      const job = await lastJob('copy');
      await instance.meta.db.updateTable('jobs').set({ state: 'running', lease_until: new Date(Date.now() - 1000).toISOString() }).where('id', '=', job.id).execute();
      await instance.scheduler.drain();
      const done = await instance.pipelines.inspectJob(job.id);
      assert.equal(done.state, 'success');
      assert.deepEqual((await instance.data.ls('copy')).map((f) => f.path), ['/1', '/2']);
    });

    it('stops a job on request', async () => {
      await instance.data.createRepo({ name: 'slow' });
      await instance.data.commit('slow', 'master', [put('/1', '1')]);
      await instance.pipelines.create({ pipeline: { name: 'sleeper' }, input: { pfs: { repo: 'slow', glob: '/' } }, transform: { cmd: ['sleep', '60'] } });
      await instance.scheduler.reconcile();
      const job = await lastJob('sleeper');
      const draining = instance.scheduler.drain();
      await new Promise((r) => setTimeout(r, 500));
      await instance.pipelines.stopJob(job.id);
      await draining;
      const stopped = await instance.pipelines.inspectJob(job.id);
      assert.equal(stopped.state, 'killed');
      assert.equal((await instance.data.inspectRepo('sleeper')).head, null);
    });

    it('fsck stays clean after all of it', async () => {
      const r = await instance.data.fsck();
      assert.deepEqual(r.problems, []);
    });
  });
}
