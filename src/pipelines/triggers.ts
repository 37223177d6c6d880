import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { lazyRequire } from '../lazy.js';
import type { Kysely } from 'kysely';
import type { DataService } from '../data/service.js';
import type { Change } from '../data/types.js';
import { InvalidArgumentError, StrataError } from '../errors.js';
import type { Schema } from '../meta/schema.js';
import { parseDuration } from './duration.js';
import { childInputs, type CronInput, type GitInput, type Input, type PipelineSpec } from './spec.js';

// Inputs that are not repos become repos: a cron input's ticks and a git
// input's checkouts are committed to the input's own repo
// (`<pipeline>_<input>`), and from there on the scheduler treats them like
// any pfs input. Cron ticks are timed with croner (`@every 1h` as in
// Pachyderm); git branches are polled with `git ls-remote` and fetched with
// `git clone`, and a push webhook makes a branch be looked at at once.

const run = promisify(execFile);

export interface GitSyncResult {
  pipeline: string;
  input: string;
  sha: string;
  /** False when the branch was already at this commit. */
  changed: boolean;
}

export class Triggers {
  private crons = new Map<string, { stop(): void; spec: string }>();
  private gitTimer?: NodeJS.Timeout;
  private resync?: NodeJS.Timeout;

  constructor(
    private db: Kysely<Schema>,
    private data: DataService,
    private opts: { gitPollMs: number } = { gitPollMs: 60_000 },
  ) {}

  /** Server mode: keep cron schedules in step with the pipelines, and poll git inputs. */
  start(): void {
    const sync = () => this.syncCrons().catch((err) => process.stderr.write(`strata triggers: ${(err as Error).message}\n`));
    void sync();
    this.resync = setInterval(sync, 2000);
    const poll = () =>
      this.syncGit()
        .catch((err) => process.stderr.write(`strata triggers: git: ${(err as Error).message}\n`))
        .finally(() => (this.gitTimer = setTimeout(poll, this.opts.gitPollMs)));
    this.gitTimer = setTimeout(poll, 0);
  }

  stop(): void {
    clearInterval(this.resync);
    clearTimeout(this.gitTimer);
    for (const c of this.crons.values()) c.stop();
    this.crons.clear();
  }

  /** Commits one tick to a cron input's repo (what the schedule does; also callable directly). */
  async tick(input: CronInput, at = new Date()): Promise<void> {
    const name = at.toISOString();
    const changes: Change[] = [{ op: 'put', path: `/${name}`, content: new TextEncoder().encode(`${name}\n`) }];
    await this.data.commit(input.repo, 'master', changes, { replace: input.overwrite, message: `cron tick ${name}`, author: 'cron' });
  }

  private async syncCrons(): Promise<void> {
    const wanted = new Map<string, CronInput>();
    for (const p of await this.pipelineSpecs()) {
      for (const input of leaves(p.input)) if ('cron' in input) wanted.set(`${p.pipeline.name}/${input.cron.name}`, input.cron);
    }
    for (const [key, c] of this.crons) {
      if (wanted.get(key)?.spec !== c.spec) {
        c.stop();
        this.crons.delete(key);
      }
    }
    for (const [key, input] of wanted) {
      if (this.crons.has(key)) continue;
      this.crons.set(key, { spec: input.spec, stop: schedule(input.spec, () => void this.tick(input).catch(() => {})) });
    }
  }

  /**
   * Looks at the branches of git inputs (all, or those matching `match`) and
   * commits a new checkout where the branch moved.
   */
  async syncGit(match?: (input: GitInput, pipeline: string) => boolean): Promise<GitSyncResult[]> {
    const results: GitSyncResult[] = [];
    for (const p of await this.pipelineSpecs()) {
      for (const input of leaves(p.input)) {
        if (!('git' in input)) continue;
        const git = input.git;
        if (match && !match(git, p.pipeline.name)) continue;
        const sha = await remoteHead(git);
        const head = await this.db.selectFrom('branches').select('head').where('repo', '=', git.repo).where('name', '=', 'master').executeTakeFirst();
        const current = head?.head ? await this.data.inspectCommit(`${git.repo}@${head.head}`) : undefined;
        const changed = !current?.provenance.some((prov) => prov.commit === sha);
        if (changed) await this.ingest(git, sha);
        results.push({ pipeline: p.pipeline.name, input: git.name, sha, changed });
      }
    }
    return results;
  }

  /** A GitHub-style push event: sync the git inputs that watch its repository and branch. */
  async onPush(payload: unknown): Promise<GitSyncResult[]> {
    const body = payload as { ref?: unknown; repository?: Record<string, unknown> };
    if (typeof body?.ref !== 'string' || !body.repository || typeof body.repository !== 'object') {
      throw new InvalidArgumentError('webhook payload: expected a push event with "ref" and "repository" (GitHub format)');
    }
    const branch = body.ref.replace(/^refs\/heads\//, '');
    const urls = new Set(
      ['clone_url', 'html_url', 'ssh_url', 'git_url', 'url', 'full_name']
        .map((k) => body.repository![k])
        .filter((v): v is string => typeof v === 'string')
        .map(normalizeUrl),
    );
    return this.syncGit((input) => input.branch === branch && (urls.has(normalizeUrl(input.url)) || [...urls].some((u) => normalizeUrl(input.url).endsWith(`/${u}`))));
  }

  private async ingest(git: GitInput, sha: string): Promise<void> {
    const dir = await mkdtemp(join(tmpdir(), 'strata-git-'));
    try {
      await gitCmd(['clone', '--quiet', '--no-tags', '--depth', '1', '--branch', git.branch, toFetchable(git.url), dir], git);
      const { stdout } = await gitCmd(['-C', dir, 'rev-parse', 'HEAD'], git);
      const checkedOut = stdout.trim();
      const files: Change[] = [];
      const walk = async (abs: string, rel: string) => {
        for (const e of await readdir(abs, { withFileTypes: true })) {
          if (rel === '' && e.name === '.git') continue;
          const path = `${rel}/${e.name}`;
          if (e.isDirectory()) await walk(join(abs, e.name), path);
          else if (e.isFile()) files.push({ op: 'put', path, content: await readFile(join(abs, e.name)) });
        }
      };
      await walk(dir, '');
      await this.data.commit(git.repo, 'master', files, {
        replace: true,
        provenance: [{ repo: `git:${git.url}`, commit: checkedOut || sha }],
        message: `git ${git.url} ${git.branch} at ${checkedOut || sha}`,
        author: 'git',
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  private async pipelineSpecs(): Promise<PipelineSpec[]> {
    const rows = await this.db.selectFrom('pipelines').select('spec').where('stopped', '=', 0).execute();
    return rows.map((r) => JSON.parse(r.spec) as PipelineSpec);
  }
}

function leaves(input: Input): Input[] {
  const children = childInputs(input);
  return children.length ? children.flatMap(leaves) : [input];
}

/** Starts a schedule; returns its stop function. `@every <duration>` runs at a fixed interval. */
export function schedule(spec: string, fn: () => void): () => void {
  const every = /^@every\s+(\S+)$/.exec(spec.trim());
  if (every) {
    const ms = parseDuration(every[1]!);
    if (ms === undefined) throw new InvalidArgumentError(`cron spec "${spec}": "${every[1]}" is not a duration (e.g. 30s, 5m, 1h)`);
    const timer = setInterval(fn, Math.max(ms, 1000));
    return () => clearInterval(timer);
  }
  const tz = /^(?:CRON_)?TZ=(\S+)\s+(.*)$/.exec(spec.trim());
  const { Cron } = lazyRequire('croner') as typeof import('croner');
  const job = new Cron(tz ? tz[2]! : spec, { timezone: tz?.[1] }, fn);
  return () => job.stop();
}

async function remoteHead(git: GitInput): Promise<string> {
  const { stdout } = await gitCmd(['ls-remote', toFetchable(git.url), `refs/heads/${git.branch}`], git);
  const sha = stdout.split(/\s+/)[0];
  if (!sha) throw new StrataError('NOT_FOUND', `git input ${git.name}: branch "${git.branch}" not found at ${git.url}`);
  return sha;
}

async function gitCmd(args: string[], git: GitInput) {
  try {
    return await run('git', args, { env: { ...process.env, GIT_TERMINAL_PROMPT: '0' }, maxBuffer: 16 << 20 });
  } catch (err) {
    const e = err as { stderr?: string; message: string; code?: string };
    if (e.code === 'ENOENT') throw new StrataError('FAILED_PRECONDITION', 'git input: the `git` command is not installed');
    throw new StrataError('INTERNAL', `git input ${git.name} (${git.url}): git ${args[0]} failed: ${(e.stderr || e.message).trim()}`, { cause: err });
  }
}

/** A local path is given to git as file:// so shallow clones work. */
function toFetchable(url: string): string {
  return url.startsWith('/') ? `file://${url}` : url;
}

function normalizeUrl(url: string): string {
  return url
    .replace(/^file:\/\//, '')
    .replace(/\.git$/, '')
    .replace(/\/+$/, '')
    .toLowerCase();
}
