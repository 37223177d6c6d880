// Compiles src/storage/gear.wat into src/storage/gear-wasm.ts (the module's
// bytes, base64), so neither the build nor the CLI needs a WebAssembly
// toolchain. `--check` exits 1 when the committed file is out of date.
// Usage: node tools/build-wasm.mjs [--check]

import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import wabtInit from 'wabt';

const source = fileURLToPath(new URL('../src/storage/gear.wat', import.meta.url));
const target = fileURLToPath(new URL('../src/storage/gear-wasm.ts', import.meta.url));

export async function compileGear() {
  const wabt = await wabtInit();
  const features = { threads: true };
  const module = wabt.parseWat('gear.wat', readFileSync(source, 'utf8'), features);
  try {
    module.validate(features);
    const base64 = Buffer.from(module.toBinary({}).buffer).toString('base64');
    return (
      '// Generated from gear.wat by `npm run build:wasm`: do not edit.\n' +
      `export const GEAR_WASM = '${base64}';\n`
    );
  } finally {
    module.destroy();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const text = await compileGear();
  if (process.argv.includes('--check')) {
    if (readFileSync(target, 'utf8') !== text) {
      console.error('src/storage/gear-wasm.ts is out of date: run npm run build:wasm');
      process.exit(1);
    }
  } else {
    writeFileSync(target, text);
  }
}
