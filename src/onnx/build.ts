import type { onnx as Onnx } from 'onnx-proto';
import { InvalidArgumentError } from '../errors.js';
import { onnx } from './proto.js';

// Small, real ONNX models written with onnx-proto, for the demo's training
// step, tests and the serving bench. ONNX Runtime is the judge of validity.
//
// logisticRegressionModel, binary (weights has `features` entries):
//
//   input  float[N, F]
//     -> Gemm(input, W[F,1], B[1])          logit        float[N, 1]
//     -> Sigmoid                             p1           float[N, 1]
//     -> Sub(1, p1)                          p0           float[N, 1]
//     -> Concat(p0, p1; axis 1)              probabilities float[N, 2]   ([P(class 0), P(class 1)])
//     -> ArgMax(axis 1, keepdims 0)          label        int64[N]
//
// multinomial (weights has features × classes entries, row-major [feature][class]):
//
//   input -> Gemm(input, W[F,C], B[C]) -> Softmax(axis 1) -> probabilities float[N, C]
//         -> ArgMax(axis 1, keepdims 0) -> label int64[N]
//
// ArgMax picks the first index on ties (P = 0.5 -> class 0).

export const OPSET = 13;
export const IR_VERSION = 8;

export interface LogisticRegressionOptions {
  /** `features` values (binary) or features × classes, row-major [feature][class]. */
  weights: Float32Array;
  /** One value (binary) or one per class. */
  bias: number | Float32Array;
  features: number;
  inputName?: string;
  outputName?: string;
  labelName?: string;
  /** Batch dimension: symbolic ('batch') or a fixed size. */
  batch?: 'dynamic' | number;
  /** Stored in the model's metadata_props (e.g. class names, featurization). */
  metadata?: Record<string, string>;
}

export function logisticRegressionModel(options: LogisticRegressionOptions): Uint8Array {
  const {
    weights,
    features,
    inputName = 'input',
    outputName = 'probabilities',
    labelName = 'label',
    batch = 'dynamic',
    metadata = {},
  } = options;
  if (!Number.isInteger(features) || features < 1) {
    throw new InvalidArgumentError(`features must be a positive integer, got ${features}`);
  }
  if (weights.length === 0 || weights.length % features !== 0) {
    throw new InvalidArgumentError(
      `weights has ${weights.length} values; expected features (${features}) for a binary model or features × classes`,
    );
  }
  const classes = weights.length / features;
  const bias = typeof options.bias === 'number' ? Float32Array.of(options.bias) : options.bias;
  if (bias.length !== classes) {
    throw new InvalidArgumentError(`bias has ${bias.length} values; expected ${classes} (one per weight column)`);
  }
  if (!weights.every(Number.isFinite) || !bias.every(Number.isFinite)) {
    throw new InvalidArgumentError('weights and bias must be finite numbers (training diverged?)');
  }
  if (batch !== 'dynamic' && !(Number.isInteger(batch) && batch >= 1)) {
    throw new InvalidArgumentError(`batch must be 'dynamic' or a positive integer, got ${batch}`);
  }
  const names = [inputName, outputName, labelName];
  if (names.some((n) => !n) || new Set(names).size !== names.length) {
    throw new InvalidArgumentError(`input, output and label names must be distinct and non-empty, got ${names.join(', ')}`);
  }

  const FLOAT = onnx().TensorProto.DataType.FLOAT;
  const INT64 = onnx().TensorProto.DataType.INT64;
  const n: Onnx.TensorShapeProto.IDimension = batch === 'dynamic' ? { dimParam: 'batch' } : { dimValue: batch };
  const binary = classes === 1;
  const outClasses = binary ? 2 : classes;

  const initializer = [
    floatTensor('lr.weights', [features, classes], weights),
    floatTensor('lr.bias', [classes], bias),
  ];
  const node: Onnx.INodeProto[] = [
    { opType: 'Gemm', name: 'linear', input: [inputName, 'lr.weights', 'lr.bias'], output: ['lr.logits'] },
  ];
  if (binary) {
    initializer.push(floatTensor('lr.one', [1], Float32Array.of(1)));
    node.push(
      { opType: 'Sigmoid', name: 'sigmoid', input: ['lr.logits'], output: ['lr.p1'] },
      { opType: 'Sub', name: 'complement', input: ['lr.one', 'lr.p1'], output: ['lr.p0'] },
      { opType: 'Concat', name: 'probabilities', input: ['lr.p0', 'lr.p1'], output: [outputName], attribute: [intAttr('axis', 1)] },
    );
  } else {
    node.push({ opType: 'Softmax', name: 'softmax', input: ['lr.logits'], output: [outputName], attribute: [intAttr('axis', 1)] });
  }
  node.push({
    opType: 'ArgMax',
    name: 'argmax',
    input: [outputName],
    output: [labelName],
    attribute: [intAttr('axis', 1), intAttr('keepdims', 0)],
  });

  const model: Onnx.IModelProto = {
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: OPSET }],
    producerName: 'strata',
    producerVersion: '0.1.0',
    docString: binary
      ? `binary logistic regression over ${features} features`
      : `multinomial logistic regression over ${features} features, ${classes} classes`,
    metadataProps: Object.entries(metadata).map(([key, value]) => ({ key, value })),
    graph: {
      name: 'logistic_regression',
      node,
      initializer,
      input: [valueInfo(inputName, FLOAT, [n, { dimValue: features }])],
      output: [valueInfo(outputName, FLOAT, [n, { dimValue: outClasses }]), valueInfo(labelName, INT64, [n])],
    },
  };
  return onnx().ModelProto.encode(model).finish();
}

function floatTensor(name: string, dims: number[], values: Float32Array): Onnx.ITensorProto {
  // raw_data is little-endian by the ONNX spec, whatever the host's byte order.
  const raw = new Uint8Array(values.length * 4);
  const view = new DataView(raw.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i]!, true);
  return { name, dims, dataType: onnx().TensorProto.DataType.FLOAT, rawData: raw };
}

function valueInfo(name: string, elemType: number, dim: Onnx.TensorShapeProto.IDimension[]): Onnx.IValueInfoProto {
  return { name, type: { tensorType: { elemType, shape: { dim } } } };
}

function intAttr(name: string, i: number): Onnx.IAttributeProto {
  return { name, type: onnx().AttributeProto.AttributeType.INT, i };
}
