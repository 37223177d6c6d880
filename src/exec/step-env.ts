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
 * Base env, then the run's env, then the variables that are the step
 * contract itself (STRATA_PFS), which a spec cannot override.
 */
export function stepEnv(base: { home: string; tmpdir?: string }, env: Record<string, string>, pfs: string): Record<string, string> {
  const result: Record<string, string> = {
    PATH: stepPath(),
    HOME: base.home,
    LANG: process.env.LANG ?? 'C.UTF-8',
  };
  if (base.tmpdir !== undefined) result.TMPDIR = base.tmpdir;
  Object.assign(result, env);
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
