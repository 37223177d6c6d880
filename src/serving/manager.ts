import type { DataService } from '../data/service.js';
import { NotFoundError, StrataError } from '../errors.js';
import type { Registry } from '../tracking/registry.js';
import type { ModelVersion } from '../tracking/types.js';
import { BatchingModel, type BatchingConfig, type RunTiming } from './batcher.js';
import { parseModelTarget, type DeploymentInfo, type DeploymentService, type LaneStatus, type ServingStatus, type ShadowStats } from './deployments.js';
import { ServingMetrics } from './metrics.js';
import { PredictionLogger } from './prediction-log.js';
import { jsonValues, nest, oipOutputs, type InferRequest, type InferResponse } from './protocol.js';
import { ProcessGroup, ProcessRuntime, type ProcessSpec } from './process-runtime.js';
import type { HostTensor, ModelRuntime, ModelSignature, ProcessStatus } from './runtime.js';

// Keeps, per deployment, the loaded model version that takes its traffic, and
// swaps it without failing a request:
//
//   alias moves (registry.onAliasChange at once; a 1 s poll catches moves and
//   deployment changes made by other processes)
//     -> load and warm the new version beside the old one
//     -> switch the slot's pointer (one assignment: every request after it
//        gets the new version)
//     -> requests that acquired the old version finish on it; the last one
//        out releases it (reference count).
//
// A failed load leaves the old version serving and is reported in the status.
// Loads of one deployment are serialized; a refresh asked for while one runs
// is queued once.
//
// A deployment's versions run on ONNX Runtime in this process, or, with
// `runtime: process` in its config, each in a model process of its command
// (process-runtime.ts; its signature comes from the process's metadata).
//
// Every loaded version is wrapped in a BatchingModel (batcher.ts), which
// coalesces concurrent requests when the deployment's config asks for
// batching; sampled predictions go to the PredictionLogger (prediction-log.ts).

export interface Served {
  readonly version: ModelVersion;
  readonly signature: ModelSignature;
  readonly model: BatchingModel;
}

class Handle implements Served {
  private refs = 0;
  private retired = false;

  constructor(
    readonly version: ModelVersion,
    readonly signature: ModelSignature,
    readonly model: BatchingModel,
    /** What it runs on (the runtime and its settings): a change reloads the version. */
    readonly runtimeKey: string,
  ) {}

  acquire(): this {
    this.refs++;
    return this;
  }

  release(): void {
    this.refs--;
    if (this.retired && this.refs === 0) void this.free();
  }

  retire(): void {
    this.retired = true;
    if (this.refs === 0) void this.free();
  }

  private freed = false;
  private async free(): Promise<void> {
    if (this.freed) return;
    this.freed = true;
    await this.model.release().catch((err) => process.stderr.write(`strata serving: releasing ${this.version.name} v${this.version.version}: ${(err as Error).message}\n`));
  }
}

type LaneName = 'primary' | 'canary' | 'shadow';

/** One loaded version of a deployment: the primary (its model target), a canary or a shadow. */
interface Lane {
  current?: Handle;
  /** MODEL@VERSION configured for a canary or shadow. */
  model?: string;
  error?: string;
  /** name@version of a load that failed: not retried until the target changes. */
  failed?: string;
  loading: boolean;
}

interface Slot {
  name: string;
  primary: Lane;
  canary: Lane;
  shadow: Lane;
  /** Percent of requests the canary takes. */
  weight: number;
  running: Promise<void>;
  queued?: Promise<void>;
  since: number;
  /** Requests and failures by MODEL@VERSION, since this slot was made. */
  traffic: Map<string, { requests: number; failures: number }>;
  shadowStats: ShadowStats;
  shadowInFlight: number;
  /** Adaptive batching, as configured (applied to every lane's model that can be batched). */
  batching?: BatchingConfig;
  /** The process runtime's command, for a deployment on it; ONNX Runtime when absent. */
  process?: ProcessSpec;
}

export interface InferResult {
  request: InferRequest;
  outputs: Record<string, HostTensor>;
  version: ModelVersion;
  /** Which of the deployment's versions answered. */
  lane: 'primary' | 'canary';
}

export interface InferOptions {
  /** A request id (the OIP `id` or an x-request-id header): requests with the same id go to the same version. */
  key?: string;
  /** performance.now() when the request arrived; defaults to when it reached the manager. */
  start?: number;
}

/** Shadow requests in flight per deployment beyond which mirroring drops requests (counted) rather than queueing them. */
const MAX_SHADOW_IN_FLIGHT = 64;

const emptyShadowStats = (): ShadowStats => ({ requests: 0, failures: 0, dropped: 0, compared: 0, differing: 0, max_abs_diff: null, outputs: {} });

/** FNV-1a of the id, as a bucket in [0, 100). */
export function bucketOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return ((h >>> 0) % 10000) / 100;
}

export class ServingManager {
  private slots = new Map<string, Slot>();
  private started = false;
  private timer?: NodeJS.Timeout;
  private unsubscribe?: () => void;
  /** Prometheus metrics of every deployment served here (GET /metrics). */
  readonly metrics = new ServingMetrics();
  /** Sampled request/response pairs, committed in batches to `<deployment>-predictions`. */
  readonly predictions: PredictionLogger;
  /** Every model process this manager started (stop ends them). */
  private processes = new ProcessGroup();

  constructor(
    readonly deployments: DeploymentService,
    private registry: Registry,
    private data: DataService,
    private runtime: ModelRuntime,
    private opts: { pollMs?: number; flushRecords?: number; flushMs?: number; maxBuffered?: number } = {},
  ) {
    this.predictions = new PredictionLogger(data, { flushRecords: opts.flushRecords, flushMs: opts.flushMs, maxBuffered: opts.maxBuffered });
  }

  /** Loads every deployment and follows alias moves until stop(). */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    // Any alias move may concern any deployment; a refresh that finds its version unchanged costs two queries.
    this.unsubscribe = this.registry.onAliasChange(() => {
      for (const slot of this.slots.values()) {
        this.refresh(slot).catch((err) => process.stderr.write(`strata serving: ${(err as Error).message}\n`));
      }
    });
    await this.sync();
    const tick = () => {
      this.timer = setTimeout(() => {
        this.sync()
          .catch((err) => process.stderr.write(`strata serving: ${(err as Error).message}\n`))
          .finally(() => this.started && tick());
      }, this.opts.pollMs ?? 1000);
      this.timer.unref();
    };
    tick();
  }

  async stop(): Promise<void> {
    this.started = false;
    clearTimeout(this.timer);
    this.unsubscribe?.();
    const slots = [...this.slots.values()];
    this.slots.clear();
    // A model process still starting is ended, not waited for (that could take its whole ready timeout).
    await this.processes.stopAll();
    await Promise.all(slots.map((s) => s.running.catch(() => {})));
    for (const slot of slots) retireAll(slot);
    // Model processes are ended (and waited for) before the server is reported stopped: none outlives it.
    await this.processes.stopAll();
    // Buffered predictions are written before the process goes.
    await this.predictions.stop();
  }

  /** Whether every deployment known here has a version taking traffic. */
  ready(): boolean {
    return [...this.slots.values()].every((s) => laneState(s.primary) === 'ready');
  }

  status(name: string): ServingStatus {
    const slot = this.slots.get(name);
    if (!slot) return { state: 'idle', version: null };
    const p = slot.primary;
    const status: ServingStatus = { state: laneState(p), version: p.current?.version.version ?? null, ...(p.error ? { error: p.error } : {}) };
    if (slot.canary.model) status.canary = { ...laneStatus(slot.canary), weight: slot.weight };
    if (slot.shadow.model) status.shadow = { ...laneStatus(slot.shadow), stats: structuredClone(slot.shadowStats) };
    status.traffic = { since: slot.since, versions: Object.fromEntries([...slot.traffic].map(([k, v]) => [k, { ...v }])) };
    if (slot.batching) {
      const model = p.current?.model;
      status.batching = { ...slot.batching, active: !!model?.batching, ...(model?.unbatchable ? { reason: model.unbatchable } : {}) };
    }
    const logging = this.predictions.stats(name);
    if (logging) status.logging = logging;
    const proc = processStatus(p);
    if (proc) status.process = proc;
    return status;
  }

  withStatus(info: DeploymentInfo): DeploymentInfo {
    return { ...info, serving: this.status(info.name) };
  }

  /** Brings the slots in line with the deployments table and their targets. */
  async sync(): Promise<void> {
    const all = await this.deployments.list();
    const names = new Set(all.map((d) => d.name));
    for (const [name, slot] of this.slots) {
      if (!names.has(name)) {
        this.slots.delete(name);
        retireAll(slot);
        this.predictions.configure(name, 0);
      }
    }
    await Promise.all(all.map((d) => this.refresh(this.slotOf(d.name))));
  }

  /** A deployment was created, updated or deleted through this process: a started manager follows at once. */
  async changed(name: string): Promise<void> {
    if (this.started) await this.refresh(this.slotOf(name));
  }

  /**
   * The version of `name` taking traffic, held until `fn` settles. A
   * deployment not loaded yet is loaded first (the local client's path);
   * in a started server one still loading is 503. `version` picks the
   * primary or the canary by number; `split` sends the request to the canary
   * with the canary's weight (by `key` when given).
   */
  async use<T>(name: string, version: number | undefined, fn: (served: Served, lane: 'primary' | 'canary') => Promise<T>, opts: { split?: boolean; key?: string } = {}): Promise<T> {
    const slot = await this.slotFor(name);
    const p = slot.primary;
    if (!p.current) {
      const why = p.loading ? 'its model is still loading' : p.error ? `its model failed to load: ${p.error}` : 'no model is loaded';
      throw new StrataError('UNAVAILABLE', `deployment "${name}" is not ready: ${why}`);
    }
    let lane: 'primary' | 'canary' = 'primary';
    if (version !== undefined) {
      if (slot.canary.current?.version.version === version && p.current.version.version !== version) lane = 'canary';
      else if (p.current.version.version !== version) {
        const canary = slot.canary.current ? ` and version ${slot.canary.current.version.version} as its canary` : '';
        throw new NotFoundError(`deployment "${name}" serves version ${p.current.version.version} of model ${p.current.version.name}${canary}, not version ${version}`);
      }
    } else if (opts.split && slot.canary.current && slot.weight > 0) {
      const draw = opts.key !== undefined ? bucketOf(opts.key) : Math.random() * 100;
      if (draw < slot.weight) lane = 'canary';
    }
    const handle = slot[lane].current!.acquire();
    try {
      return await fn(handle, lane);
    } finally {
      handle.release();
    }
  }

  /** Parses a request against the serving version's signature and runs it; mirrors it to the shadow, if any. */
  async infer(name: string, version: number | undefined, parse: (signature: ModelSignature) => InferRequest, opts: InferOptions = {}): Promise<InferResult> {
    const start = opts.start ?? performance.now();
    let chosen: { version: ModelVersion; lane: LaneName } | undefined;
    try {
      const result = await this.use(
        name,
        version,
        async (served, lane) => {
          chosen = { version: served.version, lane };
          const request = parse(served.signature);
          // With batching, the run starts when the request's batch does: the wait counts as queue time.
          const timing: RunTiming = {};
          const outputs = await served.model.infer(request.inputs, request.outputs, timing);
          const t1 = performance.now();
          const t0 = timing.start ?? t1;
          const latency = this.metrics.latency(name, String(served.version.version));
          latency.queue.observe((t0 - start) / 1000);
          latency.compute.observe((t1 - t0) / 1000);
          latency.total.observe((t1 - start) / 1000);
          return { request, outputs, version: served.version, lane };
        },
        { split: version === undefined, key: opts.key },
      );
      this.metrics.requestsOf(name, String(result.version.version), result.lane).inc();
      this.count(name, result.version, false);
      this.mirror(name, parse, result);
      this.log(name, result, opts.key);
      return result;
    } catch (err) {
      // Only deployments that exist get metrics: names from requests are unbounded.
      if (this.slots.has(name)) {
        const code = err instanceof StrataError ? err.code : 'INTERNAL';
        this.metrics.failures.inc({ deployment: name, version: chosen ? String(chosen.version.version) : 'none', lane: chosen?.lane ?? 'primary', code });
        if (chosen) this.count(name, chosen.version, true);
      }
      throw err;
    }
  }

  /** Buffers the request/response pair when the deployment's sampling rate draws it; never fails the request. */
  private log(name: string, result: InferResult, key: string | undefined): void {
    try {
      if (!this.predictions.sample(name)) return;
      this.predictions.record(name, {
        time: Date.now(),
        request_id: result.request.id ?? key,
        version: result.version,
        lane: result.lane,
        inputs: result.request.inputs,
        outputs: result.outputs,
      });
    } catch (err) {
      process.stderr.write(`strata serving: logging a prediction of ${name}: ${(err as Error).message}\n`);
    }
  }

  private count(name: string, version: ModelVersion, failed: boolean): void {
    const slot = this.slots.get(name);
    if (!slot) return;
    const key = `${version.name}@${version.version}`;
    let c = slot.traffic.get(key);
    if (!c) slot.traffic.set(key, (c = { requests: 0, failures: 0 }));
    c.requests++;
    if (failed) c.failures++;
  }

  /** Sends the request to the shadow after the response is on its way; records how the outputs compare. */
  private mirror(name: string, parse: (signature: ModelSignature) => InferRequest, primary: InferResult): void {
    const slot = this.slots.get(name);
    if (!slot?.shadow.model) return;
    const stats = slot.shadowStats;
    if (slot.shadowInFlight >= MAX_SHADOW_IN_FLIGHT) {
      stats.dropped++;
      return;
    }
    stats.requests++;
    const handle = slot.shadow.current?.acquire();
    if (!handle) {
      stats.failures++;
      stats.last_error = slot.shadow.error ?? `shadow ${slot.shadow.model} is not loaded`;
      return;
    }
    slot.shadowInFlight++;
    const labels = { deployment: name, version: String(handle.version.version) };
    setImmediate(() => {
      const run = async () => {
        const request = parse(handle.signature);
        const t0 = performance.now();
        const outputs = await handle.model.infer(request.inputs, primary.request.outputs ?? request.outputs);
        this.metrics.compute.observe(labels, (performance.now() - t0) / 1000);
        return outputs;
      };
      run()
        .then((outputs) => {
          this.metrics.requests.inc({ ...labels, lane: 'shadow' });
          compare(stats, primary.outputs, outputs);
        })
        .catch((err: unknown) => {
          stats.failures++;
          stats.last_error = (err as Error).message;
          this.metrics.failures.inc({ ...labels, lane: 'shadow', code: err instanceof StrataError ? err.code : 'INTERNAL' });
        })
        .finally(() => {
          slot.shadowInFlight--;
          handle.release();
        });
    });
  }

  private async slotFor(name: string): Promise<Slot> {
    let slot = this.slots.get(name);
    if (!slot?.primary.current) {
      if (!slot) await this.deployments.inspect(name); // unknown deployment: 404
      if (!slot || !this.started) {
        slot = this.slotOf(name);
        await this.refresh(slot);
      }
    }
    return slot;
  }

  private slotOf(name: string): Slot {
    let slot = this.slots.get(name);
    if (!slot) {
      slot = {
        name,
        primary: { loading: false },
        canary: { loading: false },
        shadow: { loading: false },
        weight: 0,
        running: Promise.resolve(),
        since: Date.now(),
        traffic: new Map(),
        shadowStats: emptyShadowStats(),
        shadowInFlight: 0,
      };
      this.slots.set(name, slot);
    }
    return slot;
  }

  private refresh(slot: Slot): Promise<void> {
    if (slot.queued) return slot.queued;
    const run = slot.running.then(() => {
      slot.queued = undefined;
      return this.reload(slot);
    });
    slot.queued = run;
    slot.running = run.catch(() => {});
    return run;
  }

  private async reload(slot: Slot): Promise<void> {
    let info: DeploymentInfo;
    try {
      info = await this.deployments.inspect(slot.name);
    } catch (err) {
      if (!this.started || !(err instanceof StrataError && err.code === 'NOT_FOUND')) throw err;
      // Deleted: stop serving it; in-flight requests finish first.
      if (this.slots.get(slot.name) === slot) this.slots.delete(slot.name);
      retireAll(slot);
      this.predictions.configure(slot.name, 0); // what is buffered is still written
      return;
    }
    this.predictions.configure(slot.name, typeof info.config.logging?.rate === 'number' ? info.config.logging.rate : 0);
    const batching = info.config.batching;
    slot.batching = batching && typeof batching.max_batch_size === 'number' ? batching : undefined;
    slot.process = info.config.runtime === 'process' ? { command: String(info.config.command), ready_timeout_s: info.config.ready_timeout_s } : undefined;
    for (const lane of [slot.primary, slot.canary, slot.shadow]) lane.current?.model.configure(slot.batching);
    await this.reloadLane(slot, slot.primary, info);
    // Canary and shadow take traffic in a server only; the local client serves the primary.
    const config = info.config;
    const extras: [Lane, string | undefined][] = [
      [slot.canary, this.started && config.canary ? config.canary.model : undefined],
      [slot.shadow, this.started && config.shadow ? config.shadow.model : undefined],
    ];
    slot.weight = typeof config.canary?.weight === 'number' ? config.canary.weight : 0;
    for (const [lane, model] of extras) {
      if (lane.model !== model) {
        if (lane === slot.shadow) slot.shadowStats = emptyShadowStats();
        lane.model = model;
        lane.failed = undefined;
        lane.error = undefined;
      }
      if (!model) {
        lane.current?.retire();
        lane.current = undefined;
        continue;
      }
      try {
        const t = parseModelTarget(model);
        await this.reloadLane(slot, lane, { model_name: t.model_name, target: t.target, target_kind: t.kind });
      } catch (err) {
        lane.error = (err as Error).message;
      }
    }
  }

  /** Loads the version `target` points at into `lane` if it is not there yet, then switches to it. */
  private async reloadLane(slot: Slot, lane: Lane, target: Pick<DeploymentInfo, 'model_name' | 'target' | 'target_kind'>): Promise<void> {
    let version: ModelVersion;
    try {
      version = await this.deployments.resolve(target);
    } catch (err) {
      // In a server, a deployment whose alias or version is gone keeps serving what it has loaded.
      if (this.started && err instanceof StrataError && err.code === 'NOT_FOUND') {
        lane.error = err.message;
        return;
      }
      throw err;
    }
    const key = `${version.name}@${version.version}`;
    const runtimeKey = JSON.stringify(slot.process ?? 'onnx');
    const current = lane.current;
    if (current && `${current.version.name}@${current.version.version}` === key && current.runtimeKey === runtimeKey) return;
    if (lane.failed === `${key} ${runtimeKey}`) return;
    if (!slot.process && (!version.signature || version.format !== 'onnx')) {
      lane.failed = `${key} ${runtimeKey}`;
      lane.error = `${key} is not an ONNX model (deploy it with --runtime process)`;
      return;
    }
    lane.loading = true;
    try {
      const bytes = await readAll(this.data.readContent(version.hash));
      const labels = { deployment: slot.name, version: String(version.version) };
      const runtime = slot.process ? new ProcessRuntime(slot.process, this.processes) : this.runtime;
      const loaded = await runtime.load(bytes, version.signature, { name: version.name, version: version.version, filename: version.path ?? 'model' });
      const signature = loaded.signature ?? version.signature!;
      const model = new BatchingModel(loaded, signature, (n) => this.metrics.batchSize.observe(labels, n));
      model.configure(slot.batching);
      const handle = new Handle(version, signature, model, runtimeKey);
      if (this.slots.get(slot.name) !== slot) {
        handle.retire(); // deleted or stopped while loading
        return;
      }
      const old = lane.current;
      lane.current = handle;
      lane.error = undefined;
      lane.failed = undefined;
      old?.retire();
    } catch (err) {
      lane.failed = `${key} ${runtimeKey}`;
      lane.error = `loading ${key}: ${(err as Error).message}`;
      if (!this.started) throw err;
    } finally {
      lane.loading = false;
    }
  }
}

function retireAll(slot: Slot): void {
  for (const lane of [slot.primary, slot.canary, slot.shadow]) {
    lane.current?.retire();
    lane.current = undefined;
  }
}

/** ready only while a version takes traffic: not while its model process is being restarted. */
function laneState(lane: Lane): ServingStatus['state'] {
  if (lane.current) return processStatus(lane)?.state === 'restarting' ? 'restarting' : 'ready';
  return lane.loading ? 'loading' : lane.error ? 'failed' : 'idle';
}

function laneStatus(lane: Lane): LaneStatus {
  const proc = processStatus(lane);
  return { model: lane.model ?? '', version: lane.current?.version.version ?? null, state: laneState(lane), ...(lane.error ? { error: lane.error } : {}), ...(proc ? { process: proc } : {}) };
}

/** The lane's model process, when it runs on the process runtime. */
function processStatus(lane: Lane): ProcessStatus | undefined {
  return lane.current?.model.inner.runtimeStatus?.();
}

const TOLERANCE = 1e-6;

/** Adds one primary/shadow comparison to `stats`, output by output (outputs both returned). */
export function compare(stats: ShadowStats, primary: Record<string, HostTensor>, shadow: Record<string, HostTensor>): void {
  let differs = false;
  for (const [name, a] of Object.entries(primary)) {
    const b = shadow[name];
    if (!b) continue;
    const out = (stats.outputs[name] ??= { compared: 0, differing: 0, max_abs_diff: null });
    out.compared++;
    let different = a.dims.length !== b.dims.length || a.dims.some((d, i) => d !== b.dims[i]) || a.data.length !== b.data.length;
    if (!different) {
      const numeric = typeof a.data[0] !== 'string' && typeof b.data[0] !== 'string' && a.type !== 'bool' && a.data.length > 0;
      if (numeric) {
        let max = 0;
        for (let i = 0; i < a.data.length; i++) max = Math.max(max, Math.abs(Number(a.data[i]) - Number(b.data[i])));
        out.max_abs_diff = Math.max(out.max_abs_diff ?? 0, max);
        stats.max_abs_diff = Math.max(stats.max_abs_diff ?? 0, max);
        different = max > TOLERANCE;
      } else {
        different = a.data.some((v, i) => v !== b.data[i]);
      }
    }
    if (different) {
      out.differing++;
      differs = true;
    }
  }
  stats.compared++;
  if (differs) stats.differing++;
}

/** `repo@commit` of every data commit that trained the version, comma-separated. */
export function dataCommits(version: ModelVersion): string {
  return version.lineage.map((l) => `${l.repo}@${l.commit}`).join(',');
}

/** The lineage of a prediction, as response headers and OIP response parameters. */
export function lineageOf(version: ModelVersion): Record<string, string> {
  return {
    'strata-model': version.name,
    'strata-model-version': String(version.version),
    'strata-data-commit': dataCommits(version),
  };
}

/** The OIP response to an inference on deployment `name`. */
export function oipResponse(name: string, result: InferResult): InferResponse {
  return {
    model_name: name,
    model_version: String(result.version.version),
    ...(result.request.id !== undefined ? { id: result.request.id } : {}),
    parameters: lineageOf(result.version),
    outputs: oipOutputs(result.outputs),
  };
}

export interface PredictResponse {
  outputs: Record<string, unknown>;
  model: string;
  version: number;
  data_commit: string;
}

/** The plain JSON response: outputs as nested arrays. */
export function predictResponse(result: InferResult): PredictResponse {
  const outputs = Object.fromEntries(Object.entries(result.outputs).map(([name, t]) => [name, nest(jsonValues(t), t.dims)]));
  return { outputs, model: result.version.name, version: result.version.version, data_commit: dataCommits(result.version) };
}

async function readAll(stream: AsyncIterable<Buffer>): Promise<Uint8Array> {
  const parts: Buffer[] = [];
  for await (const b of stream) parts.push(b);
  return Buffer.concat(parts);
}
