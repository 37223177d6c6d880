import { createRequire } from 'node:module';

// Packages only some commands use are loaded when first needed, not with the
// CLI. Bundled, YAML, phone-number metadata, Prometheus, ONNX's protobuf
// schema, CSV and cron parsing cost every command ~23 ms of start-up (62 ->
// 39 ms to load the bundle, measured). Each has a CommonJS build and is
// required by name where it is used, so esbuild leaves it out of the bundle
// and Node loads it from node_modules the first time.
export const lazyRequire = createRequire(import.meta.url);
