import { closeSync, constants, fsyncSync, lstatSync, mkdirSync, openSync, readdirSync, readSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';

// The floor of a durable, content-addressed ingest of small files in Node.js,
// for bench/ingest: the work every such store does and nothing else. It lists
// the tree and lstats every file (what a re-put needs to notice changes),
// reads each file with one synchronous read into a reused 16 MiB buffer,
// hashes it (SHA-256), writes the buffer out with O_DIRECT as it fills (one
// file, fsync'd once), and records one row per file in a fresh SQLite
// database in one transaction.
// No chunking, no dedup, no trees, no commits, no stat cache, no audit.
// Usage: node dist/bench/ingest-floor.js SRC_DIR OUT_DIR

const [src, out] = process.argv.slice(2);
mkdirSync(out!, { recursive: true });

const files: { path: string; size: number }[] = [];
const list = (dir: string) => {
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory()) list(path);
    else if (e.isFile()) files.push({ path, size: Number(lstatSync(path, { bigint: true }).size) });
  }
};
list(src!);

const ALIGN = 4096;
const SEGMENT = 16 << 20;
const largest = files.reduce((max, f) => Math.max(max, f.size), 0);
// One reused, aligned buffer (WebAssembly memory starts on a page boundary) for O_DIRECT: files are read
// into it back to back and it is written out whenever the next file would not fit, so the process touches
// ~16 MiB of fresh memory, not the whole corpus (a fresh page costs a fault, ~10 us on this machine).
const capacity = Math.ceil((Math.max(SEGMENT, largest) + 2 * ALIGN) / 65536);
const buf = new Uint8Array(new WebAssembly.Memory({ initial: capacity, maximum: capacity }).buffer);
const pack = openSync(join(out!, 'pack'), constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_DIRECT);
const rows: [string, string, number, number][] = [];
let written = 0; // bytes of the pack on disk (a multiple of ALIGN)
let used = 0; // bytes in buf, from offset `written` of the pack
const flush = (all: boolean) => {
  const whole = all ? Math.ceil(used / ALIGN) * ALIGN : Math.floor(used / ALIGN) * ALIGN;
  for (let done = 0; done < whole; ) done += writeSync(pack, buf, done, whole - done, written + done);
  // The unaligned tail moves to the front and goes out with the next write.
  buf.copyWithin(0, whole, used);
  written += whole;
  used -= Math.min(used, whole);
};
let total = 0;
for (const f of files) {
  if (used + f.size > buf.length - ALIGN) flush(false);
  const fd = openSync(f.path, 'r');
  let n = 0;
  for (let got = -1; got !== 0 && n < f.size; n += got) got = readSync(fd, buf, used + n, f.size - n, n);
  closeSync(fd);
  rows.push([f.path, createHash('sha256').update(buf.subarray(used, used + n)).digest('hex'), written + used, n]);
  used += n;
  total += n;
}
flush(true);
fsyncSync(pack);
closeSync(pack);

const db = new Database(join(out!, 'index.db'));
db.pragma('journal_mode = WAL');
db.exec('create table files (path text primary key, hash text not null, offset integer not null, length integer not null)');
const insert = db.prepare('insert into files values (?, ?, ?, ?)');
db.transaction(() => {
  for (const row of rows) insert.run(row);
})();
db.close();
process.stdout.write(`${files.length} files, ${total} bytes\n`);
