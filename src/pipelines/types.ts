// Shapes of pipelines, jobs and datums as the CLI's --json and the HTTP API
// show them (DESIGN.md: job inspect -> {"id","pipeline","state","commit_set","datums":{...}}).

export type JobState = 'created' | 'running' | 'success' | 'failure' | 'killed';

export interface PipelineInfo {
  name: string;
  version: number;
  description: string;
  creator: string;
  /** Input repos as repo@branch. */
  inputs: string[];
  created: string;
  updated: string;
  state: 'running' | 'stopped';
  last_job: { id: string; state: JobState } | null;
  spec?: unknown;
}

export interface JobInfo {
  id: string;
  pipeline: string;
  pipeline_version: number;
  state: JobState;
  reason: string;
  commit_set: string;
  inputs: { name: string; repo: string; branch: string; commit: string }[];
  output_commit: string | null;
  datums: { total: number; processed: number; skipped: number; failed: number; recovered: number };
  created: string;
  started: string | null;
  finished: string | null;
  /** On inspect of a failed job: the first failing datum and the tail of its output. */
  failed_datum?: { id: string; error: string; log_tail: string };
}

export interface DatumInfo {
  id: string;
  job: string;
  state: 'success' | 'skipped' | 'failed' | 'recovered';
  inputs: { name: string; repo: string; commit: string; path: string }[];
  attempts: number;
  duration_ms: number;
  error: string;
  started: string | null;
  finished: string | null;
}
