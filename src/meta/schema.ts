// Table shapes of the metadata database. JSON-valued columns are stored as TEXT
// so the same schema runs on SQLite and PostgreSQL.

export interface RepoTable {
  name: string;
  description: string;
  owner: string;
  labels: string; // JSON object
  created_at: string; // ISO-8601
}

export interface BranchTable {
  repo: string;
  name: string;
  head: string | null; // commit id; null for a branch with no commits yet
}

export interface CommitTable {
  id: string; // SHA-256 of the canonical commit record
  repo: string;
  tree: string; // root tree id
  parents: string; // JSON array of commit ids
  provenance: string; // JSON array of {repo, commit}
  message: string;
  author: string;
  time: string; // ISO-8601
  seq: number; // insertion order within the instance, for stable log order
}

/** Content-addressed directory node: id = SHA-256 of `entries`. */
export interface TreeTable {
  id: string;
  entries: string; // canonical JSON, see data/tree.ts
}

/** A file's content, shared by every path and repo holding the same bytes. */
export interface FileTable {
  hash: string; // SHA-256 of the whole content
  size: number;
  chunks: string; // JSON array of chunk ids in order
}

/** Where a chunk lives: a byte range of a pack object in the object store. */
export interface ChunkTable {
  id: string; // SHA-256 of the chunk bytes
  pack: string;
  offset: number;
  length: number;
}

export interface PackTable {
  id: string;
  size: number;
  chunks: number;
  created_at: string;
}

export interface Schema {
  repos: RepoTable;
  branches: BranchTable;
  commits: CommitTable;
  trees: TreeTable;
  files: FileTable;
  chunks: ChunkTable;
  packs: PackTable;
}
