import { join } from 'node:path';
import Database from 'better-sqlite3';

// Remembers which content hash a local file had when it was last committed,
// keyed by its absolute path and identified by (size, mtime, ctime, inode) —
// the same idea as git's index and restic's parent snapshot. Putting an
// unchanged file again then sends its hash instead of re-reading its bytes.
//
// Directories are cached too (git's cache-tree): a local directory's
// signature is a SHA-256 over the names and stats of everything beneath it
// (sources.ts computes it from the listing every put makes anyway), and its
// entry holds the tree id it was committed as. An unchanged directory is
// then sent as one link to that tree instead of one link per file.
//
// Racy files are never cached: a file whose mtime is within RACY_MS of the
// moment it was read could change again within the same timestamp tick, so
// it is re-read next time (git's "racily clean" rule); nor is a directory
// holding one.
//
// The cache lives in the instance directory (<home>/stat-cache.db), is local
// to this machine, and is only an optimization: deleting it is always safe.
// Entries are written only after the commit that stored the content landed.

export const RACY_MS = 2000;

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
  private pendingDirs: { path: string; signature: string }[] = [];

  private constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    // A cache: losing its last writes to a power cut costs a re-read, never a wrong answer (WAL at NORMAL
    // does not corrupt), so commits here skip the fsync.
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(
      'create table if not exists files (path text primary key, size text, mtime text, ctime text, ino text, hash text not null);' +
        'create table if not exists dirs (path text primary key, signature text not null, tree text not null)',
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

  /** The tree a directory was committed as, when nothing beneath it changed since. */
  lookupDir(path: string, signature: string): string | undefined {
    const row = this.preloadedDirs.some((d) => path.startsWith(d) || `${path}/` === d)
      ? this.preloadedTrees.get(path)
      : (this.db.prepare("select signature || ' ' || tree from dirs where path = ?").pluck().get(path) as string | undefined);
    return row?.startsWith(`${signature} `) ? row.slice(signature.length + 1) : undefined;
  }

  // The entries under the directories being put are read in one query each:
  // one statement per file costs more than the lookups themselves for a
  // 10k-file put. Each is kept as one string "size mtime ctime ino hash"
  // (a directory's as "signature tree").
  private readonly preloaded = new Map<string, string>();
  private readonly preloadedTrees = new Map<string, string>();
  private readonly preloadedDirs: string[] = [];

  /**
   * Reads the entries of directories under `dirs` (absolute local
   * directories, themselves included) ahead of their lookups; those of the
   * files in a directory are read at its first file lookup (none when the
   * directory itself is unchanged).
   */
  preload(dirs: string[]): void {
    const trees = this.db.prepare("select path, signature || ' ' || tree from dirs where path = ? or (path > ? and path < ?)").raw();
    for (const dir of dirs) {
      const prefix = dir.endsWith('/') ? dir : `${dir}/`;
      // Every path under prefix sorts between "prefix" and "prefix" with its last '/' raised to '0'.
      for (const [path, row] of trees.iterate(prefix.slice(0, -1), prefix, `${prefix.slice(0, -1)}0`) as Iterable<[string, string]>) {
        this.preloadedTrees.set(path, row);
      }
      this.preloadedDirs.push(prefix);
    }
  }

  private readonly filesRead = new Set<string>(); // directories whose files' entries are in `preloaded`

  private preloadedRow(path: string): string | undefined {
    if (!this.preloadedDirs.some((d) => path.startsWith(d))) return undefined;
    const dir = path.slice(0, path.lastIndexOf('/'));
    if (!this.filesRead.has(dir)) {
      this.filesRead.add(dir);
      // The files directly in `dir`: in its path range, with no '/' after the directory's own.
      const files = this.db.prepare(
        "select path, size || ' ' || mtime || ' ' || ctime || ' ' || ino || ' ' || hash from files where path > ? and path < ? and instr(substr(path, ?), '/') = 0",
      );
      for (const [p, row] of files.raw().iterate(`${dir}/`, `${dir}0`, dir.length + 2) as Iterable<[string, string]>) this.preloaded.set(p, row);
    }
    // Under a preloaded directory, absent means not cached: no query.
    return this.preloaded.get(path) ?? '';
  }

  /** Notes a file that is being read now; recorded by `commit` once its hash is known. */
  noteRead(path: string, stat: FileStat): void {
    const ageMs = Date.now() - Number(stat.mtimeNs / 1_000_000n);
    if (ageMs > RACY_MS) this.pending.push({ path, stat });
  }

  /** Notes a directory (with no racy file beneath) being committed now; recorded by `commit` with its tree. */
  noteDir(path: string, signature: string): void {
    this.pendingDirs.push({ path, signature });
  }

  get hasPending(): boolean {
    return this.pending.length > 0 || this.pendingDirs.length > 0;
  }

  /** The local paths of the files and directories noted since the last commit. */
  pendingPaths(): { files: Set<string>; dirs: Set<string> } {
    return { files: new Set(this.pending.map((p) => p.path)), dirs: new Set(this.pendingDirs.map((d) => d.path)) };
  }

  /**
   * Records the noted files with their committed hashes, and the noted
   * directories with the trees they were committed as (both by local path).
   * A directory absent from `trees` is forgotten.
   */
  commit(hashes: Map<string, string>, trees: Map<string, string> = new Map()): void {
    const insert = this.db.prepare('insert or replace into files (path, size, mtime, ctime, ino, hash) values (?, ?, ?, ?, ?, ?)');
    const insertDir = this.db.prepare('insert or replace into dirs (path, signature, tree) values (?, ?, ?)');
    const forgetDir = this.db.prepare('delete from dirs where path = ?');
    this.db.transaction(() => {
      for (const { path, stat } of this.pending) {
        const hash = hashes.get(path);
        if (hash) insert.run(path, String(stat.size), String(stat.mtimeNs), String(stat.ctimeNs), String(stat.ino), hash);
      }
      for (const { path, signature } of this.pendingDirs) {
        const tree = trees.get(path);
        if (tree) insertDir.run(path, signature, tree);
        else forgetDir.run(path);
      }
    })();
    this.pending = [];
    this.pendingDirs = [];
  }

  /** Forgets everything (after the instance did not know a cached hash or tree): the next put reads every file. */
  clear(): void {
    this.db.exec('delete from files; delete from dirs');
    this.preloaded.clear();
    this.preloadedTrees.clear();
    this.pending = [];
    this.pendingDirs = [];
  }

  close(): void {
    this.db.close();
  }
}
