import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Change } from '../../src/data/types.js';
import { serve, type Served } from './harness.js';

// Content crosses the API as a stream in both directions: sizes that would
// hurt if held whole, and commits of very many parts.

const MiB = 1024 * 1024;

describe('streaming through the HTTP API', () => {
  let s: Served;
  before(async () => {
    s = await serve();
    await s.client.createRepo({ name: 'big' });
  });
  after(async () => {
    await s.close();
  });

  it('uploads and downloads 64 MiB of random bytes with matching size and SHA-256', async () => {
    const sent = createHash('sha256');
    async function* content() {
      for (let i = 0; i < 64; i++) {
        const block = randomBytes(MiB);
        sent.update(block);
        yield block;
      }
    }
    let progress = 0;
    const result = await s.client.commit('big', 'master', [{ op: 'put', path: '/random.bin', content: content() }], {
      message: '64 MiB',
      onProgress: (bytes) => (progress = bytes),
    });
    const hash = sent.digest('hex');
    assert.equal(result.bytes, 64 * MiB);
    assert.equal(progress, 64 * MiB);

    const { info, stream } = await s.client.read('big:/random.bin');
    assert.deepEqual(info, { path: '/random.bin', type: 'file', size: 64 * MiB, hash });
    const received = createHash('sha256');
    let size = 0;
    for await (const buf of stream) {
      received.update(buf);
      size += buf.length;
    }
    assert.equal(size, 64 * MiB);
    assert.equal(received.digest('hex'), hash);
  });

  it('moves 1 GiB each way without holding it in memory', async () => {
    const block = Buffer.alloc(MiB);
    for (let i = 0; i < block.length; i++) block[i] = (i * 2654435761) >>> 24;
    const base = process.memoryUsage().rss;
    let peak = base;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 25);
    try {
      async function* gib() {
        for (let i = 0; i < 1024; i++) yield block;
      }
      const result = await s.client.commit('big', 'master', [{ op: 'put', path: '/gib', content: gib() }]);
      assert.equal(result.bytes, 1024 * MiB);
      const { info, stream } = await s.client.read('big:/gib');
      assert.equal(info.size, 1024 * MiB);
      let size = 0;
      for await (const buf of stream) size += buf.length;
      assert.equal(size, 1024 * MiB);
    } finally {
      clearInterval(sampler);
    }
    // Server and client share this process; either holding the file whole would add a GiB.
    assert.ok(peak - base < 512 * MiB, `memory grew by ${Math.round((peak - base) / MiB)} MiB while moving 1 GiB`);
  });

  it('commits 100 000 files in one upload and lists them back as a stream', async () => {
    function* files(): Generator<Change> {
      for (let i = 0; i < 100_000; i++) yield { op: 'put', path: `/d${i % 100}/f${i}.txt`, content: Buffer.from(`file ${i}\n`) };
    }
    const result = await s.client.commit('big', 'many', files());
    assert.equal(result.files, 100_000);
    let n = 0;
    for await (const f of s.client.walk('big@many')) {
      assert.equal(f.type, 'file');
      n++;
    }
    assert.equal(n, 100_000);
    const { stream } = await s.client.read('big@many:/d42/f99942.txt');
    let text = '';
    for await (const buf of stream) text += buf.toString();
    assert.equal(text, 'file 99942\n');
  });
});
