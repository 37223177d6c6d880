// The protobufjs-generated `onnx` namespace from onnx-proto (ONNX v1.10
// schema), loaded at first use (see lazy.ts). Get the value from here, and
// types with `import type { onnx } from 'onnx-proto'`.

import { lazyRequire } from '../lazy.js';

let loaded: typeof import('onnx-proto').onnx | undefined;

export function onnx(): typeof import('onnx-proto').onnx {
  return (loaded ??= (lazyRequire('onnx-proto') as typeof import('onnx-proto')).onnx);
}
