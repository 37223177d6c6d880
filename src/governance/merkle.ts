import * as crypto from 'node:crypto';
import { createHash } from 'node:crypto';

// RFC 6962 (Certificate Transparency) Merkle tree hashes, as used by the audit
// log. Leaves and interior nodes get different one-byte prefixes so a leaf can
// never be passed off as a node (second-preimage resistance). Everything here
// is iterative: the audit log may hold millions of entries.

const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);

/** MTH({}) = SHA-256 of the empty string. */
export const EMPTY_ROOT: Buffer = createHash('sha256').digest();

// crypto.hash (Node >= 20.12) is a one-shot digest without a Hash object:
// about 2.5x faster per call, which is most of `audit verify` over 1M entries.
const oneShot = (crypto as { hash?: (alg: string, data: string | Buffer, enc: 'buffer') => Buffer }).hash;
const nodeInput = Buffer.alloc(65);

export function leafHash(entry: Buffer | string): Buffer {
  // A string entry is hashed as its UTF-8 bytes; "\0" + text is exactly 0x00 || UTF-8(text).
  if (oneShot) return oneShot('sha256', typeof entry === 'string' ? '\0' + entry : Buffer.concat([LEAF_PREFIX, entry]), 'buffer');
  return createHash('sha256').update(LEAF_PREFIX).update(entry).digest();
}

export function nodeHash(left: Buffer, right: Buffer): Buffer {
  if (oneShot && left.length === 32 && right.length === 32) {
    nodeInput[0] = 0x01;
    left.copy(nodeInput, 1);
    right.copy(nodeInput, 33);
    return oneShot('sha256', nodeInput, 'buffer');
  }
  return createHash('sha256').update(NODE_PREFIX).update(left).update(right).digest();
}

/**
 * Builds MTH over leaf hashes pushed in order, keeping only the roots of the
 * perfect subtrees along the right edge (one per set bit of the size), so memory
 * is O(log n) and the root at any size costs O(log n).
 *
 * RFC 6962 splits n leaves at the largest power of two k < n; the left part is
 * the perfect subtree of size k and the right part is MTH of the rest, which is
 * exactly folding the frontier from its smallest (rightmost) subtree leftwards.
 */
export class MerkleBuilder {
  private stack: Buffer[] = [];
  private count = 0;

  /** Resumes from a frontier (as returned by `frontier()`) of a tree with `size` leaves. */
  static fromFrontier(size: number, frontier: Buffer[]): MerkleBuilder {
    if (!Number.isSafeInteger(size) || size < 0 || popcount(size) !== frontier.length) {
      throw new Error(`a frontier for ${size} leaves has ${popcount(size)} hashes, not ${frontier.length}`);
    }
    const b = new MerkleBuilder();
    b.stack = frontier.slice();
    b.count = size;
    return b;
  }

  get size(): number {
    return this.count;
  }

  push(leaf: Buffer): void {
    let h = leaf;
    // Merge equal-sized subtrees: one merge per trailing 1-bit of the old size.
    for (let n = this.count; n & 1; n >>>= 1) h = nodeHash(this.stack.pop()!, h);
    // Sizes beyond 2^32 would break the >>> above; an audit log never gets there.
    this.stack.push(h);
    this.count++;
  }

  root(): Buffer {
    if (this.count === 0) return EMPTY_ROOT;
    let h = this.stack[this.stack.length - 1];
    for (let i = this.stack.length - 2; i >= 0; i--) h = nodeHash(this.stack[i], h);
    return h;
  }

  /** The perfect-subtree roots, largest (leftmost) first. */
  frontier(): Buffer[] {
    return this.stack.slice();
  }
}

function popcount(n: number): number {
  let c = 0;
  for (; n > 0; n = Math.floor(n / 2)) c += n % 2;
  return c;
}

/** MTH over a list of leaf hashes. */
export function merkleRoot(leaves: readonly Buffer[]): Buffer {
  const b = new MerkleBuilder();
  for (const l of leaves) b.push(l);
  return b.root();
}

/** Largest power of two strictly less than n (n >= 2). */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/**
 * RFC 6962 section 2.1.2: PROOF(m, D[n]), the consistency proof between the
 * first m leaves and all n. Needs all leaf hashes; for tests and tools, not the
 * hot path (verify recomputes roots directly while streaming).
 */
export function consistencyProof(leaves: readonly Buffer[], m: number): Buffer[] {
  const n = leaves.length;
  if (!(m >= 0 && m <= n)) throw new Error(`consistency proof for ${m} of ${n} leaves`);
  if (m === 0 || m === n) return [];
  const proof: Buffer[] = [];
  // SUBPROOF(m, D[lo:hi], b), unrolled: each step either descends left (and
  // records the right subtree) or right (and records the left subtree).
  let lo = 0;
  let hi = n;
  let mm = m;
  let complete = true;
  for (;;) {
    const size = hi - lo;
    if (mm === size) {
      if (!complete) proof.push(merkleRoot(leaves.slice(lo, hi)));
      break;
    }
    const k = splitPoint(size);
    if (mm <= k) {
      proof.push(merkleRoot(leaves.slice(lo + k, hi)));
      hi = lo + k;
    } else {
      proof.push(merkleRoot(leaves.slice(lo, lo + k)));
      lo = lo + k;
      mm -= k;
      complete = false;
    }
  }
  return proof.reverse();
}

/**
 * RFC 9162 section 2.1.4.2: checks that `newRoot` (n leaves) extends `oldRoot`
 * (m leaves) using a consistency proof.
 */
export function verifyConsistency(m: number, n: number, oldRoot: Buffer, newRoot: Buffer, proof: readonly Buffer[]): boolean {
  if (m > n || m < 0) return false;
  if (m === n) return proof.length === 0 && oldRoot.equals(newRoot);
  if (m === 0) return proof.length === 0; // the empty tree is a prefix of every tree
  if (proof.length === 0) return false;
  let path = proof.slice();
  // If m is a power of two, the old root is itself the first node of the proof.
  if ((m & (m - 1)) === 0) path = [oldRoot, ...path];
  let fn = m - 1;
  let sn = n - 1;
  while (fn & 1) {
    fn >>>= 1;
    sn >>>= 1;
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn & 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (!(fn & 1)) {
        while (!(fn & 1) && fn !== 0) {
          fn >>>= 1;
          sn >>>= 1;
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn >>>= 1;
    sn >>>= 1;
  }
  return sn === 0 && fr.equals(oldRoot) && sr.equals(newRoot);
}
