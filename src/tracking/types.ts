// Shapes of experiments, runs and the model registry, as the CLI's --json and
// the /api/v1 HTTP API show them. Times are epoch milliseconds (MLflow's
// convention, so the MLflow-compatible API needs no conversion).

export type RunStatus = 'RUNNING' | 'SCHEDULED' | 'FINISHED' | 'FAILED' | 'KILLED';

export interface Experiment {
  experiment_id: string;
  name: string;
  artifact_location: string;
  lifecycle_stage: 'active' | 'deleted';
  tags: Record<string, string>;
  creation_time: number;
  last_update_time: number;
}

export interface RunInfo {
  run_id: string;
  run_name: string;
  experiment_id: string;
  status: RunStatus;
  start_time: number;
  end_time: number | null;
  lifecycle_stage: 'active' | 'deleted';
  user_id: string;
  artifact_uri: string;
  /** Set for runs made by pipeline jobs. */
  pipeline: string | null;
  job: string | null;
  /** Git commit of a git input, else the pipeline spec hash. */
  code_version: string | null;
  input_commits: { repo: string; commit: string }[];
  output_commit: string | null;
}

export interface MetricValue {
  value: number;
  step: number;
  timestamp: number;
}

export interface MetricPoint extends MetricValue {
  key: string;
}

export interface Run {
  info: RunInfo;
  data: {
    params: Record<string, string>;
    /** The latest value of each metric (highest step, then newest). */
    metrics: Record<string, MetricValue>;
    tags: Record<string, string>;
  };
}

export interface CreateRunInput {
  experiment_id?: string;
  run_name?: string;
  start_time?: number;
  user_id?: string;
  tags?: Record<string, string>;
  status?: RunStatus;
  pipeline?: string;
  job?: string;
  code_version?: string;
  input_commits?: { repo: string; commit: string }[];
}

export interface SearchRunsInput {
  experiment_ids?: string[];
  /** MLflow search syntax: `metrics.accuracy > 0.9 and params.lr = '0.01'`. */
  filter?: string;
  /** `metrics.accuracy DESC`, `-metrics.accuracy`, `start_time`, ... */
  order_by?: string[];
  pipeline?: string;
  max_results?: number;
  page_token?: string;
  /** active (default), deleted or all. */
  view?: 'active' | 'deleted' | 'all';
}

export interface RunComparison {
  runs: { run_id: string; run_name: string; status: RunStatus }[];
  params: { key: string; values: (string | null)[] }[];
  metrics: { key: string; values: (number | null)[]; deltas: (number | null)[] }[];
}

export interface ArtifactInfo {
  path: string;
  is_dir: boolean;
  file_size?: number;
  hash?: string;
}

// ---- registry ----

export interface RegisteredModel {
  name: string;
  description: string;
  tags: Record<string, string>;
  creation_timestamp: number;
  last_updated_timestamp: number;
  latest_version: number | null;
  aliases: Record<string, number>;
}

export interface TensorSpec {
  name: string;
  datatype: string;
  onnxType: string;
  shape: (number | string | null)[];
}

export interface ModelVersion {
  name: string;
  version: number;
  source: string;
  repo: string | null;
  commit: string | null;
  path: string | null;
  hash: string;
  size: number;
  format: 'onnx' | 'file';
  signature: { inputs: TensorSpec[]; outputs: TensorSpec[]; opset?: number; producer?: string } | null;
  run_id: string | null;
  description: string;
  tags: Record<string, string>;
  user_id: string;
  aliases: string[];
  creation_timestamp: number;
  last_updated_timestamp: number;
  /** The data commits upstream of the model file's commit (what trained it). */
  lineage: { repo: string; commit: string }[];
}

export interface AliasChange {
  name: string;
  alias: string;
  from_version: number | null;
  to_version: number | null;
  actor: string;
  time: number;
  reason: string;
}

/** A promotion gate rule, checked when an alias moves. */
export type GateRule =
  /** `metrics.accuracy >= 0.9` on the candidate version's run. */
  | { metric: string; op: '>' | '>=' | '<' | '<=' | '=' | '!='; value: number }
  /** The candidate's run metric must beat the current alias holder's (higher is better unless `lower_is_better`). */
  | { better_than_current: string; lower_is_better?: boolean; min_delta?: number }
  /** The candidate version (or its run) must carry this tag (with this value, if given). */
  | { tag: string; value?: string }
  /** The candidate version must not carry this classification label (e.g. pii:ssn, from its training data through lineage). */
  | { no_label: string };
