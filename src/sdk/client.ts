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
import type { LogBatch } from '../tracking/service.js';
import type {
  ArtifactInfo,
  CreateRunInput,
  Experiment,
  MetricPoint,
  Run,
  RunComparison,
  RunInfo,
  RunStatus,
  SearchRunsInput,
} from '../tracking/types.js';
import type { AliasAt, RegisterVersionInput } from '../tracking/registry.js';
import type { AliasChange, GateRule, ModelVersion, RegisteredModel, TensorSpec } from '../tracking/types.js';

import type { AuditEntry, AuditListFilter, AuditVerifyResult, SignedCheckpoint } from '../governance/audit.js';
import type { DeploymentInfo } from '../serving/deployments.js';
import type { CommitClassification, CustomDetectorInfo, LabelKind, LabelSet } from '../governance/classifier.js';
import type { CatalogAnnotation, CatalogDetails, CatalogHit } from '../governance/catalog.js';
import type { PredictResponse } from '../serving/manager.js';
import type { InferResponse } from '../serving/protocol.js';

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

  /** With `recursive`, every file below; with `dirs` too, every directory below as well. */
  ls(ref: string, opts?: { recursive?: boolean; dirs?: boolean }): Promise<FileInfo[]>;
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

  // ---- tracking (issue 4) ----
  listExperiments(): Promise<Experiment[]>;
  createExperiment(name: string, tags?: Record<string, string>): Promise<Experiment>;
  createRun(input?: CreateRunInput): Promise<Run>;
  getRun(id: string): Promise<Run>;
  updateRun(id: string, changes: { status?: RunStatus; end_time?: number; run_name?: string }): Promise<RunInfo>;
  logBatch(id: string, batch: LogBatch): Promise<void>;
  searchRuns(input?: SearchRunsInput): Promise<{ runs: Run[]; next_page_token?: string }>;
  compareRuns(ids: string[]): Promise<RunComparison>;
  metricHistory(id: string, key: string): Promise<MetricPoint[]>;
  listArtifacts(id: string, path?: string): Promise<ArtifactInfo[]>;

  // ---- model registry (issue 4) ----
  createModel(input: { name: string; description?: string; tags?: Record<string, string> }): Promise<RegisteredModel>;
  /** `filter`: the name contains it (case-insensitive). */
  listModels(opts?: { filter?: string }): Promise<RegisteredModel[]>;
  inspectModel(name: string): Promise<RegisteredModel>;
  /** Deletes the model with its versions, aliases and gates; the alias history is kept. */
  deleteModel(name: string): Promise<void>;
  /** Registers the file at `input.from` (REPO[@REF]:/path) as the next version; creates the model if needed. */
  registerModelVersion(name: string, input: RegisterVersionInput): Promise<ModelVersion>;
  inspectModelVersion(name: string, version: number): Promise<ModelVersion>;
  /** The version an alias points at ("latest": the highest version). */
  inspectModelAlias(name: string, alias: string): Promise<ModelVersion>;
  listModelVersions(name: string): Promise<ModelVersion[]>;
  deleteModelVersion(name: string, version: number): Promise<void>;
  /** Moves an alias if its gates pass (POLICY_VIOLATION otherwise). `actor` defaults to the local user. */
  setModelAlias(name: string, alias: string, version: number, opts?: { actor?: string; reason?: string }): Promise<AliasChange>;
  deleteModelAlias(name: string, alias: string, opts?: { actor?: string; reason?: string }): Promise<AliasChange>;
  /** Alias moves, newest first. */
  aliasHistory(name: string, opts?: { alias?: string }): Promise<AliasChange[]>;
  /** The version that held an alias at `time` (epoch ms or ISO-8601). */
  aliasAt(name: string, alias: string, time: number | string): Promise<AliasAt>;
  /** Replaces the promotion gate of name@alias; [] removes it. */
  setGates(name: string, alias: string, rules: GateRule[]): Promise<GateRule[]>;
  getGates(name: string, alias: string): Promise<GateRule[]>;

  // ---- serving (issue 5) ----
  /** `model` is MODEL@ALIAS (follows the alias) or MODEL@VERSION; `canary` MODEL@VERSION=PERCENT; `shadow` MODEL@VERSION. */
  createDeployment(input: { name: string; model: string; canary?: string; shadow?: string; log_predictions?: number; max_batch_size?: number; max_batch_delay_us?: number; runtime?: 'onnx' | 'process'; command?: string; ready_timeout_s?: number }): Promise<DeploymentInfo>;
  listDeployments(): Promise<DeploymentInfo[]>;
  inspectDeployment(name: string): Promise<DeploymentInfo>;
  /** Changes what is given; a null canary or shadow removes it. */
  updateDeployment(name: string, changes: { model?: string; canary?: string | null; shadow?: string | null; log_predictions?: number; max_batch_size?: number; max_batch_delay_us?: number; command?: string; ready_timeout_s?: number }): Promise<DeploymentInfo>;
  deleteDeployment(name: string): Promise<void>;
  /**
   * Runs a prediction. `request` is an Open Inference Protocol request
   * ({"inputs": [{name, shape, datatype, data}]}, answered with an OIP
   * response) or the plain form ({"inputs": {name: nested array}}, answered
   * with PredictResponse). Locally the model is loaded in this process.
   */
  predict(name: string, request: unknown): Promise<InferResponse | PredictResponse>;

  // ---- PII classification (issue 6) ----
  /** Per-file PII findings (counts, never values) of REPO[@REF][:/path]; scans what has not been scanned yet. */
  classify(ref: string): Promise<CommitClassification>;
  /** pii:<type> labels of a repo, pipeline or model (NAME, NAME@VERSION, NAME@ALIAS), direct and inherited through lineage. */
  classificationLabels(kind: LabelKind, name: string): Promise<LabelSet>;
  addPiiDetector(input: { name: string; pattern: string; flags?: string }): Promise<CustomDetectorInfo>;
  listPiiDetectors(): Promise<CustomDetectorInfo[]>;
  removePiiDetector(name: string): Promise<void>;

  // ---- catalog (issue 6) ----
  /** Ranked entities matching every word (the last as a prefix); `labels` are `k=v` or `k` filters; `kind` repo|pipeline|model|deployment. */
  searchCatalog(query: string, opts?: { kind?: string; labels?: string[]; limit?: number }): Promise<CatalogHit[]>;
  /** One entity's catalog entry, README and schemas (repos), lineage neighbours and classification. */
  inspectCatalog(kind: string, name: string): Promise<CatalogDetails>;
  /** Annotates an entity: description and owners replace its own; labels are added; `unlabel` removes keys. */
  annotateCatalog(kind: string, name: string, changes: CatalogAnnotation): Promise<CatalogDetails>;

  // ---- audit log (issue 6) ----
  /** Audit entries, oldest first: the most recent `limit` (default 1000) matching; `since` is ISO, epoch ms or a duration back (1h, 7d). */
  auditLog(filter?: AuditListFilter): Promise<AuditEntry[]>;
  /** Signs and stores a checkpoint (size, root) of the whole log; keep it outside the instance. */
  auditCheckpoint(): Promise<SignedCheckpoint>;
  /** Recomputes the Merkle tree; checks seq contiguity, every leaf, every stored checkpoint and `opts.checkpoint`. */
  auditVerify(opts?: { checkpoint?: SignedCheckpoint }): Promise<AuditVerifyResult>;

  close(): Promise<void>;
}

export type {
  AuditEntry,
  AuditListFilter,
  AuditVerifyResult,
  SignedCheckpoint,
  CatalogAnnotation,
  CatalogDetails,
  CatalogHit,
  CommitClassification,
  CustomDetectorInfo,
  LabelKind,
  LabelSet,
  DeploymentInfo,
  InferResponse,
  PredictResponse,
  AliasAt,
  AliasChange,
  GateRule,
  ModelVersion,
  RegisteredModel,
  RegisterVersionInput,
  TensorSpec,
  ArtifactInfo,
  CreateRunInput,
  Experiment,
  LogBatch,
  MetricPoint,
  Run,
  RunComparison,
  RunInfo,
  RunStatus,
  SearchRunsInput,
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
