// Running one datum's process to completion, whatever started it (bwrap or a
// plain spawn): stdio wiring, stdin delivery, the timeout, abort, the output
// size watch and the wall-clock duration. How to kill the whole process tree
// is the caller's business, because it differs: bwrap's pid namespace dies
// with bwrap, an unsandboxed step is a process group.

import { spawn, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import type { DatumOutcome, DatumRun } from './executor.js';
import { outputSize } from './output-size.js';

export const OUTPUT_POLL_MS = 100;
/** After the main process exits, how long stdio may stay open (held by an escaped child) before it is cut. */
const STDIO_GRACE_MS = 1000;
/** Bytes of stderr kept for the executor to recognise its own error messages. */
const STDERR_HEAD_BYTES = 1024;

export interface ProcessSpec {
  command: string;
  /** What the process sees as argv[0], when command is a resolved path. */
  argv0?: string;
  args: string[];
  env: Record<string, string>;
  cwd?: string;
  /** Start a new process group (so the tree can be signalled as one). */
  detached: boolean;
  /** SIGKILL the step and everything it started. */
  killTree(child: ChildProcess): void;
  /** Called once the main process has exited, to kill anything it left running. */
  afterExit?(child: ChildProcess): void;
}

export interface ProcessOutcome extends DatumOutcome {
  /** The first bytes the process wrote to stderr (also passed on to run.stderr). */
  stderrHead: string;
}

export function superviseProcess(spec: ProcessSpec, run: DatumRun, signal?: AbortSignal): Promise<ProcessOutcome> {
  const started = performance.now();
  const outcome: ProcessOutcome = { exitCode: null, signal: null, timedOut: false, outputTooLarge: false, durationMs: 0, stderrHead: '' };
  if (signal?.aborted) return Promise.resolve({ ...outcome, spawnError: 'aborted before the step started' });

  return new Promise<ProcessOutcome>((resolve) => {
    let child: ChildProcess;
    try {
      child = spawn(spec.command, spec.args, {
        argv0: spec.argv0,
        env: spec.env,
        cwd: spec.cwd,
        detached: spec.detached,
        stdio: [run.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      });
    } catch (err) {
      resolve({ ...outcome, spawnError: `cannot start ${spec.command}: ${(err as Error).message}`, durationMs: performance.now() - started });
      return;
    }

    let finished = false;
    let killed = false;
    let exited = false;
    const timers: NodeJS.Timeout[] = [];
    const kill = () => {
      if (killed || exited) return;
      killed = true;
      spec.killTree(child);
    };
    const onAbort = () => kill();
    signal?.addEventListener('abort', onAbort, { once: true });

    const finish = async (extra: Partial<ProcessOutcome>) => {
      if (finished) return;
      finished = true;
      Object.assign(outcome, extra);
      outcome.durationMs = performance.now() - started;
      for (const timer of timers) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      // The final check catches output written between the last poll and exit.
      if (run.outputLimitBytes !== undefined && !outcome.outputTooLarge && outcome.spawnError === undefined) {
        try {
          if ((await outputSize(run.outputDir, run.outputLimitBytes)) > run.outputLimitBytes) outcome.outputTooLarge = true;
        } catch {
          // The output dir is unreadable: the caller's commit step reports that with its own error.
        }
      }
      resolve(outcome);
    };

    child.on('error', (err: NodeJS.ErrnoException) => {
      // Spawn failures come here with no pid; later errors (a failed kill) do not end the run.
      if (child.pid === undefined) void finish({ spawnError: `cannot start ${spec.command}: ${err.message}` });
    });

    child.stdout!.pipe(run.stdout, { end: false });
    child.stderr!.pipe(run.stderr, { end: false });
    let headBytes = 0;
    child.stderr!.on('data', (chunk: Buffer) => {
      if (headBytes >= STDERR_HEAD_BYTES) return;
      const piece = chunk.subarray(0, STDERR_HEAD_BYTES - headBytes);
      headBytes += piece.length;
      outcome.stderrHead += piece.toString('utf8');
    });
    if (run.stdin !== undefined) {
      // A step that exits without reading its stdin is not an error (EPIPE), as in Pachyderm.
      child.stdin!.on('error', () => {});
      child.stdin!.end(run.stdin);
    }

    if (run.timeoutMs !== undefined && run.timeoutMs > 0) {
      timers.push(
        setTimeout(() => {
          outcome.timedOut = true;
          kill();
        }, run.timeoutMs),
      );
    }

    if (run.outputLimitBytes !== undefined) {
      const limit = run.outputLimitBytes;
      const poll = async () => {
        if (exited || finished) return;
        try {
          if ((await outputSize(run.outputDir, limit)) > limit) {
            outcome.outputTooLarge = true;
            kill();
            return;
          }
        } catch {
          // Unreadable for a moment (the step is changing it); the next poll or the final check decides.
        }
        if (!exited && !finished) timers.push(setTimeout(poll, OUTPUT_POLL_MS));
      };
      timers.push(setTimeout(poll, OUTPUT_POLL_MS));
    }

    child.on('exit', () => {
      exited = true;
      spec.afterExit?.(child);
      // Normally stdio closes right away; a process that escaped the kill and
      // still holds it must not keep the datum running forever.
      timers.push(
        setTimeout(() => {
          child.stdout?.destroy();
          child.stderr?.destroy();
        }, STDIO_GRACE_MS),
      );
    });
    child.on('close', (code, sig) => void finish({ exitCode: code, signal: sig }));
  });
}
