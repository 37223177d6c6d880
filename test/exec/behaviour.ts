// What every local executor does, sandboxed or not. The steps address their
// files through $STRATA_PFS, which is /pfs in the sandbox and a per-datum
// directory of symlinks without it, so the same step runs in both.

import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Executor } from '../../src/exec/executor.js';
import { datum, markedSleep, marker, noProcessesLeft, processesMatching, sleep, workspace, type Workspace } from './fixtures.js';

export function executorBehaviour(label: string, create: () => Executor, skip: string | false) {
  describe(`${label}: the step contract`, { skip }, () => {
    let ws: Workspace;
    let executor: Executor;
    beforeEach(() => {
      ws = workspace();
      writeFileSync(join(ws.input, 'a.txt'), 'hello from the input\n');
      executor = create();
    });
    afterEach(() => ws.cleanup());

    it('reads the input and writes output that appears in the host output dir', async () => {
      const run = datum(ws, ['sh', '-c', 'cat "$STRATA_PFS/in/a.txt"; tr a-z A-Z < "$STRATA_PFS/in/a.txt" > "$STRATA_PFS/out/upper.txt"']);
      const outcome = await executor.run(run);
      assert.equal(outcome.exitCode, 0, run.stderr.text);
      assert.equal(run.stdout.text, 'hello from the input\n');
      assert.equal(readFileSync(join(ws.output, 'upper.txt'), 'utf8'), 'HELLO FROM THE INPUT\n');
      assert.equal(outcome.timedOut, false);
      assert.equal(outcome.outputTooLarge, false);
      assert.equal(outcome.spawnError, undefined);
      assert.ok(outcome.durationMs > 0);
    });

    it('delivers stdin and then closes it', async () => {
      const run = datum(ws, ['cat'], { stdin: 'line 1\nline 2' });
      const outcome = await executor.run(run);
      assert.equal(outcome.exitCode, 0, run.stderr.text);
      assert.equal(run.stdout.text, 'line 1\nline 2', 'cat only exits once stdin is closed');
      const script = datum(ws, ['sh'], { stdin: 'echo one\necho two > "$STRATA_PFS/out/two"\n' });
      assert.equal((await executor.run(script)).exitCode, 0, script.stderr.text);
      assert.equal(script.stdout.text, 'one\n');
      assert.equal(readFileSync(join(ws.output, 'two'), 'utf8'), 'two\n');
    });

    it('gives a step without stdin an empty one', async () => {
      const run = datum(ws, ['cat']);
      const outcome = await executor.run(run);
      assert.equal(outcome.exitCode, 0, run.stderr.text);
      assert.equal(run.stdout.text, '');
    });

    it('passes the given env over a minimal base and does not leak the host env', async () => {
      process.env.STRATA_EXEC_TEST_SECRET = 'must-not-leak';
      try {
        const run = datum(ws, ['env'], { env: { FOO: 'bar baz', STRATA_PFS: '/elsewhere', PACH_DATUM_ID: 'from-spec' } });
        const outcome = await executor.run(run);
        assert.equal(outcome.exitCode, 0, run.stderr.text);
        const env = new Map(run.stdout.text.trim().split('\n').map((line) => line.split(/=(.*)/s, 2) as [string, string]));
        assert.equal(env.get('PACH_JOB_ID'), 'job1');
        assert.equal(env.get('STRATA_JOB_ID'), 'job1');
        assert.equal(env.get('STRATA_DATUM_ID'), 'datum1');
        assert.equal(env.get('PACH_DATUM_ID'), 'from-spec', 'the run env overrides the base');
        assert.equal(env.get('FOO'), 'bar baz');
        assert.ok(env.get('PATH'));
        assert.ok(env.get('HOME'));
        assert.notEqual(env.get('STRATA_PFS'), '/elsewhere', 'STRATA_PFS is part of the contract, not the spec');
        assert.ok(!run.stdout.text.includes('must-not-leak'));
        for (const name of env.keys()) assert.ok(['PACH_JOB_ID', 'PACH_DATUM_ID', 'STRATA_JOB_ID', 'STRATA_DATUM_ID', 'FOO', 'PATH', 'HOME', 'LANG', 'STRATA_PFS', 'TMPDIR', 'PWD', 'SHLVL', '_'].includes(name), `unexpected env var ${name}`);
      } finally {
        delete process.env.STRATA_EXEC_TEST_SECRET;
      }
    });

    it('runs in the working dir it is given', async () => {
      const run = datum(ws, ['cat', 'a.txt'], { workingDir: '/pfs/in' });
      const outcome = await executor.run(run);
      assert.equal(outcome.exitCode, 0, run.stderr.text);
      assert.equal(run.stdout.text, 'hello from the input\n');
    });

    it('reports a non-zero exit code and the stderr of the step', async () => {
      const run = datum(ws, ['sh', '-c', 'echo "bad row 7" >&2; exit 3']);
      const outcome = await executor.run(run);
      assert.equal(outcome.exitCode, 3);
      assert.equal(outcome.signal, null);
      assert.equal(run.stderr.text, 'bad row 7\n');
    });

    it('reports a command that does not exist as exit 127 with a clear message', async () => {
      const run = datum(ws, ['strata-no-such-command', 'x']);
      const outcome = await executor.run(run);
      assert.equal(outcome.exitCode, 127);
      assert.match(run.stderr.text, /command not found.*strata-no-such-command/);
    });

    it('does not start a step whose input is missing', async () => {
      const run = datum(ws, ['true'], { inputs: [{ name: 'in', hostPath: join(ws.root, 'gone') }] });
      const outcome = await executor.run(run);
      assert.match(outcome.spawnError ?? '', /input "in".*gone does not exist/);
      assert.equal(outcome.exitCode, null);
    });

    it('kills the whole process tree on timeout', async () => {
      const mark = marker();
      const duration = markedSleep();
      const run = datum(ws, ['sh', '-c', `sleep ${duration} & sleep ${duration}; echo never`, mark], { timeoutMs: 600 });
      const pending = executor.run(run);
      await sleep(300);
      assert.ok(processesMatching(duration).length >= 2, 'the step and its child are running');
      const outcome = await pending;
      assert.equal(outcome.timedOut, true);
      assert.equal(outcome.signal, 'SIGKILL');
      assert.ok(outcome.durationMs >= 600 && outcome.durationMs < 5000, `took ${outcome.durationMs} ms`);
      assert.deepEqual(await noProcessesLeft(duration), []);
      assert.deepEqual(await noProcessesLeft(mark), []);
      assert.equal(run.stdout.text, '');
    });

    it('kills what a step left running in the background when it exits', async () => {
      const duration = markedSleep();
      const run = datum(ws, ['sh', '-c', `sleep ${duration} >/dev/null 2>&1 & echo started`]);
      const outcome = await executor.run(run);
      assert.equal(outcome.exitCode, 0, run.stderr.text);
      assert.equal(run.stdout.text, 'started\n');
      assert.deepEqual(await noProcessesLeft(duration), []);
    });

    it('kills a step whose output grows past the limit', async () => {
      const run = datum(ws, ['sh', '-c', 'while :; do head -c 1048576 /dev/zero >> "$STRATA_PFS/out/big"; done'], { outputLimitBytes: 8 * 1048576, timeoutMs: 20_000 });
      const outcome = await executor.run(run);
      assert.equal(outcome.outputTooLarge, true);
      assert.equal(outcome.timedOut, false);
      assert.equal(outcome.signal, 'SIGKILL');
      assert.ok(outcome.durationMs < 10_000);
    });

    it('flags output over the limit written between polls, after a normal exit', async () => {
      const run = datum(ws, ['sh', '-c', 'head -c 3000000 /dev/zero > "$STRATA_PFS/out/big"'], { outputLimitBytes: 1_000_000 });
      const outcome = await executor.run(run);
      assert.equal(outcome.exitCode, 0, run.stderr.text);
      assert.equal(outcome.outputTooLarge, true);
      const within = datum(ws, ['sh', '-c', 'rm "$STRATA_PFS/out/big"; head -c 1000 /dev/zero > "$STRATA_PFS/out/small"'], { outputLimitBytes: 1_000_000 });
      assert.equal((await executor.run(within)).outputTooLarge, false);
    });

    it('stops the step tree when the signal aborts', async () => {
      const duration = markedSleep();
      const run = datum(ws, ['sh', '-c', `sleep ${duration} & sleep ${duration}`]);
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 300);
      const outcome = await executor.run(run, controller.signal);
      assert.equal(outcome.signal, 'SIGKILL');
      assert.equal(outcome.timedOut, false);
      assert.ok(outcome.durationMs < 5000);
      assert.deepEqual(await noProcessesLeft(duration), []);
    });

    it('does not start a step whose signal is already aborted', async () => {
      const run = datum(ws, ['sh', '-c', 'echo ran > "$STRATA_PFS/out/ran"']);
      const outcome = await executor.run(run, AbortSignal.abort());
      assert.match(outcome.spawnError ?? '', /aborted/);
      assert.equal(existsSync(join(ws.output, 'ran')), false);
    });

    it('runs datums concurrently, each with its own output', async () => {
      const outputs = ['o1', 'o2', 'o3', 'o4'].map((name) => join(ws.root, name));
      const runs = outputs.map((outputDir, i) => datum(ws, ['sh', '-c', `sleep 0.2; echo ${i} > "$STRATA_PFS/out/n"`], { outputDir }));
      const started = Date.now();
      const outcomes = await Promise.all(runs.map((run) => executor.run(run)));
      assert.ok(Date.now() - started < 700, 'four 200 ms steps overlap');
      for (const [i, outcome] of outcomes.entries()) {
        assert.equal(outcome.exitCode, 0, runs[i]!.stderr.text);
        assert.equal(readFileSync(join(outputs[i]!, 'n'), 'utf8'), `${i}\n`);
      }
    });

    it('measures the duration of the step', async () => {
      const run = datum(ws, ['sleep', '0.2']);
      const outcome = await executor.run(run);
      assert.equal(outcome.exitCode, 0, run.stderr.text);
      assert.ok(outcome.durationMs >= 200 && outcome.durationMs < 3000, `took ${outcome.durationMs} ms`);
    });
  });
}
