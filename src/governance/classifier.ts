import { createHash } from 'node:crypto';
import type { Insertable, Kysely } from 'kysely';
import type { CountryCode } from 'libphonenumber-js/max';
import { lazyRequire } from '../lazy.js';
import type { DataService } from '../data/service.js';
import type { FileInfo } from '../data/types.js';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError, StrataError } from '../errors.js';
import type { PiiScanTable, Schema } from '../meta/schema.js';
import type { PipelineService } from '../pipelines/service.js';
import { inputRepos, type PipelineSpec } from '../pipelines/spec.js';
import type { Registry } from '../tracking/registry.js';
import type { ModelVersion } from '../tracking/types.js';
import { CompiledCustomDetector, validateCustomDetector, type CustomDetectorSpec } from './pii/custom.js';
import type { Counts } from './pii/detectors.js';
import { DEFAULT_MAX_BYTES, scanContent, type ScanStatus } from './pii/scan.js';

// PII classification: a scanner that runs on every commit this process makes
// (all repos, pipeline outputs included) and records, per file content hash,
// which PII types it holds and how many — counts only, never values. Content
// already scanned (by hash, with the same detectors) is never scanned again,
// in any repo or commit; a commit's classification is the union over its
// files. Scans run one at a time in the background; `close()` waits for them
// (a short-lived CLI process finishes scanning what it committed), and
// `classify` scans on demand whatever is missing, so results are never absent.
//
// Labels (pii:<type>) of a repo are the types found at its default branch
// head, plus those inherited through the pipeline DAG from the repos a
// pipeline reads, minus what the pipeline's spec `declassifies`.

export interface FileClassification {
  path: string;
  hash: string;
  size: number;
  status: ScanStatus;
  bytes_scanned: number;
  /** PII type -> occurrences. */
  findings: Counts;
  /** Custom detectors that ran out of time on this file (only when there are any). */
  timed_out?: string[];
}

export interface CommitClassification {
  repo: string;
  commit: string;
  /** The path within the commit that was classified ('/' for all of it). */
  path: string;
  files: FileClassification[];
  /** Occurrences per type over all files. */
  totals: Counts;
  /** pii:<type> for every type found. */
  labels: string[];
}

export type LabelKind = 'repo' | 'model' | 'pipeline';

export interface LabelSet {
  kind: LabelKind;
  name: string;
  /** direct ∪ inherited labels, sorted. */
  labels: string[];
  /** Found in the repo's own files at its default branch head. */
  direct: string[];
  /** From upstream: `from` is the repo (or, for models, the repo@commit) whose files hold the PII. */
  inherited: { label: string; from: string }[];
  /** Upstream labels a pipeline on the way removed with `declassifies`. */
  declassified: { label: string; by: string }[];
}

export interface CustomDetectorInfo {
  name: string;
  pattern: string;
  flags: string;
  creator: string;
  created: string;
}

/** What the classifier needs of the audit log (governance/audit.ts AuditLog.append). */
export interface AuditSink {
  append(entry: { actor: string; action: string; target: string; outcome: 'ok' | 'denied' | 'error'; client?: string; detail?: Record<string, unknown> }): Promise<unknown>;
}

export interface ClassifierOptions {
  /** Bytes scanned per file at most; more is recorded as 'truncated'. Default 64 MiB. */
  maxBytes?: number;
  /** Country assumed for phone numbers without +CC. Default US. */
  defaultCountry?: CountryCode;
  /** The audit log, where declassifications are recorded. */
  audit?: () => AuditSink | undefined;
  /** Called after a background scan of a new commit finished, with the pii:<type> labels found in it. */
  onClassified?: (repo: string, commit: string, labels: string[]) => Promise<void>;
  /** Where background scan failures are reported (default: a warning on stderr). */
  onError?: (message: string) => void;
}

/** Bumped when the built-in detectors change, so older results are rescanned. */
const SCANNER_VERSION = 1;
const LOOKUP_BATCH = 500;
/** Scan results per INSERT statement (7 values a row, well under SQLite's and PostgreSQL's parameter limits). */
const STORE_BATCH = 200;
const SCAN_CONCURRENCY = 8;
/** Commits whose labels are remembered. */
const LABEL_CACHE_SIZE = 1024;
/** Stored scans remembered (recentlyStored): enough for the commits of a busy minute. */
const RECENT_SCANS = 10_000;

interface Ruleset {
  id: string;
  custom: CompiledCustomDetector[];
}

interface StoredScan {
  status: ScanStatus;
  bytes_scanned: number;
  findings: Counts;
  timed_out: string[];
}

export class Classifier {
  /** Content scans this process has run (tests check that unchanged content is never scanned again). */
  scans = 0;
  private readonly maxBytes: number;
  private readonly country: CountryCode;
  private tail: Promise<void> = Promise.resolve();
  private inflight = new Map<string, Promise<StoredScan>>();
  /**
   * hash/ruleset -> scans this process stored lately, most recent last. A caller that looked a hash up just
   * before another caller stored it (a commit's background scan and its catalog update, say) finds it here
   * instead of scanning it again.
   */
  private recentlyStored = new Map<string, StoredScan>();
  /** ruleset:commit -> labels of the whole commit, most recently used last. */
  private commitLabelCache = new Map<string, string[]>();
  private unsubscribe?: () => void;

  constructor(
    private db: Kysely<Schema>,
    private data: DataService,
    private pipelines: PipelineService,
    private registry: Registry,
    private opts: ClassifierOptions = {},
  ) {
    this.maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
    this.country = opts.defaultCountry ?? 'US';
  }

  /** Scans every commit this process makes from now on, in the background, and audits pipelines' declassifications. */
  start(opts: { scanCommits?: boolean } = {}): void {
    if (this.unsubscribe) return;
    // scanCommits false: commits are left to be scanned later (`strata index`) or on demand.
    const stopCommits = opts.scanCommits === false ? () => {} : this.data.onCommit((event) => this.enqueue(event.repo, event.commit));
    const stopPipelines = this.pipelines.onSaved((spec, info) => this.recordDeclassification(spec, info.creator));
    this.unsubscribe = () => (stopCommits(), stopPipelines());
  }

  /** Resolves when every queued scan has finished. */
  async idle(): Promise<void> {
    for (let seen: Promise<void> | undefined; seen !== this.tail; ) {
      seen = this.tail;
      await seen;
    }
  }

  /** Stops listening for commits and waits for the queued scans. */
  async close(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    await this.idle();
  }

  private enqueue(repo: string, commit: string): void {
    this.tail = this.tail.then(async () => {
      try {
        const result = await this.classify(`${repo}@${commit}`);
        await this.opts.onClassified?.(repo, commit, result.labels);
      } catch (err) {
        // The repo was deleted before its turn came: nothing left to classify.
        if (err instanceof NotFoundError) return;
        const report = this.opts.onError ?? ((m: string) => process.stderr.write(`strata: warning: ${m}\n`));
        report(`PII scan of ${repo}@${commit.slice(0, 12)} failed: ${(err as Error).message}`);
      }
    });
  }

  // ---------------------------------------------------------------- findings

  /** Per-file findings for a reference (REPO[@BRANCH|@COMMIT][:/path]); scans whatever has not been scanned yet. */
  async classify(ref: string): Promise<CommitClassification> {
    const { repo, commit, path } = await this.data.resolve(ref);
    const ruleset = await this.ruleset();
    const files: FileClassification[] = [];
    let batch: FileInfo[] = [];
    const flush = async () => {
      const stored = await this.lookup(batch.map((f) => f.hash), ruleset.id);
      const fresh = await this.scanMissing([...new Set(batch.map((f) => f.hash).filter((h) => !stored.has(h)))], ruleset);
      for (const f of batch) {
        const scan = stored.get(f.hash) ?? fresh.get(f.hash)!;
        files.push({
          path: f.path,
          hash: f.hash,
          size: f.size,
          status: scan.status,
          bytes_scanned: scan.bytes_scanned,
          findings: scan.findings,
          ...(scan.timed_out.length ? { timed_out: scan.timed_out } : {}),
        });
      }
      batch = [];
    };
    for await (const f of this.data.walk(`${repo}@${commit.id}:${path}`)) {
      batch.push(f);
      if (batch.length >= LOOKUP_BATCH) await flush();
    }
    await flush();
    const totals: Counts = {};
    for (const f of files) for (const [type, n] of Object.entries(f.findings)) totals[type] = (totals[type] ?? 0) + n;
    const labels = Object.keys(totals).sort().map((t) => `pii:${t}`);
    if (path === '/') this.remember(`${ruleset.id}:${commit.id}`, labels);
    return { repo, commit: commit.id, path, files, totals, labels };
  }

  /**
   * The labels of a whole commit: remembered from its last classification under the same detectors
   * (labels are asked for right after a scan and for every catalog entry), else classified now.
   */
  private async commitLabels(repo: string, commit: string): Promise<string[]> {
    const known = this.commitLabelCache.get(`${(await this.ruleset()).id}:${commit}`);
    return known ?? (await this.classify(`${repo}@${commit}`)).labels;
  }

  private remember(key: string, labels: string[]): void {
    this.commitLabelCache.delete(key);
    this.commitLabelCache.set(key, labels);
    if (this.commitLabelCache.size > LABEL_CACHE_SIZE) this.commitLabelCache.delete(this.commitLabelCache.keys().next().value!);
  }

  private async lookup(hashes: string[], ruleset: string): Promise<Map<string, StoredScan>> {
    const found = new Map<string, StoredScan>();
    if (hashes.length === 0) return found;
    const rows = await this.db.selectFrom('pii_scans').selectAll().where('hash', 'in', [...new Set(hashes)]).where('ruleset', '=', ruleset).execute();
    for (const r of rows) found.set(r.hash, storedScan(r));
    return found;
  }

  /**
   * Scans content hashes not stored yet (each once, however many callers ask at the same time) and stores the
   * results in one transaction: a row per file in a transaction of its own would cost an fsync per file.
   */
  private async scanMissing(hashes: string[], ruleset: Ruleset): Promise<Map<string, StoredScan>> {
    const results = new Map<string, StoredScan>();
    const rows: Insertable<PiiScanTable>[] = [];
    const mine: string[] = [];
    const scanOne = async (hash: string) => {
      const key = `${hash}/${ruleset.id}`;
      const stored = this.recentlyStored.get(key);
      if (stored) {
        results.set(hash, stored);
        return;
      }
      let running = this.inflight.get(key);
      if (!running) {
        running = (async () => {
          this.scans++;
          const scan = await scanContent(this.data.readContent(hash), { maxBytes: this.maxBytes, defaultCountry: this.country, custom: ruleset.custom });
          rows.push({
            hash,
            ruleset: ruleset.id,
            status: scan.status,
            bytes_scanned: scan.bytes_scanned,
            findings: JSON.stringify(scan.findings),
            timed_out: JSON.stringify(scan.timed_out),
            scanned_at: Date.now(),
          });
          return { status: scan.status, bytes_scanned: scan.bytes_scanned, findings: scan.findings, timed_out: scan.timed_out };
        })();
        this.inflight.set(key, running);
        mine.push(key);
      }
      results.set(hash, await running);
    };
    try {
      // A few at a time: reading a file from the object store waits on I/O that another file's scan can fill.
      let next = 0;
      const worker = async () => {
        while (next < hashes.length) await scanOne(hashes[next++]!);
      };
      await Promise.all(Array.from({ length: Math.min(SCAN_CONCURRENCY, hashes.length) }, worker));
      if (rows.length) {
        await this.db.transaction().execute(async (trx) => {
          for (let i = 0; i < rows.length; i += STORE_BATCH) {
            await trx
              .insertInto('pii_scans')
              .values(rows.slice(i, i + STORE_BATCH))
              .onConflict((oc) =>
                oc.columns(['hash', 'ruleset']).doUpdateSet((eb) => ({
                  status: eb.ref('excluded.status'),
                  bytes_scanned: eb.ref('excluded.bytes_scanned'),
                  findings: eb.ref('excluded.findings'),
                  timed_out: eb.ref('excluded.timed_out'),
                  scanned_at: eb.ref('excluded.scanned_at'),
                })),
              )
              .execute();
          }
        });
      }
      for (const key of mine) {
        this.recentlyStored.set(key, results.get(key.slice(0, key.indexOf('/')))!);
        if (this.recentlyStored.size > RECENT_SCANS) this.recentlyStored.delete(this.recentlyStored.keys().next().value!);
      }
    } finally {
      for (const key of mine) this.inflight.delete(key);
    }
    return results;
  }

  /** The detectors in force: built-ins (versioned), settings and the custom detectors, fingerprinted. */
  private async ruleset(): Promise<Ruleset> {
    const specs = await this.detectorSpecs();
    const id = createHash('sha256')
      .update(JSON.stringify([SCANNER_VERSION, this.country, this.maxBytes, specs.map((d) => [d.name, d.pattern, d.flags])]))
      .digest('hex')
      .slice(0, 32);
    return { id, custom: specs.map((s) => new CompiledCustomDetector(s)) };
  }

  // ---------------------------------------------------------------- custom detectors

  private async detectorSpecs(): Promise<CustomDetectorSpec[]> {
    const rows = await this.db.selectFrom('pii_detectors').select(['name', 'pattern', 'flags']).orderBy('name').execute();
    return rows;
  }

  /** Adds an instance-wide regex detector; its matches count under `name` (label pii:<name>). */
  async addDetector(input: { name: string; pattern: string; flags?: string; creator?: string }): Promise<CustomDetectorInfo> {
    const spec = { name: input.name, pattern: input.pattern, flags: input.flags ?? '' };
    validateCustomDetector(spec);
    const existing = await this.db.selectFrom('pii_detectors').select('name').where('name', '=', spec.name).executeTakeFirst();
    if (existing) throw new AlreadyExistsError(`custom detector "${spec.name}" already exists; remove it first (strata classify detector rm ${spec.name})`);
    const row = { ...spec, creator: input.creator ?? '', created_at: Date.now() };
    await this.db.insertInto('pii_detectors').values(row).execute();
    return detectorInfo(row);
  }

  async listDetectors(): Promise<CustomDetectorInfo[]> {
    return (await this.db.selectFrom('pii_detectors').selectAll().orderBy('name').execute()).map(detectorInfo);
  }

  async removeDetector(name: string): Promise<void> {
    const res = await this.db.deleteFrom('pii_detectors').where('name', '=', name).executeTakeFirst();
    if (Number(res.numDeletedRows) === 0) throw new NotFoundError(`custom detector "${name}" not found (strata classify detector list shows them)`);
  }

  // ---------------------------------------------------------------- labels

  /** The PII labels of a repo, a pipeline (its output repo) or a model (NAME, NAME@VERSION or NAME@ALIAS). */
  async labels(kind: LabelKind, name: string): Promise<LabelSet> {
    if (kind === 'repo') {
      await this.data.inspectRepo(name);
      return { kind, name, ...finish(await this.repoLabels(name, new Map())) };
    }
    if (kind === 'pipeline') {
      await this.pipelines.spec(name);
      return { kind, name, ...finish(await this.repoLabels(name, new Map())) };
    }
    if (kind === 'model') return { kind, name, ...finish(await this.modelLabels(name)) };
    throw new InvalidArgumentError(`label kind "${kind as string}": expected repo, pipeline or model`);
  }

  private async repoLabels(repo: string, memo: Map<string, Promise<Partial3>>): Promise<Partial3> {
    let result = memo.get(repo);
    if (!result) {
      result = this.computeRepoLabels(repo, memo);
      memo.set(repo, result);
    }
    return result;
  }

  private async computeRepoLabels(repo: string, memo: Map<string, Promise<Partial3>>): Promise<Partial3> {
    const out: Partial3 = { direct: [], inherited: [], declassified: [] };
    const info = await this.data.inspectRepo(repo).catch((err) => {
      if (err instanceof NotFoundError) return undefined; // an input repo deleted since: nothing to inherit
      throw err;
    });
    if (!info) return out;
    // info.head: the default branch's head commit.
    if (info.head) out.direct = await this.commitLabels(repo, info.head);
    const spec = await this.pipelineSpec(repo);
    if (!spec) return out;
    const removed = new Set(declassifiedLabels(spec));
    // Specs are validated acyclic; a pipeline reading its own output repo would still not recurse.
    for (const input of [...new Set(inputRepos(spec).map((i) => i.repo))].filter((r) => r !== repo)) {
      const up = await this.repoLabels(input, memo);
      for (const candidate of [...up.direct.map((label) => ({ label, from: input })), ...up.inherited]) {
        if (removed.has(candidate.label)) out.declassified.push({ label: candidate.label, by: repo });
        else out.inherited.push(candidate);
      }
      // Declassifications further up stay visible downstream: they explain why a label is absent.
      out.declassified.push(...up.declassified);
    }
    return out;
  }

  private async pipelineSpec(name: string): Promise<PipelineSpec | undefined> {
    try {
      return (await this.pipelines.spec(name)).spec;
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  private async modelLabels(ref: string): Promise<Partial3> {
    const at = ref.indexOf('@');
    const name = at < 0 ? ref : ref.slice(0, at);
    const which = at < 0 ? undefined : ref.slice(at + 1);
    let versions: ModelVersion[];
    if (which === undefined) versions = await this.registry.listVersions(name);
    else if (/^\d+$/.test(which)) versions = [await this.registry.getVersion(name, Number(which))];
    else versions = [await this.registry.getVersionByAlias(name, which)];
    if (which === undefined) await this.registry.getModel(name);
    const out: Partial3 = { direct: [], inherited: [], declassified: [] };
    const memo = new Map<string, Promise<Partial3>>();
    for (const v of versions) {
      if (!v.repo || !v.commit) continue;
      let commitLabels: string[];
      try {
        commitLabels = (await this.classify(`${v.repo}@${v.commit}`)).labels;
      } catch (err) {
        if (err instanceof StrataError && err.code === 'NOT_FOUND') continue; // source repo deleted since
        throw err;
      }
      const from = `${v.repo}@${v.commit}`;
      out.inherited.push(...commitLabels.map((label) => ({ label, from })));
      const up = await this.repoLabels(v.repo, memo);
      out.inherited.push(...up.inherited);
      out.declassified.push(...up.declassified);
    }
    return out;
  }

  // ---------------------------------------------------------------- declassification

  /** Records a pipeline spec's `declassifies` in the audit log (called when a pipeline is created or updated). */
  async recordDeclassification(spec: PipelineSpec, actor: string): Promise<void> {
    const labels = declassifiedLabels(spec);
    if (labels.length === 0) return;
    const audit = this.opts.audit?.();
    if (!audit) return;
    await audit.append({ actor: actor || 'unknown', action: 'classification.declassify', target: `pipeline:${spec.pipeline.name}`, outcome: 'ok', detail: { labels } });
  }
}

interface Partial3 {
  direct: string[];
  inherited: { label: string; from: string }[];
  declassified: { label: string; by: string }[];
}

/** A spec's `declassifies` as labels: "email" and "pii:email" both mean pii:email. */
export function declassifiedLabels(spec: PipelineSpec): string[] {
  return [...new Set((spec.declassifies ?? []).map((l) => (l.startsWith('pii:') ? l : `pii:${l}`)))].sort();
}

/** Classifier settings from the environment: $STRATA_PII_MAX_BYTES (bytes per file) and $STRATA_PII_COUNTRY (e.g. GB). */
export function classifierOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): ClassifierOptions {
  const opts: ClassifierOptions = {};
  if (env.STRATA_PII_MAX_BYTES) {
    const n = Number(env.STRATA_PII_MAX_BYTES);
    if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`STRATA_PII_MAX_BYTES: expected a positive whole number of bytes, got "${env.STRATA_PII_MAX_BYTES}"`);
    opts.maxBytes = n;
  }
  if (env.STRATA_PII_COUNTRY) {
    const country = env.STRATA_PII_COUNTRY.toUpperCase();
    if (!(lazyRequire('libphonenumber-js/max') as typeof import('libphonenumber-js/max')).isSupportedCountry(country)) throw new InvalidArgumentError(`STRATA_PII_COUNTRY: "${env.STRATA_PII_COUNTRY}" is not a country code libphonenumber knows (e.g. US, GB, DE)`);
    opts.defaultCountry = country;
  }
  return opts;
}

function finish(p: Partial3): Omit<LabelSet, 'kind' | 'name'> {
  const uniq = <T>(items: T[], key: (t: T) => string) => [...new Map(items.map((i) => [key(i), i])).values()];
  const inherited = uniq(p.inherited, (i) => `${i.label}\u0000${i.from}`).sort((a, b) => a.label.localeCompare(b.label) || a.from.localeCompare(b.from));
  const declassified = uniq(p.declassified, (d) => `${d.label}\u0000${d.by}`).sort((a, b) => a.label.localeCompare(b.label) || a.by.localeCompare(b.by));
  const direct = [...new Set(p.direct)].sort();
  const labels = [...new Set([...direct, ...inherited.map((i) => i.label)])].sort();
  return { labels, direct, inherited, declassified };
}

function storedScan(r: Schema['pii_scans']): StoredScan {
  return { status: r.status as ScanStatus, bytes_scanned: Number(r.bytes_scanned), findings: JSON.parse(r.findings), timed_out: JSON.parse(r.timed_out) };
}

function detectorInfo(r: Schema['pii_detectors']): CustomDetectorInfo {
  return { name: r.name, pattern: r.pattern, flags: r.flags, creator: r.creator, created: new Date(Number(r.created_at)).toISOString() };
}
