// The featurizer is a contract between training and serving (possibly in
// another language), so its pieces are pinned to published values.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { emailBody, featurizeText, featurizerSpec, fnv1a32, sparseFeatures, tokenize } from '../../src/onnx/featurize.js';

describe('featurizer', () => {
  it('fnv1a32 matches the reference FNV-1a 32-bit test vectors', () => {
    assert.equal(fnv1a32(''), 0x811c9dc5);
    assert.equal(fnv1a32('a'), 0xe40c292c);
    assert.equal(fnv1a32('foobar'), 0xbf9cf968);
  });

  it('tokenizes lower-cased ASCII words, digits, $ and !', () => {
    assert.deepEqual(tokenize('FREE Money!! Win $1,000 now; café'), ['free', 'money', '!', '!', 'win', '$', '1', '000', 'now', 'caf']);
  });

  it('gives a unit-norm vector of log(1 + count) per bucket, the same dense and sparse', () => {
    const buckets = 64;
    const text = 'spam spam spam eggs';
    const dense = featurizeText(text, buckets);
    assert.equal(dense.length, buckets);
    const spam = fnv1a32('spam') % buckets, eggs = fnv1a32('eggs') % buckets;
    assert.notEqual(spam, eggs);
    const norm = Math.hypot(Math.log1p(3), Math.log1p(1));
    assert.ok(Math.abs(dense[spam]! - Math.log1p(3) / norm) < 1e-6);
    assert.ok(Math.abs(dense[eggs]! - Math.log1p(1) / norm) < 1e-6);
    assert.equal(dense.filter((v) => v !== 0).length, 2);

    const sparse = sparseFeatures(text, buckets);
    assert.deepEqual([...sparse.indices], [Math.min(spam, eggs), Math.max(spam, eggs)]);
    for (let i = 0; i < sparse.indices.length; i++) assert.equal(sparse.values[i], dense[sparse.indices[i]!]);
    assert.ok(featurizeText('', buckets).every((v) => v === 0));
  });

  it('featurizes the body of an email: the text after the first blank line', () => {
    assert.equal(emailBody('Subject: hi\r\nFrom: a@b\r\n\r\nbody\n\nmore'), 'body\n\nmore');
    assert.equal(emailBody('no headers'), 'no headers');
  });

  it('describes itself as data, and refuses bad bucket counts', () => {
    assert.equal(featurizerSpec(4096).buckets, 4096);
    assert.equal(new RegExp(featurizerSpec(8).token_pattern, 'g').source, '[a-z0-9]+|[$!]');
    assert.throws(() => featurizeText('x', 0), RangeError);
  });
});
