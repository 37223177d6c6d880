#!/usr/bin/env node
// The CLI runs from one esbuild bundle of dist/src/cli/main.js (npm run
// bundle): loading one file instead of hundreds of ES modules halves start-up.
// The unbundled build is the fallback, e.g. right after `tsc` alone.
import { existsSync } from 'node:fs';

const bundle = new URL('../dist/bundle/main.js', import.meta.url);
const { main } = await import(existsSync(bundle) ? bundle.href : '../dist/src/cli/main.js');
main(process.argv).then((code) => {
  process.exitCode = code;
  // main has awaited and closed everything the command started. When all it printed is written, exit now
  // instead of waiting for V8 to tear the heap down (~10-80 ms, a fifth of a re-put). Output still queued
  // (a pipe whose reader is behind) is written by the natural exit instead: process.exit would cut it short.
  if (process.stdout.writableLength === 0 && process.stderr.writableLength === 0) process.exit(code);
});
