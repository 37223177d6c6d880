// How many bytes a datum has written to its output directory. Apparent sizes
// (st.size), not disk blocks: a sparse 100 GB file costs nothing on disk but
// 100 GB to commit, and committing is what the limit protects.

import type { Dirent } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Total size of the regular files under dir, counting stops once it passes
 * `stopAbove` (the caller only needs to know the limit was crossed). Entries
 * that vanish while being counted are skipped: the step is still running.
 */
export async function outputSize(dir: string, stopAbove = Infinity): Promise<number> {
  let total = 0;
  const pending = [dir];
  while (pending.length > 0 && total <= stopAbove) {
    const current = pending.pop()!;
    let entries: Dirent[];
    try {
      entries = await readdir(current, { withFileTypes: true });
    } catch (err) {
      if (isGone(err)) continue;
      throw err;
    }
    for (const entry of entries) {
      const path = join(current, entry.name);
      if (entry.isDirectory()) pending.push(path);
      else if (entry.isFile()) {
        try {
          total += (await lstat(path)).size;
        } catch (err) {
          if (!isGone(err)) throw err;
        }
        if (total > stopAbove) break;
      }
    }
  }
  return total;
}

function isGone(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}
