// FastCDC content-defined chunking (Xia et al., USENIX ATC 2016; "rolling two
// bytes" from the 2020 TPDS paper). Boundaries depend only on content, so an
// insert near the start of a file changes only the chunks around the edit and
// every later chunk dedups against the previous version.
//
// The boundaries are part of Strata's storage format: changing anything below
// (sizes, masks, gear table, where hashing starts, where the cut falls) splits
// the same data differently and silently defeats dedup against existing data.
// test/storage/chunker.test.ts pins the boundaries of a fixed input.
//
// Definition (a chunk starts at `s`; `n` is the input length):
//   - MIN_CHUNK = 256 KiB, AVG_CHUNK = 1 MiB, MAX_CHUNK = 4 MiB.
//   - If n - s <= MIN_CHUNK the rest is one chunk (so files under 256 KiB are one chunk).
//   - Otherwise fp = 0 and for each byte b at i = s + MIN_CHUNK, ... (the first
//     MIN_CHUNK bytes are skipped, not hashed):
//       fp = (fp << 1) + GEAR[b]            (32-bit wrap-around)
//       mask = i - s < AVG_CHUNK ? MASK_SMALL : MASK_LARGE
//       if (fp & mask) == 0 the chunk ends after byte i (length i - s + 1).
//     With no match the chunk ends at s + MAX_CHUNK, or at the end of input.
//   - Normalized chunking, level 2: MASK_SMALL has 22 one-bits (a cut is 4x
//     less likely than 1/AVG before the average point), MASK_LARGE has 18
//     (4x more likely after it). This pulls sizes towards the average; measured
//     on random data the mean chunk is ~1.1 MiB.
//   - The one-bits are the high bits 9..30 and 13..30: a 32-bit gear hash only
//     mixes a byte into bits at or above its age, so high bits see the most
//     bytes (the last 31). Bit 31 is left out so the two-bytes-at-a-time loop,
//     which tests `fp << 1` against `mask << 1`, is exact.
//   - GEAR[i] = the first 4 bytes, big-endian, as a signed 32-bit integer, of
//     SHA-256 of the ASCII string `strata/fastcdc/gear/${i}` (i = 0..255).
//
// Speed: the hot loop is WebAssembly (gear.wat, two bytes per step, about
// 3.5 GB/s here against 1.8 for the same loop in JavaScript). It reads the
// bytes inside the shared memory (memory.ts), where ChunkWriter's pack
// buffers are, so a file's bytes are scanned where they already are; other
// input is copied through a scratch buffer there, 1 MiB at a time. The
// streaming Chunker only reports cut offsets: its callers own the bytes.

import { createHash } from 'node:crypto';
import { GEAR_WASM } from './gear-wasm.js';
import { addressOf, allocate, memory } from './memory.js';

export const MIN_CHUNK = 256 * 1024;
export const AVG_CHUNK = 1024 * 1024;
export const MAX_CHUNK = 4 * 1024 * 1024;

const MASK_SMALL = 0x7ffffe00; // bits 9..30: 22 bits
const MASK_LARGE = 0x7fffe000; // bits 13..30: 18 bits

// The tables gear.wat reads: GEAR at address 0, GEAR << 1 at 1024 (little-endian i32).
{
  const tables = new DataView(memory.buffer, 0, 2048);
  for (let i = 0; i < 256; i++) {
    const gear = createHash('sha256').update(`strata/fastcdc/gear/${i}`).digest().readInt32BE(0);
    tables.setInt32(i * 4, gear, true);
    tables.setInt32(1024 + i * 4, gear << 1, true);
  }
}

const gear = new WebAssembly.Instance(new WebAssembly.Module(Buffer.from(GEAR_WASM, 'base64')), { strata: { memory } }).exports as {
  scan(start: number, end: number, fp: number, mask: number): number;
  leftover: WebAssembly.Global;
};

const SCRATCH_BYTES = 1024 * 1024;
/** Taken when this module loads, so it exists however full the shared memory gets later. */
const scratch = allocate(SCRATCH_BYTES)!;

/**
 * Streaming boundary finder. Feed the content in pieces of any size with
 * `push`; each call returns the offsets (into that piece) where a chunk ends.
 * `end` closes the stream and says how long the last chunk is.
 *
 *     const chunker = new Chunker();
 *     for await (const piece of source) for (const cut of chunker.push(piece)) ...
 *     const tail = chunker.end();
 */
export class Chunker {
  /** Bytes of the chunk in progress. */
  private length = 0;
  private fp = 0;

  /** Offsets in `piece` just past the last byte of each chunk completed in it, ascending. */
  push(piece: Uint8Array): number[] {
    const cuts: number[] = [];
    const address = addressOf(piece);
    if (address >= 0) {
      this.scan(address, piece.length, cuts);
      return cuts;
    }
    for (let done = 0; done < piece.length; ) {
      const n = Math.min(SCRATCH_BYTES, piece.length - done);
      scratch.set(piece.subarray(done, done + n));
      const before = cuts.length;
      this.scan(scratch.byteOffset, n, cuts);
      for (let i = before; i < cuts.length; i++) cuts[i]! += done;
      done += n;
    }
    return cuts;
  }

  /** Finds the cuts in `bytes` bytes at `address` of the shared memory; pushes them relative to `address`. */
  private scan(address: number, bytes: number, cuts: number[]): void {
    const end = address + bytes;
    let i = address;
    while (i < end) {
      let length = this.length;
      if (length < MIN_CHUNK) {
        const skip = Math.min(MIN_CHUNK - length, end - i);
        i += skip;
        length += skip;
        this.length = length;
        if (length < MIN_CHUNK) break;
      }
      const small = length < AVG_CHUNK;
      const stop = Math.min(end, i + (small ? AVG_CHUNK : MAX_CHUNK) - length);
      let cut = gear.scan(i, stop, this.fp, small ? MASK_SMALL : MASK_LARGE);
      if (cut < 0) {
        this.fp = gear.leftover.value as number;
        this.length = length + (stop - i);
        i = stop;
        if (this.length < MAX_CHUNK) continue;
        cut = stop;
      }
      cuts.push(cut - address);
      this.length = 0;
      this.fp = 0;
      i = cut;
    }
  }

  /** Ends the stream: the length of the final chunk (0 when the input ended on a boundary). */
  end(): number {
    const tail = this.length;
    this.length = 0;
    this.fp = 0;
    return tail;
  }
}

/** Splits a whole buffer into chunks: views into `buf`, nothing copied. Empty input gives no chunks. */
export function chunkBuffer(buf: Uint8Array): Uint8Array[] {
  const chunker = new Chunker();
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const cut of chunker.push(buf)) {
    chunks.push(buf.subarray(start, cut));
    start = cut;
  }
  if (chunker.end() > 0) chunks.push(buf.subarray(start));
  return chunks;
}
