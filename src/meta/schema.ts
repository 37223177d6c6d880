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
  seq: number; // insertion order within the repo, for stable log order
  commit_set: string | null; // the user commit this one descends from (itself for user commits)
  job: string | null; // the pipeline job that made it
}

/** Content-addressed directory node: id = SHA-256 of `entries`. */
export interface TreeTable {
  id: string;
  entries: string; // canonical JSON, see data/tree.ts
  files: number | null; // files beneath it; null for trees stored before migration 0010
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

export interface PipelineTable {
  name: string;
  version: number;
  spec: string; // normalized JSON
  spec_hash: string;
  creator: string;
  stopped: number;
  created_at: string;
  updated_at: string;
}

export interface PipelineVersionTable {
  pipeline: string;
  version: number;
  spec: string;
  spec_hash: string;
  created_at: string;
}

export interface JobTable {
  id: string;
  pipeline: string;
  version: number;
  input_key: string; // hash of version + input commits: one job per distinct key
  inputs: string; // JSON [{name, repo, branch, commit}]
  commit_set: string;
  state: string; // created | running | success | failure | killed
  reason: string;
  output_commit: string | null;
  total: number;
  processed: number;
  skipped: number;
  failed: number;
  recovered: number;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  /** While running: the time until which the runner's lease holds (renewed every few seconds). */
  lease_until: string | null;
  seq: number;
}

export interface DatumTable {
  job: string;
  id: string;
  state: string; // success | skipped | failed | recovered
  inputs: string; // JSON [{name, repo, path}]
  attempts: number;
  duration_ms: number;
  error: string;
  log: string; // tail of stdout + stderr
  started_at: string | null;
  finished_at: string | null;
}

export interface JobInputTable {
  job: string;
  name: string;
  repo: string;
  commit: string;
}

export interface DatumOutputTable {
  pipeline: string;
  datum: string;
  files: string; // JSON [{path, hash, size}]
  job: string;
}

// ---- tracking and registry (times in epoch milliseconds, as MLflow has them) ----

export interface ExperimentTable {
  id: string;
  name: string;
  artifact_location: string;
  lifecycle_stage: string; // active | deleted
  tags: string; // JSON object
  created_at: number;
  updated_at: number;
}

export interface RunTable {
  id: string;
  experiment_id: string;
  name: string;
  status: string; // RUNNING | SCHEDULED | FINISHED | FAILED | KILLED
  start_time: number;
  end_time: number | null;
  lifecycle_stage: string;
  user_id: string;
  pipeline: string | null;
  job: string | null;
  code_version: string | null;
  input_commits: string; // JSON [{repo, commit}]
  output_commit: string | null;
}

export interface ParamTable {
  run_id: string;
  key: string;
  value: string;
}

export interface MetricTable {
  run_id: string;
  key: string;
  value: number;
  step: number;
  timestamp: number;
}

export interface RunTagTable {
  run_id: string;
  key: string;
  value: string;
}

export interface RunArtifactTable {
  run_id: string;
  path: string;
  hash: string;
  size: number;
}

export interface RegisteredModelTable {
  name: string;
  description: string;
  tags: string;
  /** The highest version number ever handed out (versions are never renumbered after deletes). */
  last_version: number;
  created_at: number;
  updated_at: number;
}

export interface ModelVersionTable {
  name: string;
  version: number;
  source: string; // repo@commit:/path, or runs:/<run>/<path>
  repo: string | null;
  commit: string | null;
  path: string | null;
  hash: string;
  size: number;
  format: string; // onnx | file
  signature: string; // JSON or 'null'
  run_id: string | null;
  description: string;
  tags: string;
  user_id: string;
  created_at: number;
  updated_at: number;
}

export interface ModelAliasTable {
  name: string;
  alias: string;
  version: number;
}

export interface AliasHistoryTable {
  name: string;
  alias: string;
  seq: number;
  from_version: number | null;
  to_version: number | null;
  actor: string;
  time: number;
  reason: string;
}

export interface PromotionGateTable {
  name: string;
  alias: string;
  rules: string; // JSON
}

export interface DeploymentTable {
  name: string;
  model: string;
  target: string; // alias name, or a version number as text
  config: string; // JSON
  creator: string;
  created_at: number;
  updated_at: number;
}

export interface UserTable {
  name: string;
  created_by: string;
  created_at: number;
  deleted_at: number | null;
}

export interface TokenTable {
  id: string;
  user_name: string;
  name: string;
  hash: string; // hex SHA-256 of the token's secret
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
  last_used_at: number | null;
}

export interface GrantTable {
  user_name: string;
  role: string; // admin | writer | reader
  resource: string; // '*' or kind:name
  granted_by: string;
  created_at: number;
}

// ---- catalog (governance/catalog.ts) ----

/** One searchable entry per (kind, name); on PostgreSQL also a `document` tsvector column (raw SQL only). */
export interface CatalogEntryTable {
  kind: string; // repo | pipeline | model | deployment
  name: string;
  id: number; // SQLite: the catalog_fts rowid
  source: string; // fingerprint of the entity it was built from
  description: string;
  owners: string; // JSON array
  labels: string; // JSON object
  readme: string | null;
  schemas: string; // JSON {path: FileSchema}
  columns: string; // column names, space separated
  updated_at: number;
}

export interface CatalogLabelTable {
  kind: string;
  name: string;
  key: string;
  value: string;
}

/** What `strata catalog set` added on top of an entity's own metadata. */
export interface CatalogAnnotationTable {
  kind: string;
  name: string;
  description: string | null;
  owners: string | null; // JSON array
  labels: string; // JSON object
  unlabel: string; // JSON array of keys
  updated_at: number;
}

export interface CatalogSchemaTable {
  key: string; // format:content hash
  schema: string; // JSON FileSchema
  created_at: number;
}

// ---- classification (governance/classifier.ts) ----

export interface PiiScanTable {
  hash: string; // file content SHA-256
  ruleset: string; // fingerprint of the detectors used
  status: string; // scanned | binary | truncated
  bytes_scanned: number;
  findings: string; // JSON {type: count}
  timed_out: string; // JSON array
  scanned_at: number;
}

export interface PiiDetectorTable {
  name: string;
  pattern: string;
  flags: string;
  creator: string;
  created_at: number;
}

export interface AuditEntryTable {
  seq: number;
  time: number; // ms since the epoch
  actor: string;
  action: string;
  target: string;
  outcome: string;
  client: string;
  detail: string; // JSON
  leaf: string; // hex
}

export interface AuditCheckpointTable {
  size: number;
  root: string;
  time: string; // ISO, as signed
  public_key: string;
  signature: string;
  frontier: string; // JSON array of hex
}

export interface Schema {
  audit_entries: AuditEntryTable;
  audit_checkpoints: AuditCheckpointTable;
  repos: RepoTable;
  branches: BranchTable;
  commits: CommitTable;
  trees: TreeTable;
  files: FileTable;
  chunks: ChunkTable;
  packs: PackTable;
  pipelines: PipelineTable;
  pipeline_versions: PipelineVersionTable;
  jobs: JobTable;
  datums: DatumTable;
  datum_outputs: DatumOutputTable;
  job_inputs: JobInputTable;
  experiments: ExperimentTable;
  runs: RunTable;
  params: ParamTable;
  metrics: MetricTable;
  latest_metrics: MetricTable;
  run_tags: RunTagTable;
  run_artifacts: RunArtifactTable;
  registered_models: RegisteredModelTable;
  model_versions: ModelVersionTable;
  model_aliases: ModelAliasTable;
  alias_history: AliasHistoryTable;
  promotion_gates: PromotionGateTable;
  deployments: DeploymentTable;
  users: UserTable;
  tokens: TokenTable;
  grants: GrantTable;
  catalog_entries: CatalogEntryTable;
  catalog_labels: CatalogLabelTable;
  catalog_annotations: CatalogAnnotationTable;
  catalog_schemas: CatalogSchemaTable;
  pii_scans: PiiScanTable;
  pii_detectors: PiiDetectorTable;
}
