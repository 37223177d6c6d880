// readOnnxSignature reports what a caller sends and gets back, from the model
// bytes alone, and refuses bytes that are not an ONNX model.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { onnx as Onnx } from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { InvalidArgumentError } from '../../src/errors.js';
import { logisticRegressionModel } from '../../src/onnx/build.js';
import { onnx } from '../../src/onnx/proto.js';
import { isOnnxPath, readOnnxSignature } from '../../src/onnx/signature.js';

const binary = () => logisticRegressionModel({ weights: new Float32Array(16).fill(0.5), bias: 0, features: 16 });

describe('readOnnxSignature', () => {
  it('names, Open Inference Protocol datatypes and shapes, with a symbolic batch dimension', () => {
    assert.deepEqual(readOnnxSignature(binary()), {
      inputs: [{ name: 'input', datatype: 'FP32', onnxType: 'float', shape: ['batch', 16] }],
      outputs: [
        { name: 'probabilities', datatype: 'FP32', onnxType: 'float', shape: ['batch', 2] },
        { name: 'label', datatype: 'INT64', onnxType: 'int64', shape: ['batch'] },
      ],
      opset: 13,
      producer: 'strata',
    });
  });

  it('a fixed batch size is a number, and custom names come through', () => {
    const sig = readOnnxSignature(
      logisticRegressionModel({ weights: new Float32Array(12), bias: new Float32Array(3), features: 4, batch: 7, inputName: 'x', outputName: 'p', labelName: 'y' }),
    );
    assert.deepEqual(sig.inputs, [{ name: 'x', datatype: 'FP32', onnxType: 'float', shape: [7, 4] }]);
    assert.deepEqual(sig.outputs.map((o) => [o.name, o.shape]), [['p', [7, 3]], ['y', [7]]]);
  });

  it('skips graph inputs that are initializers, and reports unknown dims, unknown rank and other types', async () => {
    const model = onnx().ModelProto.decode(binary());
    const graph = model.graph as Onnx.GraphProto;
    // Old exporters (IR < 4) list every initializer as a graph input too.
    graph.input.push(onnx().ValueInfoProto.create({
      name: 'lr.weights',
      type: { tensorType: { elemType: onnx().TensorProto.DataType.FLOAT, shape: { dim: [{ dimValue: 16 }, { dimValue: 1 }] } } },
    }));
    // Declared outputs with a dim of unknown size and with no shape at all.
    graph.output[0]!.type!.tensorType!.shape!.dim![0] = onnx().TensorShapeProto.Dimension.create({});
    delete (graph.output[1]!.type!.tensorType as { shape?: unknown }).shape;
    const bytes = onnx().ModelProto.encode(model).finish();

    const sig = readOnnxSignature(bytes);
    assert.deepEqual(sig.inputs.map((i) => i.name), ['input']);
    assert.deepEqual(sig.outputs[0]!.shape, [null, 2]);
    assert.deepEqual(sig.outputs[1], { name: 'label', datatype: 'INT64', onnxType: 'int64', shape: [], unknownRank: true });
    // Still a model ONNX Runtime accepts: the edit only loosened declarations.
    const session = await ort.InferenceSession.create(Buffer.from(bytes));
    assert.deepEqual(session.inputNames, ['input']);
    await session.release();
  });

  it('maps element types to Open Inference Protocol names (BYTES for string, FP64, BOOL, ...)', () => {
    const types: [number, string, string][] = [
      [onnx().TensorProto.DataType.STRING, 'BYTES', 'string'],
      [onnx().TensorProto.DataType.DOUBLE, 'FP64', 'double'],
      [onnx().TensorProto.DataType.BOOL, 'BOOL', 'bool'],
      [onnx().TensorProto.DataType.FLOAT16, 'FP16', 'float16'],
      [onnx().TensorProto.DataType.INT32, 'INT32', 'int32'],
      [onnx().TensorProto.DataType.UINT8, 'UINT8', 'uint8'],
      [onnx().TensorProto.DataType.INT8, 'INT8', 'int8'],
    ];
    const model = onnx().ModelProto.decode(binary());
    model.graph!.input = types.map(([elemType], i) =>
      onnx().ValueInfoProto.create({ name: `in${i}`, type: { tensorType: { elemType, shape: { dim: [{ dimParam: 'n' }] } } } }),
    );
    const sig = readOnnxSignature(onnx().ModelProto.encode(model).finish());
    assert.deepEqual(
      sig.inputs.map((i) => [i.datatype, i.onnxType]),
      types.map(([, datatype, onnxType]) => [datatype, onnxType]),
    );
  });

  it('refuses bytes that are not an ONNX model with INVALID_ARGUMENT', () => {
    const notModels: [string, Uint8Array][] = [
      ['empty', new Uint8Array()],
      ['text', new TextEncoder().encode('hello, this is not a model\n')],
      ['JSON', new TextEncoder().encode('{"inputs":[{"name":"x"}]}')],
      ['random bytes', Uint8Array.from({ length: 4096 }, (_, i) => (i * 2654435761) >>> 24)],
      ['a truncated model', binary().subarray(0, 40)],
      ['a graph without a model', onnx().GraphProto.encode(onnx().ModelProto.decode(binary()).graph!).finish()],
    ];
    for (const [what, bytes] of notModels) {
      assert.throws(
        () => readOnnxSignature(bytes),
        (err: unknown) => err instanceof InvalidArgumentError && err.code === 'INVALID_ARGUMENT' && /not a valid ONNX model/.test(err.message),
        what,
      );
    }
  });
});

describe('isOnnxPath', () => {
  it('is true for paths ending in .onnx', () => {
    assert.equal(isOnnxPath('/model.onnx'), true);
    assert.equal(isOnnxPath('train@master:/models/spam.ONNX'), true);
    assert.equal(isOnnxPath('/model.onnx.json'), false);
    assert.equal(isOnnxPath('/onnx'), false);
  });
});
