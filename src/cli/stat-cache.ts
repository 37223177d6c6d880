import { join } from 'node:path';
import Database from 'better-sqlite3';

// Remembers which content hash a local file had when it was last committed,
// keyed by its absolute path and identified by (size, mtime, ctime, inode) —
// the same idea as git's index and restic's parent snapshot. Putting an
// unchanged file again then sends its hash instead of re-reading its bytes.
//
// Racy files are never cached: a file whose mtime is within RACY_MS of the
// moment it was read could change again within the same timestamp tick, so
// it is re-read next time (git's "racily clean" rule).
//
// The cache lives in the instance directory (<home>/stat-cache.db), is local
// to this machine, and is only an optimization: deleting it is always safe.
// Entries are written only after the commit that stored the content landed.

const RACY_MS = 2000;
const PRELOAD_MAX = 500_000;

export interface FileStat {
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  ino: bigint;
}

export class StatCache {
  private db: Database.Database;
  private lookupStmt: Database.Statement;
  private pending: { path: string; stat: FileStat }[] = [];

  private constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(
      'create table if not exists files (path text primary key, size text, mtime text, ctime text, ino text, hash text not null)',
    );
    this.lookupStmt = this.db.prepare('select size, mtime, ctime, ino, hash from files where path = ?');
  }

  static open(home: string): StatCache | undefined {
    try {
      return new StatCache(join(home, 'stat-cache.db'));
    } catch {
      return undefined; // a read-only instance dir: no cache, same results
    }
  }

  /** The cached hash when the file is unchanged since it was committed. */
  lookup(path: string, stat: FileStat): string | undefined {
    const row = this.row(path);
    if (!row) return undefined;
    const same =
      row[0] === String(stat.size) && row[1] === String(stat.mtimeNs) && row[2] === String(stat.ctimeNs) && row[3] === String(stat.ino);
    return same ? row[4] : undefined;
  }

  // A cache of up to PRELOAD_MAX entries is read in one query: one statement
  // per file costs more than the lookups themselves for a 10k-file put.
  private preloaded?: Map<string, string[]> | null;

  private row(path: string): string[] | undefined {
    if (this.preloaded === undefined) {
      const { n } = this.db.prepare('select count(*) as n from files').get() as { n: number };
      this.preloaded =
        n <= PRELOAD_MAX
          ? new Map((this.db.prepare('select path, size, mtime, ctime, ino, hash from files').raw().all() as string[][]).map((r) => [r[0]!, r.slice(1)]))
          : null;
    }
    if (this.preloaded) return this.preloaded.get(path);
    return this.lookupStmt.raw().get(path) as string[] | undefined;
  }

  /** Notes a file that is being read now; recorded by `commit` once its hash is known. */
  noteRead(path: string, stat: FileStat): void {
    const ageMs = Date.now() - Number(stat.mtimeNs / 1_000_000n);
    if (ageMs > RACY_MS) this.pending.push({ path, stat });
  }

  get hasPending(): boolean {
    return this.pending.length > 0;
  }

  /** Records the noted files with their committed hashes (by local path). */
  commit(hashes: Map<string, string>): void {
    const insert = this.db.prepare('insert or replace into files (path, size, mtime, ctime, ino, hash) values (?, ?, ?, ?, ?, ?)');
    this.db.transaction(() => {
      for (const { path, stat } of this.pending) {
        const hash = hashes.get(path);
        if (hash) insert.run(path, String(stat.size), String(stat.mtimeNs), String(stat.ctimeNs), String(stat.ino), hash);
      }
    })();
    this.pending = [];
  }

  close(): void {
    this.db.close();
  }
}
