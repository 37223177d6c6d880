import { InvalidArgumentError } from '../errors.js';
import type { TensorSpec } from '../onnx/signature.js';
import type { ElementType, HostTensor, ModelSignature, TensorData } from './runtime.js';

// The Open Inference Protocol v2 (KServe / Triton / MLServer) REST mapping:
// JSON tensors {name, shape, datatype, data} to and from host tensors, checked
// against the model signature. Every check names the tensor and says what was
// expected; a bad request is an InvalidArgumentError (HTTP 400) and never
// reaches the model. The plain JSON convenience form ({"inputs": {name:
// nested array}}) is mapped here too: its shapes come from the nesting and its
// datatypes from the signature.

const ELEMENT_TYPES: Record<string, ElementType> = {
  BOOL: 'bool',
  UINT8: 'uint8',
  UINT16: 'uint16',
  UINT32: 'uint32',
  UINT64: 'uint64',
  INT8: 'int8',
  INT16: 'int16',
  INT32: 'int32',
  INT64: 'int64',
  FP16: 'float16',
  FP32: 'float32',
  FP64: 'float64',
  BYTES: 'string',
};

const DATATYPES = Object.fromEntries(Object.entries(ELEMENT_TYPES).map(([d, t]) => [t, d])) as Record<ElementType, string>;

const INT_RANGES: Partial<Record<ElementType, [number, number]>> = {
  uint8: [0, 255],
  uint16: [0, 65535],
  uint32: [0, 4294967295],
  uint64: [0, Number.MAX_SAFE_INTEGER],
  int8: [-128, 127],
  int16: [-32768, 32767],
  int32: [-2147483648, 2147483647],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
};

/** The ONNX Runtime element type of an OIP datatype; undefined for ones serving cannot carry (BF16, FP8, ...). */
export function elementTypeOf(datatype: string): ElementType | undefined {
  return Object.hasOwn(ELEMENT_TYPES, datatype) ? ELEMENT_TYPES[datatype] : undefined;
}

export function datatypeOf(type: ElementType): string {
  return DATATYPES[type];
}

export interface InferRequest {
  id?: string;
  parameters?: Record<string, unknown>;
  inputs: Record<string, HostTensor>;
  /** Requested outputs; all when absent. */
  outputs?: string[];
  /** Outputs to return as binary tensor data (the binary extension); none when absent. */
  binaryOutputs?: (name: string) => boolean;
}

/**
 * The binary tensor data extension (Triton, KServe): a request or response body is a JSON object of this
 * header's length in bytes, followed by the tensors whose `parameters.binary_data_size` says how many bytes
 * they take, in order, as little-endian row-major values (BOOL one byte, BYTES a uint32 length before each).
 */
export const BINARY_HEADER = 'inference-header-content-length';

export interface OipTensor {
  name: string;
  shape: number[];
  datatype: string;
  data: unknown[];
  parameters?: Record<string, unknown>;
}

export interface InferResponse {
  model_name: string;
  model_version: string;
  id?: string;
  parameters: Record<string, unknown>;
  outputs: OipTensor[];
}

export interface TensorMetadata {
  name: string;
  datatype: string;
  shape: number[];
}

export interface ModelMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

/** `platform`: onnxruntime, or `process` for a user command serving the model (the process runtime). */
export function modelMetadata(name: string, version: number, signature: ModelSignature, platform = 'onnxruntime'): ModelMetadata {
  const meta = (t: TensorSpec): TensorMetadata => ({ name: t.name, datatype: t.datatype, shape: t.shape.map((d) => (typeof d === 'number' ? d : -1)) });
  return { name, versions: [String(version)], platform, inputs: signature.inputs.map(meta), outputs: signature.outputs.map(meta) };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** An OIP request has an array of inputs; the plain form has an object. */
export function isOipRequest(body: unknown): boolean {
  return isObject(body) && Array.isArray(body.inputs);
}

/** Parses and checks an OIP inference request body against the signature. */
/** `binary`: the bytes after the JSON header of a binary-extension request. */
export function parseInferRequest(body: unknown, signature: ModelSignature, binary?: Buffer): InferRequest {
  if (!isObject(body)) throw new InvalidArgumentError('request body must be a JSON object {"inputs": [{"name", "shape", "datatype", "data"}]}');
  let offset = 0;
  const { id, parameters, inputs, outputs } = body;
  if (id !== undefined && typeof id !== 'string') throw new InvalidArgumentError('"id" must be a string');
  if (parameters !== undefined && !isObject(parameters)) throw new InvalidArgumentError('"parameters" must be an object');
  if (!Array.isArray(inputs) || inputs.length === 0) throw new InvalidArgumentError('"inputs" must be a non-empty array of tensors {"name", "shape", "datatype", "data"}');
  const tensors: Record<string, HostTensor> = {};
  for (const [i, input] of inputs.entries()) {
    if (!isObject(input)) throw new InvalidArgumentError(`inputs[${i}] must be an object {"name", "shape", "datatype", "data"}`);
    const name = input.name;
    if (typeof name !== 'string') throw new InvalidArgumentError(`inputs[${i}].name must be a string`);
    const spec = inputSpec(signature, name);
    if (Object.hasOwn(tensors, name)) throw new InvalidArgumentError(`input "${name}" is given twice`);
    if (typeof input.datatype !== 'string') throw new InvalidArgumentError(`input "${name}": "datatype" must be a string such as ${spec.datatype}`);
    if (input.datatype !== spec.datatype) throw new InvalidArgumentError(`input "${name}": datatype ${input.datatype} is wrong; the model takes ${spec.datatype}`);
    const shape = input.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      throw new InvalidArgumentError(`input "${name}": "shape" must be an array of non-negative integers`);
    }
    const size = binaryDataSize(input.parameters, `input "${name}"`);
    if (size !== undefined) {
      if (input.data !== undefined) throw new InvalidArgumentError(`input "${name}": give "data" or parameters.binary_data_size, not both`);
      const available = binary ? binary.length - offset : 0;
      if (size > available) {
        throw new InvalidArgumentError(
          `input "${name}": binary_data_size is ${size} but ${available} byte(s) of binary data are left after the JSON header (send the header's length in Inference-Header-Content-Length)`,
        );
      }
      tensors[name] = tensorFromBytes(spec, shape as number[], binary!.subarray(offset, offset + size));
      offset += size;
      continue;
    }
    if (input.data === undefined) throw new InvalidArgumentError(`input "${name}": "data" is missing`);
    const values = Array.isArray(input.data) ? flatten(input.data, name) : [input.data];
    tensors[name] = toTensor(spec, shape as number[], values);
  }
  if (binary && offset !== binary.length) {
    throw new InvalidArgumentError(`${binary.length - offset} byte(s) after the JSON header belong to no input (each binary input says its size in parameters.binary_data_size)`);
  }
  missingInputs(signature, tensors);
  return { id, parameters, inputs: tensors, outputs: outputSelection(outputs, signature), binaryOutputs: binarySelection(parameters, outputs) };
}

function binaryDataSize(parameters: unknown, what: string): number | undefined {
  if (!isObject(parameters) || parameters.binary_data_size === undefined) return undefined;
  const size = parameters.binary_data_size;
  if (!Number.isSafeInteger(size) || (size as number) < 0) throw new InvalidArgumentError(`${what}: parameters.binary_data_size must be a whole number of bytes`);
  return size as number;
}

/** Which outputs go back as binary: `binary_data` on an output, else the request's `binary_data_output`. */
function binarySelection(parameters: unknown, outputs: unknown): ((name: string) => boolean) | undefined {
  const all = isObject(parameters) && parameters.binary_data_output === true;
  const each = new Map<string, boolean>();
  if (Array.isArray(outputs)) {
    for (const o of outputs) {
      if (isObject(o) && typeof o.name === 'string' && isObject(o.parameters) && typeof o.parameters.binary_data === 'boolean') each.set(o.name, o.parameters.binary_data);
    }
  }
  if (!all && ![...each.values()].some(Boolean)) return undefined;
  return (name) => each.get(name) ?? all;
}

const BYTE_SIZES: Partial<Record<ElementType, number>> = {
  bool: 1,
  uint8: 1,
  int8: 1,
  uint16: 2,
  int16: 2,
  float16: 2,
  uint32: 4,
  int32: 4,
  float32: 4,
  uint64: 8,
  int64: 8,
  float64: 8,
};

/** A host tensor from the binary extension's little-endian bytes, checked against the shape. */
function tensorFromBytes(spec: TensorSpec, shape: number[], bytes: Buffer): HostTensor {
  const name = spec.name;
  const { type, size } = checkedShape(spec, shape);
  if (type === 'string') {
    const values: string[] = [];
    let at = 0;
    while (at < bytes.length) {
      if (at + 4 > bytes.length) throw new InvalidArgumentError(`input "${name}": BYTES element ${values.length} has a truncated 4-byte length`);
      const length = bytes.readUInt32LE(at);
      if (at + 4 + length > bytes.length) throw new InvalidArgumentError(`input "${name}": BYTES element ${values.length} says ${length} bytes but fewer follow`);
      values.push(bytes.toString('utf8', at + 4, at + 4 + length));
      at += 4 + length;
    }
    if (values.length !== size) throw new InvalidArgumentError(`input "${name}": shape [${shape.join(', ')}] needs ${size} values but the binary data holds ${values.length}`);
    return { type, dims: shape, data: values };
  }
  const width = BYTE_SIZES[type]!;
  if (bytes.length !== size * width) {
    throw new InvalidArgumentError(`input "${name}": shape [${shape.join(', ')}] of ${spec.datatype} needs ${size * width} bytes, binary_data_size is ${bytes.length}`);
  }
  const data = allocate(type, size) as Exclude<TensorData, string[]>;
  // A copy: the typed array needs its own aligned buffer; the request's bytes are little-endian like this host.
  new Uint8Array(data.buffer, data.byteOffset, data.byteLength).set(bytes);
  if (type === 'bool') for (let i = 0; i < size; i++) if (data[i]! > 1) throw new InvalidArgumentError(`input "${name}": BOOL element ${i} is ${data[i]}, not 0 or 1`);
  return { type, dims: shape, data };
}

/** A tensor's values as the binary extension's bytes. */
export function tensorBytes(t: HostTensor): Buffer {
  if (Array.isArray(t.data)) {
    const parts: Buffer[] = [];
    for (const v of t.data) {
      const text = Buffer.from(String(v), 'utf8');
      const length = Buffer.alloc(4);
      length.writeUInt32LE(text.length);
      parts.push(length, text);
    }
    return Buffer.concat(parts);
  }
  const data = t.data as Exclude<TensorData, string[]>;
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * The response body with the outputs `binary` selects as binary tensor data after the JSON: the body and
 * the JSON's length (for Inference-Header-Content-Length). Undefined when no output is binary.
 */
export function binaryResponse(response: InferResponse, tensors: Record<string, HostTensor>, binary: (name: string) => boolean): { body: Buffer; headerLength: number } | undefined {
  const parts: Buffer[] = [];
  const outputs = response.outputs.map((o) => {
    if (!binary(o.name) || !tensors[o.name]) return o;
    const bytes = tensorBytes(tensors[o.name]!);
    parts.push(bytes);
    const { data: _data, ...rest } = o;
    return { ...rest, parameters: { ...o.parameters, binary_data_size: bytes.length } };
  });
  if (parts.length === 0) return undefined;
  const header = Buffer.from(JSON.stringify({ ...response, outputs }), 'utf8');
  return { body: Buffer.concat([header, ...parts]), headerLength: header.length };
}

/** Parses the convenience body {"inputs": {name: nested array}}: shapes from the nesting, datatypes from the signature. */
export function parseSimpleRequest(body: unknown, signature: ModelSignature): InferRequest {
  if (!isObject(body) || !isObject(body.inputs)) throw new InvalidArgumentError('request body must be a JSON object {"inputs": {"<input name>": <nested array>}}');
  for (const key of Object.keys(body)) {
    if (key !== 'inputs' && key !== 'outputs') throw new InvalidArgumentError(`request body has unknown field "${key}" (expected "inputs" and optionally "outputs")`);
  }
  const tensors: Record<string, HostTensor> = {};
  for (const [name, value] of Object.entries(body.inputs)) {
    const spec = inputSpec(signature, name);
    const shape = shapeOf(value, name);
    tensors[name] = toTensor(spec, shape, Array.isArray(value) ? flatten(value, name) : [value]);
  }
  missingInputs(signature, tensors);
  const outputs = body.outputs;
  if (outputs !== undefined && !(Array.isArray(outputs) && outputs.every((o) => typeof o === 'string'))) {
    throw new InvalidArgumentError('"outputs" must be an array of output names');
  }
  return { inputs: tensors, outputs: outputSelection(outputs?.map((name) => ({ name })), signature) };
}

function inputSpec(signature: ModelSignature, name: string): TensorSpec {
  const spec = signature.inputs.find((s) => s.name === name);
  if (!spec) throw new InvalidArgumentError(`unknown input "${name}": the model takes ${names(signature.inputs)}`);
  return spec;
}

function missingInputs(signature: ModelSignature, tensors: Record<string, HostTensor>): void {
  const missing = signature.inputs.filter((s) => !Object.hasOwn(tensors, s.name));
  if (missing.length) throw new InvalidArgumentError(`missing input${missing.length > 1 ? 's' : ''} ${names(missing)}`);
}

function outputSelection(outputs: unknown, signature: ModelSignature): string[] | undefined {
  if (outputs === undefined) return undefined;
  if (!Array.isArray(outputs)) throw new InvalidArgumentError('"outputs" must be an array of {"name"}');
  const selected: string[] = [];
  for (const [i, o] of outputs.entries()) {
    if (!isObject(o) || typeof o.name !== 'string') throw new InvalidArgumentError(`outputs[${i}] must be an object {"name"}`);
    if (!signature.outputs.some((s) => s.name === o.name)) throw new InvalidArgumentError(`unknown output "${o.name}": the model gives ${names(signature.outputs)}`);
    if (!selected.includes(o.name)) selected.push(o.name);
  }
  return selected.length ? selected : undefined;
}

function names(specs: TensorSpec[]): string {
  return specs.map((s) => `"${s.name}" (${s.datatype} [${s.shape.map((d) => (typeof d === 'number' ? d : -1)).join(', ')}])`).join(', ');
}

export function flatten(data: unknown[], name: string, out: unknown[] = [], depth = 0): unknown[] {
  if (depth > 32) throw new InvalidArgumentError(`input "${name}": data is nested too deeply`);
  for (const v of data) {
    if (Array.isArray(v)) flatten(v, name, out, depth + 1);
    else out.push(v);
  }
  return out;
}

/** The shape of a rectangular nested array. */
function shapeOf(value: unknown, name: string): number[] {
  const shape: number[] = [];
  for (let v = value; Array.isArray(v); v = v[0]) shape.push(v.length);
  const check = (v: unknown, depth: number): void => {
    if (depth === shape.length) {
      if (Array.isArray(v)) throw new InvalidArgumentError(`input "${name}": the nested array is not rectangular`);
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[depth]) throw new InvalidArgumentError(`input "${name}": the nested array is not rectangular (expected ${shape[depth]} items at depth ${depth})`);
    for (const item of v) check(item, depth + 1);
  };
  check(value, 0);
  return shape;
}

/** A host tensor of `spec`'s datatype from flat JSON values, checked against its shape. */
export function toTensor(spec: TensorSpec, shape: number[], values: unknown[]): HostTensor {
  const name = spec.name;
  const { type, size } = checkedShape(spec, shape);
  if (values.length !== size) {
    throw new InvalidArgumentError(`input "${name}": shape [${shape.join(', ')}] needs ${size} values but data has ${values.length}`);
  }
  return { type, dims: shape, data: fill(type, values, name) };
}

/** The element type of `spec` and the element count of `shape`, once the shape fits the model's. */
function checkedShape(spec: TensorSpec, shape: number[]): { type: ElementType; size: number } {
  const name = spec.name;
  const type = elementTypeOf(spec.datatype);
  if (!type) throw new InvalidArgumentError(`input "${name}" has datatype ${spec.datatype}, which this server cannot carry`);
  if (!spec.unknownRank) {
    const expected = spec.shape;
    const bad = shape.length !== expected.length || expected.some((d, i) => typeof d === 'number' && d !== shape[i]);
    if (bad) {
      throw new InvalidArgumentError(
        `input "${name}": shape [${shape.join(', ')}] does not fit the model's [${expected.map((d) => (typeof d === 'number' ? d : -1)).join(', ')}] (-1: any size)`,
      );
    }
  }
  return { type, size: shape.reduce((a, b) => a * b, 1) };
}

export function allocate(type: ElementType, size: number): TensorData {
  switch (type) {
    case 'bool':
    case 'uint8':
      return new Uint8Array(size);
    case 'uint16':
    case 'float16':
      return new Uint16Array(size);
    case 'uint32':
      return new Uint32Array(size);
    case 'uint64':
      return new BigUint64Array(size);
    case 'int8':
      return new Int8Array(size);
    case 'int16':
      return new Int16Array(size);
    case 'int32':
      return new Int32Array(size);
    case 'int64':
      return new BigInt64Array(size);
    case 'float32':
      return new Float32Array(size);
    case 'float64':
      return new Float64Array(size);
    case 'string':
      return new Array<string>(size).fill('');
  }
}

function fill(type: ElementType, values: unknown[], name: string): TensorData {
  const bad = (i: number, what: string): never => {
    throw new InvalidArgumentError(`input "${name}": data[${i}] = ${JSON.stringify(values[i])} is not ${what} (datatype ${datatypeOf(type)})`);
  };
  if (type === 'string') {
    return values.map((v, i) => (typeof v === 'string' ? v : bad(i, 'a string')));
  }
  const data = allocate(type, values.length);
  if (type === 'bool') {
    const out = data as Uint8Array;
    values.forEach((v, i) => (out[i] = v === true || v === 1 ? 1 : v === false || v === 0 ? 0 : bad(i, 'a boolean')));
    return out;
  }
  if (type === 'float32' || type === 'float64' || type === 'float16') {
    const out = data as Float32Array | Float64Array | Uint16Array;
    values.forEach((v, i) => {
      if (typeof v !== 'number') bad(i, 'a number');
      out[i] = type === 'float16' ? toHalf(v as number) : (v as number);
    });
    return out;
  }
  const [min, max] = INT_RANGES[type]!;
  const isBig = type === 'int64' || type === 'uint64';
  values.forEach((v, i) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) bad(i, `an integer from ${min} to ${max}`);
    (data as unknown as (number | bigint)[])[i] = isBig ? BigInt(v as number) : (v as number);
  });
  return data;
}

/** A host tensor's values as JSON values, row-major and flat. 64-bit integers become numbers. */
export function jsonValues(t: HostTensor): unknown[] {
  const data = t.data;
  if (Array.isArray(data)) return data;
  if (t.type === 'bool') return Array.from(data as Uint8Array, (v) => v !== 0);
  if (t.type === 'float16') return Array.from(data as Uint16Array, fromHalf);
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) return Array.from(data, (v) => Number(v));
  return Array.from(data as Float32Array);
}

export function oipOutputs(outputs: Record<string, HostTensor>): OipTensor[] {
  return Object.entries(outputs).map(([name, t]) => ({ name, shape: [...t.dims], datatype: datatypeOf(t.type), data: jsonValues(t) }));
}

/** Flat values nested by shape: [[...], [...]] for [2, n]; a scalar for []. */
export function nest(values: unknown[], shape: readonly number[]): unknown {
  if (shape.length === 0) return values[0];
  let level: unknown[] = values;
  for (let d = shape.length - 1; d > 0; d--) {
    const size = shape[d]!;
    const next: unknown[] = [];
    for (let i = 0; i < level.length; i += size) next.push(level.slice(i, i + size));
    level = next;
  }
  return level;
}

// IEEE 754 half precision, for FP16 tensors (ONNX Runtime takes their bit patterns as Uint16Array).
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function toHalf(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp8 = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp8 === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const exp = exp8 - 127 + 15;
  if (exp >= 0x1f) return sign | 0x7c00;
  if (exp <= 0) {
    if (exp < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - exp;
    let h = mant >> shift;
    if ((mant >> (shift - 1)) & 1) h++;
    return sign | h;
  }
  let h = sign | (exp << 10) | (mant >> 13);
  if (mant & 0x1000) h++; // round half up; a carry moves into the exponent correctly
  return h;
}

function fromHalf(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
