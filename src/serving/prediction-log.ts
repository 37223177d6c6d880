import type { DataService } from '../data/service.js';
import { AlreadyExistsError, StrataError } from '../errors.js';
import type { ModelVersion } from '../tracking/types.js';
import { oipOutputs } from './protocol.js';
import type { HostTensor } from './runtime.js';

// Prediction logging: a sample of a deployment's request/response pairs,
// committed in batches as JSON-lines files to the repo
// `<deployment>-predictions` (created on first use), one new file per batch:
// /YYYY-MM-DD/<timestamp>-<seq>.jsonl. They are versioned data like any other,
// for pipelines (drift analysis, retraining).
//
// A request only pays for the sampling draw and a push onto an in-memory
// buffer: tensors are kept by reference and turned into JSON when the batch is
// written, after the response. The buffer is bounded; when full, records are
// dropped and counted. A batch is written every FLUSH_RECORDS records or
// FLUSH_MS after its first record, whichever comes first, and on stop().
// A failed write loses that batch (counted, with the error) and never reaches
// a request.

export const FLUSH_RECORDS = 100;
export const FLUSH_MS = 2000;
/** Records buffered per deployment beyond which new ones are dropped. */
export const MAX_BUFFERED = 10_000;

export interface PredictionRecord {
  time: number;
  request_id?: string;
  version: ModelVersion;
  lane: 'primary' | 'canary';
  inputs: Record<string, HostTensor>;
  outputs: Record<string, HostTensor>;
}

/** What `deploy inspect` shows of a deployment's prediction log (counted in memory by this process). */
export interface LoggingStats {
  /** The configured sampling rate, 0 to 1. */
  rate: number;
  repo: string;
  /** Records sampled and buffered. */
  sampled: number;
  /** Records committed to the repo. */
  committed: number;
  /** Files (batches) committed. */
  files: number;
  /** Records dropped because the buffer was full. */
  dropped: number;
  /** Batches that failed to commit, and the records they held. */
  errors: number;
  lost: number;
  /** Records waiting to be committed. */
  buffered: number;
  last_error?: string;
  last_commit?: string;
}

interface Log {
  deployment: string;
  rate: number;
  buffer: PredictionRecord[];
  timer?: NodeJS.Timeout;
  /** The write in progress, if any; writes of one deployment never overlap. */
  writing?: Promise<void>;
  repoReady: boolean;
  stats: LoggingStats;
}

/** The repo a deployment's predictions are committed to. */
export const predictionsRepo = (deployment: string) => `${deployment}-predictions`;

export class PredictionLogger {
  private logs = new Map<string, Log>();
  private seq = 0;

  constructor(
    private data: DataService,
    private opts: { flushRecords?: number; flushMs?: number; maxBuffered?: number } = {},
  ) {}

  /** Sets a deployment's sampling rate (0 turns logging off; what is buffered is still written). */
  configure(deployment: string, rate: number): void {
    let log = this.logs.get(deployment);
    if (!log) {
      if (!(rate > 0)) return;
      log = {
        deployment,
        rate,
        buffer: [],
        repoReady: false,
        stats: { rate, repo: predictionsRepo(deployment), sampled: 0, committed: 0, files: 0, dropped: 0, errors: 0, lost: 0, buffered: 0 },
      };
      this.logs.set(deployment, log);
    }
    log.rate = rate > 0 ? Math.min(rate, 1) : 0;
    log.stats.rate = log.rate;
  }

  /** Whether a request to `deployment` should be logged: a draw against its rate. */
  sample(deployment: string): boolean {
    const log = this.logs.get(deployment);
    return !!log && log.rate > 0 && (log.rate >= 1 || Math.random() < log.rate);
  }

  /** Buffers a sampled record; never throws, never waits. */
  record(deployment: string, rec: PredictionRecord): void {
    const log = this.logs.get(deployment);
    if (!log) return;
    if (log.buffer.length >= (this.opts.maxBuffered ?? MAX_BUFFERED)) {
      log.stats.dropped++;
      return;
    }
    log.buffer.push(rec);
    log.stats.sampled++;
    if (log.buffer.length >= (this.opts.flushRecords ?? FLUSH_RECORDS)) {
      if (!log.writing) this.flush(log);
    } else if (!log.timer) {
      log.timer = setTimeout(() => {
        log.timer = undefined;
        if (!log.writing) this.flush(log);
      }, this.opts.flushMs ?? FLUSH_MS);
      log.timer.unref();
    }
  }

  stats(deployment: string): LoggingStats | undefined {
    const log = this.logs.get(deployment);
    return log && { ...log.stats, buffered: log.buffer.length };
  }

  /** Writes everything buffered for `deployment` (all deployments when omitted) and waits for it. */
  async drain(deployment?: string): Promise<void> {
    const logs = deployment === undefined ? [...this.logs.values()] : [this.logs.get(deployment)].filter((l): l is Log => !!l);
    await Promise.all(
      logs.map(async (log) => {
        while (log.writing || log.buffer.length > 0) {
          if (log.writing) await log.writing;
          else await this.flush(log);
        }
      }),
    );
  }

  /** Writes the buffered records of every deployment and forgets them all. */
  async stop(): Promise<void> {
    await this.drain();
    for (const log of this.logs.values()) clearTimeout(log.timer);
    this.logs.clear();
  }

  /** Takes up to a batch from the buffer and commits it as one file; then goes on while a full batch is waiting. */
  private flush(log: Log): Promise<void> {
    clearTimeout(log.timer);
    log.timer = undefined;
    if (log.buffer.length === 0) return Promise.resolve();
    // At most one batch per file; what is left goes in the next.
    const batch = log.buffer.splice(0, this.opts.flushRecords ?? FLUSH_RECORDS);
    const run = this.write(log, batch)
      .then((commit) => {
        log.stats.committed += batch.length;
        log.stats.files++;
        log.stats.last_commit = commit;
      })
      .catch((err: unknown) => {
        log.stats.errors++;
        log.stats.lost += batch.length;
        log.stats.last_error = (err as Error).message;
      })
      .finally(() => {
        log.writing = undefined;
        const full = log.buffer.length >= (this.opts.flushRecords ?? FLUSH_RECORDS);
        if (full) void this.flush(log);
        else if (log.buffer.length > 0 && !log.timer) {
          log.timer = setTimeout(() => {
            log.timer = undefined;
            if (!log.writing) void this.flush(log);
          }, this.opts.flushMs ?? FLUSH_MS);
          log.timer.unref();
        }
      });
    log.writing = run;
    return run;
  }

  private async write(log: Log, batch: PredictionRecord[]): Promise<string> {
    const repo = log.stats.repo;
    if (!log.repoReady) {
      try {
        await this.data.createRepo({
          name: repo,
          description: `Predictions of deployment "${log.deployment}" (sampled request/response pairs with model, version and data commit), written by strata serving as JSON lines`,
          labels: { 'strata.deployment': log.deployment },
        });
      } catch (err) {
        if (!(err instanceof AlreadyExistsError)) throw err;
      }
      log.repoReady = true;
    }
    const lines = batch.map((r) => JSON.stringify(lineOf(log.deployment, r))).join('\n') + '\n';
    const now = new Date();
    const day = now.toISOString().slice(0, 10);
    const stamp = now.toISOString().replace(/[:.]/g, '-');
    const path = `/${day}/${stamp}-${String(++this.seq).padStart(6, '0')}.jsonl`;
    try {
      const put = await this.data.commit(repo, 'master', [{ op: 'put', path, content: Buffer.from(lines) }], {
        message: `${batch.length} predictions of deployment ${log.deployment}`,
        author: 'strata-serving',
      });
      return put.commit;
    } catch (err) {
      // The repo may have been deleted since: make it again next time.
      if (err instanceof StrataError && err.code === 'NOT_FOUND') log.repoReady = false;
      throw err;
    }
  }
}

/** One JSON line: the request and response as OIP tensors, with the lineage of the version that answered. */
function lineOf(deployment: string, r: PredictionRecord): Record<string, unknown> {
  return {
    time: new Date(r.time).toISOString(),
    ...(r.request_id !== undefined ? { request_id: r.request_id } : {}),
    deployment,
    model: r.version.name,
    version: r.version.version,
    lane: r.lane,
    data_commit: r.version.lineage.map((l) => `${l.repo}@${l.commit}`).join(','),
    inputs: oipOutputs(r.inputs),
    outputs: oipOutputs(r.outputs),
  };
}
