import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { StrataError } from '../../src/errors.js';
import { rejectsWith, serve, type Served } from './harness.js';

// Damaged stored bytes must never reach a client as data: the server answers
// DATA_CORRUPTION if it notices before the response starts, and drops the
// connection if it notices later; the client reports both as DATA_CORRUPTION.

const MiB = 1024 * 1024;

async function packFiles(home: string): Promise<string[]> {
  const root = join(home, 'objects', 'packs');
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

/** Flips one byte in the middle of a pack's chunk bytes (before its trailer). */
async function flipMiddleByte(pack: string): Promise<void> {
  const file = await open(pack, 'r+');
  try {
    const { size } = await file.stat();
    const footer = Buffer.alloc(8);
    await file.read(footer, 0, 8, size - 8);
    const chunkBytes = size - 8 - Number(footer.readBigUInt64LE());
    assert.ok(chunkBytes > 0, `${pack} does not look like a pack`);
    const at = Math.floor(chunkBytes / 2);
    const one = Buffer.alloc(1);
    await file.read(one, 0, 1, at);
    one[0] = one[0]! ^ 0xff;
    await file.write(one, 0, 1, at);
  } finally {
    await file.close();
  }
}

describe('corrupted storage over the HTTP API', () => {
  let s: Served;
  beforeEach(async () => {
    s = await serve();
    await s.client.createRepo({ name: 'r' });
  });
  afterEach(async () => {
    await s.close();
  });

  it('answers DATA_CORRUPTION when the first bytes of a file are damaged', async () => {
    await s.client.commit('r', 'master', [{ op: 'put', path: '/small.txt', content: Buffer.from('small and precious '.repeat(50)) }]);
    for (const pack of await packFiles(s.home)) await flipMiddleByte(pack);

    const res = await fetch(`${s.url}/api/v1/file?ref=r:/small.txt`);
    assert.equal(res.status, 500);
    assert.equal((await res.json()).error.code, 'DATA_CORRUPTION');
    await rejectsWith(s.client.read('r:/small.txt'), 'DATA_CORRUPTION');
  });

  it('drops the transfer when damage is found mid-file; the client throws and has only seen good bytes', async () => {
    const original = randomBytes(40 * MiB);
    await s.client.commit('r', 'master', [{ op: 'put', path: '/big.bin', content: original }]);
    const packs = await packFiles(s.home);
    assert.ok(packs.length >= 2, `expected the file to span packs, found ${packs.length}`);
    for (const pack of packs) await flipMiddleByte(pack); // the middle of a pack is never the file's first chunk

    const { info, stream } = await s.client.read('r:/big.bin');
    assert.equal(info.size, original.length);
    const received: Buffer[] = [];
    await assert.rejects(
      (async () => {
        for await (const buf of stream) received.push(buf);
      })(),
      (err: unknown) => {
        assert.ok(err instanceof StrataError);
        assert.equal(err.code, 'DATA_CORRUPTION', err.message);
        return true;
      },
    );
    const got = Buffer.concat(received);
    assert.ok(got.length > 0 && got.length < original.length, `received ${got.length} bytes`);
    assert.ok(got.equals(original.subarray(0, got.length)), 'every byte handed out matches the original');

    // A plain HTTP client sees a failed transfer, never a complete-looking body.
    const res = await fetch(`${s.url}/api/v1/file?ref=r:/big.bin`);
    assert.equal(res.status, 200);
    await assert.rejects(res.arrayBuffer());

    // The server is still fine, and fsck reports the damage (200, ok:false).
    const fsck = await fetch(`${s.url}/api/v1/fsck`, { method: 'POST' });
    assert.equal(fsck.status, 200);
    const report = await fsck.json();
    assert.equal(report.ok, false);
    assert.ok(report.problems.length > 0);
  });
});
