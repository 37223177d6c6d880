import { open } from 'node:fs/promises';
import type { LogBatch } from './service.js';

// The metrics-file protocol: a step in any language appends JSON lines to the
// file named by $STRATA_METRICS,
//   {"metric":"accuracy","value":0.93,"step":3}
//   {"param":"lr","value":"0.01"}
//   {"tag":"model_type","value":"logreg"}
//   {"artifact":"/pfs/out/confusion.png"}
// and the runner reads it while the step runs (every POLL_MS) and once more
// when it exits. A malformed line is reported, never fatal.

const POLL_MS = 500;

export interface MetricsFileSink {
  log(batch: LogBatch): Promise<void>;
  artifact(path: string): void;
  problem(message: string): void;
}

export class MetricsFileReader {
  private offset = 0;
  private partial = '';
  private line = 0;
  private timer?: NodeJS.Timeout;
  private reading: Promise<void> = Promise.resolve();

  constructor(
    private path: string,
    private sink: MetricsFileSink,
  ) {}

  start(): void {
    const tick = () => {
      this.reading = this.reading.then(() => this.readNew()).finally(() => {
        if (this.timer) this.timer = setTimeout(tick, POLL_MS);
      });
    };
    this.timer = setTimeout(tick, POLL_MS);
  }

  /** Stops polling and reads what is left, including a last line without a newline. */
  async finish(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.reading;
    await this.readNew(true);
  }

  private async readNew(final = false): Promise<void> {
    let file;
    try {
      file = await open(this.path, 'r');
    } catch {
      return; // not written (yet)
    }
    try {
      const { size } = await file.stat();
      if (size <= this.offset) return;
      const buf = Buffer.alloc(size - this.offset);
      const { bytesRead } = await file.read(buf, 0, buf.length, this.offset);
      this.offset += bytesRead;
      const text = this.partial + buf.subarray(0, bytesRead).toString('utf8');
      const lines = text.split('\n');
      this.partial = final ? '' : lines.pop()!;
      await this.handle(final ? lines.filter((l) => l.trim()) : lines);
    } finally {
      await file.close();
    }
  }

  private async handle(lines: string[]): Promise<void> {
    const batch: Required<LogBatch> = { metrics: [], params: [], tags: [] };
    for (const raw of lines) {
      this.line++;
      if (!raw.trim()) continue;
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(raw);
        if (!entry || typeof entry !== 'object' || Array.isArray(entry)) throw new Error('not a JSON object');
      } catch (err) {
        this.sink.problem(`STRATA_METRICS line ${this.line}: not JSON (${(err as Error).message}): ${raw.slice(0, 200)}`);
        continue;
      }
      if (typeof entry.metric === 'string') {
        batch.metrics.push({ key: entry.metric, value: entry.value, step: entry.step as number | undefined, timestamp: entry.timestamp as number | undefined });
      } else if (typeof entry.param === 'string') batch.params.push({ key: entry.param, value: entry.value });
      else if (typeof entry.tag === 'string') batch.tags.push({ key: entry.tag, value: entry.value });
      else if (typeof entry.artifact === 'string') this.sink.artifact(entry.artifact);
      else this.sink.problem(`STRATA_METRICS line ${this.line}: expected one of "metric", "param", "tag", "artifact": ${raw.slice(0, 200)}`);
    }
    if (batch.metrics.length + batch.params.length + batch.tags.length === 0) return;
    try {
      await this.sink.log(batch);
    } catch {
      // One bad entry rejects a whole batch; log entries one by one to keep the good ones and name the bad.
      for (const m of batch.metrics) await this.one({ metrics: [m] }, `metric "${m.key}"`);
      for (const p of batch.params) await this.one({ params: [p] }, `param "${p.key}"`);
      for (const t of batch.tags) await this.one({ tags: [t] }, `tag "${t.key}"`);
    }
  }

  private async one(batch: LogBatch, what: string): Promise<void> {
    try {
      await this.sink.log(batch);
    } catch (err) {
      this.sink.problem(`STRATA_METRICS: ${what} rejected: ${(err as Error).message}`);
    }
  }
}
