// The protobufjs-generated `onnx` namespace from onnx-proto (ONNX v1.10 schema).
// onnx-proto is CommonJS (`module.exports = { onnx }`), so Node's ESM loader
// only exposes it as a default export; a named `import { onnx }` would type-check
// but be undefined at run time. Import the value from here, and types with
// `import type { onnx } from 'onnx-proto'`.

import onnxProto from 'onnx-proto';

export const onnx = onnxProto.onnx;
