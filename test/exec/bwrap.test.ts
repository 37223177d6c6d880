// The bubblewrap sandbox: the shared step contract, then what only a sandbox
// can promise (read-only inputs and host, no network, hidden instance files,
// private /tmp). Skipped, saying so, where bwrap is missing or cannot run.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { BwrapExecutor, bwrapArgs, probeBwrap } from '../../src/exec/bwrap.js';
import { createLocalExecutor } from '../../src/exec/executor.js';
import { executorBehaviour } from './behaviour.js';
import { datum, workspace, type Workspace } from './fixtures.js';

const probe = probeBwrap();
const skip = probe.available ? false : probe.reason.startsWith('bwrap is not installed') ? 'SKIPPED: bubblewrap not installed' : `SKIPPED: ${probe.reason}`;
if (skip) console.log(skip);
const sandbox = () => (probe.available ? new BwrapExecutor(probe.path, probe.hardening) : createLocalExecutor());

executorBehaviour('bwrap', sandbox, skip);

describe('bwrap: what the sandbox enforces', { skip }, () => {
  let ws: Workspace;
  let executor: BwrapExecutor;
  beforeEach(() => {
    ws = workspace();
    writeFileSync(join(ws.input, 'a.txt'), 'input\n');
    executor = sandbox() as BwrapExecutor;
  });
  afterEach(() => ws.cleanup());

  it('is what createLocalExecutor picks when bwrap works', () => {
    const local = createLocalExecutor({ warn: () => assert.fail('no warning when sandboxed') });
    assert.equal(local.name, 'bwrap');
    assert.equal(local.sandboxed, true);
  });

  it('mounts inputs read-only at /pfs/<name>', async () => {
    const run = datum(ws, ['sh', '-c', 'cat /pfs/in/a.txt; echo x > /pfs/in/new.txt || exit 9; rm /pfs/in/a.txt']);
    const outcome = await executor.run(run);
    assert.equal(outcome.exitCode, 9);
    assert.equal(run.stdout.text, 'input\n');
    assert.match(run.stderr.text, /Read-only file system/);
    assert.deepEqual(readdirSync(ws.input), ['a.txt']);
  });

  it('mounts several inputs side by side', async () => {
    const second = join(ws.root, 'second');
    mkdirSync(second);
    writeFileSync(join(second, 'b.txt'), 'second\n');
    const run = datum(ws, ['sh', '-c', 'cat /pfs/in/a.txt /pfs/labels/b.txt; ls /pfs'], { inputs: [{ name: 'in', hostPath: ws.input }, { name: 'labels', hostPath: second }] });
    const outcome = await executor.run(run);
    assert.equal(outcome.exitCode, 0, run.stderr.text);
    assert.equal(run.stdout.text, 'input\nsecond\nin\nlabels\nout\n');
  });

  it('refuses writes anywhere but /pfs/out and the private /tmp', async () => {
    const name = `strata-escape-${randomBytes(4).toString('hex')}`;
    for (const target of [`/${name}`, `/pfs/${name}`, `/etc/${name}`, join(ws.visible, name)]) {
      const run = datum(ws, ['sh', '-c', `echo x > ${target}`]);
      const outcome = await executor.run(run);
      assert.notEqual(outcome.exitCode, 0, `writing ${target} must fail`);
      assert.match(run.stderr.text, /Read-only file system/, target);
    }
    assert.equal(existsSync(join(ws.visible, name)), false);
    assert.equal(existsSync(`/etc/${name}`), false);
  });

  it('sees the host filesystem read-only, so a script installed on the host runs by absolute path', async () => {
    const script = join(ws.visible, 'edges.sh');
    writeFileSync(script, '#!/bin/sh\nfor f in /pfs/in/*; do wc -c < "$f" > /pfs/out/$(basename "$f").size; done\n');
    chmodSync(script, 0o755);
    const run = datum(ws, [script]);
    const outcome = await executor.run(run);
    assert.equal(outcome.exitCode, 0, run.stderr.text);
    assert.equal(readFileSync(join(ws.output, 'a.txt.size'), 'utf8').trim(), '6');

    const tamper = datum(ws, ['sh', '-c', `echo 'rm -rf /' >> ${script}`]);
    assert.notEqual((await executor.run(tamper)).exitCode, 0);
    assert.ok(!readFileSync(script, 'utf8').includes('rm -rf'));
  });

  it('hides the instance directory and database even under a visible path', async () => {
    const instance = join(ws.visible, '.strata');
    mkdirSync(join(instance, 'objects'), { recursive: true });
    writeFileSync(join(instance, 'objects', 'secret'), 'instance secret\n');
    const database = join(ws.visible, 'meta.sqlite');
    writeFileSync(database, 'database secret\n');
    writeFileSync(join(ws.visible, 'public.txt'), 'public\n');

    const run = datum(ws, ['sh', '-c', `cat ${ws.visible}/public.txt; ls -A ${instance}; cat ${instance}/objects/secret; cat ${database}; echo done`], { hide: [instance, database, join(ws.root, 'absent')] });
    const outcome = await executor.run(run);
    assert.equal(outcome.exitCode, 0, run.stderr.text);
    assert.equal(run.stdout.text, 'public\ndone\n', 'only the public file and the final echo are visible');
    assert.ok(!run.stdout.text.includes('secret'));
    assert.match(run.stderr.text, /objects\/secret: No such file or directory/);
    assert.match(run.stderr.text, /meta\.sqlite: Permission denied/);
  });

  it('still mounts inputs and output that live inside a hidden instance directory', async () => {
    const instance = join(ws.visible, '.strata');
    const input = join(instance, 'staging', 'in');
    const output = join(instance, 'staging', 'out');
    mkdirSync(input, { recursive: true });
    mkdirSync(output, { recursive: true });
    writeFileSync(join(input, 'a.txt'), 'staged\n');
    const run = datum(ws, ['sh', '-c', `cp /pfs/in/a.txt /pfs/out/b.txt; ls -A ${instance}`], { inputs: [{ name: 'in', hostPath: input }], outputDir: output, hide: [instance] });
    const outcome = await executor.run(run);
    assert.equal(outcome.exitCode, 0, run.stderr.text);
    assert.equal(run.stdout.text, '', 'the instance dir itself looks empty');
    assert.equal(readFileSync(join(output, 'b.txt'), 'utf8'), 'staged\n');
  });

  it('gives the step a private /tmp', async () => {
    const name = `strata-tmp-${randomBytes(4).toString('hex')}`;
    writeFileSync(`/tmp/${name}.host`, 'host\n');
    try {
      const run = datum(ws, ['sh', '-c', `echo inside > /tmp/${name}.step && cat /tmp/${name}.step; ls /tmp/${name}.host`]);
      const outcome = await executor.run(run);
      assert.notEqual(outcome.exitCode, 0, 'the host /tmp file is not visible');
      assert.equal(run.stdout.text, 'inside\n');
      assert.equal(existsSync(`/tmp/${name}.step`), false);
    } finally {
      rmSync(`/tmp/${name}.host`, { force: true });
    }
  });

  it('works in / by default, with HOME=/tmp and STRATA_PFS=/pfs', async () => {
    const run = datum(ws, ['sh', '-c', 'pwd; echo "$HOME $STRATA_PFS"']);
    const outcome = await executor.run(run);
    assert.equal(outcome.exitCode, 0, run.stderr.text);
    assert.equal(run.stdout.text, '/\n/tmp /pfs\n');
  });

  it('reports a working dir that does not exist as a failure to start', async () => {
    const run = datum(ws, ['true'], { workingDir: '/pfs/no-such-dir' });
    const outcome = await executor.run(run);
    assert.match(outcome.spawnError ?? '', /sandbox setup failed: .*no-such-dir/);
  });

  it('runs without capabilities and without the sockets of host daemons in /run', async () => {
    const run = datum(ws, ['sh', '-c', 'grep CapEff /proc/self/status; find /run -type s | wc -l']);
    const outcome = await executor.run(run);
    assert.equal(outcome.exitCode, 0, run.stderr.text);
    assert.equal(run.stdout.text, 'CapEff:\t0000000000000000\n0\n');
  });

  it('starts every step in a new session, dying with its parent, in fresh namespaces', () => {
    const args = bwrapArgs(datum(ws, ['true']), probe.available ? probe.hardening : []);
    const flags = args.slice(0, args.indexOf('--'));
    for (const flag of ['--new-session', '--die-with-parent', '--unshare-all', '--remount-ro']) assert.ok(flags.includes(flag), flag);
    assert.equal(flags[flags.indexOf('--cap-drop') + 1], 'ALL');
    assert.ok(!flags.includes('--share-net'));
    assert.ok(bwrapArgs(datum(ws, ['true'], { network: true }), []).includes('--share-net'));
    assert.deepEqual(args.slice(args.indexOf('--')), ['--', 'true']);
  });

  describe('network', () => {
    let server: Server;
    let port: number;
    before(async () => {
      server = createServer((socket) => socket.end('hello\n'));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as { port: number }).port;
    });
    after(() => new Promise<void>((resolve) => server.close(() => resolve())));

    const connect = () => [process.execPath, '-e', `require('net').connect(${port}, '127.0.0.1').on('data', (d) => { process.stdout.write(d); process.exit(0) }).on('error', (e) => { console.error(e.code); process.exit(7) })`];

    it('has no network by default: a listener on the host loopback is unreachable', async () => {
      const run = datum(ws, connect());
      const outcome = await executor.run(run);
      assert.equal(outcome.exitCode, 7, run.stdout.text);
      assert.match(run.stderr.text, /ECONNREFUSED|ENETUNREACH/);
    });

    it('reaches the host network when the spec allows it', async () => {
      const run = datum(ws, connect(), { network: true });
      const outcome = await executor.run(run);
      assert.equal(outcome.exitCode, 0, run.stderr.text);
      assert.equal(run.stdout.text, 'hello\n');
    });
  });
});
