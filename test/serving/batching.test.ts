// Adaptive batching: concurrent requests coalesced into one model run over a
// real server and ONNX Runtime; and the batcher's grouping, splitting and
// fallbacks on their own.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { logisticRegressionModel } from '../../src/onnx/build.js';
import { BatchingModel, checkBatching, notBatchable } from '../../src/serving/batcher.js';
import type { HostTensor, LoadedModel, ModelSignature } from '../../src/serving/runtime.js';
import { serve, type Served } from '../api/harness.js';

const W = Float32Array.of(0.5, -0.25, 1, 2);
const p1 = (x: number[]) => 1 / (1 + Math.exp(-x.reduce((s, v, i) => s + v * W[i]!, 0.1)));

async function call(method: string, url: string, body?: unknown) {
  const res = await fetch(url, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as any };
}

/** `name{labels} value` of a metric in the Prometheus text. */
function metric(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  assert.ok(line, `${name} with ${labels} in\n${text}`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('adaptive batching over a server', () => {
  let s: Served;
  before(async () => {
    s = await serve();
    const data = s.instance.data;
    await data.createRepo({ name: 'train' });
    await data.commit('train', 'master', [{ op: 'put', path: '/model.onnx', content: logisticRegressionModel({ weights: W, bias: 0.1, features: 4 }) }]);
    await s.instance.registry.registerVersion('spam', { from: 'train@master:/model.onnx' });
    await s.instance.registry.setAlias('spam', 'production', 1, { actor: 'test' });
  });
  after(async () => s?.close());

  it('coalesces 32 concurrent requests into batches of up to 8 and gives each request its own outputs', async () => {
    const created = await call('POST', `${s.url}/api/v1/deployments`, { name: 'batched', model: 'spam@production', max_batch_size: 8, max_batch_delay_us: 20_000 });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.deepEqual(created.body.config, { batching: { max_batch_size: 8, max_batch_delay_us: 20_000 } });
    assert.deepEqual(created.body.serving.batching, { max_batch_size: 8, max_batch_delay_us: 20_000, active: true });

    // Rows of 1 and 2: a batch is counted in rows, and every request gets back exactly its rows.
    const xs = Array.from({ length: 32 }, (_, i) => Array.from({ length: i % 3 === 0 ? 2 : 1 }, (_, r) => [i, r - 1, i / 7, -i / 3]));
    const results = await Promise.all(
      xs.map((x, i) => call('POST', `${s.url}/v2/models/batched/infer`, { id: `r${i}`, inputs: [{ name: 'input', shape: [x.length, 4], datatype: 'FP32', data: x }] })),
    );
    results.forEach((res, i) => {
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.id, `r${i}`);
      const x = xs[i]!;
      const probs = res.body.outputs.find((o: any) => o.name === 'probabilities');
      const label = res.body.outputs.find((o: any) => o.name === 'label');
      assert.deepEqual(probs.shape, [x.length, 2]);
      assert.deepEqual(label.shape, [x.length]);
      x.forEach((row, r) => {
        const p = p1(row.map((v) => Math.fround(v)));
        assert.ok(Math.abs(probs.data[r * 2 + 1] - p) < 1e-5, `request ${i} row ${r}: ${probs.data[r * 2 + 1]} vs ${p}`);
        assert.equal(label.data[r], p > 0.5 ? 1 : 0);
      });
    });

    const text = await (await fetch(`${s.url}/metrics`)).text();
    const labels = 'deployment="batched",version="1"';
    const runs = metric(text, 'strata_serving_batch_size_count', labels);
    const requests = metric(text, 'strata_serving_batch_size_sum', labels);
    const alone = metric(text, 'strata_serving_batch_size_bucket', `le="1",${labels}`);
    assert.equal(requests, 32);
    assert.ok(runs < 32, `${runs} runs for 32 requests`);
    assert.ok(alone < runs, 'some runs held more than one request');
    assert.equal(metric(text, 'strata_serving_batch_size_bucket', `le="8",${labels}`), runs, 'no run held more than 8 requests');
  });

  it('changes and turns off batching with an update, and rejects bad settings', async () => {
    const changed = await call('PATCH', `${s.url}/api/v1/deployments/batched`, { max_batch_delay_us: 500 });
    assert.equal(changed.status, 200, JSON.stringify(changed.body));
    assert.deepEqual(changed.body.config, { batching: { max_batch_size: 8, max_batch_delay_us: 500 } });
    const res = await Promise.all(Array.from({ length: 8 }, () => call('POST', `${s.url}/api/v1/deployments/batched/predict`, { inputs: { input: [[1, 2, 3, 4]] } })));
    for (const r of res) assert.ok(Math.abs(r.body.outputs.probabilities[0][1] - p1([1, 2, 3, 4])) < 1e-5);
    const off = await call('PATCH', `${s.url}/api/v1/deployments/batched`, { max_batch_size: 1 });
    assert.deepEqual(off.body.config, {});
    assert.equal(off.body.serving.batching, undefined);
    for (const body of [
      { name: 'b1', model: 'spam@production', max_batch_size: 8 },
      { name: 'b2', model: 'spam@production', max_batch_size: 0, max_batch_delay_us: 10 },
      { name: 'b3', model: 'spam@production', max_batch_size: 8, max_batch_delay_us: -1 },
    ]) {
      const r = await call('POST', `${s.url}/api/v1/deployments`, body);
      assert.equal(r.status, 400, JSON.stringify(r.body));
    }
  });
});

describe('BatchingModel', () => {
  const f32 = (dims: number[], values: number[]): HostTensor => ({ type: 'float32', dims, data: Float32Array.from(values) });
  const signature: ModelSignature = {
    inputs: [{ name: 'x', datatype: 'FP32', onnxType: 'tensor(float)', shape: ['N', 'K'] }],
    outputs: [{ name: 'sum', datatype: 'FP32', onnxType: 'tensor(float)', shape: ['N'] }],
  } as unknown as ModelSignature;

  /** Sums each row; records the rows of every run. */
  function rowSum(opts: { failOn?: number; dropRow?: boolean } = {}) {
    const runs: number[][] = [];
    const model: LoadedModel = {
      async infer(inputs) {
        const x = inputs.x!;
        const [n, k] = x.dims as [number, number];
        runs.push([n, k]);
        const data = x.data as Float32Array;
        if (opts.failOn !== undefined && data.includes(opts.failOn)) throw new Error('bad value');
        const rows = opts.dropRow && n > 1 ? n - 1 : n;
        const out = new Float32Array(rows);
        for (let r = 0; r < rows; r++) for (let c = 0; c < k; c++) out[r]! += data[r * k + c]!;
        return { sum: { type: 'float32', dims: [rows], data: out } };
      },
      async release() {},
    };
    return { model, runs };
  }

  it('groups by non-batch shape, caps batches at the max size, and splits outputs back', async () => {
    const { model, runs } = rowSum();
    const sizes: number[] = [];
    const b = new BatchingModel(model, signature, (n) => sizes.push(n));
    b.configure({ max_batch_size: 4, max_batch_delay_us: 5000 });
    const reqs = [
      ...Array.from({ length: 6 }, (_, i) => f32([1, 3], [i, i, i])),
      ...Array.from({ length: 3 }, (_, i) => f32([1, 2], [i, 100])),
    ];
    const out = await Promise.all(reqs.map((x) => b.infer({ x })));
    out.forEach((o, i) => {
      const x = reqs[i]!.data as Float32Array;
      assert.deepEqual([...(o.sum!.data as Float32Array)], [x.reduce((a, v) => a + v, 0)]);
      assert.deepEqual(o.sum!.dims, [1]);
    });
    // Width 3: 4 then 2; width 2: 3. Never mixed.
    assert.deepEqual(runs.map(([n, k]) => `${n}x${k}`).sort(), ['2x3', '3x2', '4x3']);
    assert.deepEqual(sizes.sort(), [2, 3, 4]);
  });

  it('runs the requests of a failed or mis-shaped batch one by one', async () => {
    for (const opts of [{ failOn: 7 }, { dropRow: true }]) {
      const { model } = rowSum(opts);
      const b = new BatchingModel(model, signature);
      b.configure({ max_batch_size: 8, max_batch_delay_us: 2000 });
      const results = await Promise.allSettled([1, 7, 3].map((v) => b.infer({ x: f32([1, 2], [v, v]) })));
      assert.equal(results[0]!.status, 'fulfilled');
      assert.deepEqual([...((results[0] as PromiseFulfilledResult<Record<string, HostTensor>>).value.sum!.data as Float32Array)], [2]);
      assert.deepEqual([...((results[2] as PromiseFulfilledResult<Record<string, HostTensor>>).value.sum!.data as Float32Array)], [6]);
      assert.equal(results[1]!.status, opts.failOn ? 'rejected' : 'fulfilled');
    }
  });

  it('passes requests straight through for models without a dynamic batch dimension', async () => {
    const fixed = { ...signature, inputs: [{ ...signature.inputs[0]!, shape: [1, 3] }] } as ModelSignature;
    assert.match(notBatchable(fixed)!, /input "x" has no dynamic first/);
    assert.equal(notBatchable(signature), undefined);
    const { model, runs } = rowSum();
    const b = new BatchingModel(model, fixed);
    b.configure({ max_batch_size: 8, max_batch_delay_us: 2000 });
    assert.equal(b.batching, undefined);
    await Promise.all([1, 2, 3].map((v) => b.infer({ x: f32([1, 3], [v, v, v]) })));
    assert.equal(runs.length, 3);
    assert.throws(() => checkBatching(0, 10), /max batch size/);
    assert.throws(() => checkBatching(4, 2_000_000), /max batch delay/);
  });
});
