// The seam between the scheduler and whatever runs a datum's user code. A
// datum run is plain data (argv, env, where inputs live on the host, where
// output goes); an outcome is plain data too. Retries, accept_return_code and
// logging belong to the caller, so local, distributed and Kubernetes
// executors only differ in how they start and stop a process.

import { BwrapExecutor, probeBwrap } from './bwrap.js';
import { UnsandboxedExecutor } from './unsandboxed.js';

export interface DatumRun {
  jobId: string;
  datumId: string;
  /** argv; cmd[0] is resolved through the step's PATH. */
  cmd: string[];
  /** Written to the process's stdin, which is then closed (no stdin: /dev/null). */
  stdin?: string;
  /** Added to a minimal base env (PATH, HOME, LANG, STRATA_PFS); the host env is not passed. */
  env: Record<string, string>;
  /** Inside the sandbox. Default `/`: the working directory of an image without WORKDIR, which is Pachyderm's default. */
  workingDir?: string;
  /** Mounted read-only at /pfs/<name>. */
  inputs: { name: string; hostPath: string }[];
  /** Host directory mounted read-write at /pfs/out (created if missing). */
  outputDir: string;
  network: boolean;
  /** On expiry the whole process tree is killed. */
  timeoutMs?: number;
  /** The step is killed once outputDir holds more than this many bytes. */
  outputLimitBytes?: number;
  /** Host paths the step must not see (the Strata instance dir, its database). */
  hide: string[];
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

export interface DatumOutcome {
  /** null when the process was killed by a signal or never started. */
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  outputTooLarge: boolean;
  /** Set when the step could not be started at all (bad working dir, missing input, sandbox failure). */
  spawnError?: string;
  durationMs: number;
}

export interface Executor {
  readonly name: string;
  readonly sandboxed: boolean;
  run(run: DatumRun, signal?: AbortSignal): Promise<DatumOutcome>;
}

/**
 * The executor for this machine: bubblewrap when `bwrap` is installed and
 * passes a one-time self-test, else unsandboxed (which warns once, loudly,
 * on its first run).
 */
export function createLocalExecutor(opts: { forceUnsandboxed?: boolean; warn?: (msg: string) => void } = {}): Executor {
  const warn = opts.warn ?? ((msg: string) => process.stderr.write(`${msg}\n`));
  if (opts.forceUnsandboxed) return new UnsandboxedExecutor('sandboxing was turned off', warn);
  const bwrap = probeBwrap();
  if (bwrap.available) return new BwrapExecutor(bwrap.path, bwrap.hardening);
  return new UnsandboxedExecutor(bwrap.reason, warn);
}
