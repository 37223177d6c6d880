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
// Speed: the hot loop reads two bytes per iteration from Int32Array tables
// with `| 0` arithmetic (V8 keeps it in int32 registers) and returns at the
// first cut. The streaming Chunker only reports cut offsets and never copies:
// its callers already own the bytes (ChunkWriter copies each byte once, into
// the pack being built).

import { createHash } from 'node:crypto';

export const MIN_CHUNK = 256 * 1024;
export const AVG_CHUNK = 1024 * 1024;
export const MAX_CHUNK = 4 * 1024 * 1024;

const MASK_SMALL = 0x7ffffe00; // bits 9..30: 22 bits
const MASK_LARGE = 0x7fffe000; // bits 13..30: 18 bits

const GEAR = new Int32Array(256);
/** GEAR[i] << 1, for the first byte of each pair in the unrolled loop. */
const GEAR_SHIFTED = new Int32Array(256);
for (let i = 0; i < 256; i++) {
  GEAR[i] = createHash('sha256').update(`strata/fastcdc/gear/${i}`).digest().readInt32BE(0);
  GEAR_SHIFTED[i] = GEAR[i] << 1;
}

// The hash left over when scanGear finds no cut; a module variable rather than
// a returned object so the hot loop allocates nothing.
let leftoverFp = 0;

/**
 * Rolls the gear hash over buf[start..end) starting from `fp` and returns the
 * offset just past the first byte where (fp & mask) == 0, or -1 (and the final
 * hash in `leftoverFp`). Two bytes per iteration: after the first byte the
 * hash is kept shifted left by one, so it is compared against `mask << 1`.
 */
function scanGear(buf: Uint8Array, start: number, end: number, fp: number, mask: number): number {
  const gear = GEAR;
  const gearShifted = GEAR_SHIFTED;
  const maskShifted = mask << 1;
  const pairsEnd = end - ((end - start) & 1);
  let i = start;
  while (i < pairsEnd) {
    fp = ((fp << 2) + gearShifted[buf[i]!]!) | 0;
    if ((fp & maskShifted) === 0) return i + 1;
    fp = (fp + gear[buf[i + 1]!]!) | 0;
    if ((fp & mask) === 0) return i + 2;
    i += 2;
  }
  if (i < end) {
    fp = ((fp << 1) + gear[buf[i]!]!) | 0;
    if ((fp & mask) === 0) return i + 1;
  }
  leftoverFp = fp;
  return -1;
}

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
    // Buffer and Uint8Array have different hidden classes; one shape keeps
    // the hot loop's element loads monomorphic.
    const buf = piece.constructor === Uint8Array ? piece : new Uint8Array(piece.buffer, piece.byteOffset, piece.byteLength);
    const end = buf.length;
    const cuts: number[] = [];
    let i = 0;
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
      let cut = scanGear(buf, i, stop, this.fp, small ? MASK_SMALL : MASK_LARGE);
      if (cut < 0) {
        this.fp = leftoverFp;
        this.length = length + (stop - i);
        i = stop;
        if (this.length < MAX_CHUNK) continue;
        cut = stop;
      }
      cuts.push(cut);
      this.length = 0;
      this.fp = 0;
      i = cut;
    }
    return cuts;
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
