// Text -> fixed-size feature vector by the hashing trick, shared by the demo's
// training step, the tests and serving: a model trained on these features is
// only useful if requests are featurized exactly the same way, so the recipe
// is also written out as data (featurizerSpec -> vocab.json) for servers in
// other languages.
//
// Recipe: Unicode lower-case the text; tokens are the matches of TOKEN_PATTERN
// (ASCII only, so bytes and UTF-16 code units agree in any implementation);
// bucket = FNV-1a 32-bit hash of the token's bytes, mod `buckets`; value =
// log(1 + count) per bucket; the vector is then scaled to unit L2 norm (an
// empty text gives the zero vector).

export const TOKEN_PATTERN = /[a-z0-9]+|[$!]/g;

/** FNV-1a, 32-bit, over the char codes of an ASCII string; unsigned result. */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export function tokenize(text: string): string[] {
  return text.toLowerCase().match(TOKEN_PATTERN) ?? [];
}

/** The non-zero entries of featurizeText's vector, indices ascending. */
export interface SparseFeatures {
  indices: Int32Array;
  values: Float32Array;
}

export function sparseFeatures(text: string, buckets: number): SparseFeatures {
  checkBuckets(buckets);
  const counts = new Map<number, number>();
  for (const token of tokenize(text)) {
    const b = fnv1a32(token) % buckets;
    counts.set(b, (counts.get(b) ?? 0) + 1);
  }
  const indices = Int32Array.from(counts.keys()).sort();
  const values = new Float32Array(indices.length);
  let norm = 0;
  for (let i = 0; i < indices.length; i++) {
    const v = Math.log1p(counts.get(indices[i]!)!);
    values[i] = v;
    norm += v * v;
  }
  if (norm > 0) {
    const scale = 1 / Math.sqrt(norm);
    for (let i = 0; i < values.length; i++) values[i]! *= scale;
  }
  return { indices, values };
}

export function featurizeText(text: string, buckets: number): Float32Array {
  const { indices, values } = sparseFeatures(text, buckets);
  const dense = new Float32Array(buckets);
  for (let i = 0; i < indices.length; i++) dense[indices[i]!] = values[i]!;
  return dense;
}

/** The body of a raw RFC 822 email: everything after the first blank line (the whole text if none). */
export function emailBody(raw: string): string {
  const m = /\r?\n\r?\n/.exec(raw);
  return m ? raw.slice(m.index + m[0].length) : raw;
}

/** The recipe above as data, for vocab.json. */
export function featurizerSpec(buckets: number) {
  checkBuckets(buckets);
  return {
    kind: 'hashed_bag_of_words',
    lowercase: true,
    token_pattern: TOKEN_PATTERN.source,
    hash: 'fnv1a_32',
    buckets,
    bucket: 'fnv1a_32(token) mod buckets',
    value: 'log1p(count)',
    normalize: 'l2',
  };
}

function checkBuckets(buckets: number): void {
  if (!Number.isInteger(buckets) || buckets < 1 || buckets > 2 ** 24) {
    throw new RangeError(`buckets must be an integer between 1 and 16777216, got ${buckets}`);
  }
}
