// The data layer's public shapes. These are also the JSON shapes of the CLI's
// `--json` output and of the HTTP API (DESIGN.md, CLI contract).

export interface RepoInfo {
  name: string;
  description: string;
  owner: string;
  labels: Record<string, string>;
  created: string;
  branches: string[];
  /** Head commit of the default branch, if it has one. */
  head: string | null;
  /** Bytes of the files in the default branch's head commit. */
  size: number;
}

export interface CreateRepoInput {
  name: string;
  description?: string;
  owner?: string;
  labels?: Record<string, string>;
}

export interface BranchInfo {
  repo: string;
  name: string;
  head: string | null;
}

export interface Provenance {
  repo: string;
  commit: string;
}

export interface CommitInfo {
  id: string;
  repo: string;
  parents: string[];
  message: string;
  author: string;
  time: string;
  provenance: Provenance[];
  /** The user commit this one descends from (Pachyderm's global id); itself for user commits. */
  commit_set: string;
  /** The pipeline job that made this commit, if any. */
  job: string | null;
  tree: string;
  size: number;
}

export interface FileInfo {
  path: string;
  type: 'file' | 'dir';
  size: number;
  hash: string;
}

export interface PutResult {
  commit: string;
  repo: string;
  branch: string;
  files: number;
  deleted: number;
  bytes: number;
  new_bytes: number;
}

export interface DiffResult {
  added: string[];
  modified: string[];
  deleted: string[];
}

export interface FsckProblem {
  kind: 'chunk' | 'pack' | 'file' | 'tree' | 'commit' | 'branch';
  id: string;
  message: string;
}

export interface FsckResult {
  ok: boolean;
  checked: { chunks: number; files: number; trees: number; commits: number; branches: number };
  problems: FsckProblem[];
}

/**
 * One change in a commit: write a file at a repo path; place content this
 * instance already stores (by its SHA-256) at a path without sending the
 * bytes again — or, with type 'dir', every file of a stored directory tree
 * (by its tree id) beneath a path, as if each were linked one by one; or
 * delete a path (file or directory).
 */
export type Change =
  | { op: 'put'; path: string; content: AsyncIterable<Uint8Array> | Uint8Array }
  | { op: 'link'; path: string; hash: string; type?: 'file' | 'dir' }
  | { op: 'delete'; path: string };

export interface CommitOptions {
  message?: string;
  author?: string;
  provenance?: Provenance[];
  /** The commit's tree is exactly the given files: nothing is carried over from the parent. */
  replace?: boolean;
  /** Commit set this commit belongs to (default: its own id, as for a user commit). */
  commitSet?: string;
  /** The job that makes this commit. */
  job?: string;
  /** Called with the running total of bytes read from the sources. */
  onProgress?: (bytes: number) => void;
}
