import { createHash } from 'node:crypto';
import type { Kysely } from 'kysely';
import { CorruptionError, InvalidArgumentError, NotFoundError } from '../errors.js';
import type { Schema } from '../meta/schema.js';
import { joinPath, splitPath } from './paths.js';

// Directory trees are content-addressed, like git's: a node lists its children
// sorted by name, and its id is the SHA-256 of that canonical list. A commit
// that changes one file writes that file's chunks plus one node per directory
// on the path to it; a diff skips every subtree whose id did not change. So
// both cost O(change), not O(repo).

export interface TreeEntry {
  name: string;
  type: 'file' | 'dir';
  /** Content hash of a file, or tree id of a directory. */
  hash: string;
  /** Bytes of a file, or total bytes of the files beneath a directory. */
  size: number;
}

type Encoded = [name: string, type: 'f' | 'd', hash: string, size: number];

export function encodeTree(entries: readonly TreeEntry[]): string {
  const rows: Encoded[] = entries.map((e) => [e.name, e.type === 'file' ? 'f' : 'd', e.hash, e.size]);
  return JSON.stringify(rows);
}

export function decodeTree(text: string): TreeEntry[] {
  return (JSON.parse(text) as Encoded[]).map(([name, t, hash, size]) => ({
    name,
    type: t === 'f' ? 'file' : 'dir',
    hash,
    size,
  }));
}

export function treeId(encoded: string): string {
  return createHash('sha256').update(encoded).digest('hex');
}

const byName = (a: TreeEntry, b: TreeEntry) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

export const EMPTY_TREE = encodeTree([]);
export const EMPTY_TREE_ID = treeId(EMPTY_TREE);

/**
 * A change to apply: an entry to place at a path, or null to delete the path.
 * With `merge`, a directory entry adds its files to a directory already at
 * the path (as if each file were placed one by one) instead of replacing it.
 */
export type TreeChange = { path: string; entry: Omit<TreeEntry, 'name'> | null; merge?: boolean };

/**
 * Files beneath tree `id`, counted from decoded `nodes` and memoized in `counts` (which may start with
 * the known counts of trees not in `nodes`); NaN when a tree on the way is in neither.
 */
export function filesBeneath(id: string, nodes: ReadonlyMap<string, readonly TreeEntry[]>, counts: Map<string, number>): number {
  let n = counts.get(id);
  if (n !== undefined) return n;
  const entries = nodes.get(id);
  if (!entries) return NaN;
  n = 0;
  for (const e of entries) n += e.type === 'file' ? 1 : filesBeneath(e.hash, nodes, counts);
  counts.set(id, n);
  return n;
}

/** Reads tree nodes from the database, with a bounded cache of decoded nodes. */
export class TreeReader {
  private cache = new Map<string, TreeEntry[]>();

  constructor(private db: Kysely<Schema>, private maxCached = 2048) {}

  async get(id: string): Promise<TreeEntry[]> {
    if (id === EMPTY_TREE_ID) return [];
    const hit = this.cache.get(id);
    if (hit) return hit;
    const row = await this.db.selectFrom('trees').select('entries').where('id', '=', id).executeTakeFirst();
    if (!row) throw new CorruptionError(`tree ${id} is missing from the database (run strata fsck)`);
    const entries = decodeTree(row.entries);
    if (this.cache.size >= this.maxCached) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(id, entries);
    return entries;
  }

  /** The entry at `path` (the root is a dir entry named ''), or undefined. */
  async lookup(root: string, path: string): Promise<TreeEntry | undefined> {
    let entry: TreeEntry = { name: '', type: 'dir', hash: root, size: 0 };
    for (const part of splitPath(path)) {
      if (entry.type !== 'dir') return undefined;
      const found = (await this.get(entry.hash)).find((e) => e.name === part);
      if (!found) return undefined;
      entry = found;
    }
    return entry;
  }

  /** How many files a directory holds beneath it, and their total bytes. */
  async summary(id: string): Promise<{ files: number; size: number }> {
    let files = 0;
    let size = 0;
    for (const e of await this.get(id)) {
      size += e.size;
      files += e.type === 'file' ? 1 : (await this.summary(e.hash)).files;
    }
    return { files, size };
  }

  /** Every file beneath a directory, depth first in name order, with full paths; with `dirs`, each directory too, before its files. */
  async *walk(id: string, dir: string, opts: { dirs?: boolean } = {}): AsyncGenerator<TreeEntry & { path: string }> {
    for (const e of await this.get(id)) {
      const path = joinPath(dir, e.name);
      if (e.type === 'dir') {
        if (opts.dirs) yield { ...e, path };
        yield* this.walk(e.hash, path, opts);
      } else {
        yield { ...e, path };
      }
    }
  }
}

/**
 * Applies changes to the tree `root` and returns the new root id plus the
 * nodes that did not exist before (id -> encoded). Only directories on the
 * changed paths are rebuilt. Directories left empty by deletes disappear.
 */
export async function applyChanges(
  reader: TreeReader,
  root: string,
  changes: readonly TreeChange[],
): Promise<{ root: string; size: number; nodes: Map<string, string> }> {
  const nodes = new Map<string, string>();
  const plan = new Map<string, ChangeNode>();
  for (const c of changes) insertChange(plan, splitPath(c.path), c, '');
  const result = await rebuild(reader, root, plan, '/', nodes);
  return { root: result?.hash ?? putNode([], nodes), size: result?.size ?? 0, nodes };
}

// A trie of pending changes: leaves carry the change, inner nodes children.
interface ChangeNode {
  change?: TreeChange;
  /** The path was deleted earlier in this commit, then written beneath: start it empty. */
  reset?: boolean;
  children: Map<string, ChangeNode>;
}

function insertChange(level: Map<string, ChangeNode>, parts: string[], change: TreeChange, at: string) {
  if (parts.length === 0) throw new InvalidArgumentError('cannot replace the root directory itself; name a path inside it');
  const [head, ...rest] = parts;
  let node = level.get(head!);
  if (!node) level.set(head!, (node = { children: new Map() }));
  if (rest.length === 0) {
    node.change = change;
    node.children.clear(); // a later change to a path replaces earlier ones beneath it
  } else {
    if (node.change?.entry?.type === 'file') {
      throw new InvalidArgumentError(`${at}/${head} is written as a file and also used as a directory in the same commit`);
    }
    if (!node.change?.entry) {
      // A delete earlier in this commit: the directory starts empty. (A directory placed here stays, changed beneath.)
      if (node.change) node.reset = true;
      node.change = undefined;
    }
    insertChange(node.children, rest, change, `${at}/${head}`);
  }
}

/** A node written earlier in this same change (a merged directory changed again beneath), else a stored one. */
async function read(reader: TreeReader, id: string, nodes: Map<string, string>): Promise<TreeEntry[]> {
  const written = nodes.get(id);
  return written === undefined ? reader.get(id) : decodeTree(written);
}

function putNode(entries: TreeEntry[], nodes: Map<string, string>): string {
  const encoded = encodeTree(entries);
  const id = treeId(encoded);
  nodes.set(id, encoded);
  return id;
}

async function rebuild(
  reader: TreeReader,
  id: string | null,
  plan: Map<string, ChangeNode>,
  dir: string,
  nodes: Map<string, string>,
): Promise<{ hash: string; size: number } | null> {
  const entries = new Map((id ? await read(reader, id, nodes) : []).map((e) => [e.name, e]));
  for (const [name, node] of plan) {
    const path = joinPath(dir, name);
    const existing = entries.get(name);
    const change = node.change;
    if (change) {
      if (!change.entry) {
        if (existing) entries.delete(name);
        else if (node.children.size === 0) throw new NotFoundError(`${path} does not exist`);
      } else if (existing?.type === 'dir' && change.entry.type === 'file') {
        throw new InvalidArgumentError(`${path} is a directory; cannot overwrite it with a file (delete it first)`);
      } else if (existing?.type === 'dir' && change.merge) {
        entries.set(name, { name, type: 'dir', ...(await mergeTrees(reader, existing.hash, change.entry.hash, path, nodes)) });
      } else if (existing?.type === 'file' && change.merge) {
        throw new InvalidArgumentError(`${path} is a file; cannot put files beneath it (delete it first)`);
      } else {
        entries.set(name, { name, ...change.entry });
      }
    }
    if (node.children.size > 0) {
      const current = node.reset ? undefined : entries.get(name);
      if (current?.type === 'file') {
        throw new InvalidArgumentError(`${path} is a file; cannot put files beneath it (delete it first)`);
      }
      const child = await rebuild(reader, current?.type === 'dir' ? current.hash : null, node.children, path, nodes);
      if (child) entries.set(name, { name, type: 'dir', hash: child.hash, size: child.size });
      else entries.delete(name);
    }
  }
  if (entries.size === 0) return null;
  const sorted = [...entries.values()].sort(byName);
  const size = sorted.reduce((sum, e) => sum + e.size, 0);
  return { hash: putNode(sorted, nodes), size };
}

/**
 * Tree `base` with every file of tree `incoming` placed in it: a file
 * replaces a file of the same path, files only in `base` stay. Subtrees that
 * are equal, or absent from `base`, are taken whole, unread.
 */
async function mergeTrees(
  reader: TreeReader,
  base: string,
  incoming: string,
  dir: string,
  nodes: Map<string, string>,
): Promise<{ hash: string; size: number }> {
  if (base === incoming) return { hash: base, size: (await read(reader, base, nodes)).reduce((sum, e) => sum + e.size, 0) };
  const entries = new Map((await read(reader, base, nodes)).map((e) => [e.name, e]));
  for (const e of await reader.get(incoming)) {
    const existing = entries.get(e.name);
    const path = joinPath(dir, e.name);
    if (existing?.type === 'dir' && e.type === 'dir' && existing.hash !== e.hash) {
      entries.set(e.name, { name: e.name, type: 'dir', ...(await mergeTrees(reader, existing.hash, e.hash, path, nodes)) });
    } else if (existing?.type === 'dir' && e.type === 'file') {
      throw new InvalidArgumentError(`${path} is a directory; cannot overwrite it with a file (delete it first)`);
    } else if (existing?.type === 'file' && e.type === 'dir') {
      throw new InvalidArgumentError(`${path} is a file; cannot put files beneath it (delete it first)`);
    } else {
      entries.set(e.name, e);
    }
  }
  const sorted = [...entries.values()].sort(byName);
  return { hash: putNode(sorted, nodes), size: sorted.reduce((sum, e) => sum + e.size, 0) };
}

export interface TreeDiff {
  added: string[];
  modified: string[];
  deleted: string[];
}

/** File-level differences from tree `a` to tree `b`; identical subtrees are skipped unread. */
export async function diffTrees(reader: TreeReader, a: string, b: string, dir = '/', out?: TreeDiff): Promise<TreeDiff> {
  const result = out ?? { added: [], modified: [], deleted: [] };
  if (a === b) return result;
  const left = new Map((await reader.get(a)).map((e) => [e.name, e]));
  const right = new Map((await reader.get(b)).map((e) => [e.name, e]));
  const names = [...new Set([...left.keys(), ...right.keys()])].sort();
  for (const name of names) {
    const l = left.get(name);
    const r = right.get(name);
    const path = joinPath(dir, name);
    if (l && r && l.hash === r.hash && l.type === r.type) continue;
    if (l?.type === 'dir' && r?.type === 'dir') {
      await diffTrees(reader, l.hash, r.hash, path, result);
      continue;
    }
    if (l) await collect(reader, l, path, result.deleted);
    if (r) await collect(reader, r, path, result.added);
    if (l?.type === 'file' && r?.type === 'file') {
      result.deleted.pop();
      result.added.pop();
      result.modified.push(path);
    }
  }
  return result;
}

async function collect(reader: TreeReader, entry: TreeEntry, path: string, into: string[]) {
  if (entry.type === 'file') into.push(path);
  else for await (const f of reader.walk(entry.hash, path)) into.push(f.path);
}
