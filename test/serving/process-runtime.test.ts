// The process runtime against a real model server child process (a Node
// script speaking the Open Inference Protocol, oip-model-server.ts, serving a
// JSON file of weights registered as the model version): inference through
// Strata, the child's errors as OIP errors, SIGKILL answered with 503 then a
// restart, a hot swap to a new process when the alias moves, clear errors for
// commands that exit at once or never get ready, and no child left when the
// server stops.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { startServer, type RunningServer } from '../../src/api/server.js';
import type { Instance } from '../../src/instance.js';
import { shellCommand } from '../../src/serving/process-runtime.js';
import { serve } from '../api/harness.js';
import { backends, until } from '../fixtures.js';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'oip-model-server.js');
const COMMAND = `"${process.execPath}" "${SCRIPT}"`;
const PY_EXAMPLE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'examples', 'process-runtime', 'serve.py');
const python = spawnSync('python3', ['--version']);
const noPython = python.status === 0 ? undefined : 'python3 is not installed';

const V1 = { weights: [1, 2, 3], bias: 0.5 };
const V2 = { weights: [-1, 0, 1], bias: 0 };
const dot = (m: { weights: number[]; bias: number }, row: number[]) => row.reduce((s, v, i) => s + v * m.weights[i]!, m.bias);

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Whether any process is left in the process group led by `pid` (a model process and what its shell started). */
const groupAlive = (pid: number) => {
  try {
    process.kill(-pid, 0);
  } catch {
    return false;
  }
  // Zombies (dead, reparented to an init that reaps them late) do not count.
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${p}/stat`, 'utf8');
    } catch {
      continue;
    }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) === pid && fields[0] !== 'Z') return true;
  }
  return false;
};


async function http(method: string, url: string, body?: unknown) {
  const res = await fetch(url, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as any };
}

const x = [
  [1, 1, 1],
  [0, 1, 2],
];
const request = { inputs: [{ name: 'x', shape: [2, 3], datatype: 'FP64', data: x }] };

for (const backend of await backends()) {
  describe(`the process runtime (${backend.name})`, { skip: backend.skip }, () => {
    let instance: Instance;
    let dispose: () => Promise<void>;
    let server: RunningServer | undefined;
    let url: string;
    const infer = (name = 'lin-prod') => http('POST', `${url}/v2/models/${name}/infer`, request);
    const inspect = async (name = 'lin-prod') => (await http('GET', `${url}/api/v1/deployments/${name}`)).body;

    before(async () => {
      ({ instance, dispose } = await backend.instance());
      const data = instance.data;
      await data.createRepo({ name: 'train' });
      for (const weights of [V1, V2]) {
        await data.commit('train', 'master', [{ op: 'put', path: '/weights.json', content: new TextEncoder().encode(JSON.stringify(weights)) }]);
        await instance.registry.registerVersion('lin', { from: 'train@master:/weights.json' });
      }
      await instance.registry.setAlias('lin', 'production', 1, { actor: 'test' });
      server = await startServer({ instance, port: 0 });
      url = server.url;
      const created = await http('POST', `${url}/api/v1/deployments`, { name: 'lin-prod', model: 'lin@production', runtime: 'process', command: COMMAND });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.deepEqual(created.body.config, { runtime: 'process', command: COMMAND });
      assert.equal(created.body.serving.state, 'ready', JSON.stringify(created.body.serving));
    });
    after(async () => {
      await server?.close();
      await dispose?.();
    });

    it('serves the model through its process: signature from its metadata, its numbers, its errors as OIP errors', async () => {
      const meta = await http('GET', `${url}/v2/models/lin-prod`);
      assert.deepEqual(meta.body.inputs, [{ name: 'x', datatype: 'FP64', shape: [-1, 3] }]);
      assert.deepEqual(meta.body.outputs, [{ name: 'y', datatype: 'FP64', shape: [-1] }]);
      assert.equal(meta.body.platform, 'process');

      const res = await infer();
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.model_version, '1');
      assert.deepEqual(res.body.outputs, [{ name: 'y', shape: [2], datatype: 'FP64', data: x.map((row) => dot(V1, row)) }]);

      const plain = await http('POST', `${url}/api/v1/deployments/lin-prod/predict`, { inputs: { x: [[2, 0, 1]] } });
      assert.equal(plain.status, 200, JSON.stringify(plain.body));
      assert.deepEqual(plain.body.outputs, { y: [dot(V1, [2, 0, 1])] });

      // Checked by Strata against the child's signature, never sent on.
      const wrongShape = await http('POST', `${url}/v2/models/lin-prod/infer`, { inputs: [{ name: 'x', shape: [1, 2], datatype: 'FP64', data: [1, 2] }] });
      assert.equal(wrongShape.status, 400);
      assert.match(wrongShape.body.error, /shape \[1, 2\] does not fit the model's \[-1, 3\]/);
      // Refused by the child: its 400 and message come back in the protocol's shape.
      const refused = await http('POST', `${url}/v2/models/lin-prod/infer`, { inputs: [{ name: 'x', shape: [1, 3], datatype: 'FP64', data: [2e6, 0, 0] }] });
      assert.equal(refused.status, 400);
      assert.match(refused.body.error, /the model rejected the request: x out of range/);

      const proc = (await inspect()).serving.process;
      assert.equal(proc.state, 'running');
      assert.equal(proc.restarts, 0);
      assert.ok(Number.isInteger(proc.pid) && alive(proc.pid));
      assert.ok(proc.port > 0);
    });

    it('answers 503 while a killed process is restarted, then serves again; inspect shows the restart and how it died', async () => {
      const before = (await inspect()).serving.process;
      process.kill(before.pid, 'SIGKILL');
      const down = await until('a 503', 3000, async () => {
        const res = await infer();
        return res.status === 503 ? res : undefined;
      });
      assert.equal(typeof down.body.error, 'string');
      assert.match(down.body.error, /model process of lin version 1/);
      // Not ready while it restarts (the first restart waits 500 ms): health checks stop sending traffic.
      assert.equal((await http('GET', `${url}/v2/models/lin-prod/ready`)).status, 503);
      assert.equal((await http('GET', `${url}/v2/health/ready`)).status, 503);
      assert.equal((await inspect()).serving.state, 'restarting');
      const up = await until('serving again', 10_000, async () => {
        const res = await infer();
        return res.status === 200 ? res : undefined;
      });
      assert.deepEqual(up.body.outputs[0].data, x.map((row) => dot(V1, row)));
      const after = (await inspect()).serving.process;
      assert.equal(after.state, 'running');
      assert.equal((await http('GET', `${url}/v2/models/lin-prod/ready`)).status, 200);
      assert.equal(after.restarts, 1);
      assert.match(after.last_exit, /killed by SIGKILL/);
      assert.notEqual(after.pid, before.pid);
      assert.equal(alive(before.pid), false);
      await until('the dead process group to be gone', 3000, async () => (groupAlive(before.pid) ? undefined : true));
    });

    it('hot-swaps to a new process when the alias moves, failing no request, and stops the old one', async () => {
      const old = (await inspect()).serving.process.pid as number;
      let failures = 0;
      let running = true;
      const versions = new Set<string>();
      const loop = async () => {
        while (running) {
          const res = await infer();
          if (res.status !== 200) failures++;
          else versions.add(res.body.model_version);
        }
      };
      const loops = [loop(), loop()];
      await new Promise((r) => setTimeout(r, 200));
      await instance.registry.setAlias('lin', 'production', 2, { actor: 'test' });
      const swapped = await until('version 2', 10_000, async () => {
        const res = await infer();
        return res.body.model_version === '2' ? res : undefined;
      });
      running = false;
      await Promise.all(loops);
      assert.equal(failures, 0);
      assert.deepEqual(swapped.body.outputs[0].data, x.map((row) => dot(V2, row)));
      const now = (await inspect()).serving.process;
      assert.notEqual(now.pid, old);
      assert.equal(now.restarts, 0);
      await until('the old process to end', 8000, async () => (alive(old) ? undefined : true));
    });

    it('reports a command that exits at once or never gets ready, with what it printed', async () => {
      const exits = `"${process.execPath}" -e "console.log('env', process.env.STRATA_MODEL_NAME, process.env.STRATA_MODEL_VERSION, process.env.PORT === process.env.STRATA_PORT, require('path').basename(process.env.STRATA_MODEL_PATH), require('fs').existsSync(process.env.STRATA_MODEL_PATH), 'secrets', process.env.STRATA_TOKEN, process.env.PGPASSWORD); process.exit(3)"`;
      // The server's own secrets stay out of the model process's environment.
      const saved = { token: process.env.STRATA_TOKEN, pg: process.env.PGPASSWORD };
      process.env.STRATA_TOKEN = 'st_server_secret';
      process.env.PGPASSWORD = 'hunter2';
      const bad = await http('POST', `${url}/api/v1/deployments`, { name: 'exits', model: 'lin@1', runtime: 'process', command: exits }).finally(() => {
        for (const [k, v] of [['STRATA_TOKEN', saved.token], ['PGPASSWORD', saved.pg]] as const) if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      });
      assert.equal(bad.status, 201, JSON.stringify(bad.body));
      assert.equal(bad.body.serving.state, 'failed');
      assert.match(bad.body.serving.error, /exited with code 3 before it was ready/);
      assert.match(bad.body.serving.error, /env lin 1 true weights\.json true secrets undefined undefined/);
      const unavailable = await infer('exits');
      assert.equal(unavailable.status, 503);
      assert.match(unavailable.body.error, /exited with code 3/);

      const hangs = `"${process.execPath}" -e "console.log('warming up'); setInterval(() => {}, 1000)"`;
      const started = Date.now();
      const slow = await http('POST', `${url}/api/v1/deployments`, { name: 'hangs', model: 'lin@1', runtime: 'process', command: hangs, ready_timeout_s: 1 });
      assert.equal(slow.status, 201, JSON.stringify(slow.body));
      assert.ok(Date.now() - started < 8000);
      assert.equal(slow.body.serving.state, 'failed');
      assert.match(slow.body.serving.error, /was not ready within 1 s/);
      assert.match(slow.body.serving.error, /warming up/);

      const noCommand = await http('POST', `${url}/api/v1/deployments`, { name: 'nocmd', model: 'lin@1', runtime: 'process' });
      assert.equal(noCommand.status, 400);
      assert.match(noCommand.body.error.message, /needs a command/);
      const onnx = await http('POST', `${url}/api/v1/deployments`, { name: 'onnx', model: 'lin@1' });
      assert.equal(onnx.status, 412);
      assert.match(onnx.body.error.message, /not an ONNX model; deploy it with --runtime process/);
      for (const name of ['exits', 'hangs']) assert.equal((await http('DELETE', `${url}/api/v1/deployments/${name}`)).status, 204);
    });

    it('restarts the versions with a new command given to update', async () => {
      const old = (await inspect()).serving.process.pid as number;
      const command = `${COMMAND} --changed`;
      const updated = await http('PATCH', `${url}/api/v1/deployments/lin-prod`, { command, ready_timeout_s: 30 });
      assert.equal(updated.status, 200, JSON.stringify(updated.body));
      assert.deepEqual(updated.body.config, { runtime: 'process', command, ready_timeout_s: 30 });
      assert.equal(updated.body.serving.state, 'ready');
      assert.notEqual(updated.body.serving.process.pid, old);
      assert.equal((await infer()).status, 200);
      await until('the old process to end', 8000, async () => (alive(old) ? undefined : true));
    });

    it('ends every model process when the server stops', async () => {
      const created = await http('POST', `${url}/api/v1/deployments`, { name: 'lin-two', model: 'lin@1', runtime: 'process', command: COMMAND });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const pids = [(await inspect()).serving.process.pid, (await inspect('lin-two')).serving.process.pid] as number[];
      assert.ok(pids.every(alive));
      await server!.close();
      server = undefined;
      // Stopped means gone (not just signalled), and with each its process group.
      for (const pid of pids) {
        assert.equal(alive(pid), false, `model process ${pid} outlived the server`);
        assert.equal(groupAlive(pid), false, `a process of model process group ${pid} outlived the server`);
      }
    });
  });
}

describe('the Python example model server', { skip: noPython }, () => {
  it('serves a registered JSON of weights through the process runtime', async () => {
    const s = await serve();
    try {
      const data = s.instance.data;
      await data.createRepo({ name: 'train' });
      await data.commit('train', 'master', [{ op: 'put', path: '/weights.json', content: new TextEncoder().encode(JSON.stringify(V1)) }]);
      await s.instance.registry.registerVersion('lin', { from: 'train@master:/weights.json' });
      const created = await http('POST', `${s.url}/api/v1/deployments`, { name: 'py', model: 'lin@1', runtime: 'process', command: `python3 "${PY_EXAMPLE}"` });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal(created.body.serving.state, 'ready', JSON.stringify(created.body.serving));
      const res = await http('POST', `${s.url}/v2/models/py/infer`, request);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(res.body.outputs, [{ name: 'y', shape: [2], datatype: 'FP64', data: x.map((row) => dot(V1, row)) }]);
      const pid = (await http('GET', `${s.url}/api/v1/deployments/py`)).body.serving.process.pid as number;
      await s.server.close();
      assert.equal(groupAlive(pid), false);
    } finally {
      await s.close();
    }
  });
});

describe('shellCommand', () => {
  it('execs simple commands so the model process is the child itself, and leaves the rest to the shell', () => {
    assert.equal(shellCommand('python3 serve.py --port $PORT'), 'exec python3 serve.py --port $PORT');
    assert.equal(shellCommand('"/usr/bin/node" "/x/y.js" > log.txt'), 'exec "/usr/bin/node" "/x/y.js" > log.txt');
    for (const kept of ['cd model && python3 serve.py', 'python3 a.py; python3 b.py', 'cat x | python3 s.py', 'WORKERS=2 python3 serve.py', '(python3 serve.py)', 'exec python3 serve.py']) {
      assert.equal(shellCommand(kept), kept);
    }
  });
});
