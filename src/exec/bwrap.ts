// The sandboxed executor: each datum runs under bubblewrap (`bwrap`).
//
// What the step sees (DESIGN.md, "Step contract"):
//   - the host's filesystem read-only, as its "image": every top-level entry
//     of the host root is bound read-only onto bwrap's empty tmpfs root
//     (binding / itself would leave no writable place to create /pfs: the
//     mount point of /pfs/<name> would have to exist on the host);
//   - private /tmp, /dev, /proc, and an empty /run: /run holds the sockets of
//     local daemons (PostgreSQL, MySQL, D-Bus, Docker), which a unix socket
//     can reach even read-only and even without a network;
//   - inputs read-only at /pfs/<name>, output read-write at /pfs/out, the
//     rest of / read-only (a write outside /pfs/out fails with EROFS);
//   - the `hide` paths masked: directories by an empty tmpfs, files by an
//     unreadable device node;
//   - new user, pid, ipc, uts, cgroup and (unless `network`) network
//     namespaces, no capabilities (bwrap keeps them all when started by
//     root, and a root step could then remount the read-only binds
//     writable), no nested user namespaces, a new session (so it cannot
//     push input into the caller's terminal with TIOCSTI);
//   - only the env it is given. The env is passed through bwrap's own
//     environment rather than --setenv arguments, which is the same to the
//     step but keeps values out of argv, where `ps` shows them to every user.
//
// Killing bwrap kills the step's whole tree: the step's pid namespace is
// torn down when its init (bwrap's child, which dies with bwrap because of
// --die-with-parent) exits.

import { spawnSync, type ChildProcess } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, realpathSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DatumOutcome, DatumRun, Executor } from './executor.js';
import { checkRun, missingInput, notStarted } from './datum-run.js';
import { superviseProcess } from './process.js';
import { findOnPath, stepEnv } from './step-env.js';

/** Host root entries the sandbox replaces with its own. */
const REPLACED_ROOT_ENTRIES = new Set(['proc', 'dev', 'sys', 'tmp', 'run', 'pfs']);
/**
 * Hardening flags, strongest first. --disable-userns needs bwrap >= 0.8 and
 * unprivileged user namespaces; where either is missing the sandbox is still
 * worth having without it.
 */
const HARDENING_CHOICES: readonly (readonly string[])[] = [['--unshare-user', '--disable-userns'], []];

export class BwrapExecutor implements Executor {
  readonly name = 'bwrap';
  readonly sandboxed = true;

  constructor(
    private readonly bwrapPath: string,
    private readonly hardening: readonly string[] = HARDENING_CHOICES[0]!,
  ) {}

  async run(run: DatumRun, signal?: AbortSignal): Promise<DatumOutcome> {
    checkRun(run);
    const missing = missingInput(run);
    if (missing) return notStarted(missing);
    mkdirSync(run.outputDir, { recursive: true });

    const env = stepEnv(run, { home: '/tmp' }, '/pfs');
    const { stderrHead, ...outcome } = await superviseProcess(
      {
        command: this.bwrapPath,
        args: bwrapArgs(run, this.hardening),
        env,
        detached: false,
        killTree: (child: ChildProcess) => child.kill('SIGKILL'),
      },
      run,
      signal,
    );
    // bwrap reports its own failures as "bwrap: ..." and exit code 1; tell
    // them apart from the step's exit code 1.
    if (outcome.exitCode === 1 && stderrHead.startsWith('bwrap: ')) {
      const message = stderrHead.split('\n', 1)[0]!.slice('bwrap: '.length);
      const exec = /^execvp (.*): (No such file or directory|Permission denied)$/.exec(message);
      if (exec) {
        const notFound = exec[2] === 'No such file or directory';
        run.stderr.write(
          notFound
            ? `strata: command not found in the sandbox: ${exec[1]} (PATH=${env.PATH})\n`
            : `strata: command not executable in the sandbox: ${exec[1]}\n`,
        );
        return { ...outcome, exitCode: notFound ? 127 : 126 };
      }
      return { ...outcome, exitCode: null, spawnError: `sandbox setup failed: ${message}` };
    }
    return outcome;
  }
}

/** The full bwrap argv for one datum: host root, then this run's mounts, then the command. */
export function bwrapArgs(run: DatumRun, hardening: readonly string[]): string[] {
  const args = [...hostRootArgs()];
  for (const path of run.hide) args.push(...hideArgs(path));
  for (const input of run.inputs) args.push('--ro-bind', input.hostPath, `/pfs/${input.name}`);
  args.push('--bind', run.outputDir, '/pfs/out', '--remount-ro', '/');
  args.push('--unshare-all', ...hardening);
  if (run.network) args.push('--share-net');
  args.push('--die-with-parent', '--new-session', '--cap-drop', 'ALL', '--chdir', run.workingDir ?? '/', '--', ...run.cmd);
  return args;
}

let rootArgs: string[] | undefined;

/**
 * Binds for the host root, computed once per process: each top-level entry
 * read-only at its own path, symlinks (/bin -> usr/bin) recreated, and fresh
 * /dev, /proc, /tmp and /run.
 */
export function hostRootArgs(): readonly string[] {
  if (rootArgs) return rootArgs;
  const args: string[] = [];
  for (const name of readdirSync('/').sort()) {
    if (REPLACED_ROOT_ENTRIES.has(name)) continue;
    const path = `/${name}`;
    const stat = lstatSync(path, { throwIfNoEntry: false });
    if (!stat) continue;
    if (stat.isSymbolicLink()) args.push('--symlink', readlinkSync(path), path);
    // -try: the list is computed once per process, and an entry removed since (a file at / that came and
    // went) must not break every later sandbox.
    else if (stat.isDirectory() || stat.isFile()) args.push('--ro-bind-try', path, path);
  }
  args.push('--dev', '/dev', '--proc', '/proc', '--tmpfs', '/tmp', '--tmpfs', '/run');
  // /etc/resolv.conf is often a link into /run (systemd-resolved): keep DNS
  // configuration working for steps that are allowed the network.
  const resolv = realpathOrUndefined('/etc/resolv.conf');
  if (resolv?.startsWith('/run/')) args.push('--ro-bind-try', resolv, resolv);
  rootArgs = args;
  return args;
}

/** Mask one host path, if the step could see it at all (it may not exist, or live in the private /tmp). */
function hideArgs(path: string): string[] {
  const real = realpathOrUndefined(path);
  if (!real || real === '/' || REPLACED_ROOT_ENTRIES.has(real.split('/')[1]!)) return [];
  const stat = statSync(real, { throwIfNoEntry: false });
  if (!stat) return [];
  // A bind of /dev/null lands on a nodev mount, so reading the file fails with EACCES.
  return stat.isDirectory() ? ['--tmpfs', real] : ['--ro-bind', '/dev/null', real];
}

export type BwrapProbe = { available: true; path: string; hardening: readonly string[] } | { available: false; reason: string };

let probe: BwrapProbe | undefined;

/**
 * Is bwrap installed and able to sandbox here? Answered once per process by
 * running `/bin/true` under the same argv a datum gets (user namespaces can
 * be disabled by the kernel, AppArmor or a container runtime).
 */
export function probeBwrap(): BwrapProbe {
  if (probe) return probe;
  const path = findOnPath('bwrap', process.env.PATH ?? '');
  if (!path) return (probe = { available: false, reason: 'bwrap is not installed; install the Debian/Ubuntu package "bubblewrap" to sandbox steps' });
  const out = mkdtempSync(join(tmpdir(), 'strata-bwrap-probe-'));
  let failure = '';
  try {
    for (const hardening of HARDENING_CHOICES) {
      const run: DatumRun = { jobId: 'probe', datumId: 'probe', cmd: ['/bin/true'], env: {}, inputs: [], outputDir: out, network: false, hide: [], stdout: process.stdout, stderr: process.stderr };
      const result = spawnSync(path, bwrapArgs(run, hardening), { env: stepEnv(run, { home: '/tmp' }, '/pfs'), encoding: 'utf8', timeout: 10_000 });
      if (result.status === 0) return (probe = { available: true, path, hardening });
      failure ||= (result.error?.message ?? result.stderr.trim()) || `exit code ${result.status}`;
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
  return (probe = { available: false, reason: `bwrap cannot create a sandbox here: ${failure}` });
}

function realpathOrUndefined(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}
