import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// Runs the real `strata` command as a child process, as a user would.

// Commands scan and index their commits before they exit (not in a detached `strata index`), so a test sees
// the results at once and leaves no process behind; test/cli/index.test.ts covers the background default.
process.env.STRATA_INDEX ??= 'wait';

export const STRATA_BIN = join(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..'), 'bin', 'strata.js');

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function strata(args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string | Buffer; cwd?: string } = {}): RunResult {
  const res = spawnSync(process.execPath, [STRATA_BIN, ...args], {
    env: { ...process.env, STRATA_NO_PROGRESS: '1', ...opts.env },
    input: opts.input,
    cwd: opts.cwd,
    encoding: 'utf8',
    maxBuffer: 512 << 20,
  });
  return { code: res.status ?? -1, stdout: res.stdout, stderr: res.stderr };
}

/** Starts `strata server --port 0 [args]` and resolves with its URL once it listens. */
export async function startServerProcess(env: NodeJS.ProcessEnv, args: string[] = []): Promise<{ url: string; child: ChildProcess; stop(): Promise<number | null> }> {
  const child = spawn(process.execPath, [STRATA_BIN, 'server', '--port', '0', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  const url = await new Promise<string>((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${stderr}`)), 15000);
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolveUrl(m[1]!);
      }
    });
    child.on('exit', (code) => reject(new Error(`server exited with ${code}: ${stderr}`)));
  });
  return {
    url,
    child,
    /** Stops the server (SIGTERM); resolves with its exit code. */
    stop: () =>
      new Promise((done) => {
        child.once('exit', (code) => done(code));
        child.kill('SIGTERM');
      }),
  };
}

/**
 * Assertion helpers over one environment (read at each call, so setting
 * STRATA_SERVER later switches them to HTTP): run, ok (exit 0), json (--json
 * parsed) and fails (this exit code, this message, one line, no stack trace).
 */
export function cli(env: NodeJS.ProcessEnv) {
  const run = (...args: string[]) => strata(args, { env });
  const ok = (...args: string[]) => {
    const r = run(...args);
    assert.equal(r.code, 0, `strata ${args.join(' ')} failed: ${r.stderr}`);
    return r;
  };
  const json = (...args: string[]) => JSON.parse(ok(...args, '--json').stdout);
  const fails = (code: number, args: string[], match: RegExp, input?: string) => {
    const r = strata(args, { env, input });
    assert.equal(r.code, code, `strata ${args.join(' ')}: expected exit ${code}, got ${r.code}: ${r.stderr}`);
    assert.match(r.stderr, match);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace for user errors');
    return r;
  };
  return { run, ok, json, fails };
}
