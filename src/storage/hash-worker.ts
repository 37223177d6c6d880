// SHA-256 of a file and of each of its chunks, on two worker threads.
//
// Storing a large file hashes every byte twice (the chunk ids, and the file
// hash the data layer records) and chunks it once. Chunking is quick (gear.wat)
// and stays on the calling thread; the hashing, ~2x the work of everything
// else on the write path, goes to two workers: one keeps the whole-file hash
// (in order), the other hashes the chunks, and files alternate between the
// two roles so both stay busy whether a put is one large file or many. The
// bytes are read where they are (ChunkWriter's pack buffers are shared
// memory): nothing is copied or transferred. The workers are started on first
// use and do not keep the process alive when idle.

import type { Hash } from 'node:crypto';
import { Worker, type MessagePort } from 'node:worker_threads';
import { StrataError } from '../errors.js';

const WORKERS = 2;

interface Bytes {
  buffer: SharedArrayBuffer;
  offset: number;
  length: number;
}

type Request =
  | ({ op: 'chunk'; seq: number } & Bytes) // replies with the bytes' SHA-256
  | ({ op: 'update'; seq: number; file: number } & Bytes) // adds the bytes to a file's hash; replies ''
  | { op: 'digest'; seq: number; file: number } // replies with the file's SHA-256 and forgets it
  | { op: 'discard'; file: number }; // forgets a file; no reply

type Reply = { seq: number; hex: string } | { seq: number; error: string };

/**
 * A hashing thread's loop. Each thread starts from this function's source
 * text (WORKER_SOURCE), not from this module: loading the bundled CLI in
 * every thread would cost ~100 ms each before the first hash. So it uses
 * only its parameters and globals.
 */
function hashingLoop(crypto: typeof import('node:crypto'), port: MessagePort): void {
  const files = new Map<number, Hash>();
  port.on('message', (req: Request) => {
    if (req.op === 'discard') {
      files.delete(req.file);
      return;
    }
    let reply: Reply;
    try {
      if (req.op === 'chunk') {
        reply = { seq: req.seq, hex: crypto.createHash('sha256').update(new Uint8Array(req.buffer, req.offset, req.length)).digest('hex') };
      } else if (req.op === 'update') {
        let whole = files.get(req.file);
        if (!whole) files.set(req.file, (whole = crypto.createHash('sha256')));
        whole.update(new Uint8Array(req.buffer, req.offset, req.length));
        reply = { seq: req.seq, hex: '' };
      } else {
        const whole = files.get(req.file) ?? crypto.createHash('sha256');
        files.delete(req.file);
        reply = { seq: req.seq, hex: whole.digest('hex') };
      }
    } catch (err) {
      reply = { seq: req.seq, error: (err as Error).message };
    }
    port.postMessage(reply);
  });
}

const WORKER_SOURCE = `(${hashingLoop.toString()})(require('node:crypto'), require('node:worker_threads').parentPort);`;

interface Waiter {
  resolve: (reply: { hex: string }) => void;
  reject: (err: Error) => void;
}

/** One hashing thread, started on first use; it keeps the process alive only while replies are due. */
class HashThread {
  private worker: Worker | null = null;
  private waiting = new Map<number, Waiter>();

  call(req: Exclude<Request, { op: 'discard' }>): Promise<{ hex: string }> {
    return new Promise((resolve, reject) => {
      const worker = this.started();
      this.waiting.set(req.seq, { resolve, reject });
      worker.postMessage(req);
      if (this.waiting.size === 1) worker.ref();
    });
  }

  discard(file: number): void {
    this.worker?.postMessage({ op: 'discard', file } satisfies Request);
  }

  private started(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    worker.unref();
    worker.on('message', (reply: Reply) => {
      const waiter = this.waiting.get(reply.seq);
      if (!waiter) return;
      this.waiting.delete(reply.seq);
      if (this.waiting.size === 0) worker.unref();
      if ('hex' in reply) waiter.resolve(reply);
      else waiter.reject(new StrataError('INTERNAL', `hashing failed: ${reply.error}`));
    });
    const fail = (err: Error) => {
      if (this.worker !== worker) return; // already replaced (an 'error' is followed by an 'exit')
      this.worker = null;
      for (const waiter of this.waiting.values()) waiter.reject(new StrataError('INTERNAL', `a hashing worker stopped: ${err.message}`, { cause: err }));
      this.waiting.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`exit code ${code}`)));
    this.worker = worker;
    return worker;
  }
}

const threads = Array.from({ length: WORKERS }, () => new HashThread());
let nextSeq = 0;
let nextFile = 0;

/**
 * Hashes one file given chunk by chunk, in order: `chunk` resolves to the
 * chunk's SHA-256 hex once the bytes are no longer needed, `digest` to the
 * whole file's. The bytes must be a view of a SharedArrayBuffer and stay
 * unchanged until `chunk` resolves.
 */
export class WorkerFileHash {
  private readonly file = nextFile++;
  private readonly whole = threads[this.file % WORKERS]!;
  private readonly chunks = threads[(this.file + 1) % WORKERS]!;

  chunk(bytes: Uint8Array): Promise<string> {
    if (!(bytes.buffer instanceof SharedArrayBuffer)) {
      throw new StrataError('INTERNAL', 'WorkerFileHash.chunk needs bytes in a SharedArrayBuffer');
    }
    const where = { buffer: bytes.buffer, offset: bytes.byteOffset, length: bytes.byteLength };
    const id = this.chunks.call({ op: 'chunk', seq: nextSeq++, ...where });
    const added = this.whole.call({ op: 'update', seq: nextSeq++, file: this.file, ...where });
    return Promise.all([id, added]).then(([{ hex }]) => hex);
  }

  async digest(): Promise<string> {
    return (await this.whole.call({ op: 'digest', seq: nextSeq++, file: this.file })).hex;
  }

  /** Forgets a file that will not be finished (its write failed). */
  discard(): void {
    this.whole.discard(this.file);
  }
}

