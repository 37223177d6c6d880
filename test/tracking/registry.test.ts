import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Instance } from '../../src/instance.js';
import { logisticRegressionModel } from '../../src/onnx/build.js';
import { formatGateRule, parseGateRule } from '../../src/tracking/gates.js';
import { backends, rejectsWith, tempDir } from '../fixtures.js';
import { cli, startServerProcess, strata } from '../cli/run.js';

// The model registry (issue 4, items 5 and 6): versions registered from
// commits with hash, ONNX signature, run and lineage; aliases with their
// history; promotion gates. Runs are inserted as rows (the registry reads
// runs, latest_metrics and run_tags; it does not write them).

const text = (s: string) => new TextEncoder().encode(s);
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const onnxModel = () => logisticRegressionModel({ weights: Float32Array.of(0.5, -0.25, 1, 2), bias: 0.1, features: 4 });

for (const backend of await backends()) {
  describe(`model registry on ${backend.name}`, { skip: backend.skip }, () => {
    let instance: Instance;
    let dispose: () => Promise<void>;
    before(async () => {
      ({ instance, dispose } = await backend.instance());
      await instance.data.createRepo({ name: 'raw' });
      await instance.data.createRepo({ name: 'train' });
    });
    after(async () => dispose?.());

    const put = async (repo: string, files: Record<string, Uint8Array>, opts: { provenance?: { repo: string; commit: string }[]; job?: string } = {}) =>
      (await instance.data.commit(repo, 'master', Object.entries(files).map(([path, content]) => ({ op: 'put' as const, path, content })), opts)).commit;

    let runSeq = 0;
    /** A run row with final metrics and tags, as the TrackingService would leave it. */
    const addRun = async (metrics: Record<string, number>, opts: { tags?: Record<string, string>; job?: string } = {}) => {
      const id = `run${++runSeq}${backend.name}`;
      const now = Date.now();
      const db = instance.meta.db;
      await db
        .insertInto('runs')
        .values({
          id, experiment_id: '0', name: id, status: 'FINISHED', start_time: now, end_time: now, lifecycle_stage: 'active', user_id: 'tester',
          pipeline: opts.job ? 'train' : null, job: opts.job ?? null, code_version: null, input_commits: '[]', output_commit: null,
        })
        .execute();
      for (const [key, value] of Object.entries(metrics)) {
        await db.insertInto('latest_metrics').values({ run_id: id, key, value, step: 0, timestamp: now }).execute();
        await db.insertInto('metrics').values({ run_id: id, key, value, step: 0, timestamp: now }).execute();
      }
      for (const [key, value] of Object.entries(opts.tags ?? {})) await db.insertInto('run_tags').values({ run_id: id, key, value }).execute();
      return id;
    };
    const actor = { actor: 'ana' };

    it('registers an ONNX model and a plain file from a commit, with hash, size, source and signature', async () => {
      const model = onnxModel();
      const commit = await put('train', { '/model.onnx': model, '/notes/readme.txt': text('weights from run 1') });
      const v1 = await instance.registry.registerVersion('iris', { from: 'train@master:/model.onnx', description: 'first', tags: { stage: 'dev' }, user: 'ana' });
      assert.equal(v1.version, 1);
      assert.equal(v1.source, `train@${commit}:/model.onnx`);
      assert.deepEqual([v1.repo, v1.commit, v1.path], ['train', commit, '/model.onnx']);
      assert.equal(v1.hash, sha256(model));
      assert.equal(v1.size, model.length);
      assert.equal(v1.format, 'onnx');
      assert.equal(v1.user_id, 'ana');
      assert.deepEqual(v1.tags, { stage: 'dev' });
      assert.equal(v1.run_id, null);
      assert.deepEqual(
        v1.signature!.inputs.map((t) => [t.name, t.datatype, t.shape]),
        [['input', 'FP32', ['batch', 4]]],
      );
      assert.deepEqual(v1.signature!.outputs.map((t) => t.name), ['probabilities', 'label']);
      assert.equal(v1.signature!.opset, 13);

      const v2 = await instance.registry.registerVersion('iris', { from: `train@${commit.slice(0, 10)}:/notes/readme.txt` });
      assert.equal(v2.version, 2);
      assert.equal(v2.format, 'file');
      assert.equal(v2.signature, null);
      assert.equal(v2.hash, sha256(text('weights from run 1')));
      assert.equal(v2.source, `train@${commit}:/notes/readme.txt`);

      const m = await instance.registry.getModel('iris');
      assert.equal(m.latest_version, 2);
      assert.deepEqual((await instance.registry.listVersions('iris')).map((v) => v.version), [1, 2]);
      assert.deepEqual(await instance.registry.getVersion('iris', 1), v1);
      assert.equal((await instance.registry.getVersionByAlias('iris', 'latest')).version, 2);
      assert.ok((await instance.registry.listModels({ filter: 'IR' })).some((x) => x.name === 'iris'));
      assert.deepEqual(await instance.registry.listModels({ filter: 'nomatch' }), []);
    });

    it('creates, describes, tags and deletes models', async () => {
      await rejectsWith(instance.registry.createModel('iris'), 'ALREADY_EXISTS', /iris/);
      const m = await instance.registry.createModel('empty-model', { description: 'nothing yet', tags: { team: 'ml' } });
      assert.deepEqual([m.latest_version, m.description, m.tags, m.aliases], [null, 'nothing yet', { team: 'ml' }, {}]);
      assert.equal((await instance.registry.updateModel('empty-model', { description: 'still nothing' })).description, 'still nothing');
      assert.deepEqual((await instance.registry.setModelTag('empty-model', 'owner', 'ana')).tags, { team: 'ml', owner: 'ana' });
      assert.deepEqual((await instance.registry.setModelTag('empty-model', 'team', null)).tags, { owner: 'ana' });
      await rejectsWith(instance.registry.getVersionByAlias('empty-model', 'latest'), 'NOT_FOUND', /no versions/);
      await instance.registry.deleteModel('empty-model');
      await rejectsWith(instance.registry.deleteModel('empty-model'), 'NOT_FOUND');
    });

    it('refuses a missing path, a directory, invalid ONNX, an unknown run or ref, and registers nothing', async () => {
      await put('train', { '/bad.onnx': text('this is not a protobuf model'), '/empty.onnx': new Uint8Array(0) });
      const before = (await instance.registry.listVersions('iris')).length;
      await rejectsWith(instance.registry.registerVersion('iris', { from: 'train@master:/nope.onnx' }), 'NOT_FOUND', /\/nope\.onnx does not exist/);
      await rejectsWith(instance.registry.registerVersion('iris', { from: 'train@master:/notes' }), 'INVALID_ARGUMENT', /\/notes is a directory/);
      await rejectsWith(instance.registry.registerVersion('iris', { from: 'train@master' }), 'INVALID_ARGUMENT', /names no file/);
      await rejectsWith(instance.registry.registerVersion('iris', { from: 'train@master:/bad.onnx' }), 'INVALID_ARGUMENT', /bad\.onnx: the file is not a valid ONNX model/);
      await rejectsWith(instance.registry.registerVersion('iris', { from: 'train@master:/empty.onnx' }), 'INVALID_ARGUMENT', /empty\.onnx.*empty/);
      await rejectsWith(instance.registry.registerVersion('iris', { from: 'train@master:/model.onnx', run_id: 'no-such-run' }), 'NOT_FOUND', /run "no-such-run"/);
      await rejectsWith(instance.registry.registerVersion('iris', { from: 'nosuchrepo@master:/model.onnx' }), 'NOT_FOUND', /nosuchrepo/);
      await rejectsWith(instance.registry.registerVersion('iris', { from: 'train@nobranch:/model.onnx' }), 'NOT_FOUND', /nobranch/);
      await rejectsWith(instance.registry.registerVersion('bad name', { from: 'train@master:/model.onnx' }), 'INVALID_ARGUMENT', /model name/);
      // A new model name is not created by a failed registration.
      await rejectsWith(instance.registry.registerVersion('ghost', { from: 'train@master:/bad.onnx' }), 'INVALID_ARGUMENT');
      await rejectsWith(instance.registry.getModel('ghost'), 'NOT_FOUND', /ghost/);
      assert.equal((await instance.registry.listVersions('iris')).length, before);
      await rejectsWith(instance.registry.getVersion('iris', 99), 'NOT_FOUND', /no version 99/);
      await rejectsWith(instance.registry.listVersions('ghost'), 'NOT_FOUND');
    });

    it('numbers concurrent registrations 1..n without collisions', async () => {
      await put('train', { '/c.onnx': onnxModel() });
      const versions = await Promise.all(Array.from({ length: 12 }, () => instance.registry.registerVersion('concurrent', { from: 'train@master:/c.onnx' })));
      assert.deepEqual(versions.map((v) => v.version).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
      assert.equal((await instance.registry.listVersions('concurrent')).length, 12);
    });

    it('links the run given, else the run of the job that made the commit', async () => {
      const run = await addRun({ accuracy: 0.9 });
      const explicit = await instance.registry.registerVersion('linked', { from: 'train@master:/model.onnx', run_id: run });
      assert.equal(explicit.run_id, run);

      const jobRun = await addRun({ accuracy: 0.8 }, { job: 'job-abc' });
      await put('train', { '/from-job.onnx': onnxModel() }, { job: 'job-abc' });
      const byJob = await instance.registry.registerVersion('linked', { from: 'train@master:/from-job.onnx' });
      assert.equal(byJob.run_id, jobRun);

      await put('train', { '/no-job.txt': text('x') });
      assert.equal((await instance.registry.registerVersion('linked', { from: 'train@master:/no-job.txt' })).run_id, null);
    });

    it('gives a version the lineage of its commit: the data commits upstream of it', async () => {
      const rawCommit = await put('raw', { '/emails.csv': text('a,b\n1,2\n') });
      await instance.data.createRepo({ name: 'features' });
      const featCommit = await put('features', { '/x.bin': text('features') }, { provenance: [{ repo: 'raw', commit: rawCommit }] });
      const trainCommit = await put('train', { '/lineage.onnx': onnxModel() }, { provenance: [{ repo: 'features', commit: featCommit }] });
      const v = await instance.registry.registerVersion('lineaged', { from: 'train@master:/lineage.onnx' });
      assert.equal(v.commit, trainCommit);
      assert.deepEqual(
        v.lineage.map((l) => `${l.repo}@${l.commit}`).sort(),
        [`features@${featCommit}`, `raw@${rawCommit}`].sort(),
      );
      // Without provenance, a version has no upstream lineage.
      const plain = await instance.registry.registerVersion('lineaged', { from: `raw@${rawCommit}:/emails.csv` });
      assert.deepEqual(plain.lineage, []);
    });

    it('sets, moves and removes aliases, with history and the holder at a past instant', async () => {
      await put('train', { '/a.onnx': onnxModel() });
      for (let i = 0; i < 3; i++) await instance.registry.registerVersion('aliased', { from: 'train@master:/a.onnx' });
      const beforeAny = Date.now() - 1;
      await sleep(5);
      const set = await instance.registry.setAlias('aliased', 'production', 1, { actor: 'ana', reason: 'first release' });
      assert.deepEqual([set.from_version, set.to_version, set.actor, set.reason], [null, 1, 'ana', 'first release']);
      await sleep(5);
      const whileOne = Date.now();
      await sleep(5);
      const moved = await instance.registry.setAlias('aliased', 'production', 2, { actor: 'bo' });
      assert.deepEqual([moved.from_version, moved.to_version], [1, 2]);
      await instance.registry.setAlias('aliased', 'staging', 3, actor);

      assert.equal((await instance.registry.getVersionByAlias('aliased', 'production')).version, 2);
      assert.deepEqual((await instance.registry.getVersion('aliased', 2)).aliases, ['production']);
      assert.deepEqual((await instance.registry.getModel('aliased')).aliases, { production: 2, staging: 3 });
      // Setting the alias to the version it holds changes nothing.
      const same = await instance.registry.setAlias('aliased', 'production', 2, actor);
      assert.equal(same.from_version, same.to_version);

      await sleep(5);
      const whileTwo = Date.now();
      await sleep(5);
      const removed = await instance.registry.deleteAlias('aliased', 'production', { actor: 'cy', reason: 'incident' });
      assert.deepEqual([removed.from_version, removed.to_version], [2, null]);
      await rejectsWith(instance.registry.getVersionByAlias('aliased', 'production'), 'NOT_FOUND', /no alias "production"/);
      await rejectsWith(instance.registry.deleteAlias('aliased', 'production', actor), 'NOT_FOUND');

      const history = await instance.registry.aliasHistory('aliased', 'production');
      assert.deepEqual(
        history.map((h) => [h.from_version, h.to_version, h.actor, h.reason]),
        [
          [2, null, 'cy', 'incident'],
          [1, 2, 'bo', ''],
          [null, 1, 'ana', 'first release'],
        ],
      );
      assert.ok(history[0]!.time >= history[1]!.time && history[1]!.time >= history[2]!.time);
      assert.equal((await instance.registry.aliasHistory('aliased')).length, 4);

      assert.equal((await instance.registry.aliasAt('aliased', 'production', beforeAny)).version, null);
      assert.equal((await instance.registry.aliasAt('aliased', 'production', whileOne)).version, 1);
      assert.equal((await instance.registry.aliasAt('aliased', 'production', new Date(whileTwo).toISOString())).version, 2);
      assert.equal((await instance.registry.aliasAt('aliased', 'production', Date.now())).version, null);
      assert.equal((await instance.registry.aliasAt('aliased', 'staging', Date.now())).version, 3);
      await rejectsWith(instance.registry.aliasAt('aliased', 'production', 'last tuesday'), 'INVALID_ARGUMENT', /ISO-8601/);
    });

    it('validates alias names and versions, and refuses to delete a version an alias holds', async () => {
      await rejectsWith(instance.registry.setAlias('aliased', 'latest', 1, actor), 'INVALID_ARGUMENT', /reserved/);
      await rejectsWith(instance.registry.setAlias('aliased', '1st', 1, actor), 'INVALID_ARGUMENT', /alias "1st"/);
      await rejectsWith(instance.registry.setAlias('aliased', 'prod', 42, actor), 'NOT_FOUND', /no version 42/);
      await rejectsWith(instance.registry.setAlias('nomodel', 'prod', 1, actor), 'NOT_FOUND', /model "nomodel"/);
      await rejectsWith(instance.registry.setAlias('aliased', 'prod', 1, { actor: '' }), 'INVALID_ARGUMENT', /actor/);
      await rejectsWith(instance.registry.deleteVersion('aliased', 3), 'FAILED_PRECONDITION', /alias staging/);
      await instance.registry.deleteVersion('aliased', 1);
      await rejectsWith(instance.registry.getVersion('aliased', 1), 'NOT_FOUND');
      assert.equal((await instance.registry.aliasHistory('aliased', 'prod')).length, 0);
    });

    it('never reuses a version number the alias history mentions, and keeps the history after deleting the model', async () => {
      await put('train', { '/r.onnx': onnxModel() });
      await instance.registry.registerVersion('reuse', { from: 'train@master:/r.onnx' });
      await instance.registry.registerVersion('reuse', { from: 'train@master:/r.onnx' });
      await instance.registry.setAlias('reuse', 'production', 2, actor);
      await instance.registry.setGates('reuse', 'production', [{ tag: 'ok' }]);
      await instance.registry.deleteModel('reuse');
      await rejectsWith(instance.registry.getModel('reuse'), 'NOT_FOUND');
      assert.equal((await instance.registry.aliasHistory('reuse', 'production')).length, 1);
      assert.equal((await instance.registry.aliasAt('reuse', 'production', Date.now())).version, 2);
      const again = await instance.registry.registerVersion('reuse', { from: 'train@master:/r.onnx' });
      assert.equal(again.version, 3);
      assert.deepEqual(await instance.registry.getGates('reuse', 'production'), []);
    });

    it('never reuses the number of a deleted highest version that no alias ever held', async () => {
      await put('train', { '/n.onnx': onnxModel() });
      await instance.registry.registerVersion('renumber', { from: 'train@master:/n.onnx' });
      await instance.registry.registerVersion('renumber', { from: 'train@master:/n.onnx' });
      await instance.registry.deleteVersion('renumber', 2);
      const next = await instance.registry.registerVersion('renumber', { from: 'train@master:/n.onnx' });
      assert.equal(next.version, 3);
      assert.deepEqual((await instance.registry.listVersions('renumber')).map((v) => v.version), [1, 3]);
    });

    it('gates on a metric threshold: a failure names the rule and the values and changes nothing', async () => {
      await put('train', { '/g.onnx': onnxModel() });
      const good = await addRun({ accuracy: 0.93 });
      const bad = await addRun({ accuracy: 0.85 });
      await instance.registry.registerVersion('gated', { from: 'train@master:/g.onnx', run_id: good });
      await instance.registry.registerVersion('gated', { from: 'train@master:/g.onnx' }); // no run
      await instance.registry.registerVersion('gated', { from: 'train@master:/g.onnx', run_id: bad });
      const rules = await instance.registry.setGates('gated', 'production', [parseGateRule('metrics.accuracy >= 0.9')]);
      assert.deepEqual(rules, [{ metric: 'accuracy', op: '>=', value: 0.9 }]);
      assert.deepEqual(await instance.registry.getGates('gated', 'production'), rules);

      await instance.registry.setAlias('gated', 'production', 1, actor);
      await rejectsWith(
        instance.registry.setAlias('gated', 'production', 3, actor),
        'POLICY_VIOLATION',
        /^gate on gated@production: metrics\.accuracy >= 0\.9 failed: version 3 has accuracy 0\.85$/,
      );
      await rejectsWith(instance.registry.setAlias('gated', 'production', 2, actor), 'POLICY_VIOLATION', /version 2 has no run/);
      assert.equal((await instance.registry.getVersionByAlias('gated', 'production')).version, 1);
      assert.equal((await instance.registry.aliasHistory('gated')).length, 1);
      // Other aliases are not gated.
      await instance.registry.setAlias('gated', 'staging', 3, actor);
      // A missing metric fails too.
      await instance.registry.setGates('gated', 'production', [{ metric: 'f1', op: '>', value: 0 }]);
      await rejectsWith(instance.registry.setAlias('gated', 'production', 3, actor), 'POLICY_VIOLATION', /run run\d+\w+ has no metric f1/);
      // Removing the gate lets the move through.
      assert.deepEqual(await instance.registry.setGates('gated', 'production', []), []);
      await instance.registry.setAlias('gated', 'production', 3, actor);
    });

    it('gates on better_than_current, against the alias holder', async () => {
      await put('train', { '/b.onnx': onnxModel() });
      const runs = [await addRun({ f1: 0.8, loss: 0.5 }), await addRun({ f1: 0.7, loss: 0.4 }), await addRun({ f1: 0.85, loss: 0.6 })];
      for (const run_id of runs) await instance.registry.registerVersion('better', { from: 'train@master:/b.onnx', run_id });
      await instance.registry.setGates('better', 'production', [parseGateRule('better_than_current:metrics.f1')]);
      // No holder yet: passes.
      await instance.registry.setAlias('better', 'production', 1, actor);
      await rejectsWith(
        instance.registry.setAlias('better', 'production', 2, actor),
        'POLICY_VIOLATION',
        /better_than_current:metrics\.f1 failed: version 2 has f1 0\.7, current holder version 1 has 0\.8/,
      );
      await instance.registry.setAlias('better', 'production', 3, actor);
      // Lower is better, with a minimum improvement: version 2's loss 0.4 beats 0.6 by 0.2.
      await instance.registry.setGates('better', 'production', [parseGateRule('better_than_current:metrics.loss lower_is_better min_delta=0.3')]);
      await rejectsWith(instance.registry.setAlias('better', 'production', 2, actor), 'POLICY_VIOLATION', /needs to be lower by at least 0\.3/);
      await instance.registry.setGates('better', 'production', [{ better_than_current: 'loss', lower_is_better: true, min_delta: 0.1 }]);
      await instance.registry.setAlias('better', 'production', 2, actor);
      assert.deepEqual(
        (await instance.registry.aliasHistory('better', 'production')).map((h) => h.to_version),
        [2, 3, 1],
      );
    });

    it('gates on tags of the version or of its run', async () => {
      await put('train', { '/t.onnx': onnxModel() });
      const tagged = await addRun({}, { tags: { validated: 'true' } });
      const untagged = await addRun({}, { tags: { validated: 'false' } });
      await instance.registry.registerVersion('tagged', { from: 'train@master:/t.onnx', run_id: tagged });
      await instance.registry.registerVersion('tagged', { from: 'train@master:/t.onnx', run_id: untagged });
      await instance.registry.registerVersion('tagged', { from: 'train@master:/t.onnx' });
      await instance.registry.setGates('tagged', 'production', [parseGateRule('tag:validated=true')]);
      await instance.registry.setAlias('tagged', 'production', 1, actor);
      await rejectsWith(instance.registry.setAlias('tagged', 'production', 2, actor), 'POLICY_VIOLATION', /version 2 has validated=false/);
      await rejectsWith(instance.registry.setAlias('tagged', 'production', 3, actor), 'POLICY_VIOLATION', /version 3 has no tag validated/);
      // A version tag counts (and is looked at before the run's).
      await instance.registry.setVersionTag('tagged', 2, 'validated', 'true');
      await instance.registry.setAlias('tagged', 'production', 2, actor);
      // Several failing rules are all reported.
      await instance.registry.setGates('tagged', 'production', [{ tag: 'reviewed' }, { metric: 'accuracy', op: '>', value: 0.5 }]);
      await rejectsWith(instance.registry.setAlias('tagged', 'production', 1, actor), 'POLICY_VIOLATION', /tag:reviewed failed: .*; metrics\.accuracy > 0\.5 failed/);
    });

    it('validates gate rules when they are set', async () => {
      const bad = async (rules: unknown, match: RegExp) => rejectsWith(instance.registry.setGates('gated', 'production', rules as never), 'INVALID_ARGUMENT', match);
      await bad([{ metric: 'accuracy', op: '=>', value: 0.9 }], /op "=>"/);
      await bad([{ metric: 'accuracy', op: '>=' }], /"value" must be a finite number/);
      await bad([{ op: '>=', value: 1 }], /exactly one of/);
      await bad([{ tag: 'x', extra: 1 }], /unknown field "extra"/);
      await bad([{ better_than_current: 'f1', min_delta: -1 }], /min_delta/);
      await bad('metrics.accuracy > 1', /list of rules/);
      await rejectsWith(instance.registry.setGates('nomodel', 'production', []), 'NOT_FOUND');
      await rejectsWith(instance.registry.setGates('gated', 'Latest', []), 'INVALID_ARGUMENT', /reserved/);
    });
  });
}

describe('gate rule one-line form', () => {
  it('parses and formats the three kinds of rule', () => {
    const cases: [string, unknown][] = [
      ['metrics.accuracy >= 0.9', { metric: 'accuracy', op: '>=', value: 0.9 }],
      ['metrics.loss<0.2', { metric: 'loss', op: '<', value: 0.2 }],
      ['metrics.val.acc == 1', { metric: 'val.acc', op: '=', value: 1 }],
      ['better_than_current:metrics.f1', { better_than_current: 'f1' }],
      ['better_than_current:metrics.loss lower_is_better min_delta=0.01', { better_than_current: 'loss', lower_is_better: true, min_delta: 0.01 }],
      ['tag:validated=true', { tag: 'validated', value: 'true' }],
      ['tag:reviewed', { tag: 'reviewed' }],
      ['no_label:pii:ssn', { no_label: 'pii:ssn' }],
      ['{"metric":"auc","op":">","value":0.8}', { metric: 'auc', op: '>', value: 0.8 }],
    ];
    for (const [line, rule] of cases) {
      assert.deepEqual(parseGateRule(line), rule, line);
      assert.deepEqual(parseGateRule(formatGateRule(parseGateRule(line))), rule, `round trip of ${line}`);
    }
  });

  it('names what is wrong with a rule it cannot read', () => {
    assert.throws(() => parseGateRule('accuracy >= 0.9'), /not understood/);
    assert.throws(() => parseGateRule('metrics.accuracy >= high'), /"high" is not a finite number/);
    assert.throws(() => parseGateRule('metrics.accuracy >= NaN'), /not a finite number/);
    assert.throws(() => parseGateRule('better_than_current:metrics.f1 bigger'), /unknown option "bigger"/);
    assert.throws(() => parseGateRule('{"metric":'), /not valid JSON/);
  });
});

for (const mode of ['local', 'http'] as const) {
  describe(`strata model CLI (${mode})`, () => {
    const dir = tempDir();
    const home = join(dir.path, '.strata');
    const env: NodeJS.ProcessEnv = { STRATA_HOME: home, STRATA_AUTHOR: 'tester' };
    let stopServer: (() => Promise<unknown>) | undefined;
    const { run, ok, json, fails } = cli(env);

    before(async () => {
      assert.equal(run('init').code, 0);
      const src = join(dir.path, 'src');
      mkdirSync(src);
      writeFileSync(join(src, 'model.onnx'), onnxModel());
      writeFileSync(join(src, 'broken.onnx'), 'not a model');
      if (mode === 'http') {
        const server = await startServerProcess(env);
        env.STRATA_SERVER = server.url;
        stopServer = server.stop;
      }
      ok('repo', 'create', 'train');
      ok('put', 'train@master', join(src, 'model.onnx'), join(src, 'broken.onnx'));
    });
    after(async () => {
      await stopServer?.();
      dir.cleanup();
    });

    it('registers versions and lists them', () => {
      const v1 = json('model', 'register', 'spam', '--from', 'train@master:/model.onnx', '--description', 'first', '--tag', 'team=ml');
      assert.equal(v1.version, 1);
      assert.equal(v1.format, 'onnx');
      assert.equal(v1.user_id, 'tester');
      assert.deepEqual(v1.tags, { team: 'ml' });
      assert.equal(v1.signature.inputs[0].name, 'input');
      assert.equal(json('model', 'register', 'spam', '--from', 'train@master:/model.onnx').version, 2);
      assert.match(ok('model', 'register', 'spam', '--from', 'train@master:/model.onnx').stdout, /registered spam version 3 from train@[0-9a-f]{12}:\/model\.onnx/);
      assert.deepEqual(json('model', 'list').map((m: { name: string; latest_version: number }) => [m.name, m.latest_version]), [['spam', 3]]);
      assert.deepEqual(json('model', 'versions', 'spam').map((v: { version: number }) => v.version), [1, 2, 3]);
      const shown = json('model', 'show', 'spam');
      assert.equal(shown.name, 'spam');
      assert.equal(shown.versions.length, 3);
      assert.match(ok('model', 'show', 'spam').stdout, /Latest version: 3/);
      assert.equal(json('model', 'version', 'spam', 'latest').version, 3);
    });

    it('refuses bad registrations with exit 2 and no stack trace', () => {
      fails(2, ['model', 'register', 'spam', '--from', 'train@master:/broken.onnx'], /broken\.onnx: the file is not a valid ONNX model/);
      fails(2, ['model', 'register', 'spam', '--from', 'train@master:/missing.onnx'], /missing\.onnx does not exist/);
      fails(2, ['model', 'register', 'spam', '--from', 'train@master:/model.onnx', '--run', 'nope'], /run "nope" not found/);
      assert.equal(json('model', 'versions', 'spam').length, 3);
    });

    it('moves aliases and shows their history, also at a past instant', async () => {
      const set = json('model', 'alias', 'set', 'spam', 'production', '1', '--reason', 'launch');
      assert.deepEqual([set.from_version, set.to_version, set.actor, set.reason], [null, 1, 'tester', 'launch']);
      await sleep(10);
      const between = new Date().toISOString();
      await sleep(10);
      assert.match(ok('model', 'alias', 'set', 'spam', 'production', '2').stdout, /spam@production: 1 -> 2/);
      const history = json('model', 'alias', 'history', 'spam', 'production');
      assert.deepEqual(history.map((h: { from_version: number | null; to_version: number }) => [h.from_version, h.to_version]), [[1, 2], [null, 1]]);
      assert.equal(json('model', 'alias', 'history', 'spam', 'production', '--at', between).version, 1);
      assert.deepEqual(json('model', 'alias', 'history', 'spam', '--at', new Date().toISOString()).map((h: { alias: string; version: number }) => [h.alias, h.version]), [['production', 2]]);
      assert.match(ok('model', 'alias', 'history', 'spam').stdout, /production\s+1\s+2\s+tester/);
      fails(2, ['model', 'alias', 'history', 'spam', '--at', 'yesterday-ish'], /--at "yesterday-ish" is not a date/);
      fails(2, ['model', 'alias', 'set', 'spam', 'production', '9'], /no version 9/);
      fails(2, ['model', 'alias', 'set', 'spam', 'latest', '1'], /reserved/);
    });

    it('refuses an alias move a gate rejects with exit 2, changing nothing', () => {
      const rules = json('model', 'gate', 'set', 'spam', 'production', 'metrics.accuracy >= 0.9', 'tag:validated=true');
      assert.deepEqual(rules, [{ metric: 'accuracy', op: '>=', value: 0.9 }, { tag: 'validated', value: 'true' }]);
      assert.equal(ok('model', 'gate', 'show', 'spam', 'production').stdout, 'metrics.accuracy >= 0.9\ntag:validated=true\n');
      const r = fails(2, ['model', 'alias', 'set', 'spam', 'production', '3'], /gate on spam@production: metrics\.accuracy >= 0\.9 failed: version 3 has no run/);
      assert.match(r.stderr, /tag:validated=true failed/);
      assert.equal(json('model', 'version', 'spam', 'production').version, 2);
      assert.equal(json('model', 'alias', 'history', 'spam').length, 2);
      fails(2, ['model', 'gate', 'set', 'spam', 'production', 'metrics.accuracy => 0.9'], /gate rule "metrics\.accuracy => 0\.9"/);
      assert.deepEqual(json('model', 'gate', 'rm', 'spam', 'production'), []);
      const rm = json('model', 'alias', 'rm', 'spam', 'production');
      assert.deepEqual([rm.from_version, rm.to_version], [2, null]);
    });
  });
}
