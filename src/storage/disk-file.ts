import { createReadStream } from 'node:fs';

/**
 * A file on local disk given as content to a commit. It iterates like any byte
 * stream (so every consumer works, e.g. an HTTP upload), and a ChunkWriter
 * reads it straight into its pack buffers instead, skipping a copy.
 */
export class DiskFile implements AsyncIterable<Uint8Array> {
  constructor(readonly path: string) {}

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return createReadStream(this.path, { highWaterMark: 4 << 20 })[Symbol.asyncIterator]();
  }
}
