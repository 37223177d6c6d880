// Traffic over a real server: a canary split by weight (sticky by request
// id), a shadow whose responses are compared but never returned, and the
// Prometheus /metrics endpoint.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { register } from 'prom-client';
import { startServer } from '../../src/api/server.js';
import { logisticRegressionModel } from '../../src/onnx/build.js';
import { serve, type Served } from '../api/harness.js';

const W1 = Float32Array.of(0.5, -0.25, 1, 2);
const W2 = Float32Array.of(-1, 0.75, 0.5, -2);
const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));
const p1 = (w: Float32Array, b: number, x: number[]) => sigmoid(x.reduce((s, v, i) => s + v * w[i]!, b));

async function call(method: string, url: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(url, { method, headers: { 'content-type': 'application/json', ...headers }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: (text ? JSON.parse(text) : undefined) as any };
}

const x = [
  [1, 2, 3, 4],
  [-1, 0.5, 0, 2],
  [2, -1, 0.5, -3],
];
const request = (extra: Record<string, unknown> = {}) => ({ inputs: [{ name: 'input', shape: [3, 4], datatype: 'FP32', data: x }], ...extra });

describe('canary, shadow and metrics', () => {
  let s: Served;
  before(async () => {
    s = await serve();
    const data = s.instance.data;
    await data.createRepo({ name: 'train' });
    const register = async (model: Uint8Array) => {
      await data.commit('train', 'master', [{ op: 'put', path: '/model.onnx', content: model }]);
      await s.instance.registry.registerVersion('spam', { from: 'train@master:/model.onnx' });
    };
    await register(logisticRegressionModel({ weights: W1, bias: 0.1, features: 4 })); // v1
    await register(logisticRegressionModel({ weights: W2, bias: -0.2, features: 4 })); // v2
    await register(logisticRegressionModel({ weights: Float32Array.from(W1), bias: 0.1, features: 4 })); // v3: same as v1
    await register(logisticRegressionModel({ weights: Float32Array.of(1, 1, 1), bias: 0, features: 3 })); // v4: takes 3 features
    await s.instance.registry.setAlias('spam', 'production', 1, { actor: 'test' });
  });
  after(async () => s?.close());

  const inspect = async (name: string) => (await call('GET', `${s.url}/api/v1/deployments/${name}`)).body;
  const infer = async (name: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) => {
    const res = await call('POST', `${s.url}/v2/models/${name}/infer`, request(extra), headers);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.headers.get('strata-model-version'), res.body.model_version, 'the header names the version that answered');
    assert.equal(res.body.parameters['strata-model-version'], res.body.model_version);
    return res;
  };

  it('splits traffic by the canary weight, loads and warms the canary, and counts requests per version', async () => {
    const created = await call('POST', `${s.url}/api/v1/deployments`, { name: 'split', model: 'spam@production', canary: 'spam@2=50' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.deepEqual(created.body.config, { canary: { model: 'spam@2', weight: 50 } });
    assert.deepEqual(created.body.serving.canary, { model: 'spam@2', version: 2, state: 'ready', weight: 50 });

    const counts: Record<string, number> = {};
    for (let i = 0; i < 200; i++) {
      const res = await infer('split');
      const v = res.body.model_version as string;
      counts[v] = (counts[v] ?? 0) + 1;
      assert.equal(res.headers.get('strata-lane'), v === '2' ? 'canary' : 'primary');
      // The answering version's numbers, not the other's.
      const probs = res.body.outputs.find((o: any) => o.name === 'probabilities').data as number[];
      const [w, b] = v === '2' ? [W2, -0.2] : [W1, 0.1];
      assert.ok(Math.abs(probs[1]! - p1(w, b, x[0]!)) < 1e-5);
    }
    assert.equal(counts['1']! + counts['2']!, 200);
    // Binomial(200, 0.5): sd ~7; 60..140 is more than 5 sd either side.
    assert.ok(counts['1']! >= 60 && counts['1']! <= 140, JSON.stringify(counts));
    const traffic = (await inspect('split')).serving.traffic;
    assert.deepEqual(traffic.versions, { 'spam@1': { requests: counts['1'], failures: 0 }, 'spam@2': { requests: counts['2'], failures: 0 } });
    assert.equal(typeof traffic.since, 'number');
  });

  it('sends the same request id to the same version (OIP id or x-request-id)', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 40; i++) {
      const id = `req-${i}`;
      const first = (await infer('split', { id })).body.model_version;
      seen.add(first);
      for (let k = 0; k < 3; k++) assert.equal((await infer('split', { id })).body.model_version, first, `id ${id}`);
      assert.equal((await infer('split', {}, { 'x-request-id': id })).body.model_version, first, `x-request-id ${id}`);
      const plain = await call('POST', `${s.url}/api/v1/deployments/split/predict`, { inputs: { input: x } }, { 'x-request-id': id });
      assert.equal(String(plain.body.version), first, `plain predict, x-request-id ${id}`);
    }
    assert.deepEqual([...seen].sort(), ['1', '2'], 'ids spread over both versions');
  });

  it('honours weights 0 and 100, explicit versions, and removing the canary', async () => {
    const patch = async (body: unknown) => {
      const res = await call('PATCH', `${s.url}/api/v1/deployments/split`, body);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body;
    };
    await patch({ canary: 'spam@2=0' });
    for (let i = 0; i < 50; i++) assert.equal((await infer('split', { id: `w0-${i}` })).body.model_version, '1');
    await patch({ canary: 'spam@2=100' });
    for (let i = 0; i < 50; i++) assert.equal((await infer('split', { id: `w100-${i}` })).body.model_version, '2');
    // An explicit version reaches either one, whatever the weight.
    assert.equal((await call('POST', `${s.url}/v2/models/split/versions/1/infer`, request())).body.model_version, '1');
    assert.equal((await call('POST', `${s.url}/v2/models/split/versions/2/infer`, request())).body.model_version, '2');
    assert.equal((await call('POST', `${s.url}/v2/models/split/versions/3/infer`, request())).status, 404);
    assert.equal((await fetch(`${s.url}/v2/models/split/versions/2/ready`)).status, 200, 'the canary version is ready');
    const bad = await call('PATCH', `${s.url}/api/v1/deployments/split`, { canary: 'spam@2=101' });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /percent from 0 to 100/);
    const removed = await patch({ canary: null });
    assert.deepEqual(removed.config, {});
    assert.equal(removed.serving.canary, undefined);
    for (let i = 0; i < 20; i++) assert.equal((await infer('split')).body.model_version, '1');
  });

  const settle = async (name: string, n: number) => {
    for (let i = 0; i < 200; i++) {
      const st = (await inspect(name)).serving.shadow.stats;
      if (st.compared + st.failures >= n) return st;
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.fail('shadow requests did not settle');
  };

  it('mirrors every request to a shadow, records how they differ, and returns only the primary', async () => {
    const created = await call('POST', `${s.url}/api/v1/deployments`, { name: 'mirror', model: 'spam@1', shadow: 'spam@2' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.serving.shadow.state, 'ready');
    assert.equal(created.body.serving.shadow.version, 2);
    for (let i = 0; i < 20; i++) {
      const res = await infer('mirror');
      assert.equal(res.body.model_version, '1');
      const probs = res.body.outputs.find((o: any) => o.name === 'probabilities').data as number[];
      x.forEach((row, r) => assert.ok(Math.abs(probs[2 * r + 1]! - p1(W1, 0.1, row)) < 1e-5));
    }
    const st = await settle('mirror', 20);
    const labelsDiffer = x.some((row) => p1(W1, 0.1, row) > 0.5 !== p1(W2, -0.2, row) > 0.5);
    const maxDiff = Math.max(...x.map((row) => Math.abs(p1(W1, 0.1, row) - p1(W2, -0.2, row))));
    assert.equal(st.requests, 20);
    assert.equal(st.failures, 0);
    assert.equal(st.compared, 20);
    assert.equal(st.differing, 20);
    assert.equal(st.outputs.probabilities.compared, 20);
    assert.equal(st.outputs.probabilities.differing, 20);
    assert.ok(Math.abs(st.outputs.probabilities.max_abs_diff - maxDiff) < 1e-5, `${st.outputs.probabilities.max_abs_diff} vs ${maxDiff}`);
    assert.ok(labelsDiffer);
    assert.equal(st.outputs.label.differing, 20);
    // Only the primary is counted as served.
    assert.deepEqual(Object.keys((await inspect('mirror')).serving.traffic.versions), ['spam@1']);

    // An identical shadow never differs.
    await call('PATCH', `${s.url}/api/v1/deployments/mirror`, { shadow: 'spam@3' });
    for (let i = 0; i < 10; i++) await infer('mirror');
    const same = await settle('mirror', 10);
    assert.equal(same.requests, 10, 'stats start over for a new shadow');
    assert.equal(same.differing, 0);
    assert.equal(same.max_abs_diff, 0);
  });

  it('counts shadow failures without affecting the response', async () => {
    await call('PATCH', `${s.url}/api/v1/deployments/mirror`, { shadow: 'spam@4' }); // takes 3 features: every mirrored request is bad input for it
    for (let i = 0; i < 10; i++) assert.equal((await infer('mirror')).body.model_version, '1');
    const st = await settle('mirror', 10);
    assert.equal(st.failures, 10);
    assert.equal(st.compared, 0);
    assert.match(st.last_error, /shape/);
    const cleared = await call('PATCH', `${s.url}/api/v1/deployments/mirror`, { shadow: null });
    assert.equal(cleared.body.serving.shadow, undefined);
  });

  it('exposes Prometheus metrics by deployment and version', async () => {
    await infer('split');
    assert.equal((await call('POST', `${s.url}/v2/models/split/infer`, { inputs: [{ name: 'nope', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] })).status, 400);
    const res = await fetch(`${s.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    const text = await res.text();
    const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
    assert.ok(value(/^strata_serving_requests_total\{deployment="split",version="1",lane="primary"\} (\d+)/m) > 0, text);
    assert.equal((await fetch(`${s.url}/v2/models/split/versions/2/ready`)).status, 404, 'no canary any more');
    assert.ok(value(/^strata_serving_requests_total\{deployment="split",version="2",lane="canary"\} (\d+)/m) > 0);
    assert.equal(value(/^strata_serving_requests_total\{deployment="mirror",version="2",lane="shadow"\} (\d+)/m), 20);
    assert.ok(value(/^strata_serving_failures_total\{deployment="split",version="1",lane="primary",code="INVALID_ARGUMENT"\} (\d+)/m) >= 1);
    for (const h of ['compute', 'queue', 'request']) {
      assert.ok(value(new RegExp(`^strata_serving_${h}_seconds_count\\{deployment="split",version="1"\\} (\\d+)`, 'm')) > 0, h);
      assert.match(text, new RegExp(`^strata_serving_${h}_seconds_bucket\\{le="0.001",deployment="split",version="1"\\}`, 'm'));
    }
    // The metrics live in the serving manager's own registry, not prom-client's global one: a second
    // server in this process (same instance) registers /metrics again without a clash and shows the same counters.
    assert.equal(register.getSingleMetric('strata_serving_requests_total'), undefined);
    const second = await startServer({ instance: s.instance, port: 0, scheduler: false });
    try {
      const again = await (await fetch(`${second.url}/metrics`)).text();
      assert.match(again, /^strata_serving_requests_total\{deployment="split",version="1",lane="primary"\} \d+/m);
    } finally {
      await second.app.close(); // not second.close(): that would stop the serving manager both servers share
    }
    assert.equal((await call('POST', `${s.url}/v2/models/split/infer`, request())).status, 200);
  });
});
