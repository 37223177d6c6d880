import type { OnnxSignature } from '../onnx/signature.js';

// The seam between serving and whatever executes a model: load bytes once,
// infer many times, release when no request uses it any more. ONNX Runtime
// (onnx-runtime.ts) is the implementation; tensors are plain host tensors in
// ONNX Runtime's own shape (type, flat data, dims), so it needs no copying.

/** ONNX element types serving can carry, by ONNX Runtime's names. */
export type ElementType =
  | 'bool'
  | 'uint8'
  | 'uint16'
  | 'uint32'
  | 'uint64'
  | 'int8'
  | 'int16'
  | 'int32'
  | 'int64'
  | 'float16'
  | 'float32'
  | 'float64'
  | 'string';

export type TensorData =
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | BigUint64Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Float32Array
  | Float64Array
  | string[];

/** A tensor in host memory, row-major; structurally an ort.Tensor. */
export interface HostTensor {
  readonly type: ElementType;
  readonly data: TensorData;
  readonly dims: readonly number[];
}

export interface LoadedModel {
  /** Runs the model; `outputNames` selects outputs (all when omitted). */
  infer(inputs: Record<string, HostTensor>, outputNames?: string[]): Promise<Record<string, HostTensor>>;
  release(): Promise<void>;
}

/** What serving needs of a model's signature (the registry stores it with each version). */
export type ModelSignature = Pick<OnnxSignature, 'inputs' | 'outputs'>;

export interface ModelRuntime {
  /** Loads and warms a model: the result is ready for traffic. */
  load(bytes: Uint8Array, signature: ModelSignature): Promise<LoadedModel>;
}
