import { closeSync, constants, fsyncSync, lstatSync, mkdirSync, openSync, readdirSync, readSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';

// The floor of a durable, content-addressed ingest of small files in Node.js,
// for bench/ingest: the work every such store does and nothing else. It lists
// the tree and lstats every file (what a re-put needs to notice changes),
// reads each file with one synchronous read into one big buffer, hashes it
// (SHA-256), writes the buffer as one file with O_DIRECT and fsyncs it, and
// records one row per file in a fresh SQLite database in one transaction.
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
const total = files.reduce((sum, f) => sum + f.size, 0);
// An aligned buffer for O_DIRECT: WebAssembly memory starts on a page boundary.
const memory = new WebAssembly.Memory({ initial: Math.ceil((total + ALIGN) / 65536), maximum: 65536 });
const buf = new Uint8Array(memory.buffer);
const rows: [string, string, number, number][] = [];
let used = 0;
for (const f of files) {
  const fd = openSync(f.path, 'r');
  let n = 0;
  for (let got = -1; got !== 0 && n < f.size; n += got) got = readSync(fd, buf, used + n, f.size - n, n);
  closeSync(fd);
  rows.push([f.path, createHash('sha256').update(buf.subarray(used, used + n)).digest('hex'), used, n]);
  used += n;
}
const padded = Math.ceil(used / ALIGN) * ALIGN;
const pack = openSync(join(out!, 'pack'), constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_DIRECT);
for (let done = 0; done < padded; ) done += writeSync(pack, buf, done, padded - done, done);
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
process.stdout.write(`${files.length} files, ${used} bytes\n`);
