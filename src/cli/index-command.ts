import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_BRANCH } from '../data/refs.js';
import { InvalidArgumentError } from '../errors.js';
import { findHome, Instance, type Indexing } from '../instance.js';
import { ForbiddenError } from '../governance/access.js';
import { printJson } from './output.js';

// `strata index`: scans commits for PII and brings the catalog up to date.
// The CLI runs it detached after a command that committed (like git's
// `gc --auto`), so a put returns once its data is committed instead of after
// scanning it; anything not indexed yet is scanned on demand by whoever asks
// (`classify`, `catalog search`), so results never depend on it having run.

interface Globals {
  home?: string;
  server?: string;
  database?: string;
}

/** How the CLI opens an instance: deferred unless STRATA_INDEX=wait (then a put waits for its scan). */
export function cliIndexing(): Indexing {
  const mode = process.env.STRATA_INDEX ?? 'background';
  if (mode === 'wait') return 'eager';
  if (mode === 'background') return 'deferred';
  throw new InvalidArgumentError(`STRATA_INDEX must be "background" (default) or "wait", not "${mode}"`);
}

/** Starts `strata index REFS` detached from this process, which exits without waiting for it; false when it did not. */
export function indexInBackground(home: string, database: string | undefined, refs: string[]): boolean {
  // Only from the strata command itself (bin/strata.js, or a `strata` link to it): main() called from some
  // other script must not start that script again. Skipped work is done on demand.
  const cli = process.argv[1];
  if (refs.length === 0 || !cli || !/(^|[/\\])strata(\.js)?$/.test(cli)) return false;
  const argv = [cli, '--home', home, ...(database ? ['--database', database] : []), 'index', '--quiet', ...refs];
  const child = spawn(process.execPath, argv, { detached: true, stdio: 'ignore', env: { ...process.env, STRATA_SERVER: '', STRATA_TOKEN: '' } });
  child.on('error', () => {}); // nothing to report to: the next classify or search scans on demand
  child.unref();
  return true;
}

export function registerIndexCommand(program: Command, globals: () => Globals): void {
  program
    .command('index [refs...]')
    .description('scan commits for PII and update the catalog now (default: every repo\'s head); the CLI runs this in the background after commits')
    .option('--quiet', 'print nothing')
    .option('--json', 'print JSON: {commits: [{ref, files, labels}], catalog_updated}')
    .action(async (refs: string[], opts: { quiet?: boolean; json?: boolean }) => {
      const g = globals();
      if (g.server ?? process.env.STRATA_SERVER) {
        throw new InvalidArgumentError('strata index works on a local instance (--home); a server indexes its own commits as they happen');
      }
      if (process.env.STRATA_TOKEN) throw new ForbiddenError('strata index is for the instance owner: run it without STRATA_TOKEN');
      const home = findHome(g.home);
      // One indexer at a time per instance: a second (a put right after another) waits, then finds most
      // of its content scanned already instead of scanning it twice at once.
      const release = await indexLock(join(home, 'index.lock'));
      const instance = await Instance.open(home, { database: g.database, indexing: 'eager' }).catch(async (err) => {
        release();
        throw err;
      });
      try {
        const targets = refs.length ? refs : await heads(instance);
        const commits: { ref: string; files: number; labels: string[] }[] = [];
        for (const ref of targets) {
          const result = await instance.classification.classify(ref);
          await instance.piiLabelsMayHaveChanged(result.repo);
          commits.push({ ref: `${result.repo}@${result.commit}`, files: result.files.length, labels: result.labels });
        }
        const updated = await instance.catalog.sync();
        if (opts.quiet) return;
        if (opts.json) return printJson({ commits, catalog_updated: updated });
        for (const c of commits) process.stdout.write(`${c.ref.slice(0, c.ref.indexOf('@') + 13)}: ${c.files} file(s), ${c.labels.length ? c.labels.join(', ') : 'no PII found'}\n`);
        process.stdout.write(`catalog: ${updated} entr${updated === 1 ? 'y' : 'ies'} updated\n`);
      } finally {
        await instance.close();
        release();
      }
    });
}

const LOCK_WAIT_MS = 10 * 60_000;

/** Takes `path` as a lock (O_EXCL, holding our pid); waits while a live process holds it; a dead holder's is taken over. */
async function indexLock(path: string): Promise<() => void> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      writeFileSync(path, String(process.pid), { flag: 'wx' });
      return () => rmSync(path, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let text: string;
    try {
      text = readFileSync(path, 'utf8').trim();
    } catch {
      continue; // released meanwhile
    }
    // Empty: its holder is between creating and writing it.
    if ((text !== '' && !alive(Number(text))) || Date.now() > deadline) {
      rmSync(path, { force: true }); // the holder died (or hangs): its lock is void
      continue;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function heads(instance: Instance): Promise<string[]> {
  const repos = await instance.data.listRepos();
  return repos.filter((r) => r.head).map((r) => `${r.name}@${DEFAULT_BRANCH}`);
}
