// The environment a step starts with. Deliberately not the host's: the
// server's env holds credentials (database URLs, cloud keys) that user code
// must not inherit. PATH and LANG are the host's, because the host is the
// step's "image" and `python3` should mean the python3 the user installed.

import { accessSync, constants, statSync } from 'node:fs';
import { join } from 'node:path';

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

let hostPath: string | undefined;

/** The host PATH minus relative entries (they would resolve against the step's working dir). */
function stepPath(): string {
  hostPath ??= (process.env.PATH ?? '').split(':').filter((dir) => dir.startsWith('/')).join(':') || DEFAULT_PATH;
  return hostPath;
}

/**
 * Base env (with the job and datum ids under Pachyderm's and Strata's
 * names), then the run's env, then the variable that is the step contract
 * itself (STRATA_PFS), which a spec cannot override.
 */
export function stepEnv(run: { jobId: string; datumId: string; env: Record<string, string> }, base: { home: string; tmpdir?: string }, pfs: string): Record<string, string> {
  const result: Record<string, string> = {
    PATH: stepPath(),
    HOME: base.home,
    LANG: process.env.LANG ?? 'C.UTF-8',
    PACH_JOB_ID: run.jobId,
    PACH_DATUM_ID: run.datumId,
    STRATA_JOB_ID: run.jobId,
    STRATA_DATUM_ID: run.datumId,
  };
  if (base.tmpdir !== undefined) result.TMPDIR = base.tmpdir;
  Object.assign(result, run.env);
  result.STRATA_PFS = pfs;
  return result;
}

/** Where execvp would find `command` on this PATH (commands containing a slash are taken as they are). */
export function findOnPath(command: string, path: string): string | undefined {
  if (command.includes('/')) return isExecutable(command) ? command : undefined;
  for (const dir of path.split(':')) {
    if (!dir.startsWith('/')) continue;
    const candidate = join(dir, command);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}
