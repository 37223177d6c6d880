// One shared WebAssembly.Memory for the write path: the gear scanner
// (gear.wat) can only read bytes inside its own memory, and the hashing
// workers read the same bytes from another thread, so the buffers a file's
// bytes land in (ChunkWriter's pack buffers) live here. A file's bytes are
// then read or copied once, scanned and hashed where they are, and written to
// the pack from there.
//
// Layout: [0, 2048) the scanner's tables (chunker.ts writes them), then
// buffers handed out by allocate(), in 64 KiB pages. Freed buffers are kept
// per size for reuse. A WebAssembly memory never shrinks, so it grows to at
// most MAX_BYTES (a dozen pack buffers: a few large puts at full speed); past
// that, allocate() says no and the caller takes an ordinary buffer, which
// the garbage collector can give back (a burst of uploads to a server does
// not keep its memory for good).

const PAGE = 65536;
export const MAX_BYTES = 256 * 1024 * 1024;
const MAX_PAGES = MAX_BYTES / PAGE;

export const memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES, shared: true });
export const TABLES_BYTES = 2048;

/** The SharedArrayBuffer objects `memory.buffer` has returned: one per size the memory has had. */
const ours = new WeakSet<ArrayBufferLike>([memory.buffer]);
const spare = new Map<number, number[]>(); // size in bytes -> addresses of freed buffers
let top = PAGE; // the first page holds the tables

/**
 * A buffer of `bytes` (rounded up to whole pages) inside the shared memory,
 * or null when the memory cannot grow that far (MAX_BYTES). Give it back
 * with release().
 */
export function allocate(bytes: number): Buffer | null {
  const size = Math.ceil(bytes / PAGE) * PAGE;
  let address = spare.get(size)?.pop();
  if (address === undefined) {
    const pages = (top + size) / PAGE - memory.buffer.byteLength / PAGE;
    if (pages > 0) {
      if (memory.buffer.byteLength / PAGE + pages > MAX_PAGES) return null;
      try {
        memory.grow(pages);
      } catch {
        return null; // the system refused the memory: the caller falls back to an ordinary buffer
      }
      ours.add(memory.buffer);
    }
    address = top;
    top += size;
  }
  return Buffer.from(memory.buffer, address, size);
}

/** Returns a buffer from allocate() for reuse. Nothing may use it afterwards. */
export function release(buf: Buffer): void {
  const address = addressOf(buf);
  if (address < 0) return;
  const list = spare.get(buf.byteLength) ?? [];
  list.push(address);
  spare.set(buf.byteLength, list);
}

/** The address of `view`'s first byte in the shared memory, or -1 when the view is not in it. */
export function addressOf(view: Uint8Array): number {
  return ours.has(view.buffer) ? view.byteOffset : -1;
}
