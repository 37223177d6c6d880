import type {
  BranchInfo,
  Change,
  CommitInfo,
  CommitOptions,
  CreateRepoInput,
  DiffResult,
  FileInfo,
  FsckResult,
  PutResult,
  RepoInfo,
} from '../data/types.js';
import type { DatumInfo, JobInfo, PipelineInfo } from '../pipelines/types.js';
import type { LineageGraph } from '../lineage/graph.js';

// What the CLI (and any program) can do with Strata. Two implementations:
// in-process over an Instance (cli/local-client.ts) and over HTTP
// (sdk/http-client.ts). Both behave the same, errors included (StrataError
// with the same code), which the CLI tests check by running every command
// both ways.

export interface StrataClient {
  createRepo(input: CreateRepoInput): Promise<RepoInfo>;
  listRepos(): Promise<RepoInfo[]>;
  inspectRepo(name: string): Promise<RepoInfo>;
  deleteRepo(name: string): Promise<void>;

  createBranch(repo: string, branch: string, from?: string): Promise<BranchInfo>;
  listBranches(repo: string): Promise<BranchInfo[]>;
  deleteBranch(repo: string, branch: string): Promise<void>;

  /** One atomic commit of puts and deletes on repo@branch. Content is streamed, never held whole. */
  commit(repo: string, branch: string, changes: AsyncIterable<Change> | Iterable<Change>, opts?: CommitOptions): Promise<PutResult>;
  inspectCommit(ref: string): Promise<CommitInfo>;
  log(ref: string, opts?: { limit?: number }): Promise<CommitInfo[]>;
  diff(from: string, to: string): Promise<DiffResult>;

  ls(ref: string, opts?: { recursive?: boolean }): Promise<FileInfo[]>;
  /** Every file under the reference's path, for materializing (`strata get`). */
  walk(ref: string): AsyncIterable<FileInfo>;
  read(ref: string): Promise<{ info: FileInfo; stream: AsyncIterable<Buffer> }>;

  fsck(): Promise<FsckResult>;

  // ---- pipelines (issue 3) ----
  /** `spec` is the parsed YAML/JSON document. */
  createPipeline(spec: unknown, opts?: { update?: boolean; reprocess?: boolean }): Promise<PipelineInfo>;
  listPipelines(): Promise<PipelineInfo[]>;
  inspectPipeline(name: string): Promise<PipelineInfo>;
  deletePipeline(name: string): Promise<void>;
  listJobs(opts?: { pipeline?: string; commitSet?: string }): Promise<JobInfo[]>;
  inspectJob(id: string): Promise<JobInfo>;
  stopJob(id: string): Promise<JobInfo>;
  listDatums(job: string): Promise<DatumInfo[]>;
  logs(job: string, datum?: string): Promise<{ datum: string; state: string; log: string }[]>;
  /**
   * Waits until every job of a commit set (the one `ref` resolves to; all jobs
   * when omitted) has finished, driving the scheduler in-process when no
   * server runs one. Returns those jobs.
   */
  wait(ref?: string): Promise<JobInfo[]>;
  lineage(ref: string, opts?: { direction?: 'upstream' | 'downstream' | 'both' }): Promise<LineageGraph>;

  close(): Promise<void>;
}

export type {
  DatumInfo,
  JobInfo,
  LineageGraph,
  PipelineInfo,
  BranchInfo,
  Change,
  CommitInfo,
  CommitOptions,
  CreateRepoInput,
  DiffResult,
  FileInfo,
  FsckResult,
  PutResult,
  RepoInfo,
};
