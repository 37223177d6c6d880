import type { OnnxSignature } from '../onnx/signature.js';

// The seam between serving and whatever executes a model: load bytes once,
// infer many times, release when no request uses it any more. ONNX Runtime
// (onnx-runtime.ts) runs .onnx versions in this process; the process runtime
// (process-runtime.ts) runs a user command that serves the Open Inference
// Protocol. Tensors are plain host tensors in ONNX Runtime's own shape (type,
// flat data, dims), so ONNX Runtime needs no copying.

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
  /** The signature the runtime found itself (a model process's metadata); the registry's is used when absent. */
  readonly signature?: ModelSignature;
  /** Runtime state worth showing in `deploy inspect` (a model process's pid, restarts, last exit). */
  runtimeStatus?(): ProcessStatus;
}

/** A model process as `deploy inspect` shows it. */
export interface ProcessStatus {
  /** running: taking traffic; restarting: it died and requests get 503 until it is back; stopped: released. */
  state: 'starting' | 'running' | 'restarting' | 'stopped';
  pid: number | null;
  port: number | null;
  /** Times it was started again after it died. */
  restarts: number;
  /** How it last died (exit code or signal), when it has. */
  last_exit?: string;
  /** When the next restart attempt runs (ms since the epoch), while restarting. */
  next_restart_at?: number;
}

/** Which model version a runtime loads, for runtimes that hand it on (the process runtime's environment). */
export interface LoadContext {
  name: string;
  version: number;
  /** The file name the version was registered under (its bytes are written under this name). */
  filename: string;
}

/** What serving needs of a model's signature (the registry stores it with each version). */
export type ModelSignature = Pick<OnnxSignature, 'inputs' | 'outputs'>;

export interface ModelRuntime {
  /** Loads and warms a model: the result is ready for traffic. */
  load(bytes: Uint8Array, signature: ModelSignature | null, context: LoadContext): Promise<LoadedModel>;
}
