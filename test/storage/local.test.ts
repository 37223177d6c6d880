import assert from 'node:assert/strict';
import { randomFillSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { InvalidArgumentError, NotFoundError } from '../../src/errors.js';
import { LocalObjectStore } from '../../src/storage/local.js';
import { allocate, release } from '../../src/storage/memory.js';

const MiB = 1024 * 1024;

async function collect(keys: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const key of keys) out.push(key);
  return out;
}

describe('LocalObjectStore', () => {
  let dir: string;
  let store: LocalObjectStore;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'strata-local-'));
    store = new LocalObjectStore(join(dir, 'objects'));
  });
  after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('puts and gets whole objects and byte ranges, creating parent directories', async () => {
    await store.put('packs/ab/abcdef', [Buffer.from('hello '), Buffer.from('world')]);
    assert.equal((await store.get('packs/ab/abcdef')).toString(), 'hello world');
    assert.equal((await store.get('packs/ab/abcdef', { offset: 6, length: 5 })).toString(), 'world');
    assert.equal((await store.get('packs/ab/abcdef', { offset: 0, length: 0 })).length, 0);
    assert.equal((await store.get('packs/ab/abcdef', { offset: 8, length: 10 })).toString(), 'rld', 'a range past the end is cut short');
    assert.equal(await store.has('packs/ab/abcdef'), true);
    assert.equal(await store.has('packs/ab'), false, 'a directory is not an object');
  });

  it('leaves nothing in tmp/ after a put, and syncs', async () => {
    await store.put('a/b/c', new Uint8Array(100_000));
    await store.sync();
    assert.deepEqual(await readdir(join(dir, 'objects', 'tmp')), []);
  });

  it('writes a block-aligned run of the shared memory directly (O_DIRECT), and anything else the ordinary way, byte-exact', async () => {
    const buf = allocate(8 * MiB)!;
    try {
      randomFillSync(buf);
      const cases: [string, Uint8Array][] = [
        ['direct', buf.subarray(0, 3 * MiB + 123)], // aligned start, length rounded up in the write and cut back
        ['unaligned', buf.subarray(100, 2 * MiB + 100)], // not at a block boundary: the ordinary write
        ['small', buf.subarray(0, 1000)], // below the size where a direct write pays
        ['to-the-end', buf.subarray(8 * MiB - 2 * MiB, 8 * MiB)], // no room to round up past the buffer: ordinary
      ];
      for (const [key, data] of cases) {
        await store.put(`direct/${key}`, data);
        const back = await store.get(`direct/${key}`);
        assert.equal(back.length, data.length, key);
        assert.ok(back.equals(data), key);
      }
      await store.sync();
      // A filesystem without O_DIRECT (tmpfs) takes the ordinary write.
      if (existsSync('/dev/shm')) {
        const shm = await mkdtemp('/dev/shm/strata-direct-');
        const onTmpfs = new LocalObjectStore(shm);
        try {
          await onTmpfs.put('x', buf.subarray(0, 2 * MiB));
          assert.ok((await onTmpfs.get('x')).equals(buf.subarray(0, 2 * MiB)));
          await onTmpfs.put('y', buf.subarray(0, 2 * MiB));
          assert.ok((await onTmpfs.get('y')).equals(buf.subarray(0, 2 * MiB)));
        } finally {
          await onTmpfs.close();
          await rm(shm, { recursive: true, force: true });
        }
      } else {
        console.log('SKIPPED (part): no /dev/shm to check the fallback on a filesystem without O_DIRECT');
      }
    } finally {
      release(buf);
    }
  });

  it('reports a missing object as NotFoundError naming the key', async () => {
    await assert.rejects(store.get('packs/zz/missing'), (err: unknown) => err instanceof NotFoundError && err.message.includes('packs/zz/missing'));
    await assert.rejects(store.get('packs/zz/missing', { offset: 0, length: 1 }), NotFoundError);
    assert.equal(await store.has('packs/zz/missing'), false);
  });

  it('rejects keys that could escape the root', async () => {
    for (const key of ['../x', 'a/../../x', '/etc/passwd', 'a//b', '', 'a/./b', 'tmp/x', 'a\\b']) {
      await assert.rejects(store.put(key, Buffer.from('x')), InvalidArgumentError, key);
      await assert.rejects(store.get(key), InvalidArgumentError, key);
    }
  });

  it('reads the new content after an object is replaced, even through a cached handle', async () => {
    await store.put('r/key', Buffer.from('first'));
    assert.equal((await store.get('r/key', { offset: 0, length: 5 })).toString(), 'first');
    await store.put('r/key', Buffer.from('second'));
    assert.equal((await store.get('r/key', { offset: 0, length: 6 })).toString(), 'second');
  });

  it('serves many concurrent ranged reads across more files than it keeps open', async () => {
    const keys = Array.from({ length: 40 }, (_, i) => `many/${String(i).padStart(2, '0')}`);
    await Promise.all(keys.map((key, i) => store.put(key, Buffer.alloc(1000, i))));
    const reads = [];
    for (let round = 0; round < 5; round++) {
      for (const [i, key] of keys.entries()) reads.push(store.get(key, { offset: 10 * round, length: 10 }).then((b) => assert.deepEqual(b, Buffer.alloc(10, i))));
    }
    await Promise.all(reads);
  });

  it('lists keys under a prefix, skipping writes in progress', async () => {
    await writeFile(join(dir, 'objects', 'tmp', 'leftover'), 'x');
    await store.put('list/x/1', Buffer.from('1'));
    await store.put('list/x/2', Buffer.from('2'));
    await store.put('list/y/1', Buffer.from('3'));
    assert.deepEqual(await collect(store.list('list/')), ['list/x/1', 'list/x/2', 'list/y/1']);
    assert.deepEqual(await collect(store.list('list/x')), ['list/x/1', 'list/x/2']);
    assert.deepEqual(await collect(store.list('nothing/here')), []);
    const all = await collect(store.list());
    assert.ok(all.includes('list/y/1') && !all.some((k) => k.startsWith('tmp/')));
  });

  it('deletes idempotently', async () => {
    await store.put('d/1', Buffer.from('x'));
    await store.get('d/1', { offset: 0, length: 1 }); // caches a handle
    await store.delete('d/1');
    await store.delete('d/1');
    assert.equal(await store.has('d/1'), false);
    await assert.rejects(store.get('d/1', { offset: 0, length: 1 }), NotFoundError);
  });
});
