// The chunker against its documented definition: a byte-at-a-time reference
// written from the comment at the top of src/storage/chunker.ts must find the
// same boundaries as the fast two-bytes-at-a-time streaming code, and the
// boundaries of a fixed input are pinned (they are part of the storage format).

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { readFile } from 'node:fs/promises';
import { AVG_CHUNK, Chunker, MAX_CHUNK, MIN_CHUNK, chunkBuffer } from '../../src/storage/chunker.js';
import { addressOf, allocate, MAX_BYTES, release } from '../../src/storage/memory.js';

const KiB = 1024;
const MiB = 1024 * 1024;

const GEAR = Int32Array.from({ length: 256 }, (_, i) => createHash('sha256').update(`strata/fastcdc/gear/${i}`).digest().readInt32BE(0));

function referenceLengths(data: Uint8Array): number[] {
  const lengths: number[] = [];
  for (let s = 0; s < data.length; ) {
    let cut = Math.min(data.length, s + MAX_CHUNK);
    if (data.length - s > MIN_CHUNK) {
      let fp = 0;
      for (let i = s + MIN_CHUNK; i < cut; i++) {
        fp = ((fp << 1) + GEAR[data[i]!]!) | 0;
        const mask = i - s < AVG_CHUNK ? 0x7ffffe00 : 0x7fffe000;
        if ((fp & mask) === 0) {
          cut = i + 1;
          break;
        }
      }
    }
    lengths.push(cut - s);
    s = cut;
  }
  return lengths;
}

/** Deterministic bytes (xorshift32), so pinned boundaries do not depend on a random source. */
function seededBytes(length: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  let x = seed | 0;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function streamedLengths(data: Uint8Array, pieceSizes: () => number): number[] {
  const chunker = new Chunker();
  const lengths: number[] = [];
  let chunkStart = 0;
  for (let offset = 0; offset < data.length; ) {
    const piece = data.subarray(offset, offset + pieceSizes());
    for (const cut of chunker.push(piece)) {
      lengths.push(offset + cut - chunkStart);
      chunkStart = offset + cut;
    }
    offset += piece.length;
  }
  const tail = chunker.end();
  if (tail > 0) lengths.push(tail);
  assert.equal(chunkStart + tail, data.length);
  return lengths;
}

const lengthsOf = (chunks: Uint8Array[]) => chunks.map((c) => c.length);
const idsOf = (chunks: Uint8Array[]) => chunks.map((c) => createHash('sha256').update(c).digest('hex'));

describe('chunker', () => {
  // Seeded, so a rare unlucky input cannot make a run flaky.
  const data = seededBytes(24 * MiB, 1);

  it('finds the same boundaries as the byte-at-a-time reference definition', () => {
    const expected = referenceLengths(data);
    assert.ok(expected.length > 10, `expected many chunks, got ${expected.length}`);
    assert.deepEqual(lengthsOf(chunkBuffer(data)), expected);
    const fresh = randomBytes(8 * MiB);
    assert.deepEqual(lengthsOf(chunkBuffer(fresh)), referenceLengths(fresh));
  });

  it('finds the same boundaries however the stream is split', () => {
    const expected = lengthsOf(chunkBuffer(data));
    assert.deepEqual(streamedLengths(data, () => 4 * MiB), expected);
    assert.deepEqual(streamedLengths(data, () => 64 * KiB + 1), expected);
    let n = 0;
    const odd = [1, 2, 3, 7, 4099, 333_333, 1_048_577];
    assert.deepEqual(streamedLengths(data, () => odd[n++ % odd.length]!), expected);
  });

  it('keeps boundaries stable across machines and versions', () => {
    // Changing these numbers changes Strata's storage format.
    const lengths = lengthsOf(chunkBuffer(seededBytes(12 * MiB, 2463534242)));
    assert.deepEqual(lengths, PINNED_LENGTHS);
  });

  it('finds the same boundaries in the shared memory, where pack buffers are scanned in place', () => {
    const buf = allocate(12 * MiB)!;
    try {
      assert.ok(addressOf(buf) > 0);
      data.copy(buf, 0, 0, 12 * MiB);
      const inPlace = streamedLengths(buf.subarray(0, 12 * MiB), () => 1 + Math.floor(Math.random() * 2 * MiB));
      assert.deepEqual(inPlace, referenceLengths(data.subarray(0, 12 * MiB)));
    } finally {
      release(buf);
    }
    assert.equal(addressOf(data), -1);
    assert.equal(allocate(MAX_BYTES), null, 'past its cap the shared memory says no (callers take an ordinary buffer)');
  });

  it('runs the scanner compiled from gear.wat (src/storage/gear-wasm.ts is up to date)', async () => {
    const tool = new URL('../../../tools/build-wasm.mjs', import.meta.url).href;
    const { compileGear } = (await import(tool)) as { compileGear(): Promise<string> };
    const committed = await readFile(new URL('../../../src/storage/gear-wasm.ts', import.meta.url), 'utf8');
    assert.equal(committed, await compileGear(), 'run npm run build:wasm');
  });

  it('respects the minimum and maximum chunk sizes', () => {
    const chunks = chunkBuffer(data);
    for (const c of chunks.slice(0, -1)) assert.ok(c.length >= MIN_CHUNK && c.length <= MAX_CHUNK, `chunk of ${c.length} bytes`);
    assert.ok(chunks.at(-1)!.length <= MAX_CHUNK);
    const mean = data.length / chunks.length;
    assert.ok(mean > 0.7 * MiB && mean < 1.6 * MiB, `mean chunk ${mean} bytes`);

    // Constant bytes: the gear hash settles on one value; for some byte values it never
    // matches a mask, and then every chunk is cut at the maximum size.
    let sawMaximum = false;
    for (let b = 0; b < 256 && !sawMaximum; b++) {
      const lengths = lengthsOf(chunkBuffer(Buffer.alloc(9 * MiB, b)));
      for (const l of lengths.slice(0, -1)) assert.ok(l >= MIN_CHUNK && l <= MAX_CHUNK);
      sawMaximum = lengths[0] === MAX_CHUNK;
      if (sawMaximum) assert.deepEqual(lengths, [MAX_CHUNK, MAX_CHUNK, MiB]);
    }
    assert.ok(sawMaximum, 'no constant input reached the maximum chunk size');
  });

  it('keeps inputs up to the minimum size in one chunk, and an empty input in none', () => {
    assert.deepEqual(chunkBuffer(new Uint8Array(0)), []);
    for (const size of [1, 1000, MIN_CHUNK - 1, MIN_CHUNK]) {
      const buf = data.subarray(0, size);
      const chunks = chunkBuffer(buf);
      assert.equal(chunks.length, 1);
      assert.equal(chunks[0]!.length, size);
    }
    assert.equal(new Chunker().end(), 0);
  });

  it('changes only the chunks around an insert near the start (content-defined)', () => {
    const before = chunkBuffer(data);
    const edited = Buffer.concat([data.subarray(0, 1000), seededBytes(777, 2), data.subarray(1000)]);
    const after = chunkBuffer(edited);
    const oldIds = new Set(idsOf(before));
    const changed = idsOf(after).filter((id) => !oldIds.has(id));
    assert.ok(changed.length <= 2, `${changed.length} of ${after.length} chunks changed`);
    assert.deepEqual(idsOf(after).slice(2), idsOf(before).slice(2));
  });

  it('returns views into the input, not copies', () => {
    const chunks = chunkBuffer(data);
    assert.equal(chunks[1]!.buffer, data.buffer);
    assert.equal(chunks[1]!.byteOffset, data.byteOffset + chunks[0]!.length);
  });
});

const PINNED_LENGTHS = [1265529, 1125347, 1081783, 1111467, 1799825, 2360273, 1182372, 1126716, 1215636, 313964];
