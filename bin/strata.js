#!/usr/bin/env node
// The CLI runs from one esbuild bundle of dist/src/cli/main.js (npm run
// bundle): loading one file instead of hundreds of ES modules halves start-up.
// The unbundled build is the fallback, e.g. right after `tsc` alone.
import { existsSync } from 'node:fs';

const bundle = new URL('../dist/bundle/main.js', import.meta.url);
const { main } = await import(existsSync(bundle) ? bundle.href : '../dist/src/cli/main.js');
main(process.argv).then((code) => {
  process.exitCode = code;
});
