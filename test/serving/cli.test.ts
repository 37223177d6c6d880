// `strata deploy` and `strata predict` as a user runs them: locally (the
// model is loaded in the CLI process) and through a running server.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startServer, type RunningServer } from '../../src/api/server.js';
import { Instance } from '../../src/instance.js';
import { logisticRegressionModel } from '../../src/onnx/build.js';
import { STRATA_BIN, strata, type RunResult } from '../cli/run.js';
import { tempDir } from '../fixtures.js';

/** `strata` without blocking this process, which hosts the server it talks to. */
function strataAsync(args: string[], input?: string): Promise<RunResult> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [STRATA_BIN, ...args], { env: { ...process.env, STRATA_NO_PROGRESS: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => done({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

const W = Float32Array.of(0.5, -0.25, 1, 2);
const p1 = (x: number[]) => 1 / (1 + Math.exp(-x.reduce((s, v, i) => s + v * W[i]!, 0.1)));

describe('strata deploy and strata predict', () => {
  const dir = tempDir('strata-deploy-');
  const home = join(dir.path, '.strata');
  before(async () => {
    const instance = await Instance.init(home);
    await instance.data.createRepo({ name: 'train' });
    await instance.data.commit('train', 'master', [{ op: 'put', path: '/model.onnx', content: logisticRegressionModel({ weights: W, bias: 0.1, features: 4 }) }]);
    await instance.registry.registerVersion('spam', { from: 'train@master:/model.onnx' });
    await instance.registry.setAlias('spam', 'production', 1, { actor: 'test' });
    await instance.close();
  });
  after(() => dir.cleanup());

  const x = [1, 2, 3, 4];

  it('creates, lists and inspects a deployment and predicts locally, in both request forms', () => {
    const created = strata(['--home', home, 'deploy', 'create', 'spam-prod', '--model', 'spam@production', '--json']);
    assert.equal(created.code, 0, created.stderr);
    assert.equal(JSON.parse(created.stdout).model, 'spam@production');
    const list = strata(['--home', home, 'deploy', 'list', '--json']);
    assert.deepEqual(JSON.parse(list.stdout).map((d: { name: string }) => d.name), ['spam-prod']);

    const simple = strata(['--home', home, 'predict', 'spam-prod', '--input', '-', '--json'], { input: JSON.stringify({ inputs: { input: [x] } }) });
    assert.equal(simple.code, 0, simple.stderr);
    const out = JSON.parse(simple.stdout);
    assert.equal(out.model, 'spam');
    assert.equal(out.version, 1);
    assert.ok(Math.abs(out.outputs.probabilities[0][1] - p1(x)) < 1e-5);

    const oip = strata(['--home', home, 'predict', 'spam-prod', '--input', '-', '--json'], {
      input: JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: x }] }),
    });
    assert.equal(oip.code, 0, oip.stderr);
    assert.equal(JSON.parse(oip.stdout).model_version, '1');

    const bad = strata(['--home', home, 'predict', 'spam-prod', '--input', '-', '--json'], { input: JSON.stringify({ inputs: { nope: [x] } }) });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /unknown input "nope"/);
    const missing = strata(['--home', home, 'deploy', 'inspect', 'nope', '--json']);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /deployment "nope" not found/);
  });

  it('logs predictions with --log-predictions, written when a local predict exits', async () => {
    const bad = strata(['--home', home, 'deploy', 'create', 'logged', '--model', 'spam@production', '--log-predictions', '2']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--log-predictions "2" must be a fraction from 0/);
    const created = strata(['--home', home, 'deploy', 'create', 'logged', '--model', 'spam@production', '--log-predictions', '1', '--json']);
    assert.equal(created.code, 0, created.stderr);
    assert.deepEqual(JSON.parse(created.stdout).config, { logging: { rate: 1 } });
    for (let i = 0; i < 2; i++) {
      const r = strata(['--home', home, 'predict', 'logged', '--input', '-', '--json'], { input: JSON.stringify({ inputs: { input: [x] } }) });
      assert.equal(r.code, 0, r.stderr);
    }
    // Each CLI process wrote its buffered record as it closed.
    const instance = await Instance.open(home);
    let server: RunningServer | undefined;
    try {
      const files = (await instance.data.ls('logged-predictions@master:/', { recursive: true })).filter((f) => f.type === 'file');
      assert.equal(files.length, 2);
      server = await startServer({ instance, port: 0, scheduler: false });
      const url = server.url;
      const viaServer = (args: string[], input?: string) => strataAsync(['--server', url, ...args], input);
      assert.equal((await viaServer(['predict', 'logged', '--input', '-'], JSON.stringify({ inputs: { input: [x] } }))).code, 0);
      const shown = await viaServer(['deploy', 'inspect', 'logged']);
      assert.equal(shown.code, 0, shown.stderr);
      assert.match(shown.stdout, /prediction log\s+100% of requests to repo logged-predictions/);
      assert.match(shown.stdout, /logged\s+1 sampled, \d committed in \d files, \d buffered, 0 dropped/);
      const batched = await viaServer(['deploy', 'update', 'logged', '--max-batch-size', '8', '--max-batch-delay-us', '500', '--json']);
      assert.equal(batched.code, 0, batched.stderr);
      assert.deepEqual(JSON.parse(batched.stdout).config.batching, { max_batch_size: 8, max_batch_delay_us: 500 });
      const shownBatching = await viaServer(['deploy', 'inspect', 'logged']);
      assert.match(shownBatching.stdout, /batching\s+up to 8 rows per run, waiting at most 500 µs: on/);
      const off = await viaServer(['deploy', 'update', 'logged', '--log-predictions', '0', '--max-batch-size', '1', '--json']);
      assert.equal(off.code, 0, off.stderr);
      assert.deepEqual(JSON.parse(off.stdout).config, {});
      assert.equal((await viaServer(['deploy', 'delete', 'logged'])).code, 0);
    } finally {
      await server?.close();
      await instance.close();
    }
  });

  it('predicts and manages deployments through a server', async () => {
    const instance = await Instance.open(home);
    let server: RunningServer | undefined;
    try {
      server = await startServer({ instance, port: 0, scheduler: false });
      const viaServer = (args: string[], input?: string) => strataAsync(['--server', server!.url, ...args], input);
      const inspect = await viaServer(['deploy', 'inspect', 'spam-prod', '--json']);
      assert.equal(inspect.code, 0, inspect.stderr);
      const serving = JSON.parse(inspect.stdout).serving;
      assert.equal(serving.state, 'ready');
      assert.equal(serving.version, 1);
      assert.deepEqual(serving.traffic.versions, {});
      const oip = await viaServer(['predict', 'spam-prod', '--input', '-', '--json'], JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: x }] }));
      assert.equal(oip.code, 0, oip.stderr);
      const body = JSON.parse(oip.stdout);
      assert.ok(Math.abs(body.outputs[0].data[1] - p1(x)) < 1e-5);
      const bad = await viaServer(['predict', 'spam-prod', '--input', '-'], JSON.stringify({ inputs: [{ name: 'input', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] }] }));
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr, /shape \[1, 3\] does not fit/);
      assert.equal((await viaServer(['deploy', 'update', 'spam-prod', '--model', 'spam@1', '--json'])).code, 0);
      // Canary and shadow from the command line: the config, then what inspect shows.
      const canary = await viaServer(['deploy', 'update', 'spam-prod', '--canary', 'spam@1=25', '--shadow', 'spam@1', '--json']);
      assert.equal(canary.code, 0, canary.stderr);
      assert.deepEqual(JSON.parse(canary.stdout).config, { canary: { model: 'spam@1', weight: 25 }, shadow: { model: 'spam@1' } });
      const shown = await viaServer(['deploy', 'inspect', 'spam-prod']);
      assert.equal(shown.code, 0, shown.stderr);
      assert.match(shown.stdout, /canary\s+spam@1 takes 25% of requests: ready \(version 1\)/);
      assert.match(shown.stdout, /shadow\s+spam@1 gets a copy of every request: ready \(version 1\)/);
      assert.match(shown.stdout, /requests spam@1\s+2 \(1 failed\)/);
      const badCanary = await viaServer(['deploy', 'update', 'spam-prod', '--canary', 'spam@production=10']);
      assert.notEqual(badCanary.code, 0);
      assert.match(badCanary.stderr, /must name a fixed version/);
      const removed = await viaServer(['deploy', 'update', 'spam-prod', '--no-canary', '--no-shadow', '--json']);
      assert.equal(removed.code, 0, removed.stderr);
      assert.deepEqual(JSON.parse(removed.stdout).config, {});
      assert.equal((await viaServer(['deploy', 'delete', 'spam-prod'])).code, 0);
      assert.deepEqual(JSON.parse((await viaServer(['deploy', 'list', '--json'])).stdout), []);
    } finally {
      await server?.close();
      await instance.close();
    }
  });
});
