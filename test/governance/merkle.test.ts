import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { consistencyProof, EMPTY_ROOT, leafHash, MerkleBuilder, merkleRoot, nodeHash, verifyConsistency } from '../../src/governance/merkle.js';

// RFC 6962 Merkle tree hashes. Known answers: the empty tree is SHA-256(""),
// a one-leaf tree is SHA-256(0x00 || entry), and the roots of the trees over
// the first 1..8 of the CT test inputs are published (certificate-transparency
// merkle tree tests). Small trees are also checked against the recursive
// definition written out by hand.

const sha = (...parts: Buffer[]) => createHash('sha256').update(Buffer.concat(parts)).digest();
const hex = (s: string) => Buffer.from(s, 'hex');
/** The RFC 6962 definition, recursively, straight from section 2.1. */
function mth(leaves: Buffer[]): Buffer {
  if (leaves.length === 0) return sha();
  if (leaves.length === 1) return leaves[0];
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return sha(Buffer.from([1]), mth(leaves.slice(0, k)), mth(leaves.slice(k)));
}
const entries = (n: number) => Array.from({ length: n }, (_, i) => leafHash(`entry ${i}`));

// The inputs used by the CT test suites (empty, 0x00, 0x10, 0x2021, 0x3031, 0x40414243, ...).
const CT_INPUTS = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map(hex);

describe('merkle (RFC 6962)', () => {
  it('hashes the empty tree to SHA-256 of nothing', () => {
    assert.equal(EMPTY_ROOT.toString('hex'), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    assert.equal(merkleRoot([]).toString('hex'), EMPTY_ROOT.toString('hex'));
  });

  it('prefixes leaves with 0x00 and nodes with 0x01', () => {
    // Leaf hash of the empty entry: SHA-256(0x00), a published CT value.
    assert.equal(leafHash(Buffer.alloc(0)).toString('hex'), '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d');
    const a = leafHash('a');
    const b = leafHash('b');
    assert.deepEqual(a, sha(Buffer.from([0]), Buffer.from('a')));
    assert.deepEqual(nodeHash(a, b), sha(Buffer.from([1]), a, b));
    assert.deepEqual(merkleRoot([a]), a);
    assert.deepEqual(merkleRoot([a, b]), nodeHash(a, b));
  });

  it('matches the published root of the 8-input CT test tree, and its prefixes', () => {
    const leaves = CT_INPUTS.map((b) => leafHash(b));
    // Roots for sizes 1..8 from RFC 6962 test vectors (certificate-transparency merkle_tree_test).
    const published = [
      '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
      'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
      'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
      '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
      '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
      'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
      '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
    ];
    for (let n = 1; n <= 8; n++) assert.equal(merkleRoot(leaves.slice(0, n)).toString('hex'), published[n - 1], `size ${n}`);
  });

  it('agrees with the recursive definition for every size up to 70', () => {
    const leaves = entries(70);
    const b = new MerkleBuilder();
    for (let n = 0; n <= 70; n++) {
      assert.deepEqual(b.root(), mth(leaves.slice(0, n)), `size ${n}`);
      if (n < 70) b.push(leaves[n]);
    }
  });

  it('resumes from a frontier to the same roots', () => {
    const leaves = entries(45);
    const b = new MerkleBuilder();
    for (const l of leaves.slice(0, 13)) b.push(l);
    const resumed = MerkleBuilder.fromFrontier(13, b.frontier());
    for (const l of leaves.slice(13)) resumed.push(l);
    assert.deepEqual(resumed.root(), mth(leaves));
    assert.throws(() => MerkleBuilder.fromFrontier(13, b.frontier().slice(1)), /frontier/);
  });

  it('makes and checks consistency proofs between every pair of sizes', () => {
    const leaves = entries(20);
    for (let n = 1; n <= 20; n++) {
      const newRoot = mth(leaves.slice(0, n));
      for (let m = 1; m <= n; m++) {
        const oldRoot = mth(leaves.slice(0, m));
        const proof = consistencyProof(leaves.slice(0, n), m);
        assert.ok(verifyConsistency(m, n, oldRoot, newRoot, proof), `${m} -> ${n}`);
        if (m < n) {
          // A changed old entry, or a wrong old root, must not verify.
          assert.ok(!verifyConsistency(m, n, leafHash('forged'), newRoot, proof), `forged old root ${m} -> ${n}`);
          assert.ok(!verifyConsistency(m, n, oldRoot, leafHash('forged'), proof), `forged new root ${m} -> ${n}`);
          if (proof.length > 0) {
            const bad = proof.slice();
            bad[0] = leafHash('x');
            assert.ok(!verifyConsistency(m, n, oldRoot, newRoot, bad), `forged proof ${m} -> ${n}`);
          }
        }
      }
    }
  });

  it('matches the RFC 6962 example proof shapes (7 leaves)', () => {
    // RFC 6962 2.1.3: PROOF(3, D[7]) = [c, d, g, l]; PROOF(4, D[7]) = [l]; PROOF(6, D[7]) = [i, j, k].
    const d = entries(7);
    assert.equal(consistencyProof(d, 3).length, 4);
    assert.deepEqual(consistencyProof(d, 4), [mth(d.slice(4, 7))]);
    assert.equal(consistencyProof(d, 6).length, 3);
  });

  it('builds a million-leaf root quickly', () => {
    const b = new MerkleBuilder();
    const leaf = leafHash('x');
    const t0 = performance.now();
    for (let i = 0; i < 1_000_000; i++) b.push(leaf);
    const ms = performance.now() - t0;
    assert.equal(b.size, 1_000_000);
    assert.ok(ms < 5000, `1M pushes took ${ms} ms`);
  });
});
