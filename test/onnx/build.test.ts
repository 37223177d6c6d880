// The logistic regression builder writes models ONNX Runtime loads and that
// compute what the math says they compute.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { StrataError } from '../../src/errors.js';
import { logisticRegressionModel } from '../../src/onnx/build.js';

const TOLERANCE = 1e-5;

function assertClose(actual: ArrayLike<number>, expected: number[], what: string) {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i]! - expected[i]!) <= TOLERANCE, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

/** Deterministic pseudo-random floats in [-1, 1). */
function floats(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

async function run(model: Uint8Array, x: Float32Array, rows: number, features: number, inputName = 'input') {
  const session = await ort.InferenceSession.create(Buffer.from(model));
  try {
    return await session.run({ [inputName]: new ort.Tensor('float32', x, [rows, features]) });
  } finally {
    await session.release();
  }
}

describe('logisticRegressionModel', () => {
  it('binary: probabilities [1 - p, p] with p = sigmoid(x·w + b), label = argmax, like a JS computation', async () => {
    const features = 6, rows = 5;
    const weights = floats(features, 1);
    const bias = 0.3;
    const x = floats(rows * features, 2);
    x.fill(0, 4 * features); // an all-zero row: p = sigmoid(b)
    const model = logisticRegressionModel({ weights, bias, features });

    const result = await run(model, x, rows, features);
    const expectedP: number[] = [];
    const expectedLabel: bigint[] = [];
    for (let r = 0; r < rows; r++) {
      let z = bias;
      for (let f = 0; f < features; f++) z += x[r * features + f]! * weights[f]!;
      const p = 1 / (1 + Math.exp(-z));
      expectedP.push(1 - p, p);
      expectedLabel.push(p > 0.5 ? 1n : 0n);
    }
    assert.deepEqual(result.probabilities!.dims, [rows, 2]);
    assert.equal(result.probabilities!.type, 'float32');
    assertClose(result.probabilities!.data as Float32Array, expectedP, 'probabilities');
    assert.equal(result.label!.type, 'int64');
    assert.deepEqual(result.label!.dims, [rows]);
    assert.deepEqual([...(result.label!.data as BigInt64Array)], expectedLabel);
    // Both classes occur, so the label check means something.
    assert.ok(expectedLabel.includes(0n) && expectedLabel.includes(1n), `labels ${expectedLabel}`);
  });

  it('multinomial: softmax over x·W + b for weights of features × classes', async () => {
    const features = 4, classes = 3, rows = 3;
    const weights = floats(features * classes, 3);
    const bias = Float32Array.of(0.1, -0.2, 0.05);
    const x = floats(rows * features, 4);
    const model = logisticRegressionModel({ weights, bias, features, inputName: 'x', outputName: 'p', labelName: 'y' });

    const result = await run(model, x, rows, features, 'x');
    const expected: number[] = [];
    const labels: bigint[] = [];
    for (let r = 0; r < rows; r++) {
      const z = [...bias].map((b, c) => {
        let s = b;
        for (let f = 0; f < features; f++) s += x[r * features + f]! * weights[f * classes + c]!;
        return s;
      });
      const max = Math.max(...z);
      const e = z.map((v) => Math.exp(v - max));
      const sum = e.reduce((a, b) => a + b, 0);
      expected.push(...e.map((v) => v / sum));
      labels.push(BigInt(z.indexOf(max)));
    }
    assert.deepEqual(result.p!.dims, [rows, classes]);
    assertClose(result.p!.data as Float32Array, expected, 'p');
    assert.deepEqual([...(result.y!.data as BigInt64Array)], labels);
  });

  it('builds a 1,024-feature model with a fixed batch size that ONNX Runtime runs', async () => {
    const features = 1024, rows = 8;
    const weights = floats(features, 5);
    const model = logisticRegressionModel({ weights, bias: -0.5, features, batch: rows });
    const session = await ort.InferenceSession.create(Buffer.from(model));
    try {
      assert.deepEqual(session.inputNames, ['input']);
      assert.deepEqual(session.outputNames, ['probabilities', 'label']);
      const result = await session.run({ input: new ort.Tensor('float32', floats(rows * features, 6), [rows, features]) });
      assert.deepEqual(result.probabilities!.dims, [rows, 2]);
      const p = result.probabilities!.data as Float32Array;
      for (let r = 0; r < rows; r++) assert.ok(Math.abs(p[2 * r]! + p[2 * r + 1]! - 1) <= TOLERANCE);
    } finally {
      await session.release();
    }
  });

  it('refuses inconsistent or non-finite parameters with INVALID_ARGUMENT', () => {
    const bad: [string, () => unknown, RegExp][] = [
      ['weights not a multiple of features', () => logisticRegressionModel({ weights: new Float32Array(5), bias: 0, features: 2 }), /weights has 5 values/],
      ['bias per class', () => logisticRegressionModel({ weights: new Float32Array(6), bias: 0, features: 2 }), /bias has 1 values; expected 3/],
      ['NaN weight', () => logisticRegressionModel({ weights: Float32Array.of(NaN, 1), bias: 0, features: 2 }), /finite/],
      ['features', () => logisticRegressionModel({ weights: new Float32Array(2), bias: 0, features: 0 }), /features must be a positive integer/],
      ['batch', () => logisticRegressionModel({ weights: new Float32Array(2), bias: 0, features: 2, batch: 0 }), /batch must be/],
      ['names', () => logisticRegressionModel({ weights: new Float32Array(2), bias: 0, features: 2, outputName: 'input' }), /distinct/],
    ];
    for (const [what, build, message] of bad) {
      assert.throws(build, (err: unknown) => err instanceof StrataError && err.code === 'INVALID_ARGUMENT' && message.test(err.message), what);
    }
  });
});
