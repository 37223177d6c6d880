import { createHash, randomBytes } from 'node:crypto';
import type {
  ArtifactInfo,
  CreateRunInput,
  DatumInfo,
  Experiment,
  JobInfo,
  LineageGraph,
  LogBatch,
  MetricPoint,
  PipelineInfo,
  Run,
  RunComparison,
  RunInfo,
  RunStatus,
  SearchRunsInput,
} from './client.js';
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
import { codeFromStatus, InvalidArgumentError, StrataError, type ErrorCode } from '../errors.js';
import type { StrataClient } from './client.js';
import type { AliasAt, AliasChange, GateRule, ModelVersion, RegisteredModel, RegisterVersionInput } from './client.js';
import type { DeploymentInfo, InferResponse, PredictResponse } from './client.js';
import type { CommitClassification, CustomDetectorInfo, LabelKind, LabelSet } from './client.js';
import type { CatalogAnnotation, CatalogDetails, CatalogHit } from '../governance/catalog.js';
import type { AuditEntry, AuditListFilter, AuditVerifyResult, SignedCheckpoint } from '../governance/audit.js';
import { isOipRequest } from '../serving/protocol.js';

// The StrataClient over HTTP (api/server.ts is the other side). It behaves
// like the in-process client, errors included: an error response
// {"error":{"code","message"}} becomes the same StrataError. Content is
// streamed both ways and never held whole: uploads are multipart bodies
// written on the fly from the changes, downloads are verified (length and
// SHA-256) as they stream.

type Query = Record<string, string | number | boolean | string[] | undefined>;

interface SendOptions {
  query?: Query;
  json?: unknown;
}

/** Small pieces of an upload are gathered into writes of about this size. */
const WRITE_SIZE = 64 * 1024;

export class HttpClient implements StrataClient {
  private readonly base: string;
  private readonly auth: Record<string, string>;

  constructor(baseUrl: string, opts: { token?: string } = {}) {
    let url: URL;
    try {
      url = new URL(baseUrl);
    } catch {
      throw new InvalidArgumentError(`server URL "${baseUrl}" is not a URL (expected e.g. http://127.0.0.1:7070)`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new InvalidArgumentError(`server URL "${baseUrl}" must start with http:// or https://`);
    }
    this.base = baseUrl.replace(/\/+$/, '');
    this.auth = opts.token ? { authorization: `Bearer ${opts.token}` } : {};
  }

  // ---- repos and branches ----

  createRepo(input: CreateRepoInput): Promise<RepoInfo> {
    return this.json('POST', '/api/v1/repos', { json: input });
  }

  listRepos(): Promise<RepoInfo[]> {
    return this.json('GET', '/api/v1/repos');
  }

  inspectRepo(name: string): Promise<RepoInfo> {
    return this.json('GET', `/api/v1/repos/${seg(name)}`);
  }

  async deleteRepo(name: string): Promise<void> {
    await this.empty('DELETE', `/api/v1/repos/${seg(name)}`);
  }

  createBranch(repo: string, branch: string, from?: string): Promise<BranchInfo> {
    return this.json('POST', `/api/v1/repos/${seg(repo)}/branches`, { json: { name: branch, from } });
  }

  listBranches(repo: string): Promise<BranchInfo[]> {
    return this.json('GET', `/api/v1/repos/${seg(repo)}/branches`);
  }

  async deleteBranch(repo: string, branch: string): Promise<void> {
    await this.empty('DELETE', `/api/v1/repos/${seg(repo)}/branches/${seg(branch)}`);
  }

  // ---- commits ----

  async commit(
    repo: string,
    branch: string,
    changes: AsyncIterable<Change> | Iterable<Change>,
    opts: CommitOptions = {},
  ): Promise<PutResult> {
    const url = this.url(`/api/v1/repos/${seg(repo)}/branches/${seg(branch)}/commits`, {
      message: opts.message,
      author: opts.author,
      provenance: opts.provenance?.map((p) => `${p.repo}@${p.commit}`),
    });
    const upload = new MultipartUpload(changes, opts.onProgress);
    const abort = new AbortController();
    let res: Response;
    try {
      // duplex 'half' is required for a streamed request body (undici); Node's RequestInit type lacks it.
      const init: RequestInit & { duplex: 'half' } = {
        method: 'POST',
        headers: { ...this.auth, 'content-type': `multipart/form-data; boundary=${upload.boundary}` },
        body: upload.stream,
        duplex: 'half',
        signal: abort.signal,
      };
      res = await fetch(url, init);
    } catch (err) {
      // A failing source (an unreadable local file, say) is the error to report, not the aborted request.
      if (upload.sourceError !== undefined) throw upload.sourceError;
      throw this.connectionError(err);
    }
    if (!res.ok) {
      const error = await errorOf(res, url);
      abort.abort(); // the server refused: stop sending the rest of the upload
      throw error;
    }
    return parseJson<PutResult>(res, `POST ${url.split('?')[0]}`);
  }

  inspectCommit(ref: string): Promise<CommitInfo> {
    return this.json('GET', '/api/v1/commit', { query: { ref } });
  }

  log(ref: string, opts: { limit?: number } = {}): Promise<CommitInfo[]> {
    return this.json('GET', '/api/v1/log', { query: { ref, limit: opts.limit } });
  }

  diff(from: string, to: string): Promise<DiffResult> {
    return this.json('GET', '/api/v1/diff', { query: { from, to } });
  }

  // ---- files ----

  ls(ref: string, opts: { recursive?: boolean; dirs?: boolean } = {}): Promise<FileInfo[]> {
    return this.json('GET', '/api/v1/ls', { query: { ref, recursive: opts.recursive || undefined, dirs: opts.dirs || undefined } });
  }

  /** Every file under the reference, parsed from the server's NDJSON as it arrives. */
  async *walk(ref: string): AsyncGenerator<FileInfo> {
    const res = await this.send('GET', '/api/v1/walk', { query: { ref } });
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    let finished = false;
    try {
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (err) {
          throw new StrataError('UNAVAILABLE', `listing ${ref} from ${this.base} broke off: ${reasonOf(err)}`, { cause: err });
        }
        text += chunk.done ? decoder.decode() : decoder.decode(chunk.value, { stream: true });
        let start = 0;
        for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
          const line = text.slice(start, nl);
          start = nl + 1;
          if (line.trim()) yield walkLine(line);
        }
        text = text.slice(start);
        if (chunk.done) break;
      }
      finished = true;
    } finally {
      if (!finished) await reader.cancel().catch(() => {});
    }
    if (text.trim()) throw new StrataError('UNAVAILABLE', `listing ${ref} from ${this.base} ended in the middle of a line`);
  }

  /** Opens a file; the stream throws DATA_CORRUPTION if the bytes do not add up to the announced size and hash. */
  async read(ref: string): Promise<{ info: FileInfo; stream: AsyncIterable<Buffer> }> {
    const res = await this.send('GET', '/api/v1/file', { query: { ref } });
    const size = Number(res.headers.get('strata-file-size'));
    const hash = res.headers.get('strata-file-hash');
    const path = res.headers.get('strata-file-path');
    if (!Number.isSafeInteger(size) || size < 0 || !hash || path === null) {
      await res.body?.cancel().catch(() => {});
      throw new StrataError('INTERNAL', `the answer from ${this.base} has no strata-file-size/-hash/-path headers: is it a Strata server?`);
    }
    const info: FileInfo = { path: decodeURIComponent(path), type: 'file', size, hash };
    return { info, stream: verified(res.body, info, ref) };
  }

  fsck(): Promise<FsckResult> {
    return this.json('POST', '/api/v1/fsck');
  }

  // ---- pipelines ----

  createPipeline(spec: unknown, opts: { update?: boolean; reprocess?: boolean } = {}): Promise<PipelineInfo> {
    return this.json('POST', '/api/v1/pipelines', { json: { spec, update: opts.update, reprocess: opts.reprocess } });
  }

  listPipelines(): Promise<PipelineInfo[]> {
    return this.json('GET', '/api/v1/pipelines');
  }

  inspectPipeline(name: string): Promise<PipelineInfo> {
    return this.json('GET', `/api/v1/pipelines/${seg(name)}`);
  }

  async deletePipeline(name: string): Promise<void> {
    await this.empty('DELETE', `/api/v1/pipelines/${seg(name)}`);
  }

  listJobs(opts: { pipeline?: string; commitSet?: string } = {}): Promise<JobInfo[]> {
    return this.json('GET', '/api/v1/jobs', { query: { pipeline: opts.pipeline, commit_set: opts.commitSet } });
  }

  inspectJob(id: string): Promise<JobInfo> {
    return this.json('GET', `/api/v1/jobs/${seg(id)}`);
  }

  stopJob(id: string): Promise<JobInfo> {
    return this.json('POST', `/api/v1/jobs/${seg(id)}/stop`);
  }

  listDatums(job: string): Promise<DatumInfo[]> {
    return this.json('GET', `/api/v1/jobs/${seg(job)}/datums`);
  }

  logs(job: string, datum?: string): Promise<{ datum: string; state: string; log: string }[]> {
    return this.json('GET', `/api/v1/jobs/${seg(job)}/logs`, { query: { datum } });
  }

  wait(ref?: string): Promise<JobInfo[]> {
    return this.json('POST', '/api/v1/wait', { json: ref ? { ref } : {} });
  }

  lineage(ref: string, opts: { direction?: 'upstream' | 'downstream' | 'both' } = {}): Promise<LineageGraph> {
    return this.json('GET', '/api/v1/lineage', { query: { ref, direction: opts.direction } });
  }

  // ---- tracking ----

  listExperiments(): Promise<Experiment[]> {
    return this.json('GET', '/api/v1/experiments');
  }

  createExperiment(name: string, tags?: Record<string, string>): Promise<Experiment> {
    return this.json('POST', '/api/v1/experiments', { json: { name, tags } });
  }

  createRun(input: CreateRunInput = {}): Promise<Run> {
    return this.json('POST', '/api/v1/runs', { json: input });
  }

  getRun(id: string): Promise<Run> {
    return this.json('GET', `/api/v1/runs/${seg(id)}`);
  }

  updateRun(id: string, changes: { status?: RunStatus; end_time?: number; run_name?: string }): Promise<RunInfo> {
    return this.json('PATCH', `/api/v1/runs/${seg(id)}`, { json: changes });
  }

  async logBatch(id: string, batch: LogBatch): Promise<void> {
    await (await this.send('POST', `/api/v1/runs/${seg(id)}/log`, { json: batch })).body?.cancel().catch(() => {});
  }

  searchRuns(input: SearchRunsInput = {}): Promise<{ runs: Run[]; next_page_token?: string }> {
    return this.json('POST', '/api/v1/runs/search', { json: input });
  }

  compareRuns(ids: string[]): Promise<RunComparison> {
    return this.json('POST', '/api/v1/runs/compare', { json: { run_ids: ids } });
  }

  metricHistory(id: string, key: string): Promise<MetricPoint[]> {
    return this.json('GET', `/api/v1/runs/${seg(id)}/metrics`, { query: { key } });
  }

  listArtifacts(id: string, path?: string): Promise<ArtifactInfo[]> {
    return this.json('GET', `/api/v1/runs/${seg(id)}/artifacts`, { query: { path } });
  }

  // ---- model registry ----

  createModel(input: { name: string; description?: string; tags?: Record<string, string> }): Promise<RegisteredModel> {
    return this.json('POST', '/api/v1/models', { json: input });
  }

  listModels(opts: { filter?: string } = {}): Promise<RegisteredModel[]> {
    return this.json('GET', '/api/v1/models', { query: { filter: opts.filter } });
  }

  inspectModel(name: string): Promise<RegisteredModel> {
    return this.json('GET', `/api/v1/models/${seg(name)}`);
  }

  async deleteModel(name: string): Promise<void> {
    await this.empty('DELETE', `/api/v1/models/${seg(name)}`);
  }

  registerModelVersion(name: string, input: RegisterVersionInput): Promise<ModelVersion> {
    return this.json('POST', `/api/v1/models/${seg(name)}/versions`, { json: input });
  }

  inspectModelVersion(name: string, version: number): Promise<ModelVersion> {
    return this.json('GET', `/api/v1/models/${seg(name)}/versions/${seg(String(version))}`);
  }

  inspectModelAlias(name: string, alias: string): Promise<ModelVersion> {
    return this.json('GET', `/api/v1/models/${seg(name)}/aliases/${seg(alias)}`);
  }

  listModelVersions(name: string): Promise<ModelVersion[]> {
    return this.json('GET', `/api/v1/models/${seg(name)}/versions`);
  }

  async deleteModelVersion(name: string, version: number): Promise<void> {
    await this.empty('DELETE', `/api/v1/models/${seg(name)}/versions/${seg(String(version))}`);
  }

  setModelAlias(name: string, alias: string, version: number, opts: { actor?: string; reason?: string } = {}): Promise<AliasChange> {
    return this.json('PUT', `/api/v1/models/${seg(name)}/aliases/${seg(alias)}`, { json: { version, actor: opts.actor, reason: opts.reason } });
  }

  deleteModelAlias(name: string, alias: string, opts: { actor?: string; reason?: string } = {}): Promise<AliasChange> {
    return this.json('DELETE', `/api/v1/models/${seg(name)}/aliases/${seg(alias)}`, { query: { actor: opts.actor, reason: opts.reason } });
  }

  aliasHistory(name: string, opts: { alias?: string } = {}): Promise<AliasChange[]> {
    return this.json('GET', `/api/v1/models/${seg(name)}/alias-history`, { query: { alias: opts.alias } });
  }

  aliasAt(name: string, alias: string, time: number | string): Promise<AliasAt> {
    return this.json('GET', `/api/v1/models/${seg(name)}/aliases/${seg(alias)}/at`, { query: { time } });
  }

  setGates(name: string, alias: string, rules: GateRule[]): Promise<GateRule[]> {
    return this.json('PUT', `/api/v1/models/${seg(name)}/gates/${seg(alias)}`, { json: { rules } });
  }

  getGates(name: string, alias: string): Promise<GateRule[]> {
    return this.json('GET', `/api/v1/models/${seg(name)}/gates/${seg(alias)}`);
  }

  // ---- PII classification ----

  classify(ref: string): Promise<CommitClassification> {
    return this.json('GET', '/api/v1/classification', { query: { ref } });
  }

  classificationLabels(kind: LabelKind, name: string): Promise<LabelSet> {
    return this.json('GET', `/api/v1/classification/labels/${seg(kind)}/${seg(name)}`);
  }

  addPiiDetector(input: { name: string; pattern: string; flags?: string }): Promise<CustomDetectorInfo> {
    return this.json('POST', '/api/v1/classification/detectors', { json: input });
  }

  listPiiDetectors(): Promise<CustomDetectorInfo[]> {
    return this.json('GET', '/api/v1/classification/detectors');
  }

  async removePiiDetector(name: string): Promise<void> {
    await this.empty('DELETE', `/api/v1/classification/detectors/${seg(name)}`);
  }

  // ---- catalog ----

  searchCatalog(query: string, opts: { kind?: string; labels?: string[]; limit?: number } = {}): Promise<CatalogHit[]> {
    return this.json('GET', '/api/v1/catalog/search', { query: { q: query, kind: opts.kind, label: opts.labels, limit: opts.limit } });
  }

  inspectCatalog(kind: string, name: string): Promise<CatalogDetails> {
    return this.json('GET', `/api/v1/catalog/entities/${seg(kind)}/${seg(name)}`);
  }

  annotateCatalog(kind: string, name: string, changes: CatalogAnnotation): Promise<CatalogDetails> {
    return this.json('PATCH', `/api/v1/catalog/entities/${seg(kind)}/${seg(name)}`, { json: changes });
  }

  // ---- audit log ----

  auditLog(filter: AuditListFilter = {}): Promise<AuditEntry[]> {
    return this.json('GET', '/api/v1/audit', { query: { since: filter.since, actor: filter.actor, target: filter.target, action: filter.action, limit: filter.limit } });
  }

  auditCheckpoint(): Promise<SignedCheckpoint> {
    return this.json('POST', '/api/v1/audit/checkpoints', { json: {} });
  }

  auditVerify(opts: { checkpoint?: SignedCheckpoint } = {}): Promise<AuditVerifyResult> {
    return this.json('POST', '/api/v1/audit/verify', { json: opts.checkpoint ? { checkpoint: opts.checkpoint } : {} });
  }

  async close(): Promise<void> {
    // Nothing to release: connections belong to fetch's shared pool.
  }

  // ---- plumbing ----

  private url(path: string, query: Query = {}): string {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value === undefined) continue;
      for (const v of Array.isArray(value) ? value : [value]) params.append(key, String(v));
    }
    const qs = params.toString();
    return `${this.base}${path}${qs ? `?${qs}` : ''}`;
  }

  /** Sends a request; an error response becomes the StrataError it describes. */
  private async send(method: string, path: string, opts: SendOptions = {}): Promise<Response> {
    const url = this.url(path, opts.query);
    const headers: Record<string, string> = { ...this.auth };
    let body: string | undefined;
    if (opts.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(opts.json);
    }
    let res: Response;
    try {
      res = await fetch(url, { method, headers, body });
    } catch (err) {
      throw this.connectionError(err);
    }
    if (!res.ok) throw await errorOf(res, url);
    return res;
  }

  // ---- serving ----

  createDeployment(input: { name: string; model: string; canary?: string; shadow?: string; log_predictions?: number; max_batch_size?: number; max_batch_delay_us?: number; runtime?: 'onnx' | 'process'; command?: string; ready_timeout_s?: number }): Promise<DeploymentInfo> {
    return this.json('POST', '/api/v1/deployments', { json: input });
  }

  listDeployments(): Promise<DeploymentInfo[]> {
    return this.json('GET', '/api/v1/deployments');
  }

  inspectDeployment(name: string): Promise<DeploymentInfo> {
    return this.json('GET', `/api/v1/deployments/${seg(name)}`);
  }

  updateDeployment(name: string, changes: { model?: string; canary?: string | null; shadow?: string | null; log_predictions?: number; max_batch_size?: number; max_batch_delay_us?: number; command?: string; ready_timeout_s?: number }): Promise<DeploymentInfo> {
    return this.json('PATCH', `/api/v1/deployments/${seg(name)}`, { json: changes });
  }

  async deleteDeployment(name: string): Promise<void> {
    await this.empty('DELETE', `/api/v1/deployments/${seg(name)}`);
  }

  async predict(name: string, request: unknown): Promise<InferResponse | PredictResponse> {
    if (!isOipRequest(request)) return this.json('POST', `/api/v1/deployments/${seg(name)}/predict`, { json: request });
    // /v2 speaks the Open Inference Protocol: its errors are {"error": "..."}.
    const url = `${this.base}/v2/models/${seg(name)}/infer`;
    let res: Response;
    try {
      res = await fetch(url, { method: 'POST', headers: { ...this.auth, 'content-type': 'application/json' }, body: JSON.stringify(request) });
    } catch (err) {
      throw this.connectionError(err);
    }
    if (!res.ok) {
      const text = await res.text().catch(() => '');
      let message = text.trim().slice(0, 500) || `HTTP ${res.status} ${res.statusText} from ${url}`;
      try {
        const body = JSON.parse(text) as { error?: unknown };
        if (typeof body.error === 'string') message = body.error;
      } catch {
        // not a protocol error body: keep the text
      }
      throw new StrataError(codeFromStatus(res.status), message);
    }
    return parseJson<InferResponse>(res, `POST ${url}`);
  }

  private async json<T>(method: string, path: string, opts: SendOptions = {}): Promise<T> {
    return parseJson<T>(await this.send(method, path, opts), `${method} ${this.base}${path}`);
  }

  private async empty(method: string, path: string): Promise<void> {
    const res = await this.send(method, path);
    await res.body?.cancel().catch(() => {});
  }

  private connectionError(err: unknown): StrataError {
    if (err instanceof StrataError) return err;
    const code = (err as { cause?: { code?: string } }).cause?.code;
    const unreachable = ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT'];
    const message = code && unreachable.includes(code) ? 'cannot reach Strata server at' : 'lost the connection to Strata server at';
    return new StrataError('UNAVAILABLE', `${message} ${this.base}: ${reasonOf(err)}`, { cause: err });
  }
}

/** A path segment: repo and branch names are validated by the server; this only keeps the URL intact. */
function seg(name: string): string {
  return encodeURIComponent(name);
}

async function parseJson<T>(res: Response, what: string): Promise<T> {
  try {
    return (await res.json()) as T;
  } catch (err) {
    throw new StrataError('UNAVAILABLE', `the answer to ${what} was cut off or is not JSON: ${reasonOf(err)}`, { cause: err });
  }
}

/** The StrataError an error response describes. */
async function errorOf(res: Response, url: string): Promise<StrataError> {
  let text = '';
  try {
    text = await res.text();
  } catch {
    // fall through with what we have
  }
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    if (typeof body.error?.code === 'string' && typeof body.error.message === 'string') {
      return new StrataError(body.error.code as ErrorCode, body.error.message);
    }
  } catch {
    // not a Strata error body (a proxy, another server): describe the response instead
  }
  const snippet = text.replace(/\s+/g, ' ').trim().slice(0, 200);
  return new StrataError(
    codeFromStatus(res.status),
    `HTTP ${res.status} ${res.statusText} from ${url.split('?')[0]}${snippet ? `: ${snippet}` : ''}`,
  );
}

function walkLine(line: string): FileInfo {
  let value: FileInfo & { error?: { code: ErrorCode; message: string } };
  try {
    value = JSON.parse(line);
  } catch (err) {
    throw new StrataError('INTERNAL', `the server sent a listing line that is not JSON: ${line.slice(0, 200)}`, { cause: err });
  }
  if (value.error) throw new StrataError(value.error.code, value.error.message);
  return value;
}

/** The response body, checked against the announced size and hash. */
async function* verified(body: ReadableStream<Uint8Array> | null, info: FileInfo, ref: string): AsyncGenerator<Buffer> {
  const sha = createHash('sha256');
  let received = 0;
  let finished = false;
  const reader = body?.getReader();
  try {
    while (reader) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (err) {
        throw new StrataError(
          'DATA_CORRUPTION',
          `transfer of ${ref} broke off after ${received} of ${info.size} bytes (${reasonOf(err)}); ` +
            'the server drops the connection when stored data fails verification: run strata fsck on the server',
          { cause: err },
        );
      }
      if (chunk.done) break;
      received += chunk.value.length;
      if (received > info.size) throw new StrataError('DATA_CORRUPTION', `${ref}: received more than the announced ${info.size} bytes`);
      sha.update(chunk.value);
      yield Buffer.from(chunk.value.buffer, chunk.value.byteOffset, chunk.value.byteLength);
    }
    finished = true;
  } finally {
    if (!finished) await reader?.cancel().catch(() => {});
  }
  if (received !== info.size) {
    throw new StrataError('DATA_CORRUPTION', `${ref}: received ${received} bytes, the server announced ${info.size}`);
  }
  const digest = sha.digest('hex');
  if (digest !== info.hash) {
    throw new StrataError('DATA_CORRUPTION', `${ref}: received content hashes to ${digest}, not the announced ${info.hash}`);
  }
}

function reasonOf(err: unknown): string {
  const e = err as { message?: string; cause?: { code?: string; message?: string } };
  const cause = e.cause?.message ?? e.cause?.code;
  return cause ? `${e.message}: ${cause}` : String(e.message ?? err);
}

/**
 * A commit as a multipart/form-data body, produced on the fly from the
 * changes (api/routes/commits.ts reads it):
 *
 *   --B CRLF  Content-Disposition: form-data; name="put:<encodeURIComponent(path)>"; filename="<name>"
 *             Content-Type: application/octet-stream  CRLF CRLF  <content> CRLF
 *   --B CRLF  Content-Disposition: form-data; name="link:<encodeURIComponent(path)>"  CRLF CRLF  <sha-256 hex> CRLF
 *   --B CRLF  Content-Disposition: form-data; name="link-dir:<encodeURIComponent(path)>"  CRLF CRLF  <tree id> CRLF
 *   --B CRLF  Content-Disposition: form-data; name="delete"  CRLF CRLF  <path> CRLF
 *   --B-- CRLF
 *
 * The boundary is 128 random bits, so content cannot contain it by accident.
 */
class MultipartUpload {
  readonly boundary = `strata-${randomBytes(16).toString('hex')}`;
  readonly stream: ReadableStream<Uint8Array>;
  /** Set when reading the changes (or a file's content) failed. */
  sourceError: unknown;

  constructor(
    private changes: AsyncIterable<Change> | Iterable<Change>,
    private onProgress?: (bytes: number) => void,
  ) {
    const pieces = gather(this.frames());
    this.stream = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        try {
          const next = await pieces.next();
          if (next.done) controller.close();
          else controller.enqueue(next.value);
        } catch (err) {
          this.sourceError = err;
          controller.error(err);
        }
      },
      cancel: async () => {
        await pieces.return(undefined);
      },
    });
  }

  private async *frames(): AsyncGenerator<Uint8Array> {
    const b = this.boundary;
    let bytes = 0;
    for await (const change of this.changes) {
      if (change.op === 'delete') {
        yield Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="delete"\r\n\r\n${change.path}\r\n`);
        continue;
      }
      if (change.op === 'link') {
        const kind = change.type === 'dir' ? 'link-dir' : 'link';
        yield Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="${kind}:${encodeURIComponent(change.path)}"\r\n\r\n${change.hash}\r\n`);
        continue;
      }
      const name = change.path.split('/').pop() || 'file';
      yield Buffer.from(
        `--${b}\r\nContent-Disposition: form-data; name="put:${encodeURIComponent(change.path)}"; filename="${encodeURIComponent(name)}"\r\n` +
          'Content-Type: application/octet-stream\r\n\r\n',
      );
      const content = change.content instanceof Uint8Array ? [change.content] : change.content;
      for await (const chunk of content) {
        bytes += chunk.length;
        this.onProgress?.(bytes);
        yield chunk;
      }
      yield Buffer.from('\r\n');
    }
    yield Buffer.from(`--${b}--\r\n`);
  }
}

/** Gathers small pieces into writes of about WRITE_SIZE; large pieces pass through untouched. */
async function* gather(pieces: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  let pending: Uint8Array[] = [];
  let size = 0;
  for await (const piece of pieces) {
    if (piece.length >= WRITE_SIZE) {
      if (size > 0) yield Buffer.concat(pending, size);
      pending = [];
      size = 0;
      yield piece;
      continue;
    }
    pending.push(piece);
    size += piece.length;
    if (size >= WRITE_SIZE) {
      yield Buffer.concat(pending, size);
      pending = [];
      size = 0;
    }
  }
  if (size > 0) yield Buffer.concat(pending, size);
}
