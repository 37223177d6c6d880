// SHA-256 of a file and of each of its chunks, on a worker thread.
//
// Storing a large file hashes every byte twice (the chunk ids, and the file
// hash the data layer records) and chunks it once; on one thread hashing
// costs ~1.7x the chunking and caps ingest near 300 MB/s (measured). ChunkWriter builds packs in SharedArrayBuffers, so
// this worker reads the chunk bytes where they already are (nothing is copied
// or transferred) while the main thread goes on chunking. One worker serves
// every writer in the process; it is created on first use and does not keep
// the process alive when idle.
//
// This module is both sides: imported normally it is the client; started as
// the worker (workerData.role) it runs the hashing loop below.

import { createHash, type Hash } from 'node:crypto';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { StrataError } from '../errors.js';

const ROLE = 'strata-sha256';

type Request =
  | { op: 'chunk'; seq: number; file: number; first: boolean; buffer: SharedArrayBuffer; offset: number; length: number }
  | { op: 'digest'; seq: number; file: number }
  | { op: 'discard'; file: number };

type Reply = { seq: number; hex: string } | { seq: number; error: string };

if (!isMainThread && (workerData as { role?: string } | null)?.role === ROLE) {
  const files = new Map<number, Hash>();
  parentPort!.on('message', (req: Request) => {
    if (req.op === 'discard') {
      files.delete(req.file);
      return;
    }
    let reply: Reply;
    try {
      if (req.op === 'chunk') {
        const bytes = new Uint8Array(req.buffer, req.offset, req.length);
        let whole = files.get(req.file);
        let hex: string;
        if (req.first || !whole) {
          // The first chunk's id is the file hash so far: hashed once, not twice.
          whole = createHash('sha256').update(bytes);
          files.set(req.file, whole);
          hex = whole.copy().digest('hex');
        } else {
          hex = createHash('sha256').update(bytes).digest('hex');
          whole.update(bytes);
        }
        reply = { seq: req.seq, hex };
      } else {
        const whole = files.get(req.file) ?? createHash('sha256');
        files.delete(req.file);
        reply = { seq: req.seq, hex: whole.digest('hex') };
      }
    } catch (err) {
      reply = { seq: req.seq, error: (err as Error).message };
    }
    parentPort!.postMessage(reply);
  });
}

let worker: Worker | null = null;
let nextSeq = 0;
let nextFile = 0;
const waiting = new Map<number, { resolve: (hex: string) => void; reject: (err: Error) => void }>();

function send(req: Request): void {
  if (!worker) {
    const started = new Worker(new URL(import.meta.url), { workerData: { role: ROLE } });
    started.on('message', (reply: Reply) => {
      const waiter = waiting.get(reply.seq);
      if (!waiter) return;
      waiting.delete(reply.seq);
      if (waiting.size === 0) started.unref();
      if ('hex' in reply) waiter.resolve(reply.hex);
      else waiter.reject(new StrataError('INTERNAL', `hashing failed: ${reply.error}`));
    });
    const fail = (err: Error) => {
      if (worker !== started) return; // already replaced (an 'error' is followed by an 'exit')
      worker = null;
      for (const waiter of waiting.values()) waiter.reject(new StrataError('INTERNAL', `the hashing worker stopped: ${err.message}`, { cause: err }));
      waiting.clear();
    };
    started.on('error', fail);
    started.on('exit', (code) => fail(new Error(`exit code ${code}`)));
    worker = started;
  }
  worker.postMessage(req);
}

function call(req: Exclude<Request, { op: 'discard' }>): Promise<string> {
  return new Promise((resolve, reject) => {
    waiting.set(req.seq, { resolve, reject });
    send(req);
    worker!.ref(); // pending hashes keep the process alive; the last reply unrefs
  });
}

/**
 * Hashes one file given chunk by chunk, in order: `chunk` resolves to the
 * chunk's SHA-256 hex, `digest` to the whole file's. The bytes must be a view
 * of a SharedArrayBuffer and stay unchanged until `chunk` resolves.
 */
export class WorkerFileHash {
  private readonly file = nextFile++;
  private started = false;

  chunk(bytes: Uint8Array): Promise<string> {
    if (!(bytes.buffer instanceof SharedArrayBuffer)) {
      throw new StrataError('INTERNAL', 'WorkerFileHash.chunk needs bytes in a SharedArrayBuffer');
    }
    const first = !this.started;
    this.started = true;
    return call({ op: 'chunk', seq: nextSeq++, file: this.file, first, buffer: bytes.buffer, offset: bytes.byteOffset, length: bytes.byteLength });
  }

  digest(): Promise<string> {
    return call({ op: 'digest', seq: nextSeq++, file: this.file });
  }

  /** Forgets a file that will not be finished (its write failed). */
  discard(): void {
    if (this.started && worker) worker.postMessage({ op: 'discard', file: this.file } satisfies Request);
  }
}
