import type { onnx as Onnx } from 'onnx-proto';
import { InvalidArgumentError } from '../errors.js';
import { onnx } from './proto.js';

// The signature of an ONNX model: what a caller must send and gets back. The
// registry stores it with each model version and serving validates requests
// against it, so element types are given by their Open Inference Protocol
// (KServe v2) names as well as their ONNX names.

export interface TensorSpec {
  name: string;
  /** Open Inference Protocol datatype (FP32, INT64, BYTES, ...); UNKNOWN for non-tensor values. */
  datatype: string;
  /** ONNX element type ('float', 'int64', ...), or a description such as 'seq(map(int64,tensor(float)))'. */
  onnxType: string;
  /** Per dimension: dim_value, dim_param (a symbolic size such as 'batch'), or null when unknown. */
  shape: (number | string | null)[];
  /** Set when the model does not declare the rank at all (shape is then []). */
  unknownRank?: true;
}

export interface OnnxSignature {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  /** Version of the default (ai.onnx) operator set; 0 when the model imports none. */
  opset: number;
  producer: string;
}

/** ONNX TensorProto.DataType -> [ONNX name, Open Inference Protocol name]. */
const elementTypes: Record<number, [string, string]> = {
  1: ['float', 'FP32'],
  2: ['uint8', 'UINT8'],
  3: ['int8', 'INT8'],
  4: ['uint16', 'UINT16'],
  5: ['int16', 'INT16'],
  6: ['int32', 'INT32'],
  7: ['int64', 'INT64'],
  8: ['string', 'BYTES'],
  9: ['bool', 'BOOL'],
  10: ['float16', 'FP16'],
  11: ['double', 'FP64'],
  12: ['uint32', 'UINT32'],
  13: ['uint64', 'UINT64'],
  14: ['complex64', 'COMPLEX64'],
  15: ['complex128', 'COMPLEX128'],
  16: ['bfloat16', 'BF16'],
  // Newer than the onnx-proto schema, but the field is a plain enum number.
  17: ['float8e4m3fn', 'FP8_E4M3FN'],
  18: ['float8e4m3fnuz', 'FP8_E4M3FNUZ'],
  19: ['float8e5m2', 'FP8_E5M2'],
  20: ['float8e5m2fnuz', 'FP8_E5M2FNUZ'],
  21: ['uint4', 'UINT4'],
  22: ['int4', 'INT4'],
};

export function isOnnxPath(path: string): boolean {
  return path.toLowerCase().endsWith('.onnx');
}

export function readOnnxSignature(bytes: Uint8Array): OnnxSignature {
  const model = decodeModel(bytes);
  const graph = model.graph!;
  const initializers = new Set<string>();
  for (const t of graph.initializer ?? []) if (t.name) initializers.add(t.name);
  for (const t of graph.sparseInitializer ?? []) if (t.values?.name) initializers.add(t.values.name);
  // Before IR version 4 initializers had to be listed as graph inputs too; they
  // are constants (or overridable defaults), not something a caller sends.
  const inputs = (graph.input ?? []).filter((v) => !initializers.has(v.name ?? '')).map(tensorSpec);
  const outputs = (graph.output ?? []).map(tensorSpec);

  let opset = 0;
  for (const o of model.opsetImport ?? []) {
    if (!o.domain || o.domain === 'ai.onnx') opset = toNumber(o.version);
  }
  return { inputs, outputs, opset, producer: model.producerName ?? '' };
}

function decodeModel(bytes: Uint8Array): Onnx.ModelProto {
  const notOnnx = (why: string, cause?: unknown) =>
    new InvalidArgumentError(
      `the file is not a valid ONNX model (${why}); expected a serialized onnx.ModelProto as written by torch.onnx.export, skl2onnx or onnx.save`,
      { cause },
    );
  if (bytes.length === 0) throw notOnnx('it is empty');
  let model: Onnx.ModelProto;
  try {
    model = onnx().ModelProto.decode(bytes);
  } catch (err) {
    throw notOnnx('it does not decode as an ONNX protobuf', err);
  }
  // Protobuf skips unknown fields, so arbitrary bytes can decode into an
  // almost empty message: require the parts every real model has.
  if (!model.graph) throw notOnnx('it has no graph');
  if (toNumber(model.irVersion) <= 0) throw notOnnx('it has no IR version');
  if (!model.graph.output?.length) throw notOnnx('its graph has no outputs');
  return model;
}

function tensorSpec(value: Onnx.IValueInfoProto): TensorSpec {
  const name = value.name ?? '';
  const type = value.type;
  const tensor = type?.tensorType ?? type?.sparseTensorType;
  if (!type || !tensor) return { name, datatype: 'UNKNOWN', onnxType: describeType(type), shape: [] };
  const [onnxType, datatype] = elementTypes[tensor.elemType ?? 0] ?? [`type${tensor.elemType ?? 0}`, 'UNKNOWN'];
  if (!tensor.shape) return { name, datatype, onnxType, shape: [], unknownRank: true };
  const shape = (tensor.shape.dim ?? []).map((d): number | string | null => {
    const which = (d as Onnx.TensorShapeProto.Dimension).value;
    if (which === 'dimValue' || (which === undefined && d.dimValue != null)) return toNumber(d.dimValue);
    if (which === 'dimParam' || (which === undefined && d.dimParam)) return d.dimParam || null;
    return null;
  });
  return { name, datatype, onnxType, shape };
}

function describeType(type: Onnx.ITypeProto | null | undefined): string {
  if (!type) return 'unknown';
  if (type.tensorType) return `tensor(${elementTypes[type.tensorType.elemType ?? 0]?.[0] ?? 'unknown'})`;
  if (type.sparseTensorType) return `sparse_tensor(${elementTypes[type.sparseTensorType.elemType ?? 0]?.[0] ?? 'unknown'})`;
  if (type.sequenceType) return `seq(${describeType(type.sequenceType.elemType)})`;
  if (type.optionalType) return `optional(${describeType(type.optionalType.elemType)})`;
  if (type.mapType) {
    const key = elementTypes[type.mapType.keyType ?? 0]?.[0] ?? 'unknown';
    return `map(${key},${describeType(type.mapType.valueType)})`;
  }
  return 'unknown';
}

/** protobufjs gives int64 fields as Long objects (the `long` package is installed) or numbers. */
function toNumber(v: number | { toNumber(): number } | null | undefined): number {
  if (v == null) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}
