import type { DataService } from '../data/service.js';
import { NotFoundError, StrataError } from '../errors.js';
import type { Registry } from '../tracking/registry.js';
import type { ModelVersion } from '../tracking/types.js';
import type { DeploymentInfo, DeploymentService, ServingStatus } from './deployments.js';
import { jsonValues, nest, oipOutputs, type InferRequest, type InferResponse } from './protocol.js';
import type { HostTensor, LoadedModel, ModelRuntime, ModelSignature } from './runtime.js';

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

export interface Served {
  readonly version: ModelVersion;
  readonly signature: ModelSignature;
  readonly model: LoadedModel;
}

class Handle implements Served {
  private refs = 0;
  private retired = false;

  constructor(
    readonly version: ModelVersion,
    readonly signature: ModelSignature,
    readonly model: LoadedModel,
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

interface Slot {
  name: string;
  current?: Handle;
  loading: boolean;
  error?: string;
  /** name@version of a load that failed: not retried until the target changes. */
  failed?: string;
  running: Promise<void>;
  queued?: Promise<void>;
}

export interface InferResult {
  request: InferRequest;
  outputs: Record<string, HostTensor>;
  version: ModelVersion;
}

export class ServingManager {
  private slots = new Map<string, Slot>();
  private started = false;
  private timer?: NodeJS.Timeout;
  private unsubscribe?: () => void;

  constructor(
    readonly deployments: DeploymentService,
    private registry: Registry,
    private data: DataService,
    private runtime: ModelRuntime,
    private opts: { pollMs?: number } = {},
  ) {}

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
    await Promise.all(slots.map((s) => s.running.catch(() => {})));
    for (const slot of slots) slot.current?.retire();
  }

  /** Whether every deployment known here has a version taking traffic. */
  ready(): boolean {
    return [...this.slots.values()].every((s) => s.current);
  }

  status(name: string): ServingStatus {
    const slot = this.slots.get(name);
    if (!slot) return { state: 'idle', version: null };
    const state = slot.current ? 'ready' : slot.loading ? 'loading' : slot.error ? 'failed' : 'idle';
    return { state, version: slot.current?.version.version ?? null, ...(slot.error ? { error: slot.error } : {}) };
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
        slot.current?.retire();
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
   * in a started server one still loading is 503.
   */
  async use<T>(name: string, version: number | undefined, fn: (served: Served) => Promise<T>): Promise<T> {
    let slot = this.slots.get(name);
    if (!slot?.current) {
      if (!slot) await this.deployments.inspect(name); // unknown deployment: 404
      if (!slot || !this.started) {
        slot = this.slotOf(name);
        await this.refresh(slot);
      }
    }
    const handle = slot.current?.acquire();
    if (!handle) {
      const why = slot.loading ? 'its model is still loading' : slot.error ? `its model failed to load: ${slot.error}` : 'no model is loaded';
      throw new StrataError('UNAVAILABLE', `deployment "${name}" is not ready: ${why}`);
    }
    try {
      if (version !== undefined && version !== handle.version.version) {
        throw new NotFoundError(`deployment "${name}" serves version ${handle.version.version} of model ${handle.version.name}, not version ${version}`);
      }
      return await fn(handle);
    } finally {
      handle.release();
    }
  }

  /** Parses a request against the serving version's signature and runs it. */
  infer(name: string, version: number | undefined, parse: (signature: ModelSignature) => InferRequest): Promise<InferResult> {
    return this.use(name, version, async (served) => {
      const request = parse(served.signature);
      const outputs = await served.model.infer(request.inputs, request.outputs);
      return { request, outputs, version: served.version };
    });
  }

  private slotOf(name: string): Slot {
    let slot = this.slots.get(name);
    if (!slot) {
      slot = { name, loading: false, running: Promise.resolve() };
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
      slot.current?.retire();
      slot.current = undefined;
      return;
    }
    let version: ModelVersion;
    try {
      version = await this.deployments.resolve(info);
    } catch (err) {
      // In a server, a deployment whose alias or version is gone keeps serving what it has loaded.
      if (this.started && err instanceof StrataError && err.code === 'NOT_FOUND') {
        slot.error = err.message;
        return;
      }
      throw err;
    }
    const key = `${version.name}@${version.version}`;
    const current = slot.current?.version;
    if (current && `${current.name}@${current.version}` === key) return;
    if (slot.failed === key) return;
    if (!version.signature || version.format !== 'onnx') {
      slot.failed = key;
      slot.error = `${key} is not an ONNX model`;
      return;
    }
    slot.loading = true;
    try {
      const bytes = await readAll(this.data.readContent(version.hash));
      const model = await this.runtime.load(bytes, version.signature);
      const handle = new Handle(version, version.signature, model);
      if (this.slots.get(slot.name) !== slot) {
        handle.retire(); // deleted or stopped while loading
        return;
      }
      const old = slot.current;
      slot.current = handle;
      slot.error = undefined;
      slot.failed = undefined;
      old?.retire();
    } catch (err) {
      slot.failed = key;
      slot.error = `loading ${key}: ${(err as Error).message}`;
      if (!this.started) throw err;
    } finally {
      slot.loading = false;
    }
  }
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
