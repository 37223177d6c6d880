// The CLI side of the process runtime and of the body limit, as a user runs
// them: `strata server --body-limit` (sizes with suffixes, bad values exit 2,
// oversized inference requests get the protocol's 413) and `strata deploy
// create --runtime process --command ...` through that server, with the model
// process shown by `deploy inspect`.

import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { parseByteSize } from '../../src/cli/byte-size.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { Instance } from '../../src/instance.js';
import { cli, startServerProcess, strata } from '../cli/run.js';
import { tempDir } from '../fixtures.js';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'oip-model-server.js');
const COMMAND = `"${process.execPath}" "${SCRIPT}"`;

const startServer = (home: string, args: string[]) => startServerProcess({ STRATA_HOME: home }, args);

const post = async (url: string, body: string) => {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  return { status: res.status, body: (await res.json()) as any };
};

describe('strata server --body-limit and strata deploy --runtime process', () => {
  const dir = tempDir('strata-process-cli-');
  const home = join(dir.path, '.strata');
  const { fails, json, ok } = cli({ STRATA_HOME: home });
  before(async () => {
    const instance = await Instance.init(home);
    await instance.data.createRepo({ name: 'train' });
    await instance.data.commit('train', 'master', [{ op: 'put', path: '/weights.json', content: new TextEncoder().encode(JSON.stringify({ weights: [1, 2], bias: 1 })) }]);
    await instance.registry.registerVersion('lin', { from: 'train@master:/weights.json' });
    await instance.close();
  });
  after(() => dir.cleanup());

  it('parses sizes as bytes or with k, m, g suffixes', () => {
    assert.equal(parseByteSize('8mb', '--body-limit'), 8 * 1024 * 1024);
    assert.equal(parseByteSize('512k', '--body-limit'), 512 * 1024);
    assert.equal(parseByteSize('1G', '--body-limit'), 1024 ** 3);
    assert.equal(parseByteSize('2MiB', '--body-limit'), 2 * 1024 * 1024);
    assert.equal(parseByteSize('1000', '--body-limit'), 1000);
    for (const bad of ['', '0', '8xb', '-1k', 'mb', '2g']) assert.throws(() => parseByteSize(bad, '--body-limit'), InvalidArgumentError, bad);
  });

  it('rejects a bad --body-limit with exit 2', () => {
    fails(2, ['--home', home, 'server', '--port', '0', '--body-limit', '8xb'], /--body-limit "8xb" must be a size/);
  });

  it('answers an inference body over the limit with the protocol 413 and serves one under it', async () => {
    const server = await startServer(home, ['--body-limit', '4k']);
    try {
      const small = await post(`${server.url}/v2/models/nope/infer`, JSON.stringify({ inputs: [{ name: 'x', shape: [1], datatype: 'FP64', data: [1] }] }));
      assert.equal(small.status, 404, JSON.stringify(small.body));
      const data = Array.from({ length: 2000 }, () => 1.5);
      const big = await post(`${server.url}/v2/models/nope/infer`, JSON.stringify({ inputs: [{ name: 'x', shape: [2000], datatype: 'FP64', data }] }));
      assert.equal(big.status, 413);
      assert.equal(typeof big.body.error, 'string');
      assert.match(big.body.error, /at most 4096 bytes/);
      assert.match(big.body.error, /--body-limit/);
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });

  it('creates a process deployment through a server, predicts through it and shows its process', async () => {
    fails(2, ['--home', home, 'deploy', 'create', 'x', '--model', 'lin@1', '--runtime', 'java'], /--runtime "java" must be onnx/);
    fails(2, ['--home', home, 'deploy', 'create', 'x', '--model', 'lin@1', '--runtime', 'process'], /needs a command/);
    fails(2, ['--home', home, 'deploy', 'create', 'x', '--model', 'lin@1', '--command', 'true'], /are for --runtime process/);
    const server = await startServer(home, []);
    try {
      const remote = (...args: string[]) => ['--server', server.url, ...args];
      const created = json(...remote('deploy', 'create', 'lin-prod', '--model', 'lin@1', '--runtime', 'process', '--command', COMMAND, '--ready-timeout', '20'));
      assert.deepEqual(created.config, { runtime: 'process', command: COMMAND, ready_timeout_s: 20 });
      assert.equal(created.serving.state, 'ready', JSON.stringify(created.serving));
      const predicted = strata(remote('predict', 'lin-prod', '--input', '-', '--json'), { input: JSON.stringify({ inputs: { x: [[1, 1], [0, 2]] } }) });
      assert.equal(predicted.code, 0, predicted.stderr);
      assert.deepEqual(JSON.parse(predicted.stdout).outputs, { y: [4, 5] });
    } catch (err) {
      await server.stop();
      throw err;
    }
    const text = ok('--server', server.url, 'deploy', 'inspect', 'lin-prod').stdout;
    assert.match(text, /runtime\s+process: .*oip-model-server\.js.*\(ready within 20 s\)/);
    assert.match(text, /process\s+running, pid \d+ on port \d+, 0 restarts/);
    const pid = Number(/pid (\d+)/.exec(text)![1]);
    assert.equal(await server.stop(), 0);
    assert.throws(() => process.kill(-pid, 0), /ESRCH/, 'the model process group ended with the server');
  });
});
