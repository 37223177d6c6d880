// Serving over a real server: Open Inference Protocol metadata and inference
// against real ONNX models (numbers checked against a JS computation), bad
// input answered with protocol-shaped errors, lineage on every prediction,
// and a hot swap under concurrent load that fails no request.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { logisticRegressionModel } from '../../src/onnx/build.js';
import { serve, type Served } from '../api/harness.js';

const W1 = Float32Array.of(0.5, -0.25, 1, 2);
const W2 = Float32Array.of(-1, 0.75, 0.5, -2);
const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));
const p1 = (w: Float32Array, b: number, x: number[]) => sigmoid(x.reduce((s, v, i) => s + v * w[i]!, b));

async function post(url: string, body: unknown, raw = false) {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: raw ? (body as string) : JSON.stringify(body) });
  return { status: res.status, headers: res.headers, body: (await res.json()) as any };
}

describe('model serving over the Open Inference Protocol', () => {
  let s: Served;
  let rawCommit: string;
  before(async () => {
    s = await serve();
    const data = s.instance.data;
    await data.createRepo({ name: 'raw' });
    await data.createRepo({ name: 'train' });
    rawCommit = (await data.commit('raw', 'master', [{ op: 'put', path: '/d.csv', content: new TextEncoder().encode('1,2\n') }])).commit;
    const provenance = [{ repo: 'raw', commit: rawCommit }];
    await data.commit('train', 'master', [{ op: 'put', path: '/model.onnx', content: logisticRegressionModel({ weights: W1, bias: 0.1, features: 4 }) }], { provenance });
    await s.instance.registry.registerVersion('spam', { from: 'train@master:/model.onnx' });
    await data.commit('train', 'master', [{ op: 'put', path: '/model.onnx', content: logisticRegressionModel({ weights: W2, bias: -0.2, features: 4 }) }], { provenance });
    await s.instance.registry.registerVersion('spam', { from: 'train@master:/model.onnx' });
    await s.instance.registry.setAlias('spam', 'production', 1, { actor: 'test' });
    const created = await post(`${s.url}/api/v1/deployments`, { name: 'spam-prod', model: 'spam@production' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.serving.state, 'ready');
    assert.equal(created.body.serving.version, 1);
  });
  after(async () => s?.close());

  const x = [
    [1, 2, 3, 4],
    [-1, 0.5, 0, 2],
  ];
  const request = (extra: Record<string, unknown> = {}) => ({ inputs: [{ name: 'input', shape: [2, 4], datatype: 'FP32', data: x }], ...extra });

  it('serves server and model metadata, liveness and readiness', async () => {
    assert.deepEqual(await (await fetch(`${s.url}/v2`)).json(), { name: 'strata', version: (await (await fetch(`${s.url}/v2`)).json() as any).version, extensions: ['binary_tensor_data'] });
    assert.equal((await fetch(`${s.url}/v2/health/live`)).status, 200);
    assert.equal((await fetch(`${s.url}/v2/health/ready`)).status, 200);
    assert.equal((await fetch(`${s.url}/v2/models/spam-prod/ready`)).status, 200);
    assert.equal((await fetch(`${s.url}/v2/models/spam-prod/versions/1/ready`)).status, 200);
    const meta = (await (await fetch(`${s.url}/v2/models/spam-prod`)).json()) as any;
    assert.deepEqual(meta, {
      name: 'spam-prod',
      versions: ['1'],
      platform: 'onnxruntime',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 4] }],
      outputs: [
        { name: 'probabilities', datatype: 'FP32', shape: [-1, 2] },
        { name: 'label', datatype: 'INT64', shape: [-1] },
      ],
    });
  });

  it('infers with nested or flat data and computes what the math says, with lineage in headers and parameters', async () => {
    for (const data of [x, x.flat()]) {
      const res = await post(`${s.url}/v2/models/spam-prod/infer`, { id: 'req-1', inputs: [{ name: 'input', shape: [2, 4], datatype: 'FP32', data }] });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.id, 'req-1');
      assert.equal(res.body.model_name, 'spam-prod');
      assert.equal(res.body.model_version, '1');
      const probs = res.body.outputs.find((o: any) => o.name === 'probabilities');
      assert.deepEqual(probs.shape, [2, 2]);
      assert.equal(probs.datatype, 'FP32');
      const expected = x.flatMap((row) => [1 - p1(W1, 0.1, row), p1(W1, 0.1, row)]);
      probs.data.forEach((v: number, i: number) => assert.ok(Math.abs(v - expected[i]!) < 1e-5, `${v} vs ${expected[i]}`));
      const label = res.body.outputs.find((o: any) => o.name === 'label');
      assert.deepEqual(label, { name: 'label', shape: [2], datatype: 'INT64', data: x.map((row) => (p1(W1, 0.1, row) > 0.5 ? 1 : 0)) });
      assert.equal(res.headers.get('strata-model'), 'spam');
      assert.equal(res.headers.get('strata-model-version'), '1');
      assert.equal(res.headers.get('strata-data-commit'), `raw@${rawCommit}`);
      assert.deepEqual(res.body.parameters, { 'strata-model': 'spam', 'strata-model-version': '1', 'strata-data-commit': `raw@${rawCommit}` });
    }
  });

  it('returns only the requested outputs', async () => {
    const res = await post(`${s.url}/v2/models/spam-prod/versions/1/infer`, request({ outputs: [{ name: 'label' }] }));
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body.outputs.map((o: any) => o.name), ['label']);
  });

  /** A binary tensor data extension body: the JSON header, then the tensors' bytes. */
  const binaryBody = (header: unknown, ...tensors: Uint8Array[]) => {
    const json = Buffer.from(JSON.stringify(header));
    return { body: Buffer.concat([json, ...tensors]), headerLength: json.length };
  };
  const postBinary = async (url: string, body: Buffer, headerLength: number | string, contentType?: string) => {
    const headers: Record<string, string> = { 'inference-header-content-length': String(headerLength), ...(contentType ? { 'content-type': contentType } : {}) };
    const res = await fetch(url, { method: 'POST', headers, body: new Uint8Array(body) });
    return { status: res.status, headers: res.headers, bytes: Buffer.from(await res.arrayBuffer()) };
  };
  const bytesOf = (a: Float32Array | BigInt64Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

  it('takes and returns tensors as binary data (the binary tensor data extension)', async () => {
    const input = Float32Array.from(x.flat());
    const expected = x.flatMap((row) => [1 - p1(W1, 0.1, row), p1(W1, 0.1, row)]);
    const header = { id: 'bin-1', inputs: [{ name: 'input', shape: [2, 4], datatype: 'FP32', parameters: { binary_data_size: 32 } }] };
    // Binary in, JSON out; with application/octet-stream or no content type at all.
    for (const type of ['application/octet-stream', undefined]) {
      const { body, headerLength } = binaryBody(header, bytesOf(input));
      const res = await postBinary(`${s.url}/v2/models/spam-prod/infer`, body, headerLength, type);
      assert.equal(res.status, 200, res.bytes.toString());
      assert.equal(res.headers.get('inference-header-content-length'), null);
      const json = JSON.parse(res.bytes.toString());
      assert.equal(json.id, 'bin-1');
      json.outputs.find((o: any) => o.name === 'probabilities').data.forEach((v: number, i: number) => assert.ok(Math.abs(v - expected[i]!) < 1e-5));
    }
    // Binary out too: every output (binary_data_output), or one (binary_data on it).
    const all = binaryBody({ ...header, parameters: { binary_data_output: true } }, bytesOf(input));
    const res = await postBinary(`${s.url}/v2/models/spam-prod/infer`, all.body, all.headerLength, 'application/octet-stream');
    assert.equal(res.status, 200, res.bytes.toString());
    assert.equal(res.headers.get('content-type'), 'application/octet-stream');
    const length = Number(res.headers.get('inference-header-content-length'));
    const json = JSON.parse(res.bytes.subarray(0, length).toString());
    assert.equal(json.model_version, '1');
    const described = json.outputs.map((o: any) => [o.name, o.datatype, o.shape, o.parameters.binary_data_size, o.data]);
    assert.deepEqual(described.sort(), [
      ['label', 'INT64', [2], 16, undefined],
      ['probabilities', 'FP32', [2, 2], 16, undefined],
    ]);
    let at = length;
    for (const o of json.outputs) {
      const bytes = res.bytes.subarray(at, at + o.parameters.binary_data_size);
      at += o.parameters.binary_data_size;
      if (o.name === 'label') {
        assert.deepEqual([...new BigInt64Array(Uint8Array.from(bytes).buffer)].map(Number), x.map((row) => (p1(W1, 0.1, row) > 0.5 ? 1 : 0)));
      } else {
        [...new Float32Array(Uint8Array.from(bytes).buffer)].forEach((v, i) => assert.ok(Math.abs(v - expected[i]!) < 1e-5));
      }
    }
    assert.equal(at, res.bytes.length);
    const one = binaryBody({ ...header, outputs: [{ name: 'label', parameters: { binary_data: true } }, { name: 'probabilities' }] }, bytesOf(input));
    const mixed = await postBinary(`${s.url}/v2/models/spam-prod/infer`, one.body, one.headerLength);
    const mixedJson = JSON.parse(mixed.bytes.subarray(0, Number(mixed.headers.get('inference-header-content-length'))).toString());
    assert.equal(mixedJson.outputs.find((o: any) => o.name === 'label').parameters.binary_data_size, 16);
    assert.equal(mixedJson.outputs.find((o: any) => o.name === 'probabilities').data.length, 4);
  });

  it('rejects binary requests whose sizes do not add up, naming the input', async () => {
    const input = bytesOf(Float32Array.from(x.flat()));
    const tensor = (size: number, extra: Record<string, unknown> = {}) => ({ inputs: [{ name: 'input', shape: [2, 4], datatype: 'FP32', ...extra, parameters: { binary_data_size: size } }] });
    const cases: [{ body: Buffer; headerLength: number }, RegExp, (number | string)?][] = [
      [binaryBody(tensor(28), input.subarray(0, 28)), /needs 32 bytes, binary_data_size is 28/],
      [binaryBody(tensor(64), input), /binary_data_size is 64 but 32 byte\(s\) of binary data are left/],
      [binaryBody(tensor(32), input, input), /32 byte\(s\) after the JSON header belong to no input/],
      [binaryBody(tensor(32, { data: x }), input), /give "data" or parameters.binary_data_size, not both/],
      [binaryBody(tensor(-1), input), /binary_data_size must be a whole number of bytes/],
      [binaryBody(tensor(32), input), /Inference-Header-Content-Length "ten"/, 'ten'],
      [binaryBody(tensor(32), input), /at most the body's/, 10_000],
    ];
    for (const [{ body, headerLength }, message, length] of cases) {
      const res = await postBinary(`${s.url}/v2/models/spam-prod/infer`, body, length ?? headerLength);
      assert.equal(res.status, 400, res.bytes.toString());
      assert.match(JSON.parse(res.bytes.toString()).error, message);
    }
  });

  it('answers the plain JSON predict endpoint with nested outputs and lineage', async () => {
    const res = await post(`${s.url}/api/v1/deployments/spam-prod/predict`, { inputs: { input: x } });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.model, 'spam');
    assert.equal(res.body.version, 1);
    assert.equal(res.body.outputs.probabilities.length, 2);
    assert.equal(res.body.outputs.probabilities[0].length, 2);
    assert.deepEqual(res.body.outputs.label, x.map((row) => (p1(W1, 0.1, row) > 0.5 ? 1 : 0)));
    assert.equal(res.headers.get('strata-data-commit'), `raw@${rawCommit}`);
  });

  it('rejects bad tensors with 400 {"error": "..."} naming the problem, and keeps serving', async () => {
    const cases: [unknown, RegExp][] = [
      [{ inputs: [{ name: 'nope', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] }, /unknown input "nope"/],
      [{ inputs: [{ name: 'input', shape: [1, 4], datatype: 'INT64', data: [1, 2, 3, 4] }] }, /datatype INT64 is wrong; the model takes FP32/],
      [{ inputs: [{ name: 'input', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] }] }, /shape \[1, 3\] does not fit/],
      [{ inputs: [{ name: 'input', shape: [2, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] }, /needs 8 values but data has 4/],
      [{ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [1, 2, 'x', 4] }] }, /data\[2\] = "x" is not a number/],
      [{ inputs: [] }, /"inputs" must be a non-empty array/],
      [request({ outputs: [{ name: 'nope' }] }), /unknown output "nope"/],
    ];
    for (const [body, message] of cases) {
      const res = await post(`${s.url}/v2/models/spam-prod/infer`, body);
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal(typeof res.body.error, 'string');
      assert.match(res.body.error, message);
    }
    const notJson = await post(`${s.url}/v2/models/spam-prod/infer`, '{"inputs": [', true);
    assert.equal(notJson.status, 400);
    assert.match(notJson.body.error, /not valid JSON/);
    const simple = await post(`${s.url}/api/v1/deployments/spam-prod/predict`, { inputs: { input: [[1, 2], [3]] } });
    assert.equal(simple.status, 400);
    assert.equal(simple.body.error.code, 'INVALID_ARGUMENT');
    assert.equal((await post(`${s.url}/v2/models/spam-prod/infer`, request())).status, 200);
  });

  it('answers unknown deployments and versions with 404 {"error": "..."}', async () => {
    for (const url of [`${s.url}/v2/models/nope/infer`, `${s.url}/v2/models/spam-prod/versions/7/infer`]) {
      const res = await post(url, request());
      assert.equal(res.status, 404, JSON.stringify(res.body));
      assert.equal(typeof res.body.error, 'string');
    }
    const meta = await fetch(`${s.url}/v2/models/nope`);
    assert.equal(meta.status, 404);
    assert.equal((await fetch(`${s.url}/v2/models/nope/ready`)).status, 404);
  });

  it('follows alias moves under concurrent load: no failed request, the new version within 1 s, and back', async () => {
    let failures = 0;
    let total = 0;
    const seen: { at: number; version: string }[] = [];
    let running = true;
    const loop = async () => {
      while (running) {
        total++;
        try {
          const res = await fetch(`${s.url}/v2/models/spam-prod/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request()) });
          const body = (await res.json()) as any;
          if (res.status !== 200) failures++;
          else seen.push({ at: Date.now(), version: body.model_version });
        } catch {
          failures++;
        }
      }
    };
    const loops = [loop(), loop(), loop(), loop()];
    await new Promise((r) => setTimeout(r, 500));
    const movedUp = Date.now();
    await s.instance.registry.setAlias('spam', 'production', 2, { actor: 'test' });
    await new Promise((r) => setTimeout(r, 1300));
    const movedBack = Date.now();
    await s.instance.registry.setAlias('spam', 'production', 1, { actor: 'test' });
    await new Promise((r) => setTimeout(r, 1300));
    running = false;
    await Promise.all(loops);
    assert.equal(failures, 0, `${failures} of ${total} requests failed`);
    const firstV2 = seen.find((r) => r.version === '2' && r.at >= movedUp);
    assert.ok(firstV2 && firstV2.at - movedUp <= 1000, 'version 2 served within 1 s of the move');
    assert.ok(seen.filter((r) => r.at >= movedUp + 1000 && r.at < movedBack).every((r) => r.version === '2'), 'only version 2 after the swap');
    assert.ok(seen.filter((r) => r.at >= movedBack + 1000).every((r) => r.version === '1'), 'rolled back to version 1');
    assert.ok(seen.some((r) => r.at >= movedBack + 1000), 'requests served after the rollback');
  });
});
