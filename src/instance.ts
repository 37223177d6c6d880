import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { DataService } from './data/service.js';
import { InvalidArgumentError, NotFoundError } from './errors.js';
import { openMetaDb, type MetaDb } from './meta/db.js';
import { ChunkStore } from './storage/chunk-store.js';
import { LocalObjectStore } from './storage/local.js';
import { createLocalExecutor } from './exec/executor.js';
import { Lineage } from './lineage/graph.js';
import { OpenLineageExporter, type OpenLineageConfig } from './lineage/openlineage-sink.js';
import { TrackingService } from './tracking/service.js';
import { Registry } from './tracking/registry.js';
import { Scheduler } from './pipelines/scheduler.js';
import { PipelineService } from './pipelines/service.js';
import { Triggers } from './pipelines/triggers.js';
import { parseDuration } from './pipelines/duration.js';
import { DeploymentService } from './serving/deployments.js';
import { ServingManager } from './serving/manager.js';
import { OnnxRuntime } from './serving/onnx-runtime.js';
import { Catalog } from './governance/catalog.js';
import { AccessControl } from './governance/access.js';
import { pipelineAuthorizer } from './governance/pipeline-rights.js';
import { defaultAuthor } from './data/service.js';
import { Classifier, classifierOptionsFromEnv } from './governance/classifier.js';
import { AuditLog } from './governance/audit.js';
import { ensureInstanceKey } from './governance/keys.js';

// An instance is a directory (conventionally `.strata/`) holding config.json,
// the embedded SQLite database (unless config names PostgreSQL) and the local
// object store. This file wires the layers together; nothing else does.

/** Where new commits are scanned and indexed: in this process (eager) or by a later `strata index` (deferred). */
export type Indexing = 'eager' | 'deferred';

export interface InstanceConfig {
  /** SQLite file (relative to the instance) or a postgres:// URL. */
  database: string;
  /** OpenLineage export of pipeline jobs; $STRATA_OPENLINEAGE_FILE/_URL/_NAMESPACE/_API_KEY override it. */
  openlineage?: OpenLineageConfig;
}

const CONFIG = 'config.json';

/** Finds the instance: explicit --home, then $STRATA_HOME, then the nearest .strata/ upwards. */
export function findHome(explicit?: string): string {
  if (explicit) return resolve(explicit);
  if (process.env.STRATA_HOME) return resolve(process.env.STRATA_HOME);
  for (let dir = process.cwd(); ; dir = dirname(dir)) {
    if (existsSync(join(dir, '.strata', CONFIG))) return join(dir, '.strata');
    if (dirname(dir) === dir) break;
  }
  throw new NotFoundError('no Strata instance here: run `strata init`, or pass --home DIR / set STRATA_HOME');
}

export class Instance {
  private constructor(
    readonly home: string,
    readonly config: InstanceConfig,
    readonly meta: MetaDb,
    private objects: LocalObjectStore,
    readonly data: DataService,
    readonly pipelines: PipelineService,
    readonly lineage: Lineage,
    readonly tracking: TrackingService,
    readonly registry: Registry,
  ) {}

  private schedulerInstance?: Scheduler;
  private triggersInstance?: Triggers;
  private servingInstance?: ServingManager;
  private catalogInstance?: Catalog;
  private auditInstance?: AuditLog;

  /** The append-only audit log (Merkle tree over entries, checkpoints signed with the instance key). */
  get audit(): AuditLog {
    this.auditInstance ??= new AuditLog(this.meta.db, this.home, this.meta.hooks);
    return this.auditInstance;
  }

  private accessInstance?: AccessControl;

  /** Users, API tokens and role grants. */
  get access(): AccessControl {
    this.accessInstance ??= new AccessControl(this.meta.db);
    return this.accessInstance;
  }

  private deferred = new Set<string>();

  /** Commits (REPO@ID) this process made and left to a later `strata index` (indexing 'deferred'). */
  get deferredCommits(): string[] {
    return [...this.deferred];
  }

  /** The first admin and its token, made by `Instance.init` (shown once by `strata init`); undefined on an opened instance. */
  initAdmin?: { user: string; token: string };

  /** Catalog and discovery: searchable entries for repos, pipelines, models and deployments. */
  get catalog(): Catalog {
    this.catalogInstance ??= new Catalog(this.meta, this.data);
    return this.catalogInstance;
  }

  private classificationInstance?: Classifier;

  /** PII classification of every commit, and labels through lineage. Settings: $STRATA_PII_MAX_BYTES, $STRATA_PII_COUNTRY. */
  get classification(): Classifier {
    this.classificationInstance ??= new Classifier(this.meta.db, this.data, this.pipelines, this.registry, {
      ...classifierOptionsFromEnv(),
      audit: () => this.audit,
      onClassified: (repo) => this.piiLabelsMayHaveChanged(repo),
    });
    return this.classificationInstance;
  }

  /** After a scan of `repo`: a repo whose PII labels changed changes the catalog's labels downstream of it too. */
  async piiLabelsMayHaveChanged(repo: string): Promise<void> {
    const { labels } = await this.classification.labels('repo', repo);
    await this.catalog.labelsChanged('repo', repo, 'pii:', labels);
  }

  /** Deployments and the models they serve; made on first use. The server starts it; the local client loads models on demand. */
  get serving(): ServingManager {
    this.servingInstance ??= new ServingManager(new DeploymentService(this.meta.db, this.registry), this.registry, this.data, new OnnxRuntime());
    return this.servingInstance;
  }

  /** Cron ticks and git checkouts for pipelines' cron and git inputs. Git poll interval: $STRATA_GIT_POLL (default 60s). */
  get triggers(): Triggers {
    const poll = process.env.STRATA_GIT_POLL ? parseDuration(process.env.STRATA_GIT_POLL) : undefined;
    this.triggersInstance ??= new Triggers(this.meta.db, this.data, { gitPollMs: poll ?? 60_000 });
    return this.triggersInstance;
  }

  /** The scheduler, with the local executor; made on first use (it probes for bubblewrap). */
  get scheduler(): Scheduler {
    this.schedulerInstance ??= new Scheduler(this.meta.db, this.data, this.pipelines, this.tracking, createLocalExecutor(), {
      scratch: join(this.home, 'scratch'),
      hide: [this.home],
      registry: this.registry,
      // Jobs run with their pipeline creator's rights, checked before each job's datums run.
      authorize: pipelineAuthorizer(this),
    });
    if (!this.openLineageInstance) {
      this.openLineageInstance =
        OpenLineageExporter.fromConfig(this.config.openlineage, this.home, this.data, {
          // The schema facet: columns inferred from the commit's CSV/TSV/JSON-lines files.
          schemaOf: (_repo, commit) => this.catalog.columnsAt(commit),
        }) ?? null;
      this.openLineageInstance?.attach(this.schedulerInstance);
    }
    return this.schedulerInstance;
  }

  private openLineageInstance?: OpenLineageExporter | null;

  /** The OpenLineage export attached to the scheduler, or undefined when it is off (or the scheduler not made yet). */
  get openLineage(): OpenLineageExporter | undefined {
    return this.openLineageInstance ?? undefined;
  }

  /** Creates an instance directory. `database` overrides the embedded SQLite default. */
  static async init(home: string, opts: { database?: string } = {}): Promise<Instance> {
    const dir = resolve(home);
    if (existsSync(join(dir, CONFIG))) throw new InvalidArgumentError(`${dir} is already a Strata instance`);
    mkdirSync(join(dir, 'objects'), { recursive: true });
    const database = opts.database ?? process.env.STRATA_DATABASE ?? 'strata.db';
    const config: InstanceConfig = { database };
    const instance = await Instance.openWith(dir, config);
    // The Ed25519 key that signs audit checkpoints (<home>/keys/, private key mode 0600).
    ensureInstanceKey(dir);
    // The instance's creator is its first admin; `strata init` prints this token once.
    const admin = await instance.access.bootstrap(defaultAuthor());
    instance.initAdmin = { user: admin.user, token: admin.token };
    writeFileSync(join(dir, CONFIG), JSON.stringify(config, null, 2) + '\n');
    return instance;
  }

  /**
   * `indexing`: 'eager' (default) scans new commits for PII and re-indexes their catalog entries in this
   * process, and close() waits for it; 'deferred' only records the commits (deferredCommits) for a
   * background `strata index`, as the CLI does so a put returns as soon as its data is committed.
   */
  static async open(home: string, opts: { database?: string; indexing?: Indexing } = {}): Promise<Instance> {
    const dir = resolve(home);
    let config: InstanceConfig;
    try {
      config = JSON.parse(readFileSync(join(dir, CONFIG), 'utf8'));
    } catch (err) {
      throw new NotFoundError(`${dir} is not a Strata instance (no readable ${CONFIG}); run \`strata init\` there first`);
    }
    if (opts.database ?? process.env.STRATA_DATABASE) config = { ...config, database: (opts.database ?? process.env.STRATA_DATABASE)! };
    return Instance.openWith(dir, config, opts.indexing);
  }

  private static async openWith(dir: string, config: InstanceConfig, indexing: Indexing = 'eager'): Promise<Instance> {
    const target = /^postgres(ql)?:\/\//.test(config.database) ? config.database : resolve(dir, config.database);
    const meta = await openMetaDb(target);
    const objects = new LocalObjectStore(join(dir, 'objects'));
    const chunks = new ChunkStore(meta.db, objects);
    const data = new DataService(meta.db, chunks);
    const tracking = new TrackingService(meta.db, data);
    const lineage = new Lineage(meta.db, data);
    const registry = new Registry(meta.db, data, lineage);
    const instance = new Instance(dir, config, meta, objects, data, new PipelineService(meta.db, data), lineage, tracking, registry);
    if (indexing === 'eager') {
      // From the start, so a repo's entry follows commits made by this process.
      instance.catalog.watch();
      // Every commit this process makes is scanned for PII; close() waits for the scans.
      instance.classification.start();
    } else {
      instance.classification.start({ scanCommits: false });
      instance.data.onCommit((event) => void instance.deferred.add(`${event.repo}@${event.commit}`));
    }
    // PII labels (pii:email, ...) are catalog labels: searchable, and filterable with --label pii:email.
    instance.catalog.addLabelSource(async (kind, name) => {
      if (kind === 'deployment') return {};
      const { labels } = await instance.classification.labels(kind, name);
      return Object.fromEntries(labels.map((label) => [label, 'true']));
    });
    // Promotion gates may refuse a version by its classification (no_label:pii:ssn).
    registry.labelsOf = async (name, version) => (await instance.classification.labels('model', `${name}@${version}`)).labels;
    // A pipeline's inputs and `declassifies` decide the labels its output (and everything below) inherits.
    instance.pipelines.onSaved(async () => {
      for (const kind of ['repo', 'pipeline', 'model'] as const) await instance.catalog.invalidate(kind);
    });
    instance.catalog.setClassificationProvider((kind, name) => (kind === 'deployment' ? Promise.resolve(null) : instance.classification.labels(kind, name)));
    return instance;
  }

  async close(): Promise<void> {
    this.triggersInstance?.stop();
    await this.schedulerInstance?.stop();
    await this.openLineageInstance?.close(); // after the scheduler: its last job events go out
    await this.servingInstance?.stop();
    // After the scheduler: its last output commits are scanned too.
    await this.classificationInstance?.close();
    // Indexing that commits started (the scheduler's last ones included) must finish while the database is open.
    await this.catalogInstance?.drain();
    await this.objects.close();
    await this.meta.close();
  }
}
