#!/usr/bin/env node
// The CLI runs from one esbuild bundle of dist/src/cli/main.js (npm run
// bundle): loading one file instead of hundreds of ES modules halves start-up.
// The unbundled build is the fallback, e.g. right after `tsc` alone.
import { existsSync } from 'node:fs';

const bundle = new URL('../dist/bundle/main.js', import.meta.url);
const { main } = await import(existsSync(bundle) ? bundle.href : '../dist/src/cli/main.js');
main(process.argv).then((code) => {
  // Everything the command started has finished and been closed (main waits for it): exit now rather
  // than wait ~10-20 ms for V8 to wind the heap down. Standard output and error are written synchronously
  // on Linux (files, pipes, terminals), so nothing printed is lost.
  process.exit(code);
});
