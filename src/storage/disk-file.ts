import { closeSync, createReadStream, openSync, readFileSync, readSync } from 'node:fs';

/**
 * A file on local disk given as content to a commit. It iterates like any
 * byte stream (so every consumer works, e.g. an HTTP upload), and a
 * ChunkWriter reads it straight into its pack buffers instead, skipping a
 * copy. `size`, when known from a listing, lets small files be read whole.
 */
export class DiskFile implements AsyncIterable<Uint8Array> {
  constructor(
    readonly path: string,
    readonly size?: number,
  ) {}

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    if (this.size !== undefined && this.size <= 1 << 20) {
      // One synchronous read: for many small files (an upload to a server), promise-based reads cost more than the reading.
      yield readFileSync(this.path);
      return;
    }
    yield* createReadStream(this.path, { highWaterMark: 4 << 20 });
  }
}

/**
 * Reads a local file from its start into `into` with synchronous reads,
 * until `into` is full or the file ends (it shrank since it was listed:
 * what is there counts). Returns the bytes read.
 */
export function readInto(path: string, into: Uint8Array): number {
  const fd = openSync(path, 'r');
  try {
    let filled = 0;
    for (let n = -1; n !== 0 && filled < into.length; filled += n) n = readSync(fd, into, filled, into.length - filled, filled);
    return filled;
  } finally {
    closeSync(fd);
  }
}
