import type * as Ort from 'onnxruntime-node';
import { InvalidArgumentError, StrataError } from '../errors.js';
import type { TensorSpec } from '../onnx/signature.js';
import { allocate, elementTypeOf } from './protocol.js';
import type { ElementType, HostTensor, LoadedModel, ModelRuntime, ModelSignature, TensorData } from './runtime.js';

// ONNX Runtime behind ModelRuntime: one InferenceSession per model version.
// A session is warmed with one dummy request built from the signature (every
// dynamic dimension as 1) before it is handed out, so the first real request
// does not pay for lazy initialisation, and a model that cannot run at all
// fails to load instead of failing traffic.

// onnxruntime-node is imported on first load, so CLI commands that serve nothing do not pay for it.

export class OnnxRuntime implements ModelRuntime {
  async load(bytes: Uint8Array, signature: ModelSignature | null): Promise<LoadedModel> {
    if (!signature) throw new InvalidArgumentError('only ONNX models (registered from a .onnx file) run on the ONNX runtime; use --runtime process for other models');
    const ort = await import('onnxruntime-node');
    let session: Ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes);
    } catch (err) {
      throw new InvalidArgumentError(`ONNX Runtime cannot load the model: ${(err as Error).message}`, { cause: err });
    }
    const model = new OnnxModel(ort, session);
    try {
      await model.infer(dummyInputs(signature));
    } catch (err) {
      await session.release().catch(() => {});
      throw new StrataError('FAILED_PRECONDITION', `the model failed its warm-up request: ${(err as Error).message}`, { cause: err });
    }
    return model;
  }
}

class OnnxModel implements LoadedModel {
  constructor(
    private ort: typeof Ort,
    private session: Ort.InferenceSession,
  ) {}

  async infer(inputs: Record<string, HostTensor>, outputNames?: string[]): Promise<Record<string, HostTensor>> {
    const feeds: Record<string, Ort.Tensor> = {};
    for (const [name, t] of Object.entries(inputs)) feeds[name] = new this.ort.Tensor(t.type, t.data, t.dims);
    const results = outputNames ? await this.session.run(feeds, outputNames) : await this.session.run(feeds);
    const out: Record<string, HostTensor> = {};
    for (const [name, t] of Object.entries(results)) {
      out[name] = { type: t.type as ElementType, data: t.data as TensorData, dims: t.dims };
    }
    return out;
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

/** Zeros (or empty strings) of every input's shape, dynamic dimensions as 1. */
function dummyInputs(signature: ModelSignature): Record<string, HostTensor> {
  const inputs: Record<string, HostTensor> = {};
  for (const spec of signature.inputs) inputs[spec.name] = zeros(spec);
  return inputs;
}

function zeros(spec: TensorSpec): HostTensor {
  const type = elementTypeOf(spec.datatype);
  if (!type) throw new InvalidArgumentError(`input "${spec.name}" has datatype ${spec.datatype}, which serving does not support`);
  const dims = spec.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : 1));
  const size = dims.reduce((a, b) => a * b, 1);
  return { type, dims, data: allocate(type, size) };
}
