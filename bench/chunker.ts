// Chunking throughput against the baseline every put pays anyway: SHA-256 of
// the same bytes (node:crypto, OpenSSL). Chunking should not be the bottleneck;
// the ratio says how close it comes.
//
//   npx tsc -p tsconfig.json && node dist/bench/chunker.js [MiB]

import { createHash, randomFillSync } from 'node:crypto';
import { Chunker, chunkBuffer } from '../src/storage/chunker.js';

const mib = Number(process.argv[2] ?? 256);
const data = randomFillSync(Buffer.allocUnsafe(mib * 1024 * 1024));
const piece = 4 * 1024 * 1024;

function measure(run: () => void): number {
  let best = Infinity;
  for (let round = 0; round < 3; round++) {
    const start = performance.now();
    run();
    best = Math.min(best, performance.now() - start);
  }
  return data.length / 1e6 / (best / 1000);
}

let chunks = 0;
const whole = measure(() => {
  chunks = chunkBuffer(data).length;
});
const streamed = measure(() => {
  const chunker = new Chunker();
  for (let offset = 0; offset < data.length; offset += piece) chunker.push(data.subarray(offset, offset + piece));
  chunker.end();
});
const sha256 = measure(() => {
  createHash('sha256').update(data).digest();
});

const line = (name: string, mbps: number) =>
  console.log(`${name.padEnd(34)} ${mbps.toFixed(0).padStart(6)} MB/s  ${(mbps / sha256).toFixed(2)}x sha256`);
console.log(`${mib} MiB random data, ${chunks} chunks, mean ${(data.length / chunks / 1024).toFixed(0)} KiB (best of 3)`);
line('chunkBuffer (whole buffer)', whole);
line(`Chunker.push (${piece >> 20} MiB pieces)`, streamed);
line('sha256 (node:crypto)', sha256);
