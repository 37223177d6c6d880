import type { Kysely } from 'kysely';
import type { Schema } from '../meta/schema.js';
import type { ChunkStore, ChunkWriter } from '../storage/chunk-store.js';
import { insertIgnore } from './service.js';

// Content stored ahead of a commit. A pipeline job writes each datum's output
// here and persists it in batches, so the outputs of datums that succeeded
// survive a job that fails later (the next job reuses them) while no commit
// refers to them yet. Persisted content is recorded exactly like committed
// content (file rows + chunk index), so a later commit can link it by hash.

export class ContentStage {
  private writer: ChunkWriter;
  private files = new Map<string, Schema['files']>();

  constructor(
    private db: Kysely<Schema>,
    private chunks: ChunkStore,
  ) {
    this.writer = chunks.writer();
  }

  async write(content: AsyncIterable<Uint8Array> | Uint8Array): Promise<{ hash: string; size: number }> {
    const stored = content instanceof Uint8Array ? await this.writer.writeBuffer(content) : await this.writer.writeStream(content);
    this.files.set(stored.hash, { hash: stored.hash, size: stored.size, chunks: JSON.stringify(stored.chunks) });
    return { hash: stored.hash, size: stored.size };
  }

  /** Makes everything written so far durable and linkable. */
  async persist(): Promise<void> {
    if (this.files.size === 0) return;
    await this.writer.flush();
    const rows = [...this.files.values()];
    await this.db.transaction().execute(async (trx) => {
      await insertIgnore(trx, 'files', rows, 'hash');
      await this.writer.record(trx);
    });
    this.files.clear();
    this.writer = this.chunks.writer();
  }

  async abort(): Promise<void> {
    await this.writer.abort();
    this.files.clear();
  }
}
