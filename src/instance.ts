import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { DataService } from './data/service.js';
import { InvalidArgumentError, NotFoundError } from './errors.js';
import { openMetaDb, type MetaDb } from './meta/db.js';
import { ChunkStore } from './storage/chunk-store.js';
import { LocalObjectStore } from './storage/local.js';
import { createLocalExecutor } from './exec/executor.js';
import { Lineage } from './lineage/graph.js';
import { TrackingService } from './tracking/service.js';
import { Registry } from './tracking/registry.js';
import { Scheduler } from './pipelines/scheduler.js';
import { PipelineService } from './pipelines/service.js';
import { Triggers } from './pipelines/triggers.js';
import { parseDuration } from './pipelines/duration.js';
import { DeploymentService } from './serving/deployments.js';
import { ServingManager } from './serving/manager.js';
import { OnnxRuntime } from './serving/onnx-runtime.js';

// An instance is a directory (conventionally `.strata/`) holding config.json,
// the embedded SQLite database (unless config names PostgreSQL) and the local
// object store. This file wires the layers together; nothing else does.

export interface InstanceConfig {
  /** SQLite file (relative to the instance) or a postgres:// URL. */
  database: string;
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
    });
    return this.schedulerInstance;
  }

  /** Creates an instance directory. `database` overrides the embedded SQLite default. */
  static async init(home: string, opts: { database?: string } = {}): Promise<Instance> {
    const dir = resolve(home);
    if (existsSync(join(dir, CONFIG))) throw new InvalidArgumentError(`${dir} is already a Strata instance`);
    mkdirSync(join(dir, 'objects'), { recursive: true });
    const database = opts.database ?? process.env.STRATA_DATABASE ?? 'strata.db';
    const config: InstanceConfig = { database };
    const instance = await Instance.openWith(dir, config);
    writeFileSync(join(dir, CONFIG), JSON.stringify(config, null, 2) + '\n');
    return instance;
  }

  static async open(home: string, opts: { database?: string } = {}): Promise<Instance> {
    const dir = resolve(home);
    let config: InstanceConfig;
    try {
      config = JSON.parse(readFileSync(join(dir, CONFIG), 'utf8'));
    } catch (err) {
      throw new NotFoundError(`${dir} is not a Strata instance (no readable ${CONFIG}); run \`strata init\` there first`);
    }
    if (opts.database ?? process.env.STRATA_DATABASE) config = { ...config, database: (opts.database ?? process.env.STRATA_DATABASE)! };
    return Instance.openWith(dir, config);
  }

  private static async openWith(dir: string, config: InstanceConfig): Promise<Instance> {
    const target = /^postgres(ql)?:\/\//.test(config.database) ? config.database : resolve(dir, config.database);
    const meta = await openMetaDb(target);
    const objects = new LocalObjectStore(join(dir, 'objects'));
    const chunks = new ChunkStore(meta.db, objects);
    const data = new DataService(meta.db, chunks);
    const tracking = new TrackingService(meta.db, data);
    const lineage = new Lineage(meta.db, data);
    const registry = new Registry(meta.db, data, lineage);
    return new Instance(dir, config, meta, objects, data, new PipelineService(meta.db, data), lineage, tracking, registry);
  }

  async close(): Promise<void> {
    this.triggersInstance?.stop();
    await this.schedulerInstance?.stop();
    await this.servingInstance?.stop();
    await this.objects.close();
    await this.meta.close();
  }
}
