import { InvalidArgumentError } from '../errors.js';
import type { HostTensor, LoadedModel, ModelSignature, TensorData } from './runtime.js';

// Adaptive batching: concurrent requests to one loaded model version are
// coalesced into one model run. A request joins the open batch of its kind
// (the same input names, element types and non-batch dimensions, and the
// same requested outputs); the batch runs when it holds `max_batch_size`
// rows or `max_batch_delay_us` after its first request, whichever comes
// first. Inputs are concatenated along dimension 0 and every output is split
// back by the rows each request brought.
//
// Only models whose every input and output has a dynamic first dimension are
// batched; the others, and a deployment without batching, run each request
// as it comes. A batched run whose outputs do not have one row per input row
// is run again request by request, so a request never gets another's rows.

export interface BatchingConfig {
  max_batch_size: number;
  max_batch_delay_us: number;
}

const MAX_DELAY_US = 1_000_000;
const MAX_SIZE = 65_536;

/** Checks a batching config: a whole max size from 1 and a whole delay in microseconds from 0 to 1 s. */
export function checkBatching(size: unknown, delay: unknown): BatchingConfig {
  if (typeof size !== 'number' || !Number.isInteger(size) || size < 1 || size > MAX_SIZE) {
    throw new InvalidArgumentError(`max batch size "${String(size)}" must be a whole number from 1 (no batching) to ${MAX_SIZE}`);
  }
  if (typeof delay !== 'number' || !Number.isInteger(delay) || delay < 0 || delay > MAX_DELAY_US) {
    throw new InvalidArgumentError(`max batch delay "${String(delay)}" must be a whole number of microseconds from 0 to ${MAX_DELAY_US}`);
  }
  return { max_batch_size: size, max_batch_delay_us: delay };
}

const dynamic = (d: number | string | null | undefined) => d === null || typeof d === 'string' || (typeof d === 'number' && d < 0);

/** Why a model cannot be batched, or undefined when it can. */
export function notBatchable(signature: ModelSignature): string | undefined {
  for (const [kind, specs] of [
    ['input', signature.inputs],
    ['output', signature.outputs],
  ] as const) {
    for (const spec of specs) {
      if (spec.unknownRank || spec.shape.length === 0 || !dynamic(spec.shape[0])) return `${kind} "${spec.name}" has no dynamic first (batch) dimension`;
    }
  }
  return undefined;
}

/** Filled in by infer: performance.now() when the model run that answers the request started. */
export interface RunTiming {
  start?: number;
}

interface Pending {
  inputs: Record<string, HostTensor>;
  rows: number;
  timing?: RunTiming;
  resolve: (outputs: Record<string, HostTensor>) => void;
  reject: (err: unknown) => void;
}

interface Open {
  items: Pending[];
  rows: number;
  outputNames?: string[];
  timer?: NodeJS.Timeout | NodeJS.Immediate;
}

/** A loaded model that batches concurrent requests when configured to; `onRun` sees the size (in requests) of every run it makes. */
export class BatchingModel implements LoadedModel {
  private config?: BatchingConfig;
  private open = new Map<string, Open>();
  /** Why this model is never batched (undefined when it can be). */
  readonly unbatchable?: string;

  constructor(
    readonly inner: LoadedModel,
    signature: ModelSignature,
    private onRun: (requests: number) => void = () => {},
  ) {
    this.unbatchable = notBatchable(signature);
  }

  /** Turns batching on (a config with max size above 1) or off; open batches run at once when it changes. */
  configure(config: BatchingConfig | undefined): void {
    const next = config && config.max_batch_size > 1 && !this.unbatchable ? config : undefined;
    if (JSON.stringify(next) === JSON.stringify(this.config)) return;
    this.config = next;
    for (const key of [...this.open.keys()]) this.dispatch(key);
  }

  get batching(): BatchingConfig | undefined {
    return this.config;
  }

  infer(inputs: Record<string, HostTensor>, outputNames?: string[], timing?: RunTiming): Promise<Record<string, HostTensor>> {
    const config = this.config;
    const rows = config ? rowsOf(inputs) : undefined;
    if (!config || rows === undefined || rows >= config.max_batch_size) {
      if (config) this.onRun(1);
      if (timing) timing.start = performance.now();
      return this.inner.infer(inputs, outputNames);
    }
    const key = keyOf(inputs, outputNames);
    return new Promise((resolve, reject) => {
      let open = this.open.get(key);
      if (open && open.rows + rows > config.max_batch_size) {
        this.dispatch(key);
        open = undefined;
      }
      if (!open) {
        open = { items: [], rows: 0, outputNames };
        this.open.set(key, open);
      }
      open.items.push({ inputs, rows, timing, resolve, reject });
      open.rows += rows;
      if (open.rows >= config.max_batch_size) this.dispatch(key);
      else if (!open.timer) {
        // Below a millisecond, a batch collects what arrives in this turn of the event loop.
        const delay = config.max_batch_delay_us;
        open.timer = delay < 1000 ? setImmediate(() => this.dispatch(key)) : setTimeout(() => this.dispatch(key), delay / 1000);
      }
    });
  }

  /** Runs the open batch of `key`. */
  private dispatch(key: string): void {
    const open = this.open.get(key);
    if (!open) return;
    this.open.delete(key);
    if (open.timer) {
      clearTimeout(open.timer as NodeJS.Timeout);
      clearImmediate(open.timer as NodeJS.Immediate);
    }
    void this.run(open);
  }

  private async run(batch: Open): Promise<void> {
    const { items, outputNames } = batch;
    this.onRun(items.length);
    const start = performance.now();
    for (const item of items) if (item.timing) item.timing.start = start;
    if (items.length === 1) {
      const only = items[0]!;
      return this.inner.infer(only.inputs, outputNames).then(only.resolve, only.reject);
    }
    let outputs: Record<string, HostTensor>;
    try {
      outputs = await this.inner.infer(concat(items.map((i) => i.inputs)), outputNames);
    } catch {
      // One bad request must not fail the others: each runs on its own and gets its own answer or error.
      await this.oneByOne(items, outputNames);
      return;
    }
    const parts = split(outputs, items.map((i) => i.rows));
    if (!parts) {
      await this.oneByOne(items, outputNames);
      return;
    }
    items.forEach((item, i) => item.resolve(parts[i]!));
  }

  private async oneByOne(items: Pending[], outputNames: string[] | undefined): Promise<void> {
    await Promise.all(items.map((item) => this.inner.infer(item.inputs, outputNames).then(item.resolve, item.reject)));
  }

  async release(): Promise<void> {
    // Retired handles are released once no request holds them, so nothing is queued here any more.
    for (const key of [...this.open.keys()]) this.dispatch(key);
    await this.inner.release();
  }
}

/** The rows (first dimension) every input shares, or undefined when they differ or an input is a scalar. */
function rowsOf(inputs: Record<string, HostTensor>): number | undefined {
  let rows: number | undefined;
  for (const t of Object.values(inputs)) {
    if (t.dims.length === 0) return undefined;
    if (rows === undefined) rows = t.dims[0]!;
    else if (rows !== t.dims[0]) return undefined;
  }
  return rows === undefined || rows < 1 ? undefined : rows;
}

function keyOf(inputs: Record<string, HostTensor>, outputNames?: string[]): string {
  const shapes = Object.keys(inputs)
    .sort()
    .map((name) => [name, inputs[name]!.type, inputs[name]!.dims.slice(1)]);
  return JSON.stringify([shapes, outputNames ? [...outputNames].sort() : null]);
}

/** Inputs of the same kind, concatenated along dimension 0. */
function concat(all: Record<string, HostTensor>[]): Record<string, HostTensor> {
  const out: Record<string, HostTensor> = {};
  for (const name of Object.keys(all[0]!)) {
    const tensors = all.map((inputs) => inputs[name]!);
    const first = tensors[0]!;
    const rows = tensors.reduce((n, t) => n + t.dims[0]!, 0);
    out[name] = { type: first.type, dims: [rows, ...first.dims.slice(1)], data: concatData(tensors.map((t) => t.data)) };
  }
  return out;
}

function concatData(parts: TensorData[]): TensorData {
  const first = parts[0]!;
  if (Array.isArray(first)) return ([] as string[]).concat(...(parts as string[][]));
  const total = parts.reduce((n, p) => n + p.length, 0);
  const Ctor = first.constructor as new (n: number) => Exclude<TensorData, string[]>;
  const out = new Ctor(total);
  let at = 0;
  for (const p of parts) {
    (out as { set(a: ArrayLike<number | bigint>, at: number): void }).set(p as ArrayLike<number | bigint>, at);
    at += p.length;
  }
  return out;
}

/** Each output cut back into the requests' rows; undefined when an output does not have one row per input row. */
function split(outputs: Record<string, HostTensor>, rows: number[]): Record<string, HostTensor>[] | undefined {
  const total = rows.reduce((a, b) => a + b, 0);
  const parts: Record<string, HostTensor>[] = rows.map(() => ({}));
  for (const [name, t] of Object.entries(outputs)) {
    if (t.dims.length === 0 || t.dims[0] !== total) return undefined;
    const inner = t.dims.slice(1).reduce((a, b) => a * b, 1);
    if (t.data.length !== total * inner) return undefined;
    let row = 0;
    rows.forEach((n, i) => {
      parts[i]![name] = { type: t.type, dims: [n, ...t.dims.slice(1)], data: t.data.slice(row * inner, (row + n) * inner) as TensorData };
      row += n;
    });
  }
  return parts;
}
