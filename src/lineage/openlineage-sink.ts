import { appendFile, mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { JobEvent, Scheduler } from '../pipelines/scheduler.js';
import { OpenLineageBuilder, type LineageCatalog, type RunEvent, type SchemaProvider } from './openlineage.js';

// Where OpenLineage events go: appended to a JSON-lines file, and/or POSTed
// to a lineage endpoint the way Marquez takes them (POST /api/v1/lineage).
// Delivery never fails or blocks a job: events are queued in memory (bounded;
// the oldest are dropped when full), sent in order, and retried with backoff.

export interface OpenLineageConfig {
  /** JSON-lines file the events are appended to (relative paths: to the instance directory). */
  file?: string;
  /** Lineage endpoint: a base URL (`http://marquez:5000` gets `/api/v1/lineage`) or the full URL to POST to. */
  url?: string;
  /** Job namespace (default 'strata'). */
  namespace?: string;
  /** Sent as `Authorization: Bearer <api_key>`. */
  api_key?: string;
}

export interface LineageSink {
  /** Queues an event; returns at once. */
  write(event: RunEvent): void;
  /** Resolves when every queued event was delivered or given up on. */
  flush(): Promise<void>;
}

const warn = (message: string) => process.stderr.write(`strata openlineage: ${message}\n`);

/** Appends one event per line. Each line is written with one append, so lines stay whole. */
export class JsonLinesSink implements LineageSink {
  private chain: Promise<void> = Promise.resolve();
  private madeDir = false;

  constructor(readonly path: string) {}

  write(event: RunEvent): void {
    const line = JSON.stringify(event) + '\n';
    this.chain = this.chain
      .then(async () => {
        if (!this.madeDir) await mkdir(dirname(this.path), { recursive: true });
        this.madeDir = true;
        await appendFile(this.path, line, { flag: 'a' });
      })
      .catch((err: Error) => void warn(`cannot append to ${this.path}: ${err.message}`));
  }

  flush(): Promise<void> {
    return this.chain;
  }
}

export interface HttpSinkOptions {
  apiKey?: string;
  /** Events held while the endpoint is slow or down (default 1000); beyond it the oldest are dropped. */
  maxQueue?: number;
  /** Attempts per event before it is dropped (default 8). */
  maxAttempts?: number;
  /** First retry delay (default 500 ms), doubled per attempt up to maxDelayMs (default 30 s). */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Per-request timeout (default 10 s). */
  timeoutMs?: number;
}

/** POSTs events one at a time, in order, retrying network errors, 429 and 5xx with exponential backoff. */
export class HttpSink implements LineageSink {
  readonly endpoint: string;
  private queue: RunEvent[] = [];
  private sending?: Promise<void>;
  private idle: (() => void)[] = [];
  /** Events dropped because the queue was full, rejected (4xx), or out of attempts. */
  dropped = 0;
  delivered = 0;

  constructor(
    url: string,
    private opts: HttpSinkOptions = {},
  ) {
    this.endpoint = lineageEndpoint(url);
  }

  write(event: RunEvent): void {
    const max = this.opts.maxQueue ?? 1000;
    if (this.queue.length >= max) {
      this.queue.shift();
      if (this.dropped++ === 0 || this.dropped % 100 === 0) warn(`${this.endpoint} is behind: dropped ${this.dropped} event(s) so far (queue limit ${max})`);
    }
    this.queue.push(event);
    this.sending ??= this.drain().finally(() => {
      this.sending = undefined;
      for (const resolve of this.idle.splice(0)) resolve();
    });
  }

  flush(): Promise<void> {
    if (!this.sending) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const event = this.queue.shift()!;
      const outcome = await this.deliver(event);
      if (outcome === 'sent') this.delivered++;
      else this.dropped++;
    }
  }

  private async deliver(event: RunEvent): Promise<'sent' | 'dropped'> {
    const attempts = this.opts.maxAttempts ?? 8;
    const body = JSON.stringify(event);
    for (let attempt = 1; ; attempt++) {
      let problem: string;
      try {
        const res = await fetch(this.endpoint, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(this.opts.apiKey ? { authorization: `Bearer ${this.opts.apiKey}` } : {}) },
          body,
          signal: AbortSignal.timeout(this.opts.timeoutMs ?? 10_000),
        });
        await res.arrayBuffer().catch(() => undefined); // free the connection
        if (res.ok) return 'sent';
        problem = `HTTP ${res.status}`;
        if (res.status !== 429 && res.status < 500) {
          // The endpoint refused this event; sending it again cannot help.
          warn(`${this.endpoint} rejected a ${event.eventType} event of ${event.job.name} (${problem}); dropped`);
          return 'dropped';
        }
      } catch (err) {
        problem = (err as Error).message;
      }
      if (attempt >= attempts) {
        warn(`${this.endpoint}: giving up on a ${event.eventType} event of ${event.job.name} after ${attempt} attempts (${problem})`);
        return 'dropped';
      }
      const delay = Math.min((this.opts.baseDelayMs ?? 500) * 2 ** (attempt - 1), this.opts.maxDelayMs ?? 30_000);
      await new Promise<void>((r) => setTimeout(r, delay * (0.75 + Math.random() * 0.5)).unref());
    }
  }
}

/** A base URL gets Marquez's `/api/v1/lineage`; a URL with a path is used as given. */
export function lineageEndpoint(url: string): string {
  const u = new URL(url);
  if (u.pathname === '/' || u.pathname === '') u.pathname = '/api/v1/lineage';
  return u.href;
}

export interface ResolvedOpenLineageConfig {
  file?: string;
  url?: string;
  namespace?: string;
  apiKey?: string;
}

/**
 * The export settings: config.json's `openlineage` section, each field
 * overridden by $STRATA_OPENLINEAGE_FILE, _URL, _NAMESPACE, _API_KEY. Null when
 * neither a file nor a URL is set (export off).
 */
export function resolveOpenLineageConfig(config: OpenLineageConfig | undefined, home: string, env: NodeJS.ProcessEnv = process.env): ResolvedOpenLineageConfig | null {
  const file = env.STRATA_OPENLINEAGE_FILE || config?.file;
  const url = env.STRATA_OPENLINEAGE_URL || config?.url;
  if (!file && !url) return null;
  return {
    ...(file ? { file: resolve(home, file) } : {}),
    ...(url ? { url } : {}),
    ...((env.STRATA_OPENLINEAGE_NAMESPACE || config?.namespace) ? { namespace: env.STRATA_OPENLINEAGE_NAMESPACE || config?.namespace } : {}),
    ...((env.STRATA_OPENLINEAGE_API_KEY || config?.api_key) ? { apiKey: env.STRATA_OPENLINEAGE_API_KEY || config?.api_key } : {}),
  };
}

export interface OpenLineageExporterOptions {
  catalog: LineageCatalog;
  sinks: LineageSink[];
  namespace?: string;
  producer?: string;
  schemaOf?: SchemaProvider;
}

/** Turns scheduler job events into RunEvents, in the order they happened, and hands them to the sinks. */
export class OpenLineageExporter {
  readonly builder: OpenLineageBuilder;
  readonly sinks: LineageSink[];
  private chain: Promise<void> = Promise.resolve();
  private detach: (() => void)[] = [];

  constructor(opts: OpenLineageExporterOptions) {
    this.builder = new OpenLineageBuilder(opts);
    this.sinks = opts.sinks;
  }

  /** The exporter for an instance's settings, or undefined when export is off. An invalid URL is reported and that sink left out. */
  static fromConfig(
    config: OpenLineageConfig | undefined,
    home: string,
    catalog: LineageCatalog,
    opts: { schemaOf?: SchemaProvider; env?: NodeJS.ProcessEnv } = {},
  ): OpenLineageExporter | undefined {
    const resolved = resolveOpenLineageConfig(config, home, opts.env ?? process.env);
    if (!resolved) return undefined;
    const sinks: LineageSink[] = [];
    if (resolved.file) sinks.push(new JsonLinesSink(resolved.file));
    if (resolved.url) {
      try {
        sinks.push(new HttpSink(resolved.url, { apiKey: resolved.apiKey }));
      } catch {
        warn(`openlineage url "${resolved.url}" is not a valid URL; set openlineage.url in config.json or $STRATA_OPENLINEAGE_URL to e.g. http://marquez:5000`);
      }
    }
    if (sinks.length === 0) return undefined;
    return new OpenLineageExporter({ catalog, sinks, namespace: resolved.namespace, schemaOf: opts.schemaOf });
  }

  /** Exports the scheduler's jobs from now on. */
  attach(scheduler: Pick<Scheduler, 'onJobEvent'>): this {
    this.detach.push(scheduler.onJobEvent((event) => this.export(event)));
    return this;
  }

  /** Queues one job event's RunEvent; never throws. */
  export(event: JobEvent): void {
    this.chain = this.chain
      .then(() => this.builder.build(event))
      .then((runEvent) => {
        for (const sink of this.sinks) sink.write(runEvent);
      })
      .catch((err: Error) => void warn(`cannot build the ${event.type} event of job ${event.job.id}: ${err.message}`));
  }

  /** Waits until every event so far was delivered or given up on. */
  async flush(): Promise<void> {
    await this.chain;
    await Promise.all(this.sinks.map((s) => s.flush()));
  }

  /** Detaches, and waits up to `timeoutMs` for queued events to go out. */
  async close(timeoutMs = 5000): Promise<void> {
    for (const d of this.detach.splice(0)) d();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.flush(), new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
  }
}
