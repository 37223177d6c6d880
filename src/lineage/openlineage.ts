import { createHash } from 'node:crypto';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { VERSION } from '../api/version.js';
import type { JobEvent } from '../pipelines/scheduler.js';
import { inputRepos, type PipelineSpec } from '../pipelines/spec.js';

// OpenLineage 2-0-2 RunEvents for pipeline jobs: a job is a run of the job
// named after its pipeline; its input and output commits are versions of
// datasets named after their repos; the commit set the job belongs to is the
// parent run. Run ids are derived from job ids, so START and its COMPLETE
// share one, and exporting the same job again gives the same ids.

export const RUN_EVENT_SCHEMA_URL = 'https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent';

/** Each facet's schema: the facet file's $id, pointing at the facet's definition. */
export const FACET_SCHEMA_URLS = {
  datasetVersion: 'https://openlineage.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet',
  ownership: 'https://openlineage.io/spec/facets/1-0-1/OwnershipDatasetFacet.json#/$defs/OwnershipDatasetFacet',
  schema: 'https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet',
  documentation: 'https://openlineage.io/spec/facets/1-1-0/DocumentationDatasetFacet.json#/$defs/DocumentationDatasetFacet',
  jobType: 'https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet',
  sourceCodeLocation: 'https://openlineage.io/spec/facets/1-1-0/SourceCodeLocationJobFacet.json#/$defs/SourceCodeLocationJobFacet',
  parent: 'https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet',
  errorMessage: 'https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet',
} as const;

/** Who produced the events: Strata at this version, as a URN (the project has no canonical source URL to point at). */
export const STRATA_PRODUCER = `urn:strata:${VERSION}`;
export const DEFAULT_NAMESPACE = 'strata';
/** The job name of a commit set's parent run. */
export const COMMIT_SET_JOB = 'commit-set';

export type RunEventType = 'START' | 'COMPLETE' | 'FAIL' | 'ABORT';

export interface Facet {
  _producer: string;
  _schemaURL: string;
  [field: string]: unknown;
}

export interface LineageDataset {
  namespace: string;
  name: string;
  facets?: Record<string, Facet>;
}

export interface RunEvent {
  eventType: RunEventType;
  eventTime: string;
  producer: string;
  schemaURL: string;
  run: { runId: string; facets?: Record<string, Facet> };
  job: { namespace: string; name: string; facets?: Record<string, Facet> };
  inputs: LineageDataset[];
  outputs: LineageDataset[];
}

/** A column of a dataset's schema (SchemaDatasetFacet fields). */
export interface LineageField {
  name: string;
  type?: string;
  description?: string;
  fields?: LineageField[];
}

/** Columns of a repo at a commit, or null when unknown (not tabular, not inferred). */
export type SchemaProvider = (repo: string, commit: string) => Promise<LineageField[] | null>;

/** What the builder looks up about repos and commits; DataService fits. */
export interface LineageCatalog {
  inspectRepo(name: string): Promise<{ owner: string; description: string }>;
  inspectCommit(ref: string): Promise<{ provenance: { repo: string; commit: string }[] }>;
}

export interface OpenLineageBuilderOptions {
  catalog: LineageCatalog;
  /** Job namespace (default 'strata'); datasets live in `strata://<namespace>`. */
  namespace?: string;
  producer?: string;
  schemaOf?: SchemaProvider;
}

const EVENT_TYPES: Record<JobEvent['type'], RunEventType> = { start: 'START', complete: 'COMPLETE', fail: 'FAIL', abort: 'ABORT' };

// A fixed namespace UUID for Strata's name-based (version 5) run ids.
const STRATA_UUID_NAMESPACE = Buffer.from('5f0c2a8e9b4d4c1e8a7f3d2b6c9e1a40', 'hex');

/** An RFC 4122 version 5 UUID of `kind:id` in Strata's namespace: stable for the same input. */
export function stableUuid(kind: string, id: string): string {
  const hash = createHash('sha1').update(STRATA_UUID_NAMESPACE).update(`${kind}:${id}`).digest();
  hash[6] = (hash[6]! & 0x0f) | 0x50;
  hash[8] = (hash[8]! & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The OpenLineage runId of a Strata job. */
export const jobRunId = (jobId: string): string => stableUuid('job', jobId);
/** The OpenLineage runId of a commit set (the parent run of its jobs). */
export const commitSetRunId = (commitSet: string): string => stableUuid('commit-set', commitSet);

export class OpenLineageBuilder {
  readonly namespace: string;
  readonly datasetNamespace: string;
  readonly producer: string;

  constructor(private opts: OpenLineageBuilderOptions) {
    this.namespace = opts.namespace || DEFAULT_NAMESPACE;
    this.datasetNamespace = `strata://${this.namespace}`;
    this.producer = opts.producer ?? STRATA_PRODUCER;
  }

  /** The RunEvent for one scheduler job event. Lookups that fail leave their facets out rather than failing the event. */
  async build(event: JobEvent): Promise<RunEvent> {
    const eventType = EVENT_TYPES[event.type];
    const runFacets: Record<string, Facet> = {
      parent: this.facet('parent', {
        run: { runId: commitSetRunId(event.job.commitSet) },
        job: { namespace: this.namespace, name: COMMIT_SET_JOB },
      }),
    };
    if (eventType === 'FAIL') {
      runFacets.errorMessage = this.facet('errorMessage', { message: event.error || 'job failed', programmingLanguage: languageOf(event.spec) });
    }
    const jobFacets: Record<string, Facet> = {
      jobType: this.facet('jobType', { processingType: 'BATCH', integration: 'STRATA', jobType: 'PIPELINE' }),
    };
    const source = await this.sourceCodeLocation(event);
    if (source) jobFacets.sourceCodeLocation = source;

    const inputs = await Promise.all(event.inputs.map((i) => this.dataset(i.repo, i.commit)));
    // The output is named on every event so consumers see the edge from the start; its version only exists on COMPLETE.
    const output = await this.dataset(event.output?.repo ?? event.pipeline, event.output?.commit);
    return {
      eventType,
      eventTime: event.time,
      producer: this.producer,
      schemaURL: RUN_EVENT_SCHEMA_URL,
      run: { runId: jobRunId(event.job.id), facets: runFacets },
      job: { namespace: this.namespace, name: event.pipeline, facets: jobFacets },
      inputs,
      outputs: [output],
    };
  }

  private facet(kind: keyof typeof FACET_SCHEMA_URLS, fields: Record<string, unknown>): Facet {
    return { _producer: this.producer, _schemaURL: FACET_SCHEMA_URLS[kind], ...fields };
  }

  private async dataset(repo: string, commit: string | undefined): Promise<LineageDataset> {
    const facets: Record<string, Facet> = {};
    if (commit) facets.version = this.facet('datasetVersion', { datasetVersion: commit });
    const info = await this.opts.catalog.inspectRepo(repo).catch(() => undefined);
    if (info?.owner) facets.ownership = this.facet('ownership', { owners: [{ name: ownerUrn(info.owner), type: 'OWNER' }] });
    if (info?.description) facets.documentation = this.facet('documentation', { description: info.description, contentType: 'text/plain' });
    if (commit && this.opts.schemaOf) {
      const fields = await this.opts.schemaOf(repo, commit).catch((err: Error) => {
        process.stderr.write(`strata openlineage: schema of ${repo}@${commit}: ${err.message}\n`);
        return null;
      });
      if (fields) facets.schema = this.facet('schema', { fields: schemaFields(fields) });
    }
    return { namespace: this.datasetNamespace, name: repo, facets };
  }

  /** A git input's repository and the commit its checkout came from. */
  private async sourceCodeLocation(event: JobEvent): Promise<Facet | undefined> {
    if (!event.spec) return undefined;
    for (const input of gitInputs(event.spec)) {
      const commit = event.inputs.find((i) => i.name === input.name)?.commit;
      if (!commit) continue;
      const provenance = await this.opts.catalog.inspectCommit(`${input.repo}@${commit}`).then((c) => c.provenance, () => []);
      const sha = provenance.find((p) => p.repo.startsWith('git:'))?.commit;
      return this.facet('sourceCodeLocation', {
        type: 'git',
        url: gitUrlAsUri(input.url),
        repoUrl: input.url,
        branch: input.branch,
        ...(sha ? { version: sha } : {}),
      });
    }
    return undefined;
  }
}

function gitInputs(spec: PipelineSpec): { name: string; repo: string; url: string; branch: string }[] {
  const found: { name: string; repo: string; url: string; branch: string }[] = [];
  const walk = (input: unknown): void => {
    if (!input || typeof input !== 'object') return;
    const o = input as Record<string, unknown>;
    if (o.git && typeof o.git === 'object') {
      const g = o.git as { name: string; repo: string; url: string; branch: string };
      found.push({ name: g.name, repo: g.repo, url: g.url, branch: g.branch });
      return;
    }
    for (const key of ['cross', 'union', 'join', 'group']) if (Array.isArray(o[key])) (o[key] as unknown[]).forEach(walk);
  };
  // inputRepos() says which leaves exist; the walk recovers the git URL it does not carry.
  if (inputRepos(spec).some((i) => i.kind === 'git')) walk(spec.input);
  return found;
}

/** SourceCodeLocationJobFacet.url must be a URI: scp-like `user@host:path` and local paths are rewritten. */
export function gitUrlAsUri(url: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) return url;
  const scp = /^([^@/]+@)?([^:/]+):(?!\/\/)(.+)$/.exec(url);
  if (scp && !isAbsolute(url)) return `ssh://${scp[1] ?? ''}${scp[2]}/${scp[3]!.replace(/^\//, '')}`;
  return pathToFileURL(resolve(url)).href;
}

/** Owners are recommended to be URNs (`user:jdoe`, `team:data`); a bare name is taken as a user. */
function ownerUrn(owner: string): string {
  return owner.includes(':') ? owner : `user:${owner}`;
}

function schemaFields(fields: LineageField[]): Record<string, unknown>[] {
  return fields.map((f, i) => ({
    name: f.name,
    ...(f.type ? { type: f.type } : {}),
    ...(f.description ? { description: f.description } : {}),
    ordinal_position: i + 1,
    ...(f.fields?.length ? { fields: schemaFields(f.fields) } : {}),
  }));
}

/** The language of the failing step, guessed from the transform's command. */
function languageOf(spec: PipelineSpec | undefined): string {
  const transform = spec?.transform as { cmd?: unknown } | undefined;
  const cmd = Array.isArray(transform?.cmd) ? String(transform.cmd[0] ?? '') : '';
  const base = cmd.split('/').at(-1) ?? '';
  if (/^python[0-9.]*$/.test(base)) return 'PYTHON';
  if (/^(sh|bash|dash|zsh|ash)$/.test(base)) return 'SHELL';
  if (/^(node|deno|bun)$/.test(base)) return 'JAVASCRIPT';
  if (/^(R|Rscript)$/.test(base)) return 'R';
  if (base === 'java') return 'JAVA';
  return 'UNKNOWN';
}
