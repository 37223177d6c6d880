// The unsandboxed fallback: the same step contract through $STRATA_PFS, and
// what it does in place of a sandbox (per-datum pfs dir, private TMPDIR,
// process-group kills). Runs everywhere, bwrap or not.

import assert from 'node:assert/strict';
import { existsSync, lstatSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { createLocalExecutor, type Executor } from '../../src/exec/executor.js';
import { executorBehaviour } from './behaviour.js';
import { datum, workspace, type Workspace } from './fixtures.js';

const unsandboxed = () => createLocalExecutor({ forceUnsandboxed: true, warn: () => {} });

executorBehaviour('unsandboxed', unsandboxed, false);

describe('unsandboxed: paths through STRATA_PFS', () => {
  let ws: Workspace;
  let executor: Executor;
  beforeEach(() => {
    ws = workspace();
    writeFileSync(join(ws.input, 'a.txt'), 'input\n');
    executor = unsandboxed();
  });
  afterEach(() => ws.cleanup());

  it('says it is not sandboxed', () => {
    assert.equal(executor.name, 'unsandboxed');
    assert.equal(executor.sandboxed, false);
  });

  it('lays out a per-datum pfs dir of symlinks, private TMPDIR and HOME, and removes it afterwards', async () => {
    const script = 'echo "$STRATA_PFS"; echo "$TMPDIR"; echo "$HOME"; echo scratch > "$TMPDIR/scratch"; ls "$STRATA_PFS"';
    const run = datum(ws, ['sh', '-c', script]);
    const outcome = await executor.run(run);
    assert.equal(outcome.exitCode, 0, run.stderr.text);
    const [pfs, tmp, home, ...listing] = run.stdout.text.trim().split('\n');
    assert.match(pfs!, /strata-datum-.*\/pfs$/);
    assert.equal(tmp, home);
    assert.notEqual(tmp, '/tmp');
    assert.deepEqual(listing, ['in', 'out']);
    assert.equal(existsSync(pfs!), false, 'the per-datum dir is removed');
    assert.equal(existsSync(tmp!), false);
    assert.equal(readFileSync(join(ws.input, 'a.txt'), 'utf8'), 'input\n', 'removing the symlinks leaves the input alone');
  });

  it('rewrites /pfs paths in argv, env values and working_dir, so simple specs run unchanged', async () => {
    const run = datum(ws, ['sh', '-c', 'cp "$1" copy.txt; cp "$in" copy2.txt', 'sh', '/pfs/in/a.txt'], { workingDir: '/pfs/out', env: { in: '/pfs/in/a.txt' } });
    const outcome = await executor.run(run);
    assert.equal(outcome.exitCode, 0, run.stderr.text);
    assert.equal(readFileSync(join(ws.output, 'copy.txt'), 'utf8'), 'input\n');
    assert.equal(readFileSync(join(ws.output, 'copy2.txt'), 'utf8'), 'input\n');
    assert.ok(lstatSync(join(ws.output, 'copy.txt')).isFile());
  });

  it('reports a file that is not executable as exit 126', async () => {
    const run = datum(ws, [join(ws.input, 'a.txt')]);
    const outcome = await executor.run(run);
    assert.equal(outcome.exitCode, 126);
    assert.match(run.stderr.text, /not executable/);
  });

  it('reports a working dir that does not exist as a failure to start', async () => {
    const outcome = await executor.run(datum(ws, ['true'], { workingDir: '/pfs/missing' }));
    assert.match(outcome.spawnError ?? '', /working directory \/pfs\/missing does not exist/);
  });

  it('links inputs given as relative paths by their absolute path', async () => {
    const run = datum(ws, ['sh', '-c', 'readlink "$STRATA_PFS/in"; cat "$STRATA_PFS/in/a.txt"'], { inputs: [{ name: 'in', hostPath: relative(process.cwd(), ws.input) }] });
    const outcome = await executor.run(run);
    assert.equal(outcome.exitCode, 0, run.stderr.text);
    assert.equal(run.stdout.text, `${ws.input}\ninput\n`);
  });
});
