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
    const row = this.preloadedRow(path) ?? (this.lookupStmt.raw().get(path) as string[] | undefined)?.join(' ');
    if (!row) return undefined;
    const signature = `${stat.size} ${stat.mtimeNs} ${stat.ctimeNs} ${stat.ino} `;
    return row.startsWith(signature) && row.length === signature.length + 64 ? row.slice(signature.length) : undefined;
  }

  // The entries under the directories being put are read in one query each:
  // one statement per file costs more than the lookups themselves for a
  // 10k-file put. Each is kept as one string "size mtime ctime ino hash".
  private readonly preloaded = new Map<string, string>();
  private readonly preloadedDirs: string[] = [];

  /** Reads the entries of files under `dirs` (absolute local directories) ahead of their lookups. */
  preload(dirs: string[]): void {
    const range = this.db.prepare("select path, size || ' ' || mtime || ' ' || ctime || ' ' || ino || ' ' || hash from files where path > ? and path < ?").raw();
    for (const dir of dirs) {
      const prefix = dir.endsWith('/') ? dir : `${dir}/`;
      // Every path under prefix sorts between "prefix" and "prefix" with its last '/' raised to '0'.
      for (const [path, row] of range.iterate(prefix, `${prefix.slice(0, -1)}0`) as Iterable<[string, string]>) this.preloaded.set(path, row);
      this.preloadedDirs.push(prefix);
    }
  }

  private preloadedRow(path: string): string | undefined {
    const row = this.preloaded.get(path);
    if (row !== undefined) return row;
    // Under a preloaded directory, absent means not cached: no query.
    return this.preloadedDirs.some((d) => path.startsWith(d)) ? '' : undefined;
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
