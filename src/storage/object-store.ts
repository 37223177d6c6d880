// The seam between Strata and where bytes live. Keys are '/'-separated paths
// such as `packs/3f/3f9a...`. A local directory implements it today
// (storage/local.ts); an S3 bucket can implement the same five verbs.

export interface ByteRange {
  offset: number;
  length: number;
}

export interface ObjectStore {
  /**
   * Stores bytes under `key` atomically: a reader sees all of them or none.
   * Keeps no reference to `data` once it resolves (ChunkWriter reuses the buffers).
   */
  put(key: string, data: Uint8Array | readonly Uint8Array[]): Promise<void>;
  /** Reads an object, or a byte range of it. Throws NotFoundError if absent. */
  get(key: string, range?: ByteRange): Promise<Buffer>;
  has(key: string): Promise<boolean>;
  delete(key: string): Promise<void>;
  list(prefix?: string): AsyncIterable<string>;
  /** Makes every put so far durable; called before a commit that refers to them is recorded. */
  sync(): Promise<void>;
}
