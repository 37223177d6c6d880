// The binary tensor data extension's encoding, datatype by datatype: what
// parseInferRequest reads from the bytes after the JSON header, and what
// binaryResponse writes back (serving.test.ts covers it over a real server).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TensorSpec } from '../../src/onnx/signature.js';
import { binaryResponse, parseInferRequest, tensorBytes, type InferResponse } from '../../src/serving/protocol.js';
import type { ModelSignature } from '../../src/serving/runtime.js';

const spec = (name: string, datatype: string, shape: (number | string)[]): TensorSpec => ({ name, datatype, onnxType: datatype.toLowerCase(), shape });
const signature: ModelSignature = {
  inputs: [spec('flags', 'BOOL', ['n']), spec('words', 'BYTES', ['n']), spec('ids', 'INT64', ['n']), spec('half', 'FP16', [2])],
  outputs: [spec('out', 'FP32', ['n'])],
};

const bytesString = (...values: string[]) =>
  Buffer.concat(
    values.flatMap((v) => {
      const text = Buffer.from(v, 'utf8');
      const length = Buffer.alloc(4);
      length.writeUInt32LE(text.length);
      return [length, text];
    }),
  );

const input = (name: string, datatype: string, shape: number[], size: number) => ({ name, datatype, shape, parameters: { binary_data_size: size } });

describe('binary tensor data', () => {
  const flags = Uint8Array.of(1, 0, 1);
  const words = bytesString('spam', 'hé', '');
  const ids = Buffer.from(BigInt64Array.of(7n, -1n, 2n ** 40n).buffer);
  const half = Buffer.from(Uint16Array.of(0x3c00, 0xc000).buffer); // 1.0, -2.0
  const header = {
    inputs: [input('flags', 'BOOL', [3], 3), input('words', 'BYTES', [3], words.length), input('ids', 'INT64', [3], 24), input('half', 'FP16', [2], 4)],
  };

  it('reads BOOL, BYTES, INT64 and FP16 inputs in order from the bytes after the header', () => {
    const request = parseInferRequest(header, signature, Buffer.concat([flags, words, ids, half]));
    assert.deepEqual([...(request.inputs.flags!.data as Uint8Array)], [1, 0, 1]);
    assert.deepEqual(request.inputs.words!.data, ['spam', 'hé', '']);
    assert.deepEqual([...(request.inputs.ids!.data as BigInt64Array)], [7n, -1n, 2n ** 40n]);
    assert.deepEqual([...(request.inputs.half!.data as Uint16Array)], [0x3c00, 0xc000]);
    assert.deepEqual(request.inputs.half!.dims, [2]);
  });

  it('refuses bytes that do not make the declared tensors, naming the input', () => {
    const parse = (h: unknown, ...parts: Uint8Array[]) => () => parseInferRequest(h, signature, Buffer.concat(parts));
    const replace = (i: number, changed: object) => ({ inputs: header.inputs.map((x, j) => (j === i ? { ...x, ...changed } : x)) });
    assert.throws(parse(header, Uint8Array.of(1, 2, 1), words, ids, half), /input "flags": BOOL element 1 is 2, not 0 or 1/);
    assert.throws(parse(replace(1, { parameters: { binary_data_size: words.length - 1 } }), flags, words.subarray(0, -1), ids, half), /input "words": BYTES element 2 has a truncated 4-byte length/);
    assert.throws(parse(replace(1, { shape: [4] }), flags, words, ids, half), /input "words": shape \[4\] needs 4 values but the binary data holds 3/);
    assert.throws(parse(replace(2, { parameters: { binary_data_size: 16 } }), flags, words, ids.subarray(0, 16), half), /input "ids": shape \[3\] of INT64 needs 24 bytes, binary_data_size is 16/);
    assert.throws(parse(replace(3, { shape: [3] }), flags, words, ids, half), /input "half": shape \[3\] does not fit the model's \[2\]/);
  });

  it('writes outputs as little-endian bytes after the JSON, only those asked for', () => {
    const response: InferResponse = { model_name: 'm', model_version: '1', parameters: {}, outputs: [{ name: 'out', shape: [2], datatype: 'FP32', data: [0.5, -1] }, { name: 'w', shape: [1], datatype: 'BYTES', data: ['ok'] }] };
    const tensors = { out: { type: 'float32' as const, dims: [2], data: Float32Array.of(0.5, -1) }, w: { type: 'string' as const, dims: [1], data: ['ok'] } };
    const encoded = binaryResponse(response, tensors, (name) => name === 'out')!;
    const json = JSON.parse(encoded.body.subarray(0, encoded.headerLength).toString());
    assert.deepEqual(json.outputs, [
      { name: 'out', shape: [2], datatype: 'FP32', parameters: { binary_data_size: 8 } },
      { name: 'w', shape: [1], datatype: 'BYTES', data: ['ok'] },
    ]);
    assert.deepEqual([...new Float32Array(Uint8Array.from(encoded.body.subarray(encoded.headerLength)).buffer)], [0.5, -1]);
    assert.deepEqual(tensorBytes(tensors.w), bytesString('ok'));
    assert.equal(binaryResponse(response, tensors, () => false), undefined);
  });
});
