import { lstatSync, readdirSync, statSync, type Stats } from 'node:fs';
import { basename, resolve, sep } from 'node:path';
import { createHash } from 'node:crypto';
import { RACY_MS, type FileStat, type StatCache } from './stat-cache.js';
import { InvalidArgumentError } from '../errors.js';
import type { Change, FileInfo } from '../data/types.js';
import { joinPath, normalizePath } from '../data/paths.js';
import { MIN_CHUNK } from '../storage/chunker.js';
import { DiskFile, readInto } from '../storage/disk-file.js';

// Turns `strata put REF[:/dest] PATH...` arguments into a stream of changes,
// cp-style:
//   - a file goes to dest/<its name>; with one file and a dest not ending in
//     '/', dest is the file's own path;
//   - a directory goes to dest/<its name>/...; written with a trailing '/'
//     (`dir/`) or as '.', its contents go straight into dest (rsync-style);
//   - '-' reads stdin and needs an explicit file dest.
// Every local path is checked before anything is read, so a typo changes
// nothing. Files are opened one at a time as the commit consumes them.

export interface PlannedSource {
  local: string;
  dest: string;
  stat: Stats;
}

export function planSources(paths: string[], dest: string, destGiven: boolean): { plan: PlannedSource[]; stdinDest?: string } {
  if (paths.length === 0) throw new InvalidArgumentError('nothing to put: give at least one local PATH (or - for stdin)');
  const destIsDir = !destGiven || dest.endsWith('/') || paths.length > 1;
  const base = normalizePath(dest, 'destination path');
  const plan: PlannedSource[] = [];
  let stdinDest: string | undefined;
  for (const p of paths) {
    if (p === '-') {
      if (destIsDir) throw new InvalidArgumentError('putting stdin (-) needs a file destination: strata put REPO@BRANCH:/path/name -');
      stdinDest = base;
      continue;
    }
    let stat: Stats;
    try {
      stat = statSync(p);
    } catch {
      throw new InvalidArgumentError(`local path "${p}" does not exist`);
    }
    if (stat.isDirectory()) {
      const contentsOnly = p.endsWith('/') || p === '.' || p === '..';
      plan.push({ local: p, dest: contentsOnly ? base : joinPath(base, basename(p)), stat });
    } else if (stat.isFile()) {
      plan.push({ local: p, dest: destIsDir ? joinPath(base, basename(p)) : base, stat });
    } else {
      throw new InvalidArgumentError(`local path "${p}" is neither a file nor a directory`);
    }
  }
  return { plan, stdinDest };
}

export interface LocalFile {
  /** Absolute local path. */
  local: string;
  dest: string;
  size: number;
  stat: FileStat;
}

/** Reads a small file with open + one read + close (the size is known from the listing). */
function readSmall(path: string, size: number): Buffer {
  const buf = Buffer.allocUnsafe(size);
  const filled = readInto(path, buf); // fewer when the file shrank since it was listed: commit what is there
  return filled === size ? buf : buf.subarray(0, filled);
}

/** A local directory of the put: its files are files[first, end) of the listing. */
export interface LocalDir {
  local: string;
  dest: string;
  first: number;
  end: number;
  /**
   * SHA-256 over the names and stats of everything beneath (see StatCache),
   * or null when a file beneath changed too recently to be trusted (racy).
   */
  signature: string | null;
  /** The tree it went as, when this put sent it as one link (set by changesFrom). */
  linked?: string;
}

/**
 * Lists every regular file under the planned sources, in a stable order, and
 * every directory (a directory before those inside it). Symlinks are skipped.
 */
export function expandFiles(plan: PlannedSource[]): { files: LocalFile[]; dirs: LocalDir[] } {
  const files: LocalFile[] = [];
  const dirs: LocalDir[] = [];
  const racyAfterNs = BigInt(Date.now() - RACY_MS) * 1_000_000n;
  // `local` is absolute (sources are resolved once, below).
  const add = (local: string, dest: string): LocalFile => {
    const st = lstatSync(local, { bigint: true });
    const file = { local, dest, size: Number(st.size), stat: { size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, ino: st.ino } };
    files.push(file);
    return file;
  };
  const visit = (local: string, dest: string): string | null => {
    const dir: LocalDir = { local, dest, first: files.length, end: 0, signature: null };
    dirs.push(dir);
    const signature = createHash('sha256');
    let racy = false;
    const entries = readdirSync(local, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) {
      const child = `${local}${sep}${e.name}`; // `local` is absolute and normalized: no need for path.join
      if (e.isDirectory()) {
        const inner = visit(child, joinPath(dest, e.name));
        racy ||= inner === null;
        signature.update(`d ${e.name}\0${inner}\n`);
      } else if (e.isFile()) {
        const { stat } = add(child, joinPath(dest, e.name));
        racy ||= stat.mtimeNs > racyAfterNs; // the rule StatCache.noteRead applies to files
        signature.update(`f ${e.name}\0${stat.size} ${stat.mtimeNs} ${stat.ctimeNs} ${stat.ino}\n`);
      }
    }
    dir.end = files.length;
    dir.signature = racy ? null : signature.digest('hex');
    return dir.signature;
  };
  for (const s of plan) {
    if (s.stat.isDirectory()) visit(resolve(s.local), s.dest);
    else add(resolve(s.local), s.dest);
  }
  return { files, dirs };
}

const SMALL = 1 << 20;

/**
 * Yields the changes for the files, as links where the stat cache knows a
 * file or a whole directory unchanged. Files go as DiskFile, which the chunk
 * writer reads straight into its pack buffers: those of one chunk (up to
 * MIN_CHUNK) with one synchronous read each, large ones in 1 MiB reads.
 * Those in between are read here with one synchronous read each (for them,
 * promise-based reads cost more than the reading).
 */
export function* changesFrom(files: LocalFile[], dirs: LocalDir[], stdinDest?: string, cache?: StatCache): Generator<Change> {
  if (stdinDest) yield { op: 'put', path: stdinDest, content: process.stdin };
  // Directories by their first file, outermost first; the root cannot be linked (its files can).
  const starting = new Map<number, LocalDir[]>();
  for (const d of dirs) {
    d.linked = undefined; // a retried put starts over
    if (d.end === d.first || d.dest === '/') continue;
    const here = starting.get(d.first);
    if (here) here.push(d);
    else starting.set(d.first, [d]);
  }
  for (let i = 0; i < files.length; ) {
    let linked = false;
    for (const d of (cache && starting.get(i)) || []) {
      const tree = d.signature ? cache!.lookupDir(d.local, d.signature) : undefined;
      if (tree) {
        d.linked = tree;
        yield { op: 'link', type: 'dir', path: d.dest, hash: tree };
        i = d.end;
        linked = true;
        break;
      }
      if (d.signature) cache!.noteDir(d.local, d.signature);
    }
    if (linked) continue;
    const f = files[i++]!;
    const hash = cache?.lookup(f.local, f.stat);
    if (hash) {
      yield { op: 'link', path: f.dest, hash };
      continue;
    }
    cache?.noteRead(f.local, f.stat);
    if (f.size <= MIN_CHUNK || f.size > SMALL) yield { op: 'put', path: f.dest, content: new DiskFile(f.local, f.size) };
    else yield { op: 'put', path: f.dest, content: readSmall(f.local, f.size) };
  }
}

/** What a put's commit holds where a stat cache update needs to know (see committedEntries). */
export interface Committed {
  /** Entries by repo path. */
  entries: Map<string, FileInfo>;
  /** The repo directories whose entries are all in `entries`. */
  listed: Set<string>;
}

/**
 * The committed entries a stat cache update needs: those of the noted files
 * and directories (`pending`, by local path) and of everything directly in a
 * noted directory. Only those directories and the ones on the way to them are
 * listed, so a re-put that linked most of its directories lists a few
 * directories, not every file; a directory whose files were all read is
 * listed recursively in one call.
 */
export async function committedEntries(
  ls: (path: string, recursive: boolean) => Promise<FileInfo[]>,
  files: LocalFile[],
  dirs: LocalDir[],
  pending: { files: Set<string>; dirs: Set<string> },
): Promise<Committed> {
  // The directories to list: every noted directory, and those holding a noted file or directory.
  const toList = new Set<string>();
  const need = (dir: string) => {
    for (; !toList.has(dir); dir = parentPath(dir)) {
      toList.add(dir); // its parent is added next: a listed directory's ancestors always are
      if (dir === '/') break;
    }
  };
  const readBefore = [0]; // readBefore[i]: how many of files[0, i) were noted as read
  for (const f of files) {
    const read = pending.files.has(f.local);
    if (read) need(parentPath(f.dest));
    readBefore.push(readBefore[readBefore.length - 1]! + (read ? 1 : 0));
  }
  const allRead = new Set<string>();
  for (const d of dirs) {
    if (pending.dirs.has(d.local)) need(d.dest);
    if (d.end > d.first && readBefore[d.end]! - readBefore[d.first]! === d.end - d.first) allRead.add(d.dest);
  }
  const committed: Committed = { entries: new Map(), listed: new Set() };
  const visit = async (dir: string) => {
    const recursive = allRead.has(dir);
    committed.listed.add(dir);
    for (const e of await ls(dir, recursive)) {
      committed.entries.set(e.path, e);
      if (e.type !== 'dir') continue;
      if (recursive) committed.listed.add(e.path);
      else if (toList.has(e.path)) await visit(e.path);
    }
  };
  if (toList.size > 0) await visit('/');
  return committed;
}

function parentPath(p: string): string {
  return p.slice(0, p.lastIndexOf('/')) || '/';
}

/**
 * The trees the local directories were committed as, by local path. Only
 * where the repo directory holds exactly the local directory's files: a put
 * merges into what is there, and a tree holding more must not stand for this
 * one. It holds all the local files, so it holds exactly them when it holds as
 * many: counted from the listing, where a directory this put linked counts
 * its local files when it was committed as the linked tree.
 */
export function committedTrees(dirs: LocalDir[], committed: Committed): Map<string, string> {
  const children = new Map<string, FileInfo[]>();
  for (const e of committed.entries.values()) {
    const parent = parentPath(e.path);
    const list = children.get(parent);
    if (list) list.push(e);
    else children.set(parent, [e]);
  }
  const local = new Map(dirs.map((d) => [d.dest, d]));
  const counted = new Map<string, number | undefined>();
  // Files beneath a committed directory, or undefined when the listing cannot tell.
  const count = (dir: FileInfo): number | undefined => {
    if (counted.has(dir.path)) return counted.get(dir.path);
    let n: number | undefined;
    const d = local.get(dir.path);
    if (committed.listed.has(dir.path)) {
      n = 0;
      for (const e of children.get(dir.path) ?? []) {
        const inner = e.type === 'dir' ? count(e) : 1;
        if (inner === undefined) {
          n = undefined;
          break;
        }
        n += inner;
      }
    } else if (d?.linked && d.linked === dir.hash) {
      n = d.end - d.first;
    }
    counted.set(dir.path, n);
    return n;
  };
  const trees = new Map<string, string>();
  for (const d of dirs) {
    const entry = committed.entries.get(d.dest);
    if (entry?.type === 'dir' && count(entry) === d.end - d.first) trees.set(d.local, entry.hash);
  }
  return trees;
}
