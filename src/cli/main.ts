import { createWriteStream, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { Command, CommanderError, Option } from 'commander';
import { exitCodeOf, InvalidArgumentError, StrataError } from '../errors.js';
import { findHome, Instance } from '../instance.js';
import { DEFAULT_BRANCH, parseRef } from '../data/refs.js';
import { defaultAuthor } from '../data/service.js';
import { VERSION } from '../api/version.js';
import type { JobInfo, PutResult, StrataClient } from '../sdk/client.js';
import { parseSpecText } from '../pipelines/spec-text.js';
import { localClient } from './local-client.js';
import { authorizedClient, localPrincipal } from './authorized-client.js';
import { registerAccessCommands } from './access-commands.js';
import { changesFrom, committedEntries, committedTrees, expandFiles, planSources } from './sources.js';
import { StatCache } from './stat-cache.js';
import { registerRunCommands } from './run-commands.js';
import { registerDeployCommands } from './deploy-commands.js';
import { parseByteSize } from './byte-size.js';
import { registerModelCommands } from './model-commands.js';
import { registerClassifyCommands } from './classify-commands.js';
import { registerCatalogCommands } from './catalog-commands.js';
import { cliIndexing, indexInBackground, registerIndexCommand } from './index-command.js';
import { registerAuditCommands } from './audit-commands.js';
import { formatBytes, progressBar } from './progress.js';
import { printJson, printTable } from './output.js';

// The `strata` command. Every command is a thin adapter over a StrataClient,
// which is either the instance opened in this process or a server reached
// over HTTP (--server / $STRATA_SERVER): the same code path for both.

/** Runs a command body with a StrataClient (in-process or HTTP) and closes it after: what command files register with. */
export type WithClient = <A extends unknown[]>(fn: (client: StrataClient, ...args: A) => Promise<void>) => (...args: A) => Promise<void>;

interface GlobalOptions {
  home?: string;
  server?: string;
  database?: string;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return Number(process.exitCode ?? 0);
  } catch (err) {
    return reportError(err);
  }
}

function reportError(err: unknown): number {
  if (err instanceof CommanderError) {
    // commander already printed its message (unknown option, missing argument, --help).
    return err.exitCode === 0 ? 0 : 2;
  }
  if (err instanceof StrataError) {
    process.stderr.write(`strata: ${err.message}\n`);
    if (process.env.STRATA_DEBUG && err.cause) process.stderr.write(`${String((err.cause as Error).stack ?? err.cause)}\n`);
    return exitCodeOf(err.code);
  }
  const e = err as Error;
  process.stderr.write(`strata: internal error: ${e?.message ?? String(err)}\n`);
  if (process.env.STRATA_DEBUG) process.stderr.write(`${e?.stack}\n`);
  return 1;
}

function buildProgram(): Command {
  const program = new Command('strata')
    .description('Versioned data, pipelines, tracking, serving and governance in one tool.')
    .option('--home <dir>', 'instance directory (default: $STRATA_HOME, else the nearest .strata/)')
    .option('--server <url>', 'talk to a running strata server (default: $STRATA_SERVER)')
    .option('--database <url>', 'metadata database: a SQLite file or postgres:// URL (default: $STRATA_DATABASE, else the instance config)')
    .version(VERSION, '-V, --version', 'print the version')
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)');

  const globals = (): GlobalOptions => program.opts<GlobalOptions>();
  // `home` is set when the instance is opened in this process (no --server).
  const withClient: WithClient = (fn) =>
    async (...args) => {
      const { client, home, instance } = await openClient(globals());
      localHome = home;
      try {
        await fn(client, ...args);
      } finally {
        await client.close();
        // Commits made here are scanned and indexed by a detached `strata index` (STRATA_INDEX=wait: already done).
        if (instance && indexInBackground(instance.home, globals().database, instance.deferredCommits) && process.stderr.isTTY) {
          process.stderr.write('strata: scanning the new commit(s) for PII and updating the catalog in the background\n');
        }
      }
    };
  let localHome: string | undefined;

  program
    .command('init')
    .description('create a Strata instance (.strata/ here, or --home DIR)')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const g = globals();
      const home = resolve(g.home ?? process.env.STRATA_HOME ?? '.strata');
      const instance = await Instance.init(home, { database: g.database });
      await instance.close();
      // The admin token exists only here: it is stored hashed.
      const admin = instance.initAdmin!;
      if (opts.json) printJson({ home, database: instance.meta.location, user: admin.user, token: admin.token });
      else {
        process.stdout.write(`Initialized Strata instance in ${home} (database: ${instance.meta.location})\n`);
        process.stdout.write(`Admin user: ${admin.user}\nAdmin token (shown once; keep it secret, use it as STRATA_TOKEN): ${admin.token}\n`);
      }
    });

  // ---- repos ----
  const repo = program.command('repo').description('manage versioned data repositories');
  repo
    .command('create <name>')
    .description('create a repo')
    .option('--description <text>', 'what the data is')
    .option('--owner <owner>', 'who owns it')
    .option('--label <key=value>', 'a label (repeatable)', collectLabel, {})
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, name: string, opts: { description?: string; owner?: string; label: Record<string, string>; json?: boolean }) => {
        const info = await client.createRepo({ name, description: opts.description, owner: opts.owner, labels: opts.label });
        if (opts.json) printJson(info);
        else process.stdout.write(`created repo ${info.name}\n`);
      }),
    );
  repo
    .command('list')
    .description('list repos')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, opts: { json?: boolean }) => {
        const repos = await client.listRepos();
        if (opts.json) return printJson(repos);
        printTable(
          ['NAME', 'SIZE', 'BRANCHES', 'HEAD', 'OWNER', 'DESCRIPTION'],
          repos.map((r) => [r.name, formatBytes(r.size), r.branches.join(','), r.head?.slice(0, 12) ?? '-', r.owner, r.description]),
        );
      }),
    );
  repo
    .command('inspect <name>')
    .description('show a repo')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, name: string, opts: { json?: boolean }) => {
        const r = await client.inspectRepo(name);
        if (opts.json) return printJson(r);
        const labels = Object.entries(r.labels).map(([k, v]) => `${k}=${v}`).join(', ');
        process.stdout.write(
          `Name: ${r.name}\nDescription: ${r.description}\nOwner: ${r.owner}\nLabels: ${labels}\nCreated: ${r.created}\n` +
            `Branches: ${r.branches.join(', ')}\nHead (${DEFAULT_BRANCH}): ${r.head ?? '-'}\nSize: ${formatBytes(r.size)}\n`,
        );
      }),
    );
  repo
    .command('delete <name>')
    .description('delete a repo, its branches and commits')
    .action(
      withClient(async (client, name: string) => {
        await client.deleteRepo(name);
        process.stdout.write(`deleted repo ${name}\n`);
      }),
    );

  // ---- branches ----
  const branch = program.command('branch').description('manage branches');
  branch
    .command('create <repo> <branch>')
    .description('create a branch, empty or at --from REF')
    .option('--from <ref>', 'start at this branch or commit')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, repoName: string, name: string, opts: { from?: string; json?: boolean }) => {
        const b = await client.createBranch(repoName, name, opts.from);
        if (opts.json) printJson(b);
        else process.stdout.write(`created branch ${b.repo}@${b.name}${b.head ? ` at ${b.head.slice(0, 12)}` : ''}\n`);
      }),
    );
  branch
    .command('list <repo>')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, repoName: string, opts: { json?: boolean }) => {
        const list = await client.listBranches(repoName);
        if (opts.json) return printJson(list);
        printTable(['BRANCH', 'HEAD'], list.map((b) => [b.name, b.head ?? '-']));
      }),
    );
  branch
    .command('delete <repo> <branch>')
    .action(
      withClient(async (client, repoName: string, name: string) => {
        await client.deleteBranch(repoName, name);
        process.stdout.write(`deleted branch ${repoName}@${name}\n`);
      }),
    );

  // ---- files ----
  program
    .command('put <ref> <paths...>')
    .description('commit local files or directories (or - for stdin) to REPO[@BRANCH][:/dest]')
    .option('-m, --message <text>', 'commit message', '')
    .option('--wait', 'then wait for the pipeline jobs this commit triggers (exit 1 if one fails)')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, refText: string, paths: string[], opts: { message: string; wait?: boolean; json?: boolean }) => {
        const { repo: repoName, branch: branchName, ref } = branchRef(refText, 'put');
        const { plan, stdinDest } = planSources(paths, ref.path, ref.hasPath && ref.path !== '/' ? true : false);
        const { files, dirs } = expandFiles(plan);
        if (files.length === 0 && !stdinDest) throw new InvalidArgumentError(`nothing to put: ${paths.join(' ')} holds no files`);
        const total = files.reduce((s, f) => s + f.size, 0);
        const bar = progressBar(`put ${repoName}@${branchName}`, total);
        // The stat cache sends unchanged content as links to stored hashes, which only the owner and admins may
        // place: a put as a $STRATA_TOKEN user reads every file.
        const cache = localHome && !process.env.STRATA_TOKEN ? StatCache.open(localHome) : undefined;
        cache?.preload(plan.filter((s) => s.stat.isDirectory()).map((s) => resolve(s.local)));
        let result: PutResult;
        try {
          const commit = () =>
            client.commit(repoName, branchName, changesFrom(files, dirs, stdinDest, cache), {
              message: opts.message,
              author: defaultAuthor(),
              onProgress: (n) => bar.update(n),
            });
          try {
            result = await commit();
          } catch (err) {
            // The cache names content this database does not hold (another --database, say): start it over.
            if (!cache || stdinDest || !(err instanceof StrataError && err.code === 'NOT_FOUND' && /is not stored in this instance/.test(err.message))) throw err;
            cache.clear();
            result = await commit();
          }
          if (cache?.hasPending) {
            // Remember what the files hashed to and the trees the directories became, so
            // an unchanged file is not read, nor an unchanged directory listed, next time.
            const at = `${repoName}@${result.commit}:`;
            const ls = (path: string, recursive: boolean) => client.ls(`${at}${path}`, recursive ? { recursive, dirs: true } : {});
            const committed = await committedEntries(ls, files, dirs, cache.pendingPaths());
            cache.commit(new Map(files.map((f) => [f.local, committed.entries.get(f.dest)?.hash ?? ''])), committedTrees(dirs, committed));
          }
        } finally {
          cache?.close();
        }
        bar.done();
        if (!opts.json) {
          process.stdout.write(
            `committed ${result.commit.slice(0, 12)} to ${result.repo}@${result.branch}: ${result.files} file(s), ` +
              `${formatBytes(result.bytes)} (${formatBytes(result.new_bytes)} new)\n`,
          );
        }
        if (opts.wait) {
          const jobs = await client.wait(`${result.repo}@${result.commit}`);
          if (opts.json) printJson({ ...result, jobs });
          else reportJobs(jobs, false);
          if (jobs.some((j) => j.state !== 'success')) process.exitCode = 1;
          return;
        }
        if (opts.json) printJson(result);
      }),
    );
  program
    .command('rm <refs...>')
    .description('delete files or directories: REPO[@BRANCH]:/path ... (one commit)')
    .option('-m, --message <text>', 'commit message', '')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, refs: string[], opts: { message: string; json?: boolean }) => {
        const targets = refs.map((r) => branchRef(r, 'rm'));
        const first = targets[0]!;
        for (const t of targets) {
          if (t.repo !== first.repo || t.branch !== first.branch) throw new InvalidArgumentError('rm: all paths must be on the same repo@branch');
          if (!t.ref.hasPath || t.ref.path === '/') throw new InvalidArgumentError(`rm: "${t.text}" names no path; use REPO@BRANCH:/path`);
        }
        const result = await client.commit(
          first.repo,
          first.branch,
          targets.map((t) => ({ op: 'delete' as const, path: t.ref.path })),
          { message: opts.message || `rm ${targets.map((t) => t.ref.path).join(' ')}`, author: defaultAuthor() },
        );
        if (opts.json) return printJson(result);
        process.stdout.write(`committed ${result.commit.slice(0, 12)} to ${result.repo}@${result.branch}: deleted ${result.deleted} path(s)\n`);
      }),
    );
  program
    .command('ls <ref>')
    .description('list files at REPO[@REF][:/path]')
    .option('-r, --recursive', 'list every file beneath')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, refText: string, opts: { recursive?: boolean; json?: boolean }) => {
        const list = await client.ls(refText, { recursive: opts.recursive });
        if (opts.json) return printJson(list);
        printTable(['PATH', 'TYPE', 'SIZE', 'HASH'], list.map((f) => [f.path, f.type, formatBytes(f.size), f.hash.slice(0, 12)]));
      }),
    );
  program
    .command('cat <ref>')
    .description('write a file to stdout: REPO[@REF]:/path')
    .action(
      withClient(async (client, refText: string) => {
        const { stream } = await client.read(refText);
        process.stdout.on('error', (err: NodeJS.ErrnoException) => {
          if (err.code !== 'EPIPE') throw err;
        });
        await pipeline(Readable.from(stream), process.stdout, { end: false });
      }),
    );
  program
    .command('get <ref>')
    .description('materialize files at REPO[@REF][:/path] into a local directory')
    .requiredOption('-o, --output <dir>', 'local directory to write into')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, refText: string, opts: { output: string; json?: boolean }) => {
        const ref = parseRef(refText);
        const outDir = resolve(opts.output);
        // Pin the commit once, so a branch moving meanwhile cannot mix two versions.
        const commit = await client.inspectCommit(refText);
        const pinned = (path: string) => `${ref.repo}@${commit.id}:${path}`;
        const files = [];
        for await (const f of client.walk(pinned(ref.path))) files.push(f);
        const total = files.reduce((s, f) => s + f.size, 0);
        const bar = progressBar(`get ${refText}`, total);
        let done = 0;
        for (const f of files) {
          const rel = f.path === ref.path ? f.path.split('/').pop()! : relative(ref.path, f.path);
          const target = resolve(outDir, rel);
          if (target !== outDir && !target.startsWith(outDir + sep)) throw new InvalidArgumentError(`refusing to write ${f.path} outside ${outDir}`);
          mkdirSync(dirname(target), { recursive: true });
          const { stream } = await client.read(pinned(f.path));
          const tmp = join(dirname(target), `.${Math.random().toString(36).slice(2)}.strata-tmp`);
          await pipeline(Readable.from(stream), createWriteStream(tmp));
          renameSync(tmp, target);
          done += f.size;
          bar.update(done);
        }
        bar.done();
        if (opts.json) return printJson({ files: files.length, bytes: total, output: outDir });
        process.stdout.write(`wrote ${files.length} file(s), ${formatBytes(total)} to ${outDir}\n`);
      }),
    );

  // ---- history ----
  program
    .command('log <ref>')
    .description('show commit history, newest first')
    .option('-n, --limit <n>', 'at most N commits', parsePositiveInt)
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, refText: string, opts: { limit?: number; json?: boolean }) => {
        const commits = await client.log(refText, { limit: opts.limit });
        if (opts.json) return printJson(commits.map(({ tree: _t, size: _s, repo: _r, ...c }) => c));
        for (const c of commits) {
          process.stdout.write(`commit ${c.id}\nAuthor: ${c.author}\nDate:   ${c.time}\n`);
          if (c.provenance.length) process.stdout.write(`Provenance: ${c.provenance.map((p) => `${p.repo}@${p.commit.slice(0, 12)}`).join(', ')}\n`);
          process.stdout.write(`\n    ${c.message || '(no message)'}\n\n`);
        }
      }),
    );
  program
    .command('diff <from> <to>')
    .description('files added, modified and deleted between two refs')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, from: string, to: string, opts: { json?: boolean }) => {
        const d = await client.diff(from, to);
        if (opts.json) return printJson(d);
        for (const p of d.added) process.stdout.write(`A  ${p}\n`);
        for (const p of d.modified) process.stdout.write(`M  ${p}\n`);
        for (const p of d.deleted) process.stdout.write(`D  ${p}\n`);
        process.stderr.write(`${d.added.length} added, ${d.modified.length} modified, ${d.deleted.length} deleted\n`);
      }),
    );
  program
    .command('inspect <ref>')
    .description('show the commit a reference resolves to')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, refText: string, opts: { json?: boolean }) => {
        const c = await client.inspectCommit(refText);
        if (opts.json) return printJson(c);
        process.stdout.write(
          `Commit: ${c.id}\nRepo: ${c.repo}\nParents: ${c.parents.join(', ') || '-'}\nAuthor: ${c.author}\nTime: ${c.time}\n` +
            `Size: ${formatBytes(c.size)}\nTree: ${c.tree}\nMessage: ${c.message}\n`,
        );
      }),
    );
  program
    .command('fsck')
    .description('re-hash every chunk and check every commit, tree and branch (exit 1 on problems)')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, opts: { json?: boolean }) => {
        const result = await client.fsck();
        if (opts.json) printJson(result);
        else {
          const c = result.checked;
          process.stdout.write(`checked ${c.chunks} chunks, ${c.files} files, ${c.trees} trees, ${c.commits} commits, ${c.branches} branches\n`);
          for (const p of result.problems) process.stdout.write(`problem: ${p.kind} ${p.id}: ${p.message}\n`);
          process.stdout.write(result.ok ? 'ok\n' : `${result.problems.length} problem(s) found\n`);
        }
        if (!result.ok) process.exitCode = 1;
      }),
    );

  // ---- pipelines ----
  const pipelineCmd = program.command('pipeline').description('data-driven pipelines (Pachyderm spec format)');
  for (const verb of ['create', 'update'] as const) {
    const cmd = pipelineCmd
      .command(verb)
      .description(verb === 'create' ? 'create a pipeline from a YAML or JSON spec' : 'change a pipeline (a new version); unchanged datums are reused')
      .requiredOption('-f, --file <file>', 'the spec (YAML or JSON; - for stdin)')
      .option('--json', 'print JSON');
    if (verb === 'update') cmd.option('--reprocess', 'process every datum again, even those that already succeeded');
    cmd.action(
      withClient(async (client, opts: { file: string; json?: boolean; reprocess?: boolean }) => {
        const spec = readSpecFile(opts.file);
        const info = await client.createPipeline(spec, { update: verb === 'update', reprocess: opts.reprocess });
        if (opts.json) return printJson(info);
        process.stdout.write(`${verb === 'create' ? 'created' : 'updated'} pipeline ${info.name} (version ${info.version}), output repo ${info.name}\n`);
      }),
    );
  }
  pipelineCmd
    .command('list')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, opts: { json?: boolean }) => {
        const list = await client.listPipelines();
        if (opts.json) return printJson(list);
        printTable(
          ['NAME', 'VERSION', 'INPUTS', 'LAST JOB', 'STATE', 'DESCRIPTION'],
          list.map((p) => [p.name, String(p.version), p.inputs.join(','), p.last_job ? `${p.last_job.id.slice(0, 12)} ${p.last_job.state}` : '-', p.state, p.description]),
        );
      }),
    );
  pipelineCmd
    .command('inspect <name>')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, name: string, opts: { json?: boolean }) => {
        const p = await client.inspectPipeline(name);
        if (opts.json) return printJson(p);
        process.stdout.write(
          `Name: ${p.name}\nVersion: ${p.version}\nDescription: ${p.description}\nCreator: ${p.creator}\nInputs: ${p.inputs.join(', ')}\n` +
            `State: ${p.state}\nLast job: ${p.last_job ? `${p.last_job.id} (${p.last_job.state})` : '-'}\nSpec:\n${JSON.stringify(p.spec, null, 2)}\n`,
        );
      }),
    );
  pipelineCmd
    .command('delete <name>')
    .description('delete a pipeline, its jobs and its output repo')
    .action(
      withClient(async (client, name: string) => {
        await client.deletePipeline(name);
        process.stdout.write(`deleted pipeline ${name}\n`);
      }),
    );

  const jobCmd = program.command('job').description('pipeline jobs');
  jobCmd
    .command('list')
    .option('--pipeline <name>', 'only this pipeline')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, opts: { pipeline?: string; json?: boolean }) => {
        const jobs = await client.listJobs({ pipeline: opts.pipeline });
        if (opts.json) return printJson(jobs);
        printTable(
          ['ID', 'PIPELINE', 'STATE', 'DATUMS (done/skipped/failed/total)', 'COMMIT SET', 'CREATED'],
          jobs.map((j) => [j.id.slice(0, 12), j.pipeline, j.state, `${j.datums.processed}/${j.datums.skipped}/${j.datums.failed}/${j.datums.total}`, j.commit_set.slice(0, 12), j.created]),
        );
      }),
    );
  jobCmd
    .command('inspect <id>')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, id: string, opts: { json?: boolean }) => {
        const j = await client.inspectJob(id);
        if (opts.json) return printJson(j);
        process.stdout.write(
          `Job: ${j.id}\nPipeline: ${j.pipeline} (version ${j.pipeline_version})\nState: ${j.state}${j.reason ? ` — ${j.reason}` : ''}\n` +
            `Commit set: ${j.commit_set}\nInputs: ${j.inputs.map((i) => `${i.name}=${i.repo}@${i.commit.slice(0, 12)}`).join(', ')}\n` +
            `Output commit: ${j.output_commit ?? '-'}\nDatums: ${j.datums.total} total, ${j.datums.processed} processed, ${j.datums.skipped} skipped, ` +
            `${j.datums.failed} failed, ${j.datums.recovered} recovered\nCreated: ${j.created}\nStarted: ${j.started ?? '-'}\nFinished: ${j.finished ?? '-'}\n`,
        );
        if (j.failed_datum) process.stdout.write(`Failed datum: ${j.failed_datum.id}\n  ${j.failed_datum.error}\n--- output tail ---\n${j.failed_datum.log_tail}\n`);
      }),
    );
  jobCmd
    .command('stop <id>')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, id: string, opts: { json?: boolean }) => {
        const j = await client.stopJob(id);
        if (opts.json) return printJson(j);
        process.stdout.write(`job ${j.id}: ${j.state}\n`);
      }),
    );
  program
    .command('datum')
    .description('datums of a job')
    .command('list <job>')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, jobId: string, opts: { json?: boolean }) => {
        const datums = await client.listDatums(jobId);
        if (opts.json) return printJson(datums);
        printTable(
          ['ID', 'STATE', 'ATTEMPTS', 'TIME', 'INPUTS'],
          datums.map((d) => [d.id.slice(0, 12), d.state, String(d.attempts), `${(d.duration_ms / 1000).toFixed(2)} s`, d.inputs.map((i) => `${i.name}:${i.path}`).join(' ')]),
        );
      }),
    );
  program
    .command('logs <job>')
    .description("print what a job's datums wrote to stdout and stderr")
    .option('--datum <id>', 'only this datum (id or prefix)')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, jobId: string, opts: { datum?: string; json?: boolean }) => {
        const logs = await client.logs(jobId, opts.datum);
        if (opts.json) return printJson(logs);
        for (const l of logs) process.stdout.write(`=== datum ${l.datum.slice(0, 12)} (${l.state}) ===\n${l.log}${l.log.endsWith('\n') || !l.log ? '' : '\n'}`);
      }),
    );
  program
    .command('wait [ref]')
    .description('wait for the jobs of the commit set REF belongs to (all jobs when omitted); exit 1 if any failed')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, ref: string | undefined, opts: { json?: boolean }) => {
        const jobs = await client.wait(ref);
        reportJobs(jobs, opts.json);
      }),
    );
  program
    .command('lineage <ref>')
    .description('the graph of commits and jobs upstream and/or downstream of a commit')
    .option('--upstream', 'only what REF was made from')
    .option('--downstream', 'only what was made from REF')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, ref: string, opts: { upstream?: boolean; downstream?: boolean; json?: boolean }) => {
        const direction = opts.upstream && !opts.downstream ? 'upstream' : opts.downstream && !opts.upstream ? 'downstream' : 'both';
        const g = await client.lineage(ref, { direction });
        if (opts.json) return printJson(g);
        const label = (id: string) => {
          const n = g.nodes.find((x) => x.id === id);
          return n?.kind === 'job' ? `job ${id.slice(4, 16)} (${n.pipeline}, ${n.state})` : id.replace(/@([0-9a-f]{12})[0-9a-f]+$/, '@$1');
        };
        for (const e of g.edges) process.stdout.write(`${label(e.from)} -> ${label(e.to)}\n`);
        if (g.edges.length === 0) process.stdout.write(`${label(g.nodes[0]!.id)} has no lineage in that direction\n`);
      }),
    );

  registerRunCommands(program, withClient);
  registerDeployCommands(program, withClient);
  registerModelCommands(program, withClient);
  registerClassifyCommands(program, withClient);
  registerCatalogCommands(program, withClient);
  registerAuditCommands(program, withClient);
  registerAccessCommands(program, globals);
  registerIndexCommand(program, globals);

  // ---- server ----
  program
    .command('server')
    .description('serve the HTTP API on one port')
    .addOption(new Option('--port <n>', 'port').default(7070).argParser(parsePort))
    .option('--host <host>', 'address to bind', '127.0.0.1')
    .option('--body-limit <size>', 'largest JSON request body, e.g. an inference request: bytes or 512k, 8mb, 1g (default 1mb)', (v) => parseByteSize(v, '--body-limit'))
    .addOption(
      new Option('--auth <mode>', 'required: a token (STRATA_TOKEN) on every request; auto: required unless bound to a loopback address')
        .choices(['required', 'auto'])
        .default('auto'),
    )
    .action(async (opts: { port: number; host: string; bodyLimit?: number; auth: 'required' | 'auto' }) => {
      const g = globals();
      const instance = await Instance.open(findHome(g.home), { database: g.database });
      const { startServer } = await import('../api/server.js');
      const server = await startServer({ instance, host: opts.host, port: opts.port, bodyLimit: opts.bodyLimit, auth: opts.auth });
      process.stderr.write(`strata server listening on ${server.url} (instance ${instance.home})\n`);
      await new Promise<void>((done) => {
        const stop = () => done();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      await server.close();
      await instance.close();
    });

  return program;
}

function reportJobs(jobs: JobInfo[], json?: boolean) {
  if (json) printJson(jobs);
  else {
    for (const j of jobs) {
      const d = j.datums;
      process.stdout.write(
        `job ${j.id.slice(0, 12)} ${j.pipeline}: ${j.state} (${d.processed} processed, ${d.skipped} skipped, ${d.failed} failed of ${d.total})` +
          `${j.output_commit ? ` -> ${j.pipeline}@${j.output_commit.slice(0, 12)}` : ''}${j.reason ? ` — ${j.reason}` : ''}\n`,
      );
    }
    if (jobs.length === 0) process.stdout.write('no jobs\n');
  }
  if (jobs.some((j) => j.state === 'failure' || j.state === 'killed')) process.exitCode = 1;
}

/** Reads a pipeline spec file (YAML or JSON, or - for stdin) into an object; the server validates it. */
function readSpecFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(`cannot read spec file "${file}": ${(err as Error).message}`);
  }
  return parseSpecText(text, file);
}

async function openClient(g: GlobalOptions): Promise<{ client: StrataClient; home?: string; instance?: Instance }> {
  const server = g.server ?? process.env.STRATA_SERVER;
  if (server) {
    const { HttpClient } = await import('../sdk/http-client.js');
    return { client: new HttpClient(server, { token: process.env.STRATA_TOKEN }) };
  }
  const instance = await Instance.open(findHome(g.home), { database: g.database, indexing: cliIndexing() });
  // Authorized and audited like the server's requests (cli/authorized-client.ts).
  const principal = await localPrincipal(instance).catch(async (err) => {
    await instance.close();
    throw err;
  });
  return { client: authorizedClient(instance, localClient(instance, principal.user), principal), home: instance.home, instance };
}

/** A reference that must name a branch (put, rm): repo defaults to master; commits and ^/~ are refused. */
function branchRef(text: string, verb: string) {
  const ref = parseRef(text);
  if (ref.back > 0) throw new InvalidArgumentError(`${verb}: "${text}" points into history; ${verb} writes to a branch (REPO@BRANCH)`);
  return { repo: ref.repo, branch: ref.at ?? DEFAULT_BRANCH, ref, text };
}

function collectLabel(value: string, labels: Record<string, string>) {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError(`--label "${value}": expected key=value`);
  return { ...labels, [value.slice(0, eq)]: value.slice(eq + 1) };
}

function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`expected a positive whole number, got "${value}"`);
  return n;
}

function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`--port: expected 0-65535, got "${value}"`);
  return n;
}
