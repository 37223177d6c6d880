// Content-addressed chunk store: files are split by FastCDC (chunker.ts), each
// chunk is named by the SHA-256 of its bytes and stored once, packed with
// others into pack objects of ~16 MiB (one object per chunk would mean a
// million files per TB and one S3 request per MiB).
//
// Write path (one ChunkWriter per put/commit):
//   bytes ─> into the open pack buffer, once (shared memory, memory.ts): read
//            there from a DiskFile, or copied there from a stream ─> chunked
//            in place (gear.wat) ─> chunk ids and the file hash computed by
//            hash-worker.ts on two other threads, reading the buffer in
//            place, while this thread goes on. A one-chunk file is hashed
//            once, here: its hash is its chunk id.
//   sealed pack ─> drop chunks this writer already stored or the `chunks`
//            table already has (one query per 500 ids) ─> move the survivors
//            together, trailer after them ─> put as one run of bytes (the
//            local store writes it with O_DIRECT). Up to 2 packs are in
//            flight while chunking goes on.
//   flush() puts the open pack and syncs the object store; record(trx) adds
//   the index rows inside the caller's commit transaction. A crash before the
//   commit leaves only unreferenced packs, never an index row without bytes.
//
// Pack format (packs/<2 hex>/<32 random hex>; random, not a content hash,
// because the chunk ids inside already give integrity):
//   chunk bytes, concatenated
//   JSON trailer {"format":"strata-pack-1","chunks":[{"id","offset","length"}]}
//   8 bytes: trailer length, unsigned little-endian
// so the chunk index can be rebuilt from the packs alone.
//
// Read path: locations are looked up 500 at a time, up to 4 chunks are read
// ahead, and every chunk is re-hashed (WebCrypto, on libuv's thread pool, so
// hashing overlaps the next reads) before it is returned.

import { createHash, randomBytes, webcrypto } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import type { Kysely, Transaction } from 'kysely';
import { CorruptionError, InvalidArgumentError, NotFoundError, StrataError } from '../errors.js';
import { bulkInsert } from '../meta/driver.js';
import type { ChunkTable, PackTable, Schema } from '../meta/schema.js';
import { Chunker, MAX_CHUNK, MIN_CHUNK } from './chunker.js';
import { WorkerFileHash } from './hash-worker.js';
import { DiskFile, readInto } from './disk-file.js';
import { allocate, release } from './memory.js';
import { DIRECT_ALIGN } from './local.js';
import type { ObjectStore } from './object-store.js';

const PACK_TARGET = 16 * 1024 * 1024;
/** A chunk started below the target always fits, so a chunk never spans packs. */
const PACK_CAPACITY = PACK_TARGET + MAX_CHUNK;
/**
 * A pack buffer also holds the trailer after the chunks (usually a few KiB;
 * a pack of tiny files can need more, and is then written in two pieces) and
 * the rounding of a direct write (LocalObjectStore).
 */
const PACK_BUFFER = PACK_CAPACITY + 1024 * 1024;
/**
 * Packs being written while the next one fills. One is enough to keep the disk busy (a 16 MiB direct
 * write takes ~15 ms here), and each more is another ~17 MiB of fresh memory, whose first touch costs
 * a page fault per 4 KiB (~10 us each on this machine: ~45 ms per buffer).
 */
const MAX_PACKS_IN_FLIGHT = 1;
/** Ids per `in (...)` query and rows per insert: well under every database's parameter limit. */
const BATCH = 500;
const READ_AHEAD = 4;
/** Bytes read or copied into a pack buffer at a time: at most this much moves when a pack fills up. */
const READ_BYTES = 1024 * 1024;
const PACK_FORMAT = 'strata-pack-1';
const FOOTER_BYTES = 8;
const EMPTY_SHA256 = createHash('sha256').digest('hex');

/** What a stored file is: the file table row, before it is recorded. */
export interface StoredFile {
  /** SHA-256 hex of the whole content. For a one-chunk file this is also the chunk id. */
  hash: string;
  size: number;
  /** Chunk ids in content order; empty for an empty file. */
  chunks: string[];
}

export interface WriteStats {
  files: number;
  bytes: number;
  chunks: number;
  /** Chunks and bytes actually written (not already stored). Final after flush(). */
  newChunks: number;
  newBytes: number;
}

export interface StorageProblem {
  kind: 'chunk' | 'pack';
  id: string;
  message: string;
}

/** One chunk's place in a pack, as listed in the pack trailer. */
export interface PackEntry {
  id: string;
  offset: number;
  length: number;
}

export function packKey(packId: string): string {
  return `packs/${packId.slice(0, 2)}/${packId}`;
}

export function encodePackTrailer(entries: readonly PackEntry[]): Buffer {
  const json = Buffer.from(JSON.stringify({ format: PACK_FORMAT, chunks: entries }));
  const footer = Buffer.alloc(FOOTER_BYTES);
  footer.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([json, footer]);
}

/** The chunk list of a whole pack object; throws CorruptionError if the trailer is unreadable. */
export function decodePackTrailer(pack: Uint8Array, packId: string): { entries: PackEntry[]; dataEnd: number } {
  const buf = Buffer.from(pack.buffer, pack.byteOffset, pack.byteLength);
  const bad = (why: string) => new CorruptionError(`pack ${packId} has an unreadable trailer: ${why}`);
  if (buf.length < FOOTER_BYTES) throw bad(`only ${buf.length} bytes`);
  const trailerLength = Number(buf.readBigUInt64LE(buf.length - FOOTER_BYTES));
  const dataEnd = buf.length - FOOTER_BYTES - trailerLength;
  if (dataEnd < 0) throw bad(`trailer length ${trailerLength} exceeds the pack size ${buf.length}`);
  let parsed: { format?: unknown; chunks?: unknown };
  try {
    parsed = JSON.parse(buf.toString('utf8', dataEnd, buf.length - FOOTER_BYTES));
  } catch (err) {
    throw bad((err as Error).message);
  }
  if (parsed?.format !== PACK_FORMAT || !Array.isArray(parsed.chunks)) throw bad(`not a ${PACK_FORMAT} trailer`);
  const entries = parsed.chunks as PackEntry[];
  for (const e of entries) {
    const valid =
      typeof e?.id === 'string' && /^[0-9a-f]{64}$/.test(e.id) &&
      Number.isSafeInteger(e.offset) && Number.isSafeInteger(e.length) &&
      e.offset >= 0 && e.length >= 0 && e.offset + e.length <= dataEnd;
    if (!valid) throw bad(`bad entry ${JSON.stringify(e)}`);
  }
  return { entries, dataEnd };
}

/** SHA-256 hex, computed on libuv's thread pool so it overlaps work on the main thread. */
async function sha256Hex(bytes: Uint8Array): Promise<string> {
  return Buffer.from(await webcrypto.subtle.digest('SHA-256', bytes)).toString('hex');
}

export class ChunkStore {
  constructor(
    private readonly db: Kysely<Schema>,
    private readonly objects: ObjectStore,
  ) {}

  /** A writer for one put or commit. */
  writer(): ChunkWriter {
    return new ChunkWriter(this.objects, (ids) => this.has(ids));
  }

  /** The subset of `ids` present in the chunk index. */
  async has(ids: Iterable<string>): Promise<Set<string>> {
    const unique = [...new Set(ids)];
    const found = new Set<string>();
    for (let i = 0; i < unique.length; i += BATCH) {
      const rows = await this.db.selectFrom('chunks').select('id').where('id', 'in', unique.slice(i, i + BATCH)).execute();
      for (const row of rows) found.add(row.id);
    }
    return found;
  }

  /**
   * Streams the content made of `chunks`, one verified chunk at a time.
   * Throws CorruptionError naming the chunk (and pack) that is missing or damaged.
   */
  async *read(chunks: readonly string[]): AsyncGenerator<Buffer> {
    const locations = new Map<string, ChunkTable>();
    let lookedUp = 0; // chunks[0, lookedUp) have had their locations fetched
    const ahead: Promise<Buffer>[] = [];
    let next = 0;
    for (let i = 0; i < chunks.length; i++) {
      while (next < chunks.length && next < i + READ_AHEAD) {
        if (next >= lookedUp) {
          const batch = chunks.slice(lookedUp, lookedUp + BATCH);
          await this.lookUp(batch, locations);
          lookedUp += batch.length;
        }
        const fetching = this.readChunk(chunks[next]!, locations.get(chunks[next]!));
        fetching.catch(() => {}); // awaited below, in order; this keeps an early `break` by the reader from leaving it unhandled
        ahead.push(fetching);
        next++;
      }
      yield await ahead.shift()!;
    }
  }

  /** The whole content in one buffer: for small files. */
  async readAll(chunks: readonly string[]): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const part of this.read(chunks)) parts.push(part);
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /**
   * For fsck: re-hashes every chunk of every pack in the `packs` table and
   * checks that every `chunks` row points at verified bytes inside an
   * existing pack. Reports progress in pack bytes. Memory grows with the
   * number of chunks (one short string each).
   */
  async verify(onProgress?: (done: number, total: number) => void): Promise<StorageProblem[]> {
    const problems: StorageProblem[] = [];
    const packs = await this.db.selectFrom('packs').selectAll().orderBy('id').execute();
    const total = packs.reduce((sum, p) => sum + Number(p.size), 0);
    let done = 0;
    const entryKey = (pack: string, e: PackEntry) => `${pack}/${e.offset}/${e.length}/${e.id}`;
    const good = new Set<string>(); // trailer entries whose bytes hash to their id
    const bad = new Set<string>(); // trailer entries already reported
    const readable = new Map<string, number>(); // pack id -> end of its chunk data

    for (const pack of packs) {
      const found = await this.verifyPack(pack, problems);
      if (found) {
        readable.set(pack.id, found.dataEnd);
        for (const [entry, ok] of found.entries) (ok ? good : bad).add(entryKey(pack.id, entry));
      }
      done += Number(pack.size);
      onProgress?.(done, total);
    }

    const known = new Set(packs.map((p) => p.id));
    for (let after = ''; ; ) {
      const rows = await this.db.selectFrom('chunks').selectAll().where('id', '>', after).orderBy('id').limit(1000).execute();
      if (rows.length === 0) break;
      after = rows[rows.length - 1]!.id;
      for (const row of rows) {
        const problem = (message: string) => problems.push({ kind: 'chunk', id: row.id, message });
        const key = entryKey(row.pack, row);
        const dataEnd = readable.get(row.pack);
        if (!known.has(row.pack)) problem(`chunk ${row.id} points at pack ${row.pack}, which is not in the packs table`);
        else if (dataEnd === undefined) problem(`chunk ${row.id} is in pack ${row.pack}, which is missing or unreadable`);
        else if (row.offset < 0 || row.length < 0 || row.offset + row.length > dataEnd) {
          problem(`chunk ${row.id} points outside the data of pack ${row.pack} (offset ${row.offset}, length ${row.length})`);
        } else if (!good.has(key) && !bad.has(key)) {
          // The index disagrees with the pack trailer: check the bytes the index points at.
          try {
            await this.readChunk(row.id, row);
          } catch (err) {
            if (!(err instanceof CorruptionError)) throw err;
            problem(err.message);
          }
        }
      }
    }
    return problems;
  }

  /** Hashes every trailer entry of one pack; null if the pack cannot be read at all. */
  private async verifyPack(
    pack: PackTable,
    problems: StorageProblem[],
  ): Promise<{ dataEnd: number; entries: [PackEntry, boolean][] } | null> {
    let bytes: Buffer;
    try {
      bytes = await this.objects.get(packKey(pack.id));
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      problems.push({ kind: 'pack', id: pack.id, message: `pack object ${packKey(pack.id)} is missing` });
      return null;
    }
    if (bytes.length !== Number(pack.size)) {
      problems.push({ kind: 'pack', id: pack.id, message: `pack ${pack.id} is ${bytes.length} bytes; the packs table says ${pack.size}` });
    }
    let trailer;
    try {
      trailer = decodePackTrailer(bytes, pack.id);
    } catch (err) {
      if (!(err instanceof CorruptionError)) throw err;
      problems.push({ kind: 'pack', id: pack.id, message: err.message });
      return null;
    }
    const entries = await Promise.all(
      trailer.entries.map(async (e): Promise<[PackEntry, boolean]> => {
        const ok = (await sha256Hex(bytes.subarray(e.offset, e.offset + e.length))) === e.id;
        if (!ok) {
          problems.push({ kind: 'chunk', id: e.id, message: `chunk ${e.id} in pack ${pack.id} (offset ${e.offset}) does not match its hash` });
        }
        return [e, ok];
      }),
    );
    return { dataEnd: trailer.dataEnd, entries };
  }

  private async lookUp(ids: readonly string[], into: Map<string, ChunkTable>): Promise<void> {
    const missing = [...new Set(ids)].filter((id) => !into.has(id));
    if (missing.length === 0) return;
    const rows = await this.db.selectFrom('chunks').selectAll().where('id', 'in', missing).execute();
    for (const row of rows) into.set(row.id, { ...row, offset: Number(row.offset), length: Number(row.length) });
  }

  private async readChunk(id: string, where: ChunkTable | undefined): Promise<Buffer> {
    if (!where) throw new CorruptionError(`chunk ${id} is not in the chunk index (run strata fsck)`);
    let bytes: Buffer;
    try {
      bytes = await this.objects.get(packKey(where.pack), { offset: Number(where.offset), length: Number(where.length) });
    } catch (err) {
      if (err instanceof NotFoundError) throw new CorruptionError(`chunk ${id} is in pack ${where.pack}, which is missing`);
      throw err;
    }
    if (bytes.length !== Number(where.length) || (await sha256Hex(bytes)) !== id) {
      throw new CorruptionError(`chunk ${id} in pack ${where.pack} (offset ${where.offset}) does not match its hash`);
    }
    return bytes;
  }
}

/** A chunk in the open pack buffer; its id may still be being hashed. */
interface OpenEntry {
  id: string | Promise<string>;
  offset: number;
  length: number;
}

/** Pack buffers a writer holds, given back to the shared memory if the writer is dropped without flush() or abort(). */
const dropped = new FinalizationRegistry<Set<Buffer>>((held) => {
  for (const buf of held) release(buf);
});

/**
 * Writes the files of one put or commit. Calls to writeStream/writeBuffer are
 * serialized. Use: write files, flush(), then record(trx) inside the commit
 * transaction; abort() if the commit will not happen.
 *
 * Bytes land in the open pack buffer first (read there from a DiskFile, or
 * copied there from a stream) and are chunked and hashed in place; a chunk
 * that ends past PACK_TARGET closes the pack, and the bytes after it move to
 * the next buffer (at most one read's worth).
 */
export class ChunkWriter {
  readonly stats: WriteStats = { files: 0, bytes: 0, chunks: 0, newChunks: 0, newBytes: 0 };

  private pack: Buffer | null = null;
  private packUsed = 0; // bytes of finished chunks in the open pack
  private entries: OpenEntry[] = [];
  /** Pack buffers whose put finished, for reuse: fresh 20 MiB buffers cost page faults. */
  private spareBuffers: Buffer[] = [];
  /** Every pack buffer this writer holds (open, in flight or spare). */
  private held = new Set<Buffer>();
  /** Chunk ids put (or being put) by this writer: dedup within the writer. */
  private claimed = new Set<string>();
  private inFlight: Promise<void>[] = [];
  private failure: { error: unknown } | null = null;
  private writtenPacks: string[] = [];
  private chunkRows: ChunkTable[] = [];
  private packRows: PackTable[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  /** Tasks queued or running in `queue`. */
  private running = 0;
  private synced = true;
  private aborted = false;

  // The file being written (writes are serialized, so there is one at a time).
  private chunker = new Chunker();
  private fileHash: WorkerFileHash | null = null;
  private fileChunks: (string | Promise<string>)[] = [];
  private chunkLength = 0; // bytes of the chunk in progress, at this.pack[this.packUsed...]

  constructor(
    private readonly objects: ObjectStore,
    private readonly existing: (ids: string[]) => Promise<Set<string>>,
  ) {
    dropped.register(this, this.held, this);
  }

  /** Stores a stream's bytes (a DiskFile is read from disk directly). `onBytes` gets the running total read. */
  writeStream(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, onBytes?: (bytes: number) => void): Promise<StoredFile> {
    return this.serialized(() => this.write(source, onBytes));
  }

  writeBuffer(buf: Uint8Array): Promise<StoredFile> {
    return this.serialized(() => this.write([buf]));
  }

  /**
   * Stores a local file of at most MIN_CHUNK bytes (so one chunk), listed
   * with `size` bytes: read with one synchronous read straight into the open
   * pack and hashed there. For many small files nothing measured did better:
   * a fresh buffer per file then a copy was ~15% slower, and reading them on
   * the two hashing workers (a message per file, or per batch of 256) gained
   * nothing on this machine: there each open and read cost twice as much.
   */
  async writeSmallFile(path: string, size: number): Promise<StoredFile> {
    if (!Number.isSafeInteger(size) || size < 0 || size > MIN_CHUNK) {
      throw new InvalidArgumentError(`writeSmallFile takes files of 0 to ${MIN_CHUNK} bytes, not ${size}`);
    }
    if (size === 0) return this.writeBuffer(new Uint8Array(0)); // as listed: nothing to read
    // With no other write under way and room in the open pack, the file takes
    // its place at once; otherwise it waits its turn (the pack may need sealing).
    if (this.running === 0 && this.pack && this.packUsed < PACK_TARGET && !this.aborted && !this.failure) return this.placeSmallFile(path, size);
    return this.serialized(async () => {
      this.checkUsable();
      await this.room();
      return this.placeSmallFile(path, size);
    });
  }

  /** Reads a small file into the open pack (which has room for `size` bytes) and stores it there. */
  private placeSmallFile(path: string, size: number): StoredFile {
    this.synced = false;
    this.chunkLength = 0; // drops a partial chunk left by a failed write
    this.chunker.end();
    const into = this.pack!.subarray(this.packUsed, this.packUsed + size);
    let bytes: number; // fewer than listed when the file shrank since: store what is there
    try {
      bytes = readInto(path, into);
    } catch (err) {
      throw new InvalidArgumentError(`cannot read local file ${path}: ${(err as Error).message}`);
    }
    this.stats.files++;
    this.stats.bytes += bytes;
    if (bytes === 0) return { hash: EMPTY_SHA256, size: 0, chunks: [] };
    const hash = createHash('sha256').update(into.subarray(0, bytes)).digest('hex');
    this.entries.push({ id: hash, offset: this.packUsed, length: bytes });
    this.packUsed += bytes;
    this.stats.chunks++;
    return { hash, size: bytes, chunks: [hash] };
  }

  /** Puts every pending pack and makes all of this writer's packs durable. */
  flush(): Promise<void> {
    return this.serialized(async () => {
      this.checkUsable();
      if (this.pack) await this.seal();
      await Promise.all(this.inFlight);
      this.checkUsable();
      await this.objects.sync();
      this.synced = true;
      this.releaseSpares();
    });
  }

  /**
   * Adds the index rows for this writer's packs, inside the caller's commit
   * transaction. Idempotent (rows that exist are left alone), so a commit
   * that retries may call it again in its next transaction.
   */
  async record(trx: Kysely<Schema> | Transaction<Schema>): Promise<void> {
    if (!this.synced) throw new StrataError('FAILED_PRECONDITION', 'ChunkWriter.record() called with unflushed writes; call flush() first');
    if (this.aborted) throw new StrataError('FAILED_PRECONDITION', 'ChunkWriter.record() called after abort()');
    if (!trx.isTransaction) return trx.transaction().execute((inside) => this.record(inside));
    if (this.packRows.length > 0) {
      const rows = this.packRows.map((p) => [p.id, p.size, p.chunks, p.created_at]);
      await trx.executeQuery(bulkInsert('packs', ['id', 'size', 'chunks', 'created_at'], rows, 'on conflict (id) do nothing'));
    }
    if (this.chunkRows.length > 0) {
      const rows = this.chunkRows.map((c) => [c.id, c.pack, c.offset, c.length]);
      await trx.executeQuery(bulkInsert('chunks', ['id', 'pack', 'offset', 'length'], rows, 'on conflict (id) do nothing'));
    }
  }

  /**
   * Gives up: drops pending data and deletes the packs this writer put. Call
   * only when the commit that would reference them did not happen. Never
   * throws, because callers use it while handling the error that matters: a
   * pack it fails to delete is unreferenced, the same state a crash leaves.
   */
  async abort(): Promise<void> {
    this.aborted = true;
    await this.queue;
    // Hashing may still be reading the open pack: let it finish before the buffer is reused.
    await Promise.allSettled([...this.entries.map((e) => e.id), ...this.fileChunks]);
    if (this.pack) this.spareBuffers.push(this.pack);
    this.pack = null;
    this.entries = [];
    await Promise.allSettled(this.inFlight);
    this.releaseSpares();
    await Promise.allSettled(this.writtenPacks.map((id) => this.objects.delete(packKey(id))));
    this.writtenPacks = [];
  }

  private serialized<T>(task: () => Promise<T>): Promise<T> {
    this.running++;
    const run = this.queue.then(task).finally(() => this.running--);
    this.queue = run.catch(() => {}); // the caller of this task gets its error; the next task still runs
    return run;
  }

  private checkUsable(): void {
    if (this.aborted) throw new StrataError('FAILED_PRECONDITION', 'this ChunkWriter was aborted; start a new one');
    if (this.failure) throw this.failure.error;
  }

  private async write(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, onBytes?: (bytes: number) => void): Promise<StoredFile> {
    this.checkUsable();
    this.synced = false;
    this.fileChunks = [];
    this.chunkLength = 0; // drops a partial chunk left by a failed write
    this.chunker.end();
    try {
      const size = source instanceof DiskFile ? await this.readFile(source.path, onBytes) : await this.readStream(source, onBytes);
      if (this.chunker.end() > 0) this.endChunk(true);

      const chunks = await Promise.all(this.fileChunks);
      let hash: string;
      if (this.fileHash) hash = await this.fileHash.digest();
      else hash = chunks.length === 1 ? chunks[0]! : EMPTY_SHA256;
      this.stats.files++;
      this.stats.bytes += size;
      return { hash, size, chunks };
    } catch (err) {
      this.fileHash?.discard();
      throw err;
    } finally {
      this.fileHash = null;
      this.fileChunks = [];
    }
  }

  private async readStream(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, onBytes?: (bytes: number) => void): Promise<number> {
    let size = 0;
    for await (const piece of source) {
      if (!(piece instanceof Uint8Array)) throw new InvalidArgumentError(`file content must be bytes, got ${typeof piece}`);
      for (let done = 0; done < piece.length; ) {
        const n = Math.min(await this.room(), piece.length - done);
        this.pack!.set(piece.subarray(done, done + n), this.packUsed + this.chunkLength);
        await this.scanned(n);
        done += n;
      }
      size += piece.length;
      onBytes?.(size);
    }
    return size;
  }

  private async readFile(path: string, onBytes?: (bytes: number) => void): Promise<number> {
    let file: FileHandle;
    try {
      file = await open(path, 'r');
    } catch (err) {
      throw new InvalidArgumentError(`cannot read local file ${path}: ${(err as Error).message}`);
    }
    try {
      let size = 0;
      for (;;) {
        const room = await this.room();
        const { bytesRead } = await file.read(this.pack!, this.packUsed + this.chunkLength, room, null);
        if (bytesRead === 0) return size;
        await this.scanned(bytesRead);
        size += bytesRead;
        onBytes?.(size);
      }
    } finally {
      await file.close();
    }
  }

  /**
   * Makes sure a pack buffer is open and returns how many new bytes fit after
   * the chunk in progress (at most READ_BYTES). A pack that reached its target
   * is sealed when its last chunk is done.
   */
  private async room(): Promise<number> {
    if (this.chunkLength === 0) {
      this.checkUsable();
      if (this.pack && this.packUsed >= PACK_TARGET) await this.seal();
    }
    this.pack ??= this.takeBuffer();
    // A chunk starts below PACK_TARGET and is at most MAX_CHUNK long, so this is never 0.
    return Math.min(READ_BYTES, PACK_CAPACITY - this.packUsed - this.chunkLength);
  }

  /** Chunks the `n` new bytes just placed after the chunk in progress. */
  private async scanned(n: number): Promise<void> {
    let start = this.packUsed + this.chunkLength; // where the new bytes begin in this.pack
    let done = 0; // of the n bytes, those in finished chunks
    for (const cut of this.chunker.push(this.pack!.subarray(start, start + n))) {
      this.chunkLength += cut - done;
      done = cut;
      this.endChunk(false);
      if (this.packUsed >= PACK_TARGET && done < n) {
        // The pack is full: the bytes after this cut go to the next buffer.
        const next = this.takeBuffer();
        next.set(this.pack!.subarray(start + done, start + n));
        start = -done;
        await this.seal(next);
      }
    }
    this.chunkLength += n - done;
  }

  private endChunk(last: boolean): void {
    const offset = this.packUsed;
    const length = this.chunkLength;
    const bytes = this.pack!.subarray(offset, offset + length);
    let id: string | Promise<string>;
    if (last && this.fileChunks.length === 0) {
      // A one-chunk file: its chunk id is its hash. Hashing it here is quicker
      // than a round trip to a worker, and nothing else is left to overlap.
      id = createHash('sha256').update(bytes).digest('hex');
    } else {
      this.fileHash ??= new WorkerFileHash();
      id = this.fileHash.chunk(bytes);
      id.catch(() => {}); // awaited by putPack() and write(); never left unhandled
    }
    this.fileChunks.push(id);
    this.entries.push({ id, offset, length });
    this.packUsed += length;
    this.chunkLength = 0;
    this.stats.chunks++;
  }

  /**
   * Hands the open pack to a background put, waiting first if too many are
   * in flight; `next` (holding the bytes after its last chunk) becomes the open pack.
   */
  private async seal(next: Buffer | null = null): Promise<void> {
    const pack = this.pack!;
    const entries = this.entries;
    this.pack = next;
    this.packUsed = 0;
    this.entries = [];
    if (entries.length === 0) {
      this.recycle(pack);
      return;
    }
    while (this.inFlight.length >= MAX_PACKS_IN_FLIGHT) await Promise.race(this.inFlight);
    const putting: Promise<void> = this.putPack(pack, entries).finally(() => {
      this.inFlight.splice(this.inFlight.indexOf(putting), 1);
    });
    putting.catch((error) => {
      this.failure ??= { error };
    });
    this.inFlight.push(putting);
  }

  /** A pack buffer: a spare, else one in the shared memory, else (the memory is full) an ordinary one. */
  private takeBuffer(): Buffer {
    const buf = this.spareBuffers.pop() ?? allocate(PACK_BUFFER) ?? Buffer.from(new SharedArrayBuffer(PACK_BUFFER));
    this.held.add(buf);
    return buf;
  }

  private releaseSpares(): void {
    for (const buf of this.spareBuffers) {
      this.held.delete(buf);
      release(buf);
    }
    this.spareBuffers = [];
  }

  private async putPack(pack: Buffer, open: OpenEntry[]): Promise<void> {
    const entries = await Promise.all(open.map(async (e) => ({ id: await e.id, offset: e.offset, length: e.length })));
    // Claim before the database round trip, so a concurrent putPack of this
    // writer holding the same chunk drops it.
    const fresh: PackEntry[] = [];
    for (const e of entries) {
      if (this.claimed.has(e.id)) continue;
      this.claimed.add(e.id);
      fresh.push(e);
    }
    const stored = fresh.length > 0 ? await this.existing(fresh.map((e) => e.id)) : new Set<string>();
    const kept = fresh.filter((e) => !stored.has(e.id));
    if (kept.length === 0 || this.aborted) {
      this.recycle(pack);
      return;
    }

    // The kept chunks move together to the start of the buffer (they are there
    // already unless some were dropped as stored) and the trailer goes right
    // after them: the pack is one run of bytes, written without a copy.
    const layout: PackEntry[] = [];
    let size = 0;
    for (const e of kept) {
      if (e.offset !== size) pack.copyWithin(size, e.offset, e.offset + e.length); // offsets ascend: moves are leftwards
      layout.push({ id: e.id, offset: size, length: e.length });
      size += e.length;
    }
    const trailer = encodePackTrailer(layout);
    let parts: Buffer[];
    if (size + trailer.length + DIRECT_ALIGN <= pack.length) {
      trailer.copy(pack, size);
      const end = size + trailer.length;
      // A direct write goes out in whole 4 KiB blocks and is truncated back: zero the rest of the last block,
      // which holds bytes of an earlier use of this buffer, so they never reach the disk.
      pack.fill(0, end, Math.ceil(end / DIRECT_ALIGN) * DIRECT_ALIGN);
      parts = [pack.subarray(0, end)];
    } else {
      parts = [pack.subarray(0, size), trailer];
    }

    const id = randomBytes(16).toString('hex');
    this.writtenPacks.push(id); // before the put: abort() deletes even a put that failed halfway
    await this.objects.put(packKey(id), parts); // ObjectStore.put keeps no reference once it resolves
    this.recycle(pack);
    this.packRows.push({ id, size: size + trailer.length, chunks: layout.length, created_at: new Date().toISOString() });
    for (const e of layout) this.chunkRows.push({ id: e.id, pack: id, offset: e.offset, length: e.length });
    this.stats.newChunks += layout.length;
    this.stats.newBytes += size;
  }

  private recycle(pack: Buffer): void {
    if (!this.aborted && this.spareBuffers.length <= MAX_PACKS_IN_FLIGHT) {
      this.spareBuffers.push(pack);
    } else {
      this.held.delete(pack);
      release(pack);
    }
  }
}

