import type { Counter, Histogram, Registry } from 'prom-client';
import { lazyRequire } from '../lazy.js';

// Prometheus metrics of serving, in a registry of their own (never
// prom-client's global one, so any number of managers, servers and tests can
// live in one process). One ServingManager owns one ServingMetrics; the
// server exposes it at GET /metrics.

const SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export class ServingMetrics {
  private readonly prom = lazyRequire('prom-client') as typeof import('prom-client');
  readonly registry: Registry = new this.prom.Registry();
  /** Inference requests answered, by deployment, version and lane (primary, canary, shadow). */
  readonly requests = new this.prom.Counter({
    name: 'strata_serving_requests_total',
    help: 'Inference requests, by deployment, model version and lane (primary, canary or shadow)',
    labelNames: ['deployment', 'version', 'lane'] as const,
    registers: [this.registry],
  });
  /** Failed inference requests; version is "none" when no version could take the request. */
  readonly failures = new this.prom.Counter({
    name: 'strata_serving_failures_total',
    help: 'Failed inference requests, by deployment, model version, lane and error code',
    labelNames: ['deployment', 'version', 'lane', 'code'] as const,
    registers: [this.registry],
  });
  /** Time from the request reaching the serving manager to the model run starting (waiting for a load, parsing the tensors). */
  readonly queue = new this.prom.Histogram({
    name: 'strata_serving_queue_seconds',
    help: 'Time from the request reaching serving to the model run starting (parsing, waiting for a model)',
    labelNames: ['deployment', 'version'] as const,
    buckets: SECONDS,
    registers: [this.registry],
  });
  readonly compute = new this.prom.Histogram({
    name: 'strata_serving_compute_seconds',
    help: 'Model run time (ONNX Runtime)',
    labelNames: ['deployment', 'version'] as const,
    buckets: SECONDS,
    registers: [this.registry],
  });
  readonly total = new this.prom.Histogram({
    name: 'strata_serving_request_seconds',
    help: 'Time from the request reaching serving to its outputs being ready',
    labelNames: ['deployment', 'version'] as const,
    buckets: SECONDS,
    registers: [this.registry],
  });

  /** Requests per model run of deployments with batching on (1 for a request that ran alone). */
  readonly batchSize = new this.prom.Histogram({
    name: 'strata_serving_batch_size',
    help: 'Requests coalesced into one model run, for deployments with adaptive batching',
    labelNames: ['deployment', 'version'] as const,
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers: [this.registry],
  });

  // Children bound to their labels once: an unbound observe() hashes its label object every time.
  private readonly latencies = new Map<string, Record<'queue' | 'compute' | 'total', Histogram.Internal<'deployment' | 'version'>>>();
  private readonly served = new Map<string, Counter.Internal>();

  /** The queue, compute and total histograms of one deployment version. */
  latency(deployment: string, version: string) {
    const key = `${deployment}\0${version}`;
    let bound = this.latencies.get(key);
    if (!bound) {
      const labels = { deployment, version };
      bound = { queue: this.queue.labels(labels), compute: this.compute.labels(labels), total: this.total.labels(labels) };
      this.latencies.set(key, bound);
    }
    return bound;
  }

  /** The request counter of one deployment version and lane. */
  requestsOf(deployment: string, version: string, lane: string): Counter.Internal {
    const key = `${deployment}\0${version}\0${lane}`;
    let bound = this.served.get(key);
    if (!bound) {
      bound = this.requests.labels({ deployment, version, lane });
      this.served.set(key, bound);
    }
    return bound;
  }

  /** The Prometheus text exposition. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
