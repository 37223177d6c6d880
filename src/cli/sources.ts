import { closeSync, lstatSync, openSync, readdirSync, readSync, statSync, type Stats } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { FileStat, StatCache } from './stat-cache.js';
import { InvalidArgumentError } from '../errors.js';
import type { Change } from '../data/types.js';
import { joinPath, normalizePath } from '../data/paths.js';
import { DiskFile } from '../storage/disk-file.js';

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
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(size);
    let filled = 0;
    while (filled < size) {
      const n = readSync(fd, buf, filled, size - filled, filled);
      if (n === 0) break; // the file shrank since it was listed: commit what is there
      filled += n;
    }
    return filled === size ? buf : buf.subarray(0, filled);
  } finally {
    closeSync(fd);
  }
}

/** Lists every regular file under the planned sources, in a stable order. Symlinks are skipped. */
export function expandFiles(plan: PlannedSource[]): LocalFile[] {
  const out: LocalFile[] = [];
  // `local` is absolute (sources are resolved once, below).
  const add = (local: string, dest: string) => {
    const st = lstatSync(local, { bigint: true });
    out.push({
      local,
      dest,
      size: Number(st.size),
      stat: { size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, ino: st.ino },
    });
  };
  const visit = (local: string, dest: string) => {
    const entries = readdirSync(local, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) {
      const child = join(local, e.name);
      if (e.isDirectory()) visit(child, joinPath(dest, e.name));
      else if (e.isFile()) add(child, joinPath(dest, e.name));
    }
  };
  for (const s of plan) {
    if (s.stat.isDirectory()) visit(resolve(s.local), s.dest);
    else add(resolve(s.local), s.dest);
  }
  return out;
}

const SMALL = 1 << 20;

/**
 * Yields the changes for the files. Small files are read whole with one
 * synchronous read each: for many small files the per-call overhead of
 * promise-based reads (a FileHandle, four thread-pool round trips) costs
 * more than the reads themselves. Large files go as DiskFile: the chunk
 * writer reads them straight into its pack buffers.
 */
export async function* changesFrom(files: LocalFile[], stdinDest?: string, cache?: StatCache): AsyncGenerator<Change> {
  if (stdinDest) yield { op: 'put', path: stdinDest, content: process.stdin };
  for (const f of files) {
    const hash = cache?.lookup(f.local, f.stat);
    if (hash) {
      yield { op: 'link', path: f.dest, hash };
      continue;
    }
    cache?.noteRead(f.local, f.stat);
    if (f.size <= SMALL) yield { op: 'put', path: f.dest, content: readSmall(f.local, f.size) };
    else yield { op: 'put', path: f.dest, content: new DiskFile(f.local) };
  }
}
