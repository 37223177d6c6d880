// The fallback's warning, in a file of its own: it is once per process, and
// each test file is its own process.

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createLocalExecutor } from '../../src/exec/executor.js';
import { datum, workspace } from './fixtures.js';

describe('unsandboxed warning', () => {
  const ws = workspace();
  after(() => ws.cleanup());

  it('warns once per process, loudly, on the first run, naming what is not enforced', async () => {
    const warnings: string[] = [];
    const executor = createLocalExecutor({ forceUnsandboxed: true, warn: (msg) => warnings.push(msg) });
    assert.equal(warnings.length, 0, 'creating an executor that never runs a step says nothing');
    await executor.run(datum(ws, ['true']));
    await executor.run(datum(ws, ['true']));
    await createLocalExecutor({ forceUnsandboxed: true, warn: (msg) => warnings.push(msg) }).run(datum(ws, ['true']));
    assert.equal(warnings.length, 1);
    const [warning] = warnings as [string];
    assert.match(warning, /WARNING/);
    assert.match(warning, /UNSANDBOXED/);
    assert.match(warning, /network is NOT blocked/);
    assert.match(warning, /\/pfs paths do not exist/);
    assert.match(warning, /STRATA_PFS/);
  });
});
