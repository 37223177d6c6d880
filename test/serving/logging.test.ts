// Prediction logging: sampled request/response pairs committed in batches as
// JSON lines to the repo `<deployment>-predictions`, over a real server; and
// the logger's batching, bounds and failures on their own.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DataService } from '../../src/data/service.js';
import { logisticRegressionModel } from '../../src/onnx/build.js';
import { PredictionLogger, type PredictionRecord } from '../../src/serving/prediction-log.js';
import type { ModelVersion } from '../../src/tracking/types.js';
import { collect, serve, type Served } from '../api/harness.js';
import { until } from '../fixtures.js';

const W = Float32Array.of(0.5, -0.25, 1, 2);
const p1 = (x: number[]) => 1 / (1 + Math.exp(-x.reduce((s, v, i) => s + v * W[i]!, 0.1)));

async function call(method: string, url: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(url, { method, headers: { 'content-type': 'application/json', ...headers }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: (text ? JSON.parse(text) : undefined) as any };
}


describe('prediction logging over a server', () => {
  let s: Served;
  before(async () => {
    s = await serve();
    const data = s.instance.data;
    await data.createRepo({ name: 'raw' });
    const raw = await data.commit('raw', 'master', [{ op: 'put', path: '/emails.csv', content: Buffer.from('text,label\n') }]);
    await data.createRepo({ name: 'train' });
    const provenance = [{ repo: 'raw', commit: raw.commit }];
    await data.commit('train', 'master', [{ op: 'put', path: '/model.onnx', content: logisticRegressionModel({ weights: W, bias: 0.1, features: 4 }) }], { provenance });
    await s.instance.registry.registerVersion('spam', { from: 'train@master:/model.onnx' });
    await s.instance.registry.setAlias('spam', 'production', 1, { actor: 'test' });
  });
  after(async () => s?.close());

  const inspect = async (name: string) => (await call('GET', `${s.url}/api/v1/deployments/${name}`)).body;
  const lines = async (repo: string) => {
    const files = (await s.instance.data.ls(`${repo}@master:/`, { recursive: true })).filter((f) => f.type === 'file');
    const out: { path: string; records: any[] }[] = [];
    for (const f of files) {
      const text = (await collect((await s.instance.data.read(`${repo}@master:${f.path}`)).stream)).toString();
      assert.ok(text.endsWith('\n'));
      out.push({ path: f.path, records: text.trimEnd().split('\n').map((l) => JSON.parse(l)) });
    }
    return out;
  };

  it('at rate 1 commits every request and response, with lineage, to <deployment>-predictions', async () => {
    const created = await call('POST', `${s.url}/api/v1/deployments`, { name: 'logged', model: 'spam@production', log_predictions: 1 });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.deepEqual(created.body.config, { logging: { rate: 1 } });

    const xs = Array.from({ length: 30 }, (_, i) => [i, 1, 0.5 - i / 10, 0.5]);
    const results = await Promise.all(
      xs.map((x, i) =>
        i % 2 === 0
          ? call('POST', `${s.url}/v2/models/logged/infer`, { id: `req-${i}`, inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [x] }] })
          : call('POST', `${s.url}/api/v1/deployments/logged/predict`, { inputs: { input: [x] } }, { 'x-request-id': `req-${i}` }),
      ),
    );
    for (const r of results) assert.equal(r.status, 200, JSON.stringify(r.body));

    const log = await until('30 committed records', 8000, async () => {
      const l = (await inspect('logged')).serving.logging;
      return l?.committed === 30 ? l : undefined;
    });
    assert.equal(log.rate, 1);
    assert.equal(log.repo, 'logged-predictions');
    assert.equal(log.sampled, 30);
    assert.equal(log.dropped, 0);
    assert.equal(log.errors, 0);
    assert.equal(log.buffered, 0);
    assert.ok(log.files >= 1);

    const repo = await s.instance.data.inspectRepo('logged-predictions');
    assert.match(repo.description, /Predictions of deployment "logged"/);
    const files = await lines('logged-predictions');
    assert.equal(files.length, log.files);
    const today = new Date().toISOString().slice(0, 10);
    for (const f of files) assert.match(f.path, new RegExp(`^/${today}/${today}T[0-9-]+Z-\\d{6}\\.jsonl$`));
    const records = files.flatMap((f) => f.records);
    assert.equal(records.length, 30);
    const dataCommit = (await s.instance.registry.getVersion('spam', 1)).lineage.map((l) => `${l.repo}@${l.commit}`).join(',');
    assert.match(dataCommit, /^raw@[0-9a-f]+$/);
    const seen = new Set<string>();
    for (const r of records) {
      assert.deepEqual(Object.keys(r).sort(), ['data_commit', 'deployment', 'inputs', 'lane', 'model', 'outputs', 'request_id', 'time', 'version']);
      assert.equal(r.deployment, 'logged');
      assert.equal(r.model, 'spam');
      assert.equal(r.version, 1);
      assert.equal(r.lane, 'primary');
      assert.equal(r.data_commit, dataCommit);
      assert.ok(!Number.isNaN(Date.parse(r.time)));
      const i = Number(/^req-(\d+)$/.exec(r.request_id)![1]);
      seen.add(r.request_id);
      assert.deepEqual(r.inputs, [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: xs[i]!.map((v) => Math.fround(v)) }]);
      const probs = r.outputs.find((o: any) => o.name === 'probabilities');
      assert.deepEqual(probs.shape, [1, 2]);
      assert.ok(Math.abs(probs.data[1] - p1(xs[i]!)) < 1e-5);
    }
    assert.equal(seen.size, 30, 'every request once');
  });

  it('logs nothing at rate 0 or without a rate, and turns logging off with an update to 0', async () => {
    for (const body of [{ name: 'quiet', model: 'spam@production' }, { name: 'zero', model: 'spam@production', log_predictions: 0 }]) {
      const created = await call('POST', `${s.url}/api/v1/deployments`, body);
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.deepEqual(created.body.config, {});
    }
    const off = await call('PATCH', `${s.url}/api/v1/deployments/logged`, { log_predictions: 0 });
    assert.equal(off.status, 200, JSON.stringify(off.body));
    assert.deepEqual(off.body.config, {});
    const before = (await inspect('logged')).serving.logging.sampled;
    for (const name of ['quiet', 'zero', 'logged']) {
      for (let i = 0; i < 10; i++) {
        const r = await call('POST', `${s.url}/api/v1/deployments/${name}/predict`, { inputs: { input: [[1, 2, 3, 4]] } });
        assert.equal(r.status, 200);
      }
    }
    await new Promise((r) => setTimeout(r, 2300)); // past a flush interval
    const repos = (await s.instance.data.listRepos()).map((r) => r.name);
    assert.ok(!repos.includes('quiet-predictions') && !repos.includes('zero-predictions'), repos.join(','));
    assert.equal((await inspect('quiet')).serving.logging, undefined);
    assert.equal((await inspect('logged')).serving.logging.sampled, before);
    assert.equal((await lines('logged-predictions')).flatMap((f) => f.records).length, 30);
  });

  it('rejects rates outside 0..1', async () => {
    for (const rate of [-0.1, 1.5, 'half']) {
      const r = await call('POST', `${s.url}/api/v1/deployments`, { name: 'bad', model: 'spam@production', log_predictions: rate });
      assert.equal(r.status, 400, JSON.stringify(r.body));
    }
  });
});

describe('PredictionLogger', () => {
  const version = { name: 'm', version: 2, lineage: [{ repo: 'd', commit: 'abc' }] } as unknown as ModelVersion;
  const rec = (i: number): PredictionRecord => ({
    time: Date.now(),
    request_id: String(i),
    version,
    lane: 'primary',
    inputs: { x: { type: 'float32', data: Float32Array.of(i), dims: [1, 1] } },
    outputs: { y: { type: 'int64', data: BigInt64Array.of(BigInt(i)), dims: [1] } },
  });
  const fakeData = (commit: (repo: string, path: string, text: string) => Promise<void>) =>
    ({
      createRepo: async () => ({}),
      commit: async (repo: string, _branch: string, changes: Iterable<{ path: string; content: Uint8Array }>) => {
        for (const c of changes) await commit(repo, c.path, Buffer.from(c.content).toString());
        return { commit: 'c1' };
      },
    }) as unknown as DataService;

  it('writes a file per batch of N records and the rest on stop', async () => {
    const files: { repo: string; path: string; text: string }[] = [];
    const logger = new PredictionLogger(fakeData(async (repo, path, text) => void files.push({ repo, path, text })), { flushRecords: 10, flushMs: 60_000 });
    logger.configure('dep', 1);
    for (let i = 0; i < 25; i++) if (logger.sample('dep')) logger.record('dep', rec(i));
    await until('two batches', 8000, async () => (files.length === 2 ? true : undefined));
    await logger.stop();
    assert.deepEqual(
      files.map((f) => f.text.trimEnd().split('\n').length),
      [10, 10, 5],
    );
    assert.equal(new Set(files.map((f) => f.path)).size, 3, 'a new file each time');
    assert.ok(files.every((f) => f.repo === 'dep-predictions'));
    const first = JSON.parse(files[0]!.text.split('\n')[0]!);
    assert.deepEqual(first.outputs, [{ name: 'y', shape: [1], datatype: 'INT64', data: [0] }]);
  });

  it('drops records beyond its buffer and counts failed writes without throwing', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const logger = new PredictionLogger(
      fakeData(async () => {
        await gate;
        throw new Error('disk full');
      }),
      { flushRecords: 5, flushMs: 60_000, maxBuffered: 5 },
    );
    logger.configure('dep', 1);
    for (let i = 0; i < 5; i++) logger.record('dep', rec(i)); // the first batch: held at the gate
    for (let i = 0; i < 8; i++) logger.record('dep', rec(i)); // 5 buffered, 3 dropped
    assert.equal(logger.stats('dep')!.dropped, 3);
    release();
    await logger.drain();
    const st = logger.stats('dep')!;
    assert.equal(st.sampled, 10);
    assert.equal(st.committed, 0);
    assert.equal(st.errors, 2);
    assert.equal(st.lost, 10);
    assert.equal(st.last_error, 'disk full');
    assert.equal(st.buffered, 0);
  });

  it('samples about the configured fraction and nothing when off', () => {
    const logger = new PredictionLogger(fakeData(async () => {}));
    logger.configure('half', 0.5);
    let n = 0;
    for (let i = 0; i < 2000; i++) if (logger.sample('half')) n++;
    assert.ok(n > 850 && n < 1150, String(n));
    assert.equal(logger.sample('none'), false);
    logger.configure('half', 0);
    assert.equal(logger.sample('half'), false);
  });
});
