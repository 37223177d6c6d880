// The chunk store over a real SQLite file and a real directory.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { CorruptionError, StrataError } from '../../src/errors.js';
import { openMetaDb, type MetaDb } from '../../src/meta/db.js';
import { ChunkStore, decodePackTrailer, packKey } from '../../src/storage/chunk-store.js';
import { DiskFile } from '../../src/storage/disk-file.js';
import { LocalObjectStore } from '../../src/storage/local.js';
import { allocate, release } from '../../src/storage/memory.js';

const MiB = 1024 * 1024;
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function* pieces(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let offset = 0; offset < data.length; offset += size) yield data.subarray(offset, offset + size);
}

describe('ChunkStore', () => {
  let dir: string;
  let meta: MetaDb;
  let objects: LocalObjectStore;
  let store: ChunkStore;

  const count = async (table: 'chunks' | 'packs') =>
    Number((await meta.db.selectFrom(table).select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
  const packKeys = async () => {
    const keys: string[] = [];
    for await (const key of objects.list('packs/')) keys.push(key);
    return keys;
  };
  const packPath = (id: string) => join(dir, 'objects', ...packKey(id).split('/'));

  /** Writes files in one writer and records them, like a commit does. */
  async function commit(...files: Buffer[]) {
    const writer = store.writer();
    const stored = [];
    for (const file of files) stored.push(await writer.writeStream(pieces(file, 64 * 1024)));
    await writer.flush();
    await meta.db.transaction().execute((trx) => writer.record(trx));
    return { writer, stored };
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'strata-chunks-'));
    meta = await openMetaDb(join(dir, 'meta.sqlite'));
    objects = new LocalObjectStore(join(dir, 'objects'));
    store = new ChunkStore(meta.db, objects);
  });
  afterEach(async () => {
    await objects.close();
    await meta.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('round-trips a multi-chunk file, verified', async () => {
    const data = randomBytes(20 * MiB);
    const { writer, stored } = await commit(data);
    const [file] = stored;
    assert.equal(file!.hash, sha256(data));
    assert.equal(file!.size, data.length);
    assert.ok(file!.chunks.length > 5, `${file!.chunks.length} chunks`);
    assert.deepEqual(writer.stats, { files: 1, bytes: data.length, chunks: file!.chunks.length, newChunks: file!.chunks.length, newBytes: data.length });
    assert.ok((await store.readAll(file!.chunks)).equals(data));

    let offset = 0;
    let index = 0;
    for await (const chunk of store.read(file!.chunks)) {
      assert.equal(sha256(chunk), file!.chunks[index++]);
      assert.ok(chunk.equals(data.subarray(offset, offset + chunk.length)));
      offset += chunk.length;
    }
    assert.equal(offset, data.length);
    assert.deepEqual(await store.verify(), []);
  });

  it('reads a DiskFile straight into its packs: same result as streaming the bytes, packs split where a stream splits them', async () => {
    // 40 MiB of random bytes cross two pack boundaries, where the bytes read past a chunk's end move to the next pack.
    const data = randomBytes(40 * MiB);
    const path = join(dir, 'big.bin');
    await writeFile(path, data);
    const small = randomBytes(3000);
    const fromDisk = store.writer();
    const progress: number[] = [];
    const [before, file, after] = [await fromDisk.writeBuffer(small), await fromDisk.writeStream(new DiskFile(path), (n) => progress.push(n)), await fromDisk.writeBuffer(small.subarray(1))];
    await fromDisk.flush();
    await fromDisk.record(meta.db);

    const streamed = await commit(small, data, small.subarray(1));
    assert.deepEqual([before, file, after], streamed.stored);
    assert.equal(file!.hash, sha256(data));
    assert.ok(file!.chunks.length > 20, `${file!.chunks.length} chunks`);
    assert.equal(progress.at(-1), data.length);
    assert.ok(progress.length > 10 && progress.every((n, i) => i === 0 || n > progress[i - 1]!), 'progress grows as the file is read');
    assert.ok((await store.readAll(file!.chunks)).equals(data));
    const packs = await meta.db.selectFrom('packs').selectAll().execute();
    assert.equal(packs.length, 3, 'the second writer stored nothing new');
    for (const p of packs) {
      const { entries } = decodePackTrailer(await readFile(packPath(p.id)), p.id);
      assert.ok(entries.length > 0);
    }
    assert.deepEqual(await store.verify(), []);
  });

  it('writes with ordinary buffers when the shared memory is full, with the same result', async () => {
    // Take every buffer the shared memory can still give (pack-sized spares first), so the writer cannot get one.
    const taken: Buffer[] = [];
    for (const size of [21 * MiB, 16 * MiB, MiB]) for (let buf = allocate(size); buf; buf = allocate(size)) taken.push(buf);
    try {
      assert.equal(allocate(MiB), null);
      const data = randomBytes(20 * MiB);
      const path = join(dir, 'full.bin');
      await writeFile(path, data);
      const { stored } = await commit(data, Buffer.from('small'));
      const writer = store.writer();
      const fromDisk = await writer.writeStream(new DiskFile(path));
      await writer.flush();
      await writer.record(meta.db);
      assert.deepEqual(fromDisk, stored[0]);
      assert.ok((await store.readAll(stored[0]!.chunks)).equals(data));
      assert.deepEqual(await store.verify(), []);
    } finally {
      for (const buf of taken) release(buf);
    }
  });

  it('iterates a DiskFile like a stream, and names a file it cannot read', async () => {
    const data = randomBytes(MiB + 17);
    const path = join(dir, 'f.bin');
    await writeFile(path, data);
    const parts: Buffer[] = [];
    for await (const part of new DiskFile(path)) parts.push(Buffer.from(part));
    assert.ok(Buffer.concat(parts).equals(data));
    const writer = store.writer();
    await assert.rejects(writer.writeStream(new DiskFile(join(dir, 'missing.bin'))), (err: unknown) => err instanceof StrataError && err.code === 'INVALID_ARGUMENT' && /missing\.bin/.test(err.message));
    assert.equal((await writer.writeStream(new DiskFile(path))).hash, sha256(data), 'the writer stays usable');
    await writer.abort();
  });

  it('stores small local files read straight into the pack, between other writes, as listed', async () => {
    const files = Array.from({ length: 300 }, (_, i) => randomBytes(100 + i * 50));
    const paths = await Promise.all(files.map(async (f, i) => {
      const path = join(dir, `small-${i}.bin`);
      await writeFile(path, f);
      return path;
    }));
    const big = randomBytes(3 * MiB);
    const writer = store.writer();
    // Started together with a stream write: each waits its turn, none is lost.
    const results = await Promise.all([
      ...paths.slice(0, 150).map((p, i) => writer.writeSmallFile(p, files[i]!.length)),
      writer.writeStream(pieces(big, 100_000)),
      ...paths.slice(150).map((p, i) => writer.writeSmallFile(p, files[150 + i]!.length)),
    ]);
    const shrunk = join(dir, 'shrunk.bin');
    await writeFile(shrunk, 'now shorter');
    const short = await writer.writeSmallFile(shrunk, 5000); // listed at 5000 bytes, 11 now
    const empty = await writer.writeSmallFile(join(dir, 'never-read'), 0);
    await assert.rejects(writer.writeSmallFile(join(dir, 'missing.bin'), 10), (err: unknown) => err instanceof StrataError && err.code === 'INVALID_ARGUMENT' && /missing\.bin/.test(err.message));
    await assert.rejects(writer.writeSmallFile(paths[0]!, 2 * MiB), (err: unknown) => err instanceof StrataError && err.code === 'INVALID_ARGUMENT');
    await writer.flush();
    await writer.record(meta.db);

    const small = results.filter((_, i) => i !== 150);
    for (const [i, f] of files.entries()) {
      assert.deepEqual(small[i], { hash: sha256(f), size: f.length, chunks: [sha256(f)] });
      assert.ok((await store.readAll(small[i]!.chunks)).equals(f));
    }
    assert.equal(results[150]!.hash, sha256(big));
    assert.deepEqual(short, { hash: sha256(Buffer.from('now shorter')), size: 11, chunks: [sha256(Buffer.from('now shorter'))] });
    assert.deepEqual(empty, { hash: sha256(Buffer.alloc(0)), size: 0, chunks: [] });
    assert.deepEqual(await store.verify(), []);
  });

  it('round-trips small and empty files; a one-chunk file is named by its chunk', async () => {
    const small = Buffer.from('hello, strata\n');
    const writer = store.writer();
    const a = await writer.writeBuffer(small);
    const empty = await writer.writeBuffer(new Uint8Array(0));
    const emptyStream = await writer.writeStream(pieces(Buffer.alloc(0), 10));
    await writer.flush();
    await writer.record(meta.db);

    assert.deepEqual(a, { hash: sha256(small), size: small.length, chunks: [sha256(small)] });
    assert.deepEqual(empty, { hash: sha256(Buffer.alloc(0)), size: 0, chunks: [] });
    assert.deepEqual(emptyStream, empty);
    assert.ok((await store.readAll(a.chunks)).equals(small));
    assert.equal((await store.readAll([])).length, 0);
  });

  it('packs many small files together and splits packs at about 16 MiB', async () => {
    const files = Array.from({ length: 200 }, (_, i) => randomBytes(1000 + i));
    const big = Array.from({ length: 10 }, () => randomBytes(5 * MiB));
    const { stored } = await commit(...files, ...big);
    const packs = await meta.db.selectFrom('packs').selectAll().execute();
    assert.ok(packs.length >= 3 && packs.length <= 4, `${packs.length} packs`);
    for (const p of packs) assert.ok(p.size <= 21 * MiB, `pack of ${p.size} bytes`);
    for (const [i, f] of files.entries()) assert.ok((await store.readAll(stored[i]!.chunks)).equals(f));
  });

  it('stores identical content once, within a writer and across writers', async () => {
    const data = randomBytes(6 * MiB);
    const first = await commit(data, data);
    assert.equal(first.writer.stats.newBytes, data.length);
    assert.equal(first.writer.stats.bytes, 2 * data.length);
    const chunkRows = await count('chunks');
    const packFiles = (await packKeys()).length;

    // A second writer sees the chunks the first one recorded, and writes nothing.
    const second = await commit(data, data);
    assert.equal(second.writer.stats.newBytes, 0);
    assert.equal(second.writer.stats.newChunks, 0);
    assert.equal(await count('chunks'), chunkRows);
    assert.equal((await packKeys()).length, packFiles);
    assert.deepEqual(second.stored[0], first.stored[0]);
  });

  it('shares the unchanged chunks of an edited file', async () => {
    const data = randomBytes(12 * MiB);
    const { stored } = await commit(data);
    const edited = Buffer.concat([data.subarray(0, 5000), Buffer.from('inserted'), data.subarray(5000)]);
    const { writer, stored: again } = await commit(edited);
    assert.ok(writer.stats.newBytes < 4.5 * MiB, `${writer.stats.newBytes} new bytes`);
    assert.deepEqual(again[0]!.chunks.slice(-3), stored[0]!.chunks.slice(-3));
    assert.ok((await store.readAll(again[0]!.chunks)).equals(edited));
  });

  it('serializes concurrent writes and survives a source that fails mid-file', async () => {
    const a = randomBytes(5 * MiB);
    const b = randomBytes(3 * MiB);
    const writer = store.writer();
    async function* failing() {
      yield a.subarray(0, 2 * MiB);
      throw new Error('disk went away');
    }
    const results = await Promise.allSettled([writer.writeStream(pieces(a, 100_000)), writer.writeStream(failing()), writer.writeBuffer(b)]);
    assert.equal(results[1].status, 'rejected');
    const [fileA, , fileB] = results.map((r) => (r.status === 'fulfilled' ? r.value : null));
    await writer.flush();
    await writer.record(meta.db);
    assert.equal(fileA!.hash, sha256(a));
    assert.equal(fileB!.hash, sha256(b));
    assert.ok((await store.readAll(fileA!.chunks)).equals(a));
    assert.ok((await store.readAll(fileB!.chunks)).equals(b));
  });

  it('leaves no index rows when flushed but not recorded (a crash before commit)', async () => {
    const writer = store.writer();
    const file = await writer.writeBuffer(randomBytes(3 * MiB));
    await writer.flush();
    assert.equal(await count('chunks'), 0);
    assert.equal(await count('packs'), 0);
    assert.equal((await packKeys()).length, 1, 'the pack itself is written, unreferenced');
    assert.equal((await store.has(file.chunks)).size, 0);
    await assert.rejects(store.readAll(file.chunks), CorruptionError);
  });

  it('refuses to record before flush, and abort deletes the packs it wrote', async () => {
    const writer = store.writer();
    await writer.writeBuffer(randomBytes(MiB));
    await assert.rejects(writer.record(meta.db), (err: unknown) => err instanceof StrataError && err.code === 'FAILED_PRECONDITION');
    await writer.flush();
    assert.equal((await packKeys()).length, 1);
    await writer.abort();
    assert.deepEqual(await packKeys(), []);
    await assert.rejects(writer.writeBuffer(Buffer.from('x')), StrataError);
  });

  it('detects a flipped byte in a pack: read throws, verify reports the chunk', async () => {
    const data = randomBytes(3 * MiB);
    const { stored } = await commit(data);
    const chunks = stored[0]!.chunks;
    const row = await meta.db.selectFrom('chunks').selectAll().where('id', '=', chunks[1]!).executeTakeFirstOrThrow();
    const file = await open(packPath(row.pack), 'r+');
    const byte = Buffer.alloc(1);
    await file.read(byte, 0, 1, row.offset + 100);
    byte[0]! ^= 0xff;
    await file.write(byte, 0, 1, row.offset + 100);
    await file.close();
    await objects.close(); // drop cached handles, as a fresh process would

    await assert.rejects(store.readAll(chunks), (err: unknown) => {
      assert.ok(err instanceof CorruptionError);
      assert.ok(err.message.includes(chunks[1]!) && err.message.includes(row.pack), err.message);
      return true;
    });
    const problems = await store.verify();
    assert.deepEqual(problems.map((p) => [p.kind, p.id]), [['chunk', chunks[1]]]);
  });

  it('reports a missing pack and chunks missing from the index', async () => {
    const { stored } = await commit(randomBytes(2 * MiB));
    const [pack] = await meta.db.selectFrom('packs').selectAll().execute();
    await rm(packPath(pack!.id));
    await objects.close();
    await assert.rejects(store.readAll(stored[0]!.chunks), (err: unknown) => err instanceof CorruptionError && err.message.includes(pack!.id));
    const problems = await store.verify();
    assert.ok(problems.some((p) => p.kind === 'pack' && p.id === pack!.id));
    assert.ok(problems.some((p) => p.kind === 'chunk' && p.id === stored[0]!.chunks[0]));

    const unknown = sha256(Buffer.from('never stored'));
    await assert.rejects(store.readAll([unknown]), (err: unknown) => err instanceof CorruptionError && err.message.includes(unknown));
  });

  it('writes packs whose trailer alone rebuilds the index', async () => {
    await commit(randomBytes(5 * MiB), randomBytes(100));
    const rows = await meta.db.selectFrom('chunks').selectAll().orderBy('id').execute();
    const rebuilt = [];
    for (const key of await packKeys()) {
      const id = key.split('/').at(-1)!;
      const { entries } = decodePackTrailer(await readFile(packPath(id)), id);
      rebuilt.push(...entries.map((e) => ({ ...e, pack: id })));
    }
    rebuilt.sort((a, b) => (a.id < b.id ? -1 : 1));
    assert.deepEqual(rebuilt, rows.map((r) => ({ id: r.id, offset: r.offset, length: r.length, pack: r.pack })));
  });

  it('checks existence in batches', async () => {
    const { stored } = await commit(randomBytes(3 * MiB));
    const absent = Array.from({ length: 1200 }, (_, i) => sha256(Buffer.from(String(i))));
    const found = await store.has([...absent, ...stored[0]!.chunks]);
    assert.deepEqual([...found].sort(), [...new Set(stored[0]!.chunks)].sort());
  });
});
