import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { backends, readText, rejectsWith } from '../fixtures.js';
import type { Instance } from '../../src/instance.js';
import { logisticRegressionModel } from '../../src/onnx/build.js';

// Runs, params, metrics, tags, artifacts, search and comparison, on each
// metadata backend; and every pipeline job as a run fed by $STRATA_METRICS.

for (const backend of await backends()) {
  describe(`tracking on ${backend.name}`, { skip: backend.skip }, () => {
    let instance: Instance;
    let dispose: () => Promise<void>;
    before(async () => ({ instance, dispose } = await backend.instance()));
    after(async () => dispose?.());

    it('logs params once, metrics as history, tags, and keeps the latest metric', async () => {
      const t = instance.tracking;
      const run = await t.createRun({ run_name: 'notebook', tags: { owner: 'ana' } });
      assert.equal(run.info.experiment_id, '0');
      assert.equal(run.info.status, 'RUNNING');
      await t.logParam(run.info.run_id, 'lr', '0.01');
      await t.logParam(run.info.run_id, 'lr', '0.01'); // same value: fine
      await rejectsWith(t.logParam(run.info.run_id, 'lr', '0.1'), 'INVALID_ARGUMENT', /write-once/);
      await t.logBatch(run.info.run_id, {
        metrics: [
          { key: 'loss', value: 0.9, step: 0 },
          { key: 'loss', value: 0.5, step: 1 },
          { key: 'loss', value: 0.7, step: 0 },
        ],
      });
      await t.logMetric(run.info.run_id, 'loss', 0.3, 2);
      await t.logMetric(run.info.run_id, 'loss', 9.9, 1); // an older step does not replace the latest
      await rejectsWith(t.logMetric(run.info.run_id, 'acc', Number.NaN), 'INVALID_ARGUMENT', /finite/);
      await rejectsWith(t.logMetric(run.info.run_id, 'acc', 'high'), 'INVALID_ARGUMENT', /finite/);
      await rejectsWith(t.logMetric(run.info.run_id, 'acc', Infinity), 'INVALID_ARGUMENT');
      await rejectsWith(t.logBatch(run.info.run_id, { metrics: [{ key: 'ok', value: 1 }, { key: 'bad', value: 'x' }] }), 'INVALID_ARGUMENT');
      await t.setTag(run.info.run_id, 'stage', 'dev');
      const got = await t.getRun(run.info.run_id);
      assert.deepEqual(got.data.params, { lr: '0.01' });
      assert.equal(got.data.metrics.loss!.value, 0.3);
      assert.equal(got.data.metrics.loss!.step, 2);
      assert.equal(got.data.metrics.ok, undefined, 'a rejected batch changes nothing');
      assert.equal(got.data.tags.stage, 'dev');
      assert.equal(got.data.tags.owner, 'ana');
      const history = await t.metricHistory(run.info.run_id, 'loss');
      assert.deepEqual(history.map((p) => [p.step, p.value]), [[0, 0.9], [0, 0.7], [1, 0.5], [1, 9.9], [2, 0.3]]);
      await rejectsWith(t.metricHistory(run.info.run_id, 'nope'), 'NOT_FOUND', /loss/);
      await t.updateRun(run.info.run_id, { status: 'FINISHED', end_time: Date.now() });
      assert.equal((await t.getRun(run.info.run_id.slice(0, 10))).info.status, 'FINISHED');
      await rejectsWith(t.getRun('abcdef0123456789'), 'NOT_FOUND');
    });

    it('searches with MLflow filters and sorts, and compares runs', async () => {
      const t = instance.tracking;
      const exp = await t.createExperiment('search');
      const ids: string[] = [];
      for (let i = 0; i < 20; i++) {
        const r = await t.createRun({ experiment_id: exp.experiment_id, run_name: `r${i}` });
        await t.logBatch(r.info.run_id, {
          params: [{ key: 'lr', value: i % 2 ? '0.01' : '0.1' }],
          metrics: [{ key: 'accuracy', value: 0.8 + i / 100 }],
          tags: [{ key: 'team', value: i < 10 ? 'a' : 'b' }],
        });
        ids.push(r.info.run_id);
      }
      const found = await t.searchRuns({ experiment_ids: [exp.experiment_id], filter: "metrics.accuracy > 0.9 and params.lr = '0.01'", order_by: ['-metrics.accuracy'] });
      assert.deepEqual(found.runs.map((r) => r.info.run_name), ['r19', 'r17', 'r15', 'r13', 'r11']);
      const asc = await t.searchRuns({ experiment_ids: [exp.experiment_id], filter: "tags.team = 'a'", order_by: ['metrics.accuracy ASC'], max_results: 3 });
      assert.deepEqual(asc.runs.map((r) => r.info.run_name), ['r0', 'r1', 'r2']);
      assert.ok(asc.next_page_token);
      const page2 = await t.searchRuns({ experiment_ids: [exp.experiment_id], filter: "tags.team = 'a'", order_by: ['metrics.accuracy ASC'], max_results: 3, page_token: asc.next_page_token });
      assert.deepEqual(page2.runs.map((r) => r.info.run_name), ['r3', 'r4', 'r5']);
      const like = await t.searchRuns({ experiment_ids: [exp.experiment_id], filter: "attributes.run_name LIKE 'r1%' and attributes.status = 'RUNNING'" });
      assert.equal(like.runs.length, 11);
      await rejectsWith(t.searchRuns({ filter: 'metrics.accuracy >' }), 'INVALID_ARGUMENT', /value/);
      await rejectsWith(t.searchRuns({ filter: 'accuracy > 1' }), 'INVALID_ARGUMENT', /prefix/);
      await rejectsWith(t.searchRuns({ filter: "metrics.a > 1 or metrics.b > 2" }), 'INVALID_ARGUMENT', /OR/);
      const cmp = await t.compareRuns([ids[0]!, ids[1]!]);
      assert.deepEqual(cmp.params, [{ key: 'lr', values: ['0.1', '0.01'] }]);
      assert.equal(cmp.metrics[0]!.key, 'accuracy');
      assert.ok(Math.abs(cmp.metrics[0]!.deltas[1]! - 0.01) < 1e-9);
    });

    it('answers every filter and sort shape (joined, tested per run, sorted last when missing) as a plain evaluation does', async () => {
      const t = instance.tracking;
      const exp = await t.createExperiment('search-shapes');
      // 60 runs; some lack the metric, the param or the tag; start times are distinct.
      type Ref = { name: string; start: number; acc?: number; loss?: number; lr?: string; team?: string };
      const refs: Ref[] = [];
      for (let i = 0; i < 60; i++) {
        const ref: Ref = { name: `s${i}`, start: 0, acc: i % 7 === 0 ? undefined : ((i * 37) % 60) / 60, loss: i % 5 === 0 ? undefined : ((i * 11) % 13) / 13, lr: i % 6 === 0 ? undefined : i % 3 ? '0.1' : '0.01', team: i % 4 === 0 ? undefined : i % 2 ? 'a' : 'b' };
        const r = await t.createRun({ experiment_id: exp.experiment_id, run_name: ref.name, start_time: 1_700_000_000_000 + i * 1000 });
        ref.start = r.info.start_time;
        const metrics = [...(ref.acc === undefined ? [] : [{ key: 'acc', value: ref.acc }]), ...(ref.loss === undefined ? [] : [{ key: 'loss', value: ref.loss }])];
        await t.logBatch(r.info.run_id, { metrics, params: ref.lr === undefined ? [] : [{ key: 'lr', value: ref.lr }], tags: ref.team === undefined ? [] : [{ key: 'team', value: ref.team }] });
        refs.push(ref);
      }
      type Cond = (r: Ref) => boolean;
      type Sort = { get: (r: Ref) => number | string | undefined; desc: boolean };
      const cases: { filter?: string; order_by: string[]; where: Cond[]; sort: Sort[] }[] = [
        { filter: 'metrics.acc > 0.5', order_by: ['-metrics.acc'], where: [(r) => r.acc !== undefined && r.acc > 0.5], sort: [{ get: (r) => r.acc, desc: true }] },
        { filter: "metrics.acc > 0.2 and params.lr = '0.1'", order_by: ['metrics.acc'], where: [(r) => r.acc !== undefined && r.acc > 0.2, (r) => r.lr === '0.1'], sort: [{ get: (r) => r.acc, desc: false }] },
        { filter: "params.lr = '0.1'", order_by: ['-metrics.acc'], where: [(r) => r.lr === '0.1'], sort: [{ get: (r) => r.acc, desc: true }] },
        { filter: "tags.team != 'a' and metrics.loss < 0.6", order_by: ['-metrics.acc', 'metrics.loss'], where: [(r) => r.team !== undefined && r.team !== 'a', (r) => r.loss !== undefined && r.loss < 0.6], sort: [{ get: (r) => r.acc, desc: true }, { get: (r) => r.loss, desc: false }] },
        { filter: 'metrics.acc >= 0.3 and metrics.acc < 0.8', order_by: ['-metrics.acc'], where: [(r) => r.acc !== undefined && r.acc >= 0.3 && r.acc < 0.8], sort: [{ get: (r) => r.acc, desc: true }] },
        { filter: 'metrics.loss > 0.1', order_by: [], where: [(r) => r.loss !== undefined && r.loss > 0.1], sort: [] },
        { order_by: ['params.lr', '-metrics.loss'], where: [], sort: [{ get: (r) => r.lr, desc: false }, { get: (r) => r.loss, desc: true }] },
        { filter: "params.lr IN ('0.01') and tags.team LIKE 'b%'", order_by: ['-params.lr'], where: [(r) => r.lr === '0.01', (r) => r.team?.startsWith('b') === true], sort: [{ get: (r) => r.lr, desc: true }] },
      ];
      // Missing keys sort last either way; ties by start time, newest first.
      const cmp = (sort: Sort[]) => (a: Ref, b: Ref) => {
        for (const s of sort) {
          const x = s.get(a);
          const y = s.get(b);
          if (x === undefined || y === undefined) {
            if (x !== y) return x === undefined ? 1 : -1;
            continue;
          }
          if (x !== y) return (x < y ? -1 : 1) * (s.desc ? -1 : 1);
        }
        return b.start - a.start;
      };
      for (const c of cases) {
        const expected = refs.filter((r) => c.where.every((w) => w(r))).sort(cmp(c.sort)).map((r) => r.name);
        const names: string[] = [];
        let page_token: string | undefined;
        do {
          const res = await t.searchRuns({ experiment_ids: [exp.experiment_id], filter: c.filter, order_by: c.order_by, max_results: 7, page_token });
          names.push(...res.runs.map((r) => r.info.run_name));
          page_token = res.next_page_token;
        } while (page_token);
        assert.deepEqual(names, expected, `filter ${c.filter ?? '(none)'} order ${c.order_by.join(', ') || '(start time)'}`);
      }
    });

    it('stores artifacts content-addressed and lists them like MLflow', async () => {
      const t = instance.tracking;
      const run = await t.createRun({});
      await t.logArtifact(run.info.run_id, 'plots/confusion.txt', new TextEncoder().encode('tp fp\nfn tn\n'));
      await t.logArtifact(run.info.run_id, 'model.bin', new Uint8Array([1, 2, 3]));
      assert.deepEqual((await t.listArtifacts(run.info.run_id)).map((a) => [a.path, a.is_dir]), [['model.bin', false], ['plots', true]]);
      assert.deepEqual((await t.listArtifacts(run.info.run_id, 'plots')).map((a) => a.path), ['plots/confusion.txt']);
      const { stream } = await t.readArtifact(run.info.run_id, 'plots/confusion.txt');
      let text = '';
      for await (const b of stream) text += b.toString();
      assert.equal(text, 'tp fp\nfn tn\n');
      await rejectsWith(t.logArtifact(run.info.run_id, '../escape', new Uint8Array([1])), 'INVALID_ARGUMENT');
      await rejectsWith(t.readArtifact(run.info.run_id, 'nope'), 'NOT_FOUND');
    });

    it('makes every job a run and ingests what steps write to $STRATA_METRICS', async () => {
      await instance.data.createRepo({ name: 'train-data' });
      const input = await instance.data.commit('train-data', 'master', [{ op: 'put', path: '/d.csv', content: new TextEncoder().encode('1,2\n') }]);
      const script = [
        'echo \'{"param":"lr","value":"0.05"}\' >> $STRATA_METRICS',
        'for e in 0 1 2; do echo "{\\"metric\\":\\"accuracy\\",\\"value\\":0.9$e,\\"step\\":$e}" >> $STRATA_METRICS; done',
        'echo \'{"tag":"model_type","value":"toy"}\' >> $STRATA_METRICS',
        'echo "this is not json" >> $STRATA_METRICS',
        'echo \'{"metric":"bad","value":"high"}\' >> $STRATA_METRICS',
        'echo report > /pfs/out/report.txt',
        'echo \'{"artifact":"/pfs/out/report.txt"}\' >> $STRATA_METRICS',
        'echo model > /pfs/out/model.bin',
      ].join('\n');
      await instance.pipelines.create({ pipeline: { name: 'trainer' }, input: { pfs: { repo: 'train-data', glob: '/' } }, transform: { cmd: ['sh', '-c', script] } });
      await instance.scheduler.drain();
      const job = (await instance.pipelines.listJobs({ pipeline: 'trainer' }))[0]!;
      assert.equal(job.state, 'success', job.reason);
      const found = await instance.tracking.searchRuns({ pipeline: 'trainer' });
      assert.equal(found.runs.length, 1);
      const run = found.runs[0]!;
      assert.equal(run.info.status, 'FINISHED');
      assert.equal(run.info.job, job.id);
      assert.deepEqual(run.info.input_commits, [{ repo: 'train-data', commit: input.commit }]);
      assert.equal(run.info.output_commit, job.output_commit);
      assert.match(run.info.code_version ?? '', /^[0-9a-f]{64}$/, 'spec hash as code version');
      assert.equal(run.data.params.lr, '0.05');
      assert.equal(run.data.metrics.accuracy!.value, 0.92);
      assert.equal(run.data.tags.model_type, 'toy');
      assert.deepEqual((await instance.tracking.metricHistory(run.info.run_id, 'accuracy')).map((p) => p.step), [0, 1, 2]);
      assert.deepEqual((await instance.tracking.listArtifacts(run.info.run_id)).map((a) => a.path), ['report.txt']);
      const logs = (await instance.pipelines.logs(job.id)).map((l) => l.log).join('\n');
      assert.match(logs, /not JSON/);
      assert.match(logs, /metric "bad" rejected/);
      assert.deepEqual((await instance.data.ls('trainer')).map((f) => f.path), ['/model.bin', '/report.txt'], 'the metrics file is not output');
      assert.equal((await readText(instance, 'trainer@master:/model.bin')).trim(), 'model');
    });

    it('registers the model a job wrote and promotes it through the gate', async () => {
      const onnx = logisticRegressionModel({ weights: new Float32Array([0.5, -0.25, 1]), bias: 0.1, features: 3 });
      await instance.data.createRepo({ name: 'model-src' });
      await instance.data.commit('model-src', 'master', [
        { op: 'put', path: '/model.onnx', content: onnx },
        { op: 'put', path: '/accuracy', content: new TextEncoder().encode('0.95') },
      ]);
      await instance.registry.createModel('spam');
      await instance.registry.setGates('spam', 'staging', [{ metric: 'accuracy', op: '>=', value: 0.9 }]);
      await instance.pipelines.create({
        pipeline: { name: 'fit' },
        input: { pfs: { repo: 'model-src', glob: '/' } },
        transform: { cmd: ['sh', '-c', 'cp /pfs/model-src/model.onnx /pfs/out/; echo "{\\"metric\\":\\"accuracy\\",\\"value\\":$(cat /pfs/model-src/accuracy)}" >> $STRATA_METRICS'] },
        model: { name: 'spam', path: '/model.onnx', promote_to: 'staging' },
      });
      await instance.scheduler.drain();
      let job = (await instance.pipelines.listJobs({ pipeline: 'fit' }))[0]!;
      assert.equal(job.state, 'success');
      assert.match(job.reason, /registered spam version 1, promoted to staging/);
      const v1 = await instance.registry.getVersionByAlias('spam', 'staging');
      assert.equal(v1.version, 1);
      assert.equal(v1.signature?.inputs[0]?.name, 'input');
      const run = (await instance.tracking.searchRuns({ pipeline: 'fit' })).runs[0]!;
      assert.equal(v1.run_id, run.info.run_id);
      assert.ok(v1.lineage.some((c) => c.repo === 'model-src'), 'the model knows the data that made it');

      await instance.data.commit('model-src', 'master', [{ op: 'put', path: '/accuracy', content: new TextEncoder().encode('0.5') }]);
      await instance.scheduler.drain();
      job = (await instance.pipelines.listJobs({ pipeline: 'fit' }))[0]!;
      assert.equal(job.state, 'success', 'a refused promotion does not fail the job');
      assert.match(job.reason, /registered spam version 2; promotion to staging refused: .*accuracy/);
      assert.equal((await instance.registry.getVersionByAlias('spam', 'staging')).version, 1, 'the gate kept version 1');
    });
  });
}
