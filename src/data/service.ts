import { createHash } from 'node:crypto';
import { userInfo } from 'node:os';
import { sql, type Kysely, type Transaction } from 'kysely';
import {
  AlreadyExistsError,
  ConflictError,
  CorruptionError,
  InvalidArgumentError,
  NotFoundError,
  RepoNotFoundError,
} from '../errors.js';
import { bulkInsert } from '../meta/driver.js';
import type { Schema } from '../meta/schema.js';
import type { ChunkStore } from '../storage/chunk-store.js';
import { MIN_CHUNK } from '../storage/chunker.js';
import { DiskFile } from '../storage/disk-file.js';
import { ContentStage } from './stage.js';
import { checkName, normalizePath } from './paths.js';
import { DEFAULT_BRANCH, parseRef, type Ref } from './refs.js';
import { applyChanges, decodeTree, diffTrees, EMPTY_TREE_ID, encodeTree, filesBeneath, treeId, TreeReader, type TreeChange, type TreeEntry } from './tree.js';
import type {
  BranchInfo,
  Change,
  CommitInfo,
  CommitOptions,
  CreateRepoInput,
  DiffResult,
  FileInfo,
  FsckProblem,
  FsckResult,
  Provenance,
  PutResult,
  RepoInfo,
} from './types.js';

// Repos, branches and commits over the metadata database and the chunk store.
// A commit is recorded in one database transaction (files, trees, chunk index,
// commit row, branch move) after its packs are durable, so a crash at any
// instant leaves the branch at either the old or the new commit. Concurrent
// writers to one branch serialize through a compare-and-swap on the branch
// head; the loser re-applies its (already stored) changes on the new head.

const MAX_COMMIT_RETRIES = 20;

interface Resolved {
  repo: string;
  branch?: string;
  commit: CommitInfo;
  path: string;
}

export class DataService {
  readonly trees: TreeReader;
  private listeners = new Set<(event: CommitEvent) => void>();

  constructor(
    private db: Kysely<Schema>,
    private chunks: ChunkStore,
  ) {
    this.trees = new TreeReader(db);
  }

  /** Calls `listener` after every commit this process makes; returns the unsubscribe function. */
  onCommit(listener: (event: CommitEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Stores content without committing it, for writers that commit later (pipeline jobs). */
  stage(): ContentStage {
    return new ContentStage(this.db, this.chunks);
  }

  // ---- repos ----

  async createRepo(input: CreateRepoInput): Promise<RepoInfo> {
    const name = checkName(input.name, 'repo name');
    const labels = input.labels ?? {};
    for (const key of Object.keys(labels)) {
      if (!/^[A-Za-z0-9][A-Za-z0-9_.:/-]*$/.test(key)) throw new InvalidArgumentError(`label key "${key}" is invalid`);
    }
    const row = {
      name,
      description: input.description ?? '',
      owner: input.owner ?? '',
      labels: JSON.stringify(labels),
      created_at: new Date().toISOString(),
    };
    try {
      await this.db.transaction().execute(async (trx) => {
        await trx.insertInto('repos').values(row).execute();
        await trx.insertInto('branches').values({ repo: name, name: DEFAULT_BRANCH, head: null }).execute();
      });
    } catch (err) {
      if (await this.repoExists(name)) throw new AlreadyExistsError(`repo "${name}" already exists`);
      throw err;
    }
    return this.inspectRepo(name);
  }

  async listRepos(): Promise<RepoInfo[]> {
    const rows = await this.db.selectFrom('repos').selectAll().orderBy('name').execute();
    return Promise.all(rows.map((r) => this.repoInfo(r)));
  }

  async inspectRepo(name: string): Promise<RepoInfo> {
    const row = await this.db.selectFrom('repos').selectAll().where('name', '=', checkName(name, 'repo name')).executeTakeFirst();
    if (!row) throw new RepoNotFoundError(name);
    return this.repoInfo(row);
  }

  /** Deletes a repo with its branches and commits. File content shared with other repos stays. */
  async deleteRepo(name: string): Promise<void> {
    await this.requireRepo(name);
    await this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('branches').where('repo', '=', name).execute();
      await trx.deleteFrom('commits').where('repo', '=', name).execute();
      await trx.deleteFrom('repos').where('name', '=', name).execute();
    });
  }

  /**
   * Fails with RepoNotFoundError unless the repo exists: one indexed lookup,
   * for the paths every commit and ref resolution take (inspectRepo also
   * reads branches and the head commit).
   */
  private async requireRepo(name: string): Promise<void> {
    if (!(await this.repoExists(checkName(name, 'repo name')))) throw new RepoNotFoundError(name);
  }

  private async repoExists(name: string) {
    return !!(await this.db.selectFrom('repos').select('name').where('name', '=', name).executeTakeFirst());
  }

  private async repoInfo(row: Schema['repos']): Promise<RepoInfo> {
    const branches = await this.db.selectFrom('branches').selectAll().where('repo', '=', row.name).orderBy('name').execute();
    const master = branches.find((b) => b.name === DEFAULT_BRANCH) ?? branches[0];
    const head = master?.head ? await this.commitById(master.head) : null;
    return {
      name: row.name,
      description: row.description,
      owner: row.owner,
      labels: JSON.parse(row.labels),
      created: row.created_at,
      branches: branches.map((b) => b.name),
      head: head?.id ?? null,
      size: head?.size ?? 0,
    };
  }

  // ---- branches ----

  async createBranch(repo: string, branch: string, from?: string): Promise<BranchInfo> {
    await this.requireRepo(repo);
    checkName(branch, 'branch name');
    let head: string | null = null;
    if (from) {
      const ref = parseRef(from.includes('@') || from.includes(':') ? from : `${repo}@${from}`);
      if (ref.repo !== repo) throw new InvalidArgumentError(`--from ${from} is in repo ${ref.repo}, not ${repo}`);
      head = (await this.resolve(ref)).commit.id;
    }
    const exists = await this.db
      .selectFrom('branches')
      .select('name')
      .where('repo', '=', repo)
      .where('name', '=', branch)
      .executeTakeFirst();
    if (exists) throw new AlreadyExistsError(`branch ${repo}@${branch} already exists`);
    await this.db.insertInto('branches').values({ repo, name: branch, head }).execute();
    return { repo, name: branch, head };
  }

  async listBranches(repo: string): Promise<BranchInfo[]> {
    await this.requireRepo(repo);
    const rows = await this.db.selectFrom('branches').selectAll().where('repo', '=', repo).orderBy('name').execute();
    return rows.map((r) => ({ repo: r.repo, name: r.name, head: r.head }));
  }

  async deleteBranch(repo: string, branch: string): Promise<void> {
    await this.requireRepo(repo);
    const res = await this.db.deleteFrom('branches').where('repo', '=', repo).where('name', '=', branch).executeTakeFirst();
    if (Number(res.numDeletedRows) === 0) throw new NotFoundError(`branch ${repo}@${branch} not found`);
  }

  // ---- commits ----

  /**
   * Writes one commit on `repo@branch` from a stream of changes (puts and
   * deletes). The branch is created if it does not exist yet.
   */
  async commit(repo: string, branch: string, changes: AsyncIterable<Change> | Iterable<Change>, opts: CommitOptions = {}): Promise<PutResult> {
    await this.requireRepo(repo);
    checkName(branch, 'branch name');
    const writer = this.chunks.writer();
    const treeChanges: TreeChange[] = [];
    const fileRows = new Map<string, Schema['files']>();
    let bytes = 0;
    let files = 0;
    let deleted = 0;
    const links: { path: string; hash: string; index: number }[] = [];
    const dirLinks: { path: string; tree: string; index: number }[] = [];
    const linkedCounts = new Map<string, number>(); // files beneath each linked tree, looked up once
    try {
      for await (const change of changes) {
        const path = normalizePath(change.path);
        if (change.op === 'delete') {
          treeChanges.push({ path, entry: null });
          deleted++;
          continue;
        }
        if (change.op === 'link') {
          if (change.type === 'dir') {
            dirLinks.push({ path, tree: change.hash, index: treeChanges.length });
          } else {
            links.push({ path, hash: change.hash, index: treeChanges.length });
            files++;
          }
          treeChanges.push({ path, entry: null }); // filled in below, once the size is known
          continue;
        }
        const before = bytes;
        const counted = (n: number) => {
          bytes = before + n;
          opts.onProgress?.(bytes);
        };
        const { content } = change;
        const stored =
          content instanceof Uint8Array
            ? await writer.writeBuffer(content)
            : content instanceof DiskFile && content.size !== undefined && content.size <= MIN_CHUNK
              ? await writer.writeSmallFile(content.path, content.size)
              : await writer.writeStream(content, counted);
        counted(stored.size); // the final total (streams report as they go)
        fileRows.set(stored.hash, { hash: stored.hash, size: stored.size, chunks: JSON.stringify(stored.chunks) });
        treeChanges.push({ path, entry: { type: 'file', hash: stored.hash, size: stored.size } });
        files++;
      }
      if (treeChanges.length === 0 && !opts.replace) throw new InvalidArgumentError('nothing to commit: no files were given');
      const sizes = await this.storedSizes(links.map((l) => l.hash));
      for (const link of links) {
        const size = sizes.get(link.hash);
        if (size === undefined) throw new NotFoundError(`content ${link.hash} for ${link.path} is not stored in this instance; send the bytes instead`);
        treeChanges[link.index] = { path: link.path, entry: { type: 'file', hash: link.hash, size } };
        bytes += size;
      }
      const trees = await this.storedTrees(dirLinks.map((l) => l.tree));
      for (const link of dirLinks) {
        const stored = trees.get(link.tree);
        if (!stored) throw new NotFoundError(`directory tree ${link.tree} for ${link.path} is not stored in this instance; send the files instead`);
        linkedCounts.set(link.tree, stored.files);
        treeChanges[link.index] = { path: link.path, entry: { type: 'dir', hash: link.tree, size: stored.size }, merge: true };
        bytes += stored.size;
        files += stored.files;
      }
      await writer.flush();
    } catch (err) {
      await writer.abort();
      throw err;
    }

    for (let attempt = 0; ; attempt++) {
      const parent = await this.branchHead(repo, branch);
      const parentCommit = parent ? await this.commitById(parent) : null;
      const base = opts.replace ? EMPTY_TREE_ID : (parentCommit?.tree ?? EMPTY_TREE_ID);
      const { root, nodes } = await applyChanges(this.trees, base, treeChanges);
      const counts = await this.fileCounts(nodes, linkedCounts);
      const record = {
        repo,
        tree: root,
        parents: parent ? [parent] : [],
        provenance: opts.provenance ?? [],
        message: opts.message ?? '',
        author: opts.author ?? defaultAuthor(),
        time: new Date().toISOString(),
      };
      const id = commitId(record);
      const moved = await this.db.transaction().execute(async (trx) => {
        const cas = await trx
          .updateTable('branches')
          .set({ head: id })
          .where('repo', '=', repo)
          .where('name', '=', branch)
          .where((eb) => (parent ? eb('head', '=', parent) : eb('head', 'is', null)))
          .executeTakeFirst();
        if (Number(cas.numUpdatedRows) === 0) {
          const exists = await trx.selectFrom('branches').select('head').where('repo', '=', repo).where('name', '=', branch).executeTakeFirst();
          if (exists || parent) return false;
          await trx.insertInto('branches').values({ repo, name: branch, head: id }).execute();
        }
        await insertIgnore(trx, 'files', [...fileRows.values()], 'hash');
        await insertIgnore(
          trx,
          'trees',
          [...nodes].map(([tid, entries]) => ({ id: tid, entries, files: counts.get(tid)! })),
          'id',
        );
        await writer.record(trx);
        const seq = await trx
          .selectFrom('commits')
          .select(sql<number>`coalesce(max(seq), 0) + 1`.as('next'))
          .where('repo', '=', repo)
          .executeTakeFirstOrThrow();
        await trx
          .insertInto('commits')
          .values({
            id,
            ...record,
            parents: JSON.stringify(record.parents),
            provenance: JSON.stringify(record.provenance),
            seq: Number(seq.next),
            commit_set: opts.commitSet ?? id,
            job: opts.job ?? null,
          })
          .execute();
        return true;
      });
      if (moved) {
        const event: CommitEvent = { repo, branch, commit: id, commitSet: opts.commitSet ?? id };
        for (const listener of this.listeners) listener(event);
        return { commit: id, repo, branch, files, deleted, bytes, new_bytes: writer.stats.newBytes };
      }
      if (attempt >= MAX_COMMIT_RETRIES) {
        throw new ConflictError(`branch ${repo}@${branch} kept moving while committing; retry the operation`);
      }
      await new Promise((r) => setTimeout(r, Math.random() * 5 * (attempt + 1)));
    }
  }

  /** Sizes of stored content by hash; hashes this instance does not hold are absent. */
  private async storedSizes(hashes: string[]): Promise<Map<string, number>> {
    const unique = [...new Set(hashes)];
    const sizes = new Map<string, number>();
    for (let i = 0; i < unique.length; i += 500) {
      const rows = await this.db.selectFrom('files').select(['hash', 'size']).where('hash', 'in', unique.slice(i, i + 500)).execute();
      for (const r of rows) sizes.set(r.hash, Number(r.size));
    }
    return sizes;
  }

  /** Total bytes and files beneath stored directory trees; trees this instance does not hold are absent. */
  private async storedTrees(ids: string[]): Promise<Map<string, { size: number; files: number }>> {
    const found = new Map<string, { size: number; files: number }>();
    for (const [id, files] of await this.storedFileCounts(ids)) {
      found.set(id, { files, size: (await this.trees.get(id)).reduce((sum, e) => sum + e.size, 0) });
    }
    return found;
  }

  /** Files beneath stored trees, as recorded (a tree stored before counts were kept is walked); absent ids are left out. */
  private async storedFileCounts(ids: string[]): Promise<Map<string, number>> {
    const found = new Map<string, number>();
    const unique = [...new Set(ids)];
    for (let i = 0; i < unique.length; i += 500) {
      const rows = await this.db.selectFrom('trees').select(['id', 'files']).where('id', 'in', unique.slice(i, i + 500)).execute();
      for (const { id, files } of rows) found.set(id, files === null ? (await this.trees.summary(id)).files : Number(files));
    }
    return found;
  }

  /**
   * Files beneath each tree node a commit adds: counted from its entries, with the recorded counts of
   * the stored subtrees it keeps (those in `known` already looked up), so a commit's cost stays
   * O(change) however large the trees it places.
   */
  private async fileCounts(nodes: Map<string, string>, known: ReadonlyMap<string, number>): Promise<Map<string, number>> {
    const added = new Map([...nodes].map(([id, text]) => [id, decodeTree(text)]));
    const kept: string[] = [];
    for (const entries of added.values()) for (const e of entries) if (e.type === 'dir' && !added.has(e.hash) && !known.has(e.hash)) kept.push(e.hash);
    const counts = new Map([...known, ...(await this.storedFileCounts(kept))]);
    for (const id of added.keys()) {
      if (Number.isNaN(filesBeneath(id, added, counts))) throw new CorruptionError(`tree ${id} refers to a tree missing from the database (run strata fsck)`);
    }
    return counts;
  }

  private async branchHead(repo: string, branch: string): Promise<string | null> {
    const row = await this.db.selectFrom('branches').select('head').where('repo', '=', repo).where('name', '=', branch).executeTakeFirst();
    return row?.head ?? null;
  }

  private async commitById(id: string): Promise<CommitInfo> {
    const row = await this.db.selectFrom('commits').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new CorruptionError(`commit ${id} is referenced but missing (run strata fsck)`);
    const root = await this.trees.get(row.tree);
    return {
      id: row.id,
      repo: row.repo,
      parents: JSON.parse(row.parents),
      message: row.message,
      author: row.author,
      time: row.time,
      provenance: JSON.parse(row.provenance) as Provenance[],
      commit_set: row.commit_set ?? row.id,
      job: row.job ?? null,
      tree: row.tree,
      size: root.reduce((sum, e) => sum + e.size, 0),
    };
  }

  /** Resolves a reference to a commit (and branch, when it names one). */
  async resolve(ref: Ref | string): Promise<Resolved> {
    const r = typeof ref === 'string' ? parseRef(ref) : ref;
    await this.requireRepo(r.repo);
    const at = r.at ?? DEFAULT_BRANCH;
    let branch: string | undefined;
    let id = await this.db
      .selectFrom('branches')
      .select('head')
      .where('repo', '=', r.repo)
      .where('name', '=', at)
      .executeTakeFirst()
      .then((b) => {
        if (!b) return undefined;
        branch = at;
        if (!b.head) throw new NotFoundError(`branch ${r.repo}@${at} has no commits yet`);
        return b.head;
      });
    if (id === undefined) {
      if (!/^[0-9a-f]{1,64}$/.test(at)) {
        throw new NotFoundError(`${r.repo}@${at}: no such branch, and not a commit id (commit ids are hex)`);
      }
      const matches = await this.db
        .selectFrom('commits')
        .select('id')
        .where('repo', '=', r.repo)
        .where('id', '>=', at)
        .where('id', '<', at + 'g')
        .limit(2)
        .execute();
      if (matches.length === 0) throw new NotFoundError(`${r.repo}@${at}: no such branch or commit`);
      if (matches.length > 1) throw new InvalidArgumentError(`${r.repo}@${at}: commit prefix is ambiguous; give more characters`);
      id = matches[0]!.id;
    }
    let commit = await this.commitById(id);
    for (let i = 0; i < r.back; i++) {
      const parent = commit.parents[0];
      if (!parent) throw new NotFoundError(`${r.repo}@${at}: history has only ${i + 1} commit(s), cannot go back ${r.back}`);
      commit = await this.commitById(parent);
      branch = undefined;
    }
    return { repo: r.repo, branch: r.back === 0 ? branch : undefined, commit, path: r.path };
  }

  async inspectCommit(ref: string): Promise<CommitInfo> {
    return (await this.resolve(ref)).commit;
  }

  async log(ref: string, opts: { limit?: number } = {}): Promise<CommitInfo[]> {
    const { commit } = await this.resolve(ref);
    const out = [commit];
    const limit = opts.limit ?? Infinity;
    while (out.length < limit && out[out.length - 1]!.parents[0]) {
      out.push(await this.commitById(out[out.length - 1]!.parents[0]!));
    }
    return out;
  }

  // ---- files ----

  /** The entries at a path; `recursive` lists every file below instead, and with `dirs` every directory below too. */
  async ls(ref: string, opts: { recursive?: boolean; dirs?: boolean } = {}): Promise<FileInfo[]> {
    const { commit, path, repo } = await this.resolve(ref);
    const entry = await this.trees.lookup(commit.tree, path);
    if (!entry) throw new NotFoundError(`${repo}@${commit.id.slice(0, 12)}:${path} does not exist`);
    if (entry.type === 'file') return [{ path, type: 'file', size: entry.size, hash: entry.hash }];
    if (opts.recursive) {
      const out: FileInfo[] = [];
      for await (const f of this.trees.walk(entry.hash, path, { dirs: opts.dirs })) out.push({ path: f.path, type: f.type, size: f.size, hash: f.hash });
      return out;
    }
    const base = path === '/' ? '' : path;
    return (await this.trees.get(entry.hash)).map((e) => ({ path: `${base}/${e.name}`, type: e.type, size: e.size, hash: e.hash }));
  }

  /** Every file under a reference's path (the path itself if it is a file). */
  async *walk(ref: string): AsyncGenerator<FileInfo> {
    const { commit, path, repo } = await this.resolve(ref);
    const entry = await this.trees.lookup(commit.tree, path);
    if (!entry) throw new NotFoundError(`${repo}@${commit.id.slice(0, 12)}:${path} does not exist`);
    if (entry.type === 'file') {
      yield { path, type: 'file', size: entry.size, hash: entry.hash };
      return;
    }
    for await (const f of this.trees.walk(entry.hash, path)) yield { path: f.path, type: 'file', size: f.size, hash: f.hash };
  }

  /** Opens a file for reading. The stream verifies every chunk as it goes. */
  async read(ref: string): Promise<{ info: FileInfo; stream: AsyncIterable<Buffer> }> {
    const { commit, path, repo } = await this.resolve(ref);
    const entry = await this.trees.lookup(commit.tree, path);
    if (!entry) throw new NotFoundError(`${repo}@${commit.id.slice(0, 12)}:${path} does not exist`);
    if (entry.type !== 'file') throw new InvalidArgumentError(`${repo}:${path} is a directory; use ls or get`);
    return { info: { path, type: 'file', size: entry.size, hash: entry.hash }, stream: this.readContent(entry.hash) };
  }

  /** Streams the content with this hash, verified chunk by chunk and as a whole. */
  async *readContent(hash: string): AsyncGenerator<Buffer> {
    const row = await this.db.selectFrom('files').selectAll().where('hash', '=', hash).executeTakeFirst();
    if (!row) throw new CorruptionError(`file content ${hash} is missing from the database (run strata fsck)`);
    const chunkIds = JSON.parse(row.chunks) as string[];
    if (chunkIds.length === 1 && chunkIds[0] === hash) {
      yield* this.chunks.read(chunkIds); // the chunk hash is the file hash
      return;
    }
    const whole = createHash('sha256');
    for await (const buf of this.chunks.read(chunkIds)) {
      whole.update(buf);
      yield buf;
    }
    if (whole.digest('hex') !== hash) throw new CorruptionError(`file content ${hash} does not match its hash`);
  }

  async diff(from: string, to: string): Promise<DiffResult> {
    const a = await this.resolve(from);
    const b = await this.resolve(to);
    const left = await this.trees.lookup(a.commit.tree, a.path);
    const right = await this.trees.lookup(b.commit.tree, b.path);
    const leftTree = left?.type === 'dir' ? left.hash : EMPTY_TREE_ID;
    const rightTree = right?.type === 'dir' ? right.hash : EMPTY_TREE_ID;
    return diffTrees(this.trees, leftTree, rightTree);
  }

  // ---- integrity ----

  /** Re-hashes every chunk and checks every commit, tree, file and branch reference. */
  async fsck(onProgress?: (done: number, total: number) => void): Promise<FsckResult> {
    const problems: FsckProblem[] = [...(await this.chunks.verify(onProgress))];
    const checked = { chunks: 0, files: 0, trees: 0, commits: 0, branches: 0 };
    checked.chunks = Number((await this.db.selectFrom('chunks').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);

    const chunkIds = new Set((await this.db.selectFrom('chunks').select('id').execute()).map((r) => r.id));
    const files = new Set<string>();
    for (const f of await this.db.selectFrom('files').selectAll().execute()) {
      checked.files++;
      files.add(f.hash);
      const ids = JSON.parse(f.chunks) as string[];
      const missing = ids.filter((id) => !chunkIds.has(id));
      if (missing.length) problems.push({ kind: 'file', id: f.hash, message: `refers to ${missing.length} missing chunk(s), first ${missing[0]}` });
    }

    const trees = new Map<string, string>();
    const recorded = new Map<string, number>(); // files beneath, as recorded (not for trees stored before counts were kept)
    for (const t of await this.db.selectFrom('trees').selectAll().execute()) {
      trees.set(t.id, t.entries);
      if (t.files !== null) recorded.set(t.id, Number(t.files));
    }
    trees.set(EMPTY_TREE_ID, encodeTree([]));
    const decoded = new Map<string, TreeEntry[]>();
    for (const [id, text] of trees) {
      checked.trees++;
      if (treeId(text) !== id) {
        problems.push({ kind: 'tree', id, message: 'content does not match its id' });
        continue;
      }
      decoded.set(id, decodeTree(text));
      for (const e of decoded.get(id)!) {
        if (e.type === 'dir' && !trees.has(e.hash)) problems.push({ kind: 'tree', id, message: `entry "${e.name}" refers to missing tree ${e.hash}` });
        if (e.type === 'file' && !files.has(e.hash)) problems.push({ kind: 'tree', id, message: `entry "${e.name}" refers to missing file ${e.hash}` });
      }
    }
    // Files beneath each sound tree (NaN where a tree beneath is missing or damaged: reported above).
    const counted = new Map<string, number>();
    for (const [id, files] of recorded) {
      const actual = filesBeneath(id, decoded, counted);
      if (!Number.isNaN(actual) && actual !== files) problems.push({ kind: 'tree', id, message: `records ${files} file(s) beneath, holds ${actual}` });
    }

    const commits = new Set<string>();
    for (const c of await this.db.selectFrom('commits').selectAll().execute()) {
      checked.commits++;
      commits.add(c.id);
      const record = {
        repo: c.repo,
        tree: c.tree,
        parents: JSON.parse(c.parents),
        provenance: JSON.parse(c.provenance),
        message: c.message,
        author: c.author,
        time: c.time,
      };
      if (commitId(record) !== c.id) problems.push({ kind: 'commit', id: c.id, message: 'record does not match its id (tampered or corrupted)' });
      if (!trees.has(c.tree)) problems.push({ kind: 'commit', id: c.id, message: `refers to missing tree ${c.tree}` });
    }
    for (const c of await this.db.selectFrom('commits').select(['id', 'parents']).execute()) {
      for (const p of JSON.parse(c.parents) as string[]) {
        if (!commits.has(p)) problems.push({ kind: 'commit', id: c.id, message: `parent ${p} is missing` });
      }
    }
    for (const b of await this.db.selectFrom('branches').selectAll().execute()) {
      checked.branches++;
      if (b.head && !commits.has(b.head)) {
        problems.push({ kind: 'branch', id: `${b.repo}@${b.name}`, message: `head ${b.head} is not a known commit` });
      }
    }
    return { ok: problems.length === 0, checked, problems };
  }
}

export interface CommitEvent {
  repo: string;
  branch: string;
  commit: string;
  commitSet: string;
}

interface CommitRecord {
  repo: string;
  tree: string;
  parents: string[];
  provenance: Provenance[];
  message: string;
  author: string;
  time: string;
}

/** The commit id: SHA-256 of the canonical record, fields in a fixed order. */
export function commitId(r: CommitRecord): string {
  const canonical = JSON.stringify([r.repo, r.tree, r.parents, r.provenance.map((p) => [p.repo, p.commit]), r.message, r.author, r.time]);
  return createHash('sha256').update(canonical).digest('hex');
}

/** The commit author when none is given: $STRATA_AUTHOR, else the local user name. */
export function defaultAuthor(): string {
  if (process.env.STRATA_AUTHOR) return process.env.STRATA_AUTHOR;
  // Looked up once: os.userInfo() reads the user database on every call (a server asks per request).
  osUser ??= (() => {
    try {
      return userInfo().username;
    } catch {
      return process.env.USER ?? 'unknown';
    }
  })();
  return osUser;
}
let osUser: string | undefined;

/** Inserts file or tree records, leaving those already stored alone (a bulk insert: a commit can hold 100k of them). */
export async function insertIgnore<T extends 'files' | 'trees'>(trx: Transaction<Schema>, table: T, rows: Schema[T][], key: 'hash' | 'id') {
  if (rows.length === 0) return;
  const columns = Object.keys(rows[0]!) as (keyof Schema[T] & string)[];
  await trx.executeQuery(bulkInsert(table, columns, rows.map((r) => columns.map((c) => r[c])), `on conflict (${key}) do nothing`));
}

