// The fallback executor, for machines without a working bubblewrap: the step
// runs directly on the host. Each datum gets a private directory
//
//   <tmpdir>/strata-datum-XXXXXX/pfs/<input name> -> input host path
//                               /pfs/out          -> output dir
//                               /tmp/             (TMPDIR and HOME)
//
// and STRATA_PFS names its pfs/, so steps written as `${STRATA_PFS:-/pfs}/in`
// run the same in both executors. argv elements, env values (Pachyderm's
// `$<input name>` points at the datum's file) and working_dir under /pfs are
// rewritten to that directory too; paths inside scripts cannot be.
// Nothing is enforced: the step can read and write whatever this user can
// and use the network. The step is its own process group, which is killed
// on timeout, on abort, and once the main process exits (as a pid namespace
// would be); a step that calls setsid() escapes that.

import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { checkRun, missingInput, notStarted } from './datum-run.js';
import type { DatumOutcome, DatumRun, Executor } from './executor.js';
import { superviseProcess } from './process.js';
import { findOnPath, stepEnv } from './step-env.js';

let warned = false;

export class UnsandboxedExecutor implements Executor {
  readonly name = 'unsandboxed';
  readonly sandboxed = false;

  /** @param reason why there is no sandbox, for the warning. */
  constructor(
    private readonly reason: string,
    private readonly warn: (msg: string) => void,
  ) {}

  async run(run: DatumRun, signal?: AbortSignal): Promise<DatumOutcome> {
    checkRun(run);
    if (!warned) {
      warned = true;
      this.warn(
        `strata: WARNING: pipeline steps run UNSANDBOXED (${this.reason}). ` +
          'They can read and write everything this user can, including the Strata instance; ' +
          'the network is NOT blocked; and absolute /pfs paths do not exist, so steps must use ' +
          '$STRATA_PFS (e.g. "${STRATA_PFS:-/pfs}/in").',
      );
    }
    const missing = missingInput(run);
    if (missing) return notStarted(missing);
    mkdirSync(run.outputDir, { recursive: true });

    const dir = await mkdtemp(join(tmpdir(), 'strata-datum-'));
    try {
      const pfs = join(dir, 'pfs');
      const tmp = join(dir, 'tmp');
      await Promise.all([mkdir(pfs), mkdir(tmp)]);
      await Promise.all([
        ...run.inputs.map((input) => symlink(resolve(input.hostPath), join(pfs, input.name))),
        symlink(resolve(run.outputDir), join(pfs, 'out')),
      ]);
      const toHost = (path: string) => (path === '/pfs' || path.startsWith('/pfs/') ? pfs + path.slice('/pfs'.length) : path);

      const cwd = toHost(run.workingDir ?? '/');
      if (!existsSync(cwd)) return notStarted(`working directory ${run.workingDir} does not exist`);
      const runEnv = Object.fromEntries(Object.entries(run.env).map(([name, value]) => [name, toHost(value)]));
      const env = stepEnv({ ...run, env: runEnv }, { home: tmp, tmpdir: tmp }, pfs);
      const [command, ...args] = run.cmd.map(toHost) as [string, ...string[]];
      const executable = findOnPath(command, env.PATH ?? '');
      if (!executable) {
        // Exit codes as a shell reports them: 126 found but not executable, 127 not found.
        const found = command.includes('/') && existsSync(command);
        run.stderr.write(found ? `strata: command not executable: ${run.cmd[0]}\n` : `strata: command not found: ${run.cmd[0]} (PATH=${env.PATH})\n`);
        return { exitCode: found ? 126 : 127, signal: null, timedOut: false, outputTooLarge: false, durationMs: 0 };
      }

      const { stderrHead: _, ...outcome } = await superviseProcess(
        { command: executable, argv0: command, args, env, cwd, detached: true, killTree: killGroup, afterExit: killGroup },
        run,
        signal,
      );
      return outcome;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    child.kill('SIGKILL'); // the group is gone already; the main process may not be
  }
}
