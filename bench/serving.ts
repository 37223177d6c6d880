import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Instance } from '../src/instance.js';
import { logisticRegressionModel } from '../src/onnx/build.js';

// bench/serving (issue 5): Strata's Open Inference Protocol endpoint under
// load from wrk, all in one run on this machine:
//   (a) a bare node:http hello-world server (child process): throughput
//   (b) `strata server` (child process), POST /v2/models/NAME/infer with one
//       row of 1,024 FP32 features: throughput, p50/p99 at concurrency 1 and 64
//   (c) the same ONNX model run in-process with onnxruntime-node: p50 at
//       concurrency 1 — Strata's added p50 = (b)@1 - (c), target <= 0.5 ms;
//       throughput (b)@64 / (a), target >= 0.3
//   (d) a second deployment with batching (max batch 64, delay 500 µs) at
//       concurrency 64 against the unbatched figure, target >= 1.5x
//   (e) a 20 s load while the alias moves between two versions every 2 s:
//       non-200 responses + socket errors, target 0
//   (f) the floor: a bare node:http server that parses the same bodies and
//       runs the same model in-process (bench/serving-floor.ts), unbatched and
//       batched: what any Node.js inference server can reach here
// Load goes to 127.0.0.1 only; each phase runs <= 10 s except (e) (20 s);
// the whole run is cut off at 180 s. wrk shares the machine's cores with the
// server it loads, as any single-machine bench does.
// Usage: node dist/bench/serving.js [--seconds N (per phase, default 5)]

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const PHASE_S = Math.min(10, Math.max(1, arg('--seconds', 5)));
const SWAP_S = 20;
const FEATURES = 1024;
const HIGH = 64;
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const strataBin = join(root, 'bin', 'strata.js');

if (spawnSync('sh', ['-c', 'command -v wrk']).status !== 0) {
  process.stdout.write('bench/serving: wrk is not installed (apt-get install -y wrk); nothing measured.\n');
  process.exit(0);
}

const work = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'strata-bench-serving-'));
const children: ChildProcess[] = [];
const cleanup = () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
};
const deadline = setTimeout(() => {
  process.stderr.write('bench/serving: over 180 s, giving up\n');
  cleanup();
  rmSync(work, { recursive: true, force: true });
  process.exit(1);
}, 180_000);
deadline.unref();

// ---------- wrk ----------

interface WrkResult {
  rps: number;
  requests: number;
  p50ms: number;
  p99ms: number;
  non2xx: number;
  socketErrors: number;
}

const toMs = (text: string): number => {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text.trim());
  if (!m) throw new Error(`cannot read wrk latency "${text}"`);
  const scale = { us: 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 }[m[2] as 'us' | 'ms' | 's' | 'm' | 'h'];
  return Number(m[1]) * scale;
};

function wrk(url: string, connections: number, seconds: number, script?: string): Promise<WrkResult> {
  const argv = ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '5s', '--latency', ...(script ? ['-s', script] : []), url];
  return new Promise((done, fail) => {
    const child = spawn('wrk', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', fail);
    child.on('close', (code) => {
      if (code !== 0) return fail(new Error(`wrk ${argv.join(' ')} exited ${code}:\n${out}`));
      const num = (re: RegExp) => {
        const m = re.exec(out);
        return m ? Number(m[1]) : 0;
      };
      const pct = (p: string) => {
        const m = new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out);
        if (!m) throw new Error(`no ${p}% latency in wrk output:\n${out}`);
        return toMs(m[1]!);
      };
      const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
      done({
        rps: num(/Requests\/sec:\s+([\d.]+)/),
        requests: num(/(\d+) requests in/),
        p50ms: pct('50'),
        p99ms: pct('99'),
        non2xx: num(/Non-2xx or 3xx responses: (\d+)/),
        socketErrors: sock ? sock.slice(1).reduce((s, v) => s + Number(v), 0) : 0,
      });
    });
  });
}

// ---------- helpers ----------

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Spawns a server and waits for the line on stdout/stderr that names its URL. */
function startChild(cmd: string, argv: string[], env: NodeJS.ProcessEnv, urlPattern: RegExp): Promise<string> {
  const child = spawn(cmd, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return new Promise((done, fail) => {
    let out = '';
    const timer = setTimeout(() => fail(new Error(`${cmd} ${argv.join(' ')} did not start in 30 s:\n${out}`)), 30_000);
    const look = (d: Buffer) => {
      out += d;
      const m = urlPattern.exec(out);
      if (m) {
        clearTimeout(timer);
        done(m[1]!);
      }
    };
    child.stdout!.on('data', look);
    child.stderr!.on('data', look);
    child.on('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`${cmd} exited ${code} before listening:\n${out}`));
    });
  });
}

async function api(method: string, url: string, body?: unknown): Promise<any> {
  const res = await fetch(url, { method, headers: body ? { 'content-type': 'application/json' } : {}, body: body ? JSON.stringify(body) : undefined });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const f = (n: number, digits = 0) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

// ---------- the run ----------

const weights = (seed: number) => Float32Array.from({ length: FEATURES }, (_, i) => Math.sin(i * seed) * 0.05);
const row = Array.from({ length: FEATURES }, (_, i) => Number((Math.cos(i) * 0.5).toFixed(6)));
const body = JSON.stringify({ inputs: [{ name: 'input', shape: [1, FEATURES], datatype: 'FP32', data: row }] });
const bodyFile = join(work, 'body.json');
writeFileSync(bodyFile, body);
const luaPost = join(work, 'post.lua');
writeFileSync(luaPost, `local f = io.open("${bodyFile}", "rb")\nwrk.method = "POST"\nwrk.body = f:read("*a")\nf:close()\nwrk.headers["Content-Type"] = "application/json"\n`);

// The same request with the tensor as binary data (the binary tensor data extension): JSON header, then 4 KiB of FP32.
const binaryHeader = Buffer.from(JSON.stringify({ inputs: [{ name: 'input', shape: [1, FEATURES], datatype: 'FP32', parameters: { binary_data_size: FEATURES * 4 } }] }));
const binaryFile = join(work, 'body.bin');
writeFileSync(binaryFile, Buffer.concat([binaryHeader, Buffer.from(Float32Array.from(row).buffer)]));
const luaBinary = join(work, 'binary.lua');
writeFileSync(
  luaBinary,
  `local f = io.open("${binaryFile}", "rb")\nwrk.method = "POST"\nwrk.body = f:read("*a")\nf:close()\nwrk.headers["Content-Type"] = "application/octet-stream"\nwrk.headers["Inference-Header-Content-Length"] = "${binaryHeader.length}"\n`,
);

const say = (s: string) => {
  process.stdout.write(s + '\n');
};

try {
  say(`# bench/serving (${new Date().toISOString()}, node ${process.version}, ${(await import('node:os')).cpus().length} cores, wrk -t1, ${PHASE_S} s per phase)`);
  say(`model: logistic regression over ${f(FEATURES)} FP32 features (ONNX, dynamic batch), 1 row per request (${f(body.length)} byte JSON body)\n`);

  // Instance with two versions of the model, alias production -> 1.
  const home = join(work, '.strata');
  const models = [logisticRegressionModel({ weights: weights(1), bias: 0.1, features: FEATURES }), logisticRegressionModel({ weights: weights(2), bias: -0.1, features: FEATURES })];
  {
    const instance = await Instance.init(home);
    try {
      await instance.data.createRepo({ name: 'train' });
      for (const bytes of models) {
        await instance.data.commit('train', 'master', [{ op: 'put', path: '/model.onnx', content: bytes }]);
        await instance.registry.registerVersion('lr', { from: 'train@master:/model.onnx' });
      }
      await instance.registry.setAlias('lr', 'production', 1, { actor: 'bench' });
    } finally {
      await instance.close();
    }
  }

  // (c) in-process onnxruntime-node, concurrency 1.
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(models[0]!);
  const feeds = { input: new ort.Tensor('float32', Float32Array.from(row), [1, FEATURES]) };
  for (let i = 0; i < 500; i++) await session.run(feeds);
  const times: number[] = [];
  const until = Date.now() + PHASE_S * 1000;
  while (Date.now() < until && times.length < 200_000) {
    const t = process.hrtime.bigint();
    await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  await session.release();
  times.sort((a, b) => a - b);
  const ortP50 = percentile(times, 50);
  const ortP99 = percentile(times, 99);
  say(`(c) onnxruntime-node in-process, InferenceSession.run x ${f(times.length)}: p50 ${ortP50.toFixed(3)} ms, p99 ${ortP99.toFixed(3)} ms`);

  // (a) bare node:http hello world.
  const hello = `const s = require('node:http').createServer((q, r) => r.end('hello world')); s.listen(0, '127.0.0.1', () => console.log('LISTEN http://127.0.0.1:' + s.address().port));`;
  const helloUrl = await startChild(process.execPath, ['-e', hello], {}, /LISTEN (http:\S+)/);
  await wrk(helloUrl, HIGH, 1);
  const bare = await wrk(helloUrl, HIGH, PHASE_S);
  children.shift()!.kill('SIGTERM');
  say(`(a) bare node:http hello world @${HIGH}: ${f(bare.rps)} req/s, p50 ${bare.p50ms.toFixed(3)} ms, p99 ${bare.p99ms.toFixed(3)} ms`);

  // (f) the floor of any inference server here: bare node:http + the body's parsing + in-process ORT.
  const modelFile = join(work, 'model.onnx');
  writeFileSync(modelFile, models[0]!);
  const floorScript = join(root, 'dist', 'bench', 'serving-floor.js');
  const floors: Record<string, WrkResult> = {};
  for (const [name, args, lua] of [
    ['JSON', [], luaPost],
    ['binary', [], luaBinary],
    ['JSON, batched', ['--batch'], luaPost],
    ['binary, batched', ['--batch'], luaBinary],
  ] as const) {
    const floorUrl = await startChild(process.execPath, [floorScript, modelFile, ...args], {}, /LISTEN (http:\S+)/);
    await wrk(floorUrl, HIGH, 1, lua);
    floors[name] = await wrk(floorUrl, HIGH, PHASE_S, lua);
    children.pop()!.kill('SIGTERM');
    say(`(f) floor: bare node:http + ${name} body + in-process ORT @${HIGH}: ${f(floors[name]!.rps)} req/s (${(floors[name]!.rps / bare.rps).toFixed(2)}x bare hello world)`);
  }

  // (b) strata server.
  const url = await startChild(process.execPath, [strataBin, 'server', '--port', '0'], { STRATA_HOME: home }, /listening on (http:\S+)/);
  await api('POST', `${url}/api/v1/deployments`, { name: 'lr-prod', model: 'lr@production' });
  await api('POST', `${url}/api/v1/deployments`, { name: 'lr-batched', model: 'lr@production', max_batch_size: 64, max_batch_delay_us: 500 });
  const check = await api('POST', `${url}/v2/models/lr-prod/infer`, JSON.parse(body));
  if (check.outputs?.[0]?.shape?.[0] !== 1) throw new Error(`unexpected infer response: ${JSON.stringify(check)}`);
  const infer = `${url}/v2/models/lr-prod/infer`;
  await wrk(infer, HIGH, 2); // warm-up (JIT, session)
  const c1 = await wrk(infer, 1, PHASE_S, luaPost);
  say(`(b) Strata OIP infer @1:  ${f(c1.rps)} req/s, p50 ${c1.p50ms.toFixed(3)} ms, p99 ${c1.p99ms.toFixed(3)} ms${c1.non2xx + c1.socketErrors ? `, ${c1.non2xx + c1.socketErrors} FAILED` : ''}`);
  const cHigh = await wrk(infer, HIGH, PHASE_S, luaPost);
  say(`(b) Strata OIP infer @${HIGH}: ${f(cHigh.rps)} req/s, p50 ${cHigh.p50ms.toFixed(3)} ms, p99 ${cHigh.p99ms.toFixed(3)} ms${cHigh.non2xx + cHigh.socketErrors ? `, ${cHigh.non2xx + cHigh.socketErrors} FAILED` : ''}`);

  const binary = await wrk(infer, HIGH, PHASE_S, luaBinary);
  say(
    `(b') Strata OIP infer, binary tensor data (${f(binaryHeader.length + FEATURES * 4)} byte body) @${HIGH}: ${f(binary.rps)} req/s, p50 ${binary.p50ms.toFixed(3)} ms, p99 ${binary.p99ms.toFixed(3)} ms${binary.non2xx + binary.socketErrors ? `, ${binary.non2xx + binary.socketErrors} FAILED` : ''}`,
  );

  // (d) batching.
  const batchedInfo = await api('GET', `${url}/api/v1/deployments/lr-batched`);
  const batchedUrl = `${url}/v2/models/lr-batched/infer`;
  await wrk(batchedUrl, HIGH, 1, luaPost);
  const batched = await wrk(batchedUrl, HIGH, PHASE_S, luaPost);
  say(
    `(d) batched (max 64 rows, 500 µs; batching ${batchedInfo.serving?.batching?.active ? 'on' : `OFF: ${batchedInfo.serving?.batching?.reason ?? 'unknown'}`}) @${HIGH}: ${f(batched.rps)} req/s, p50 ${batched.p50ms.toFixed(3)} ms, p99 ${batched.p99ms.toFixed(3)} ms${batched.non2xx + batched.socketErrors ? `, ${batched.non2xx + batched.socketErrors} FAILED` : ''}`,
  );

  const batchedBinary = await wrk(batchedUrl, HIGH, PHASE_S, luaBinary);
  say(`(d') batched, binary tensor data @${HIGH}: ${f(batchedBinary.rps)} req/s, p50 ${batchedBinary.p50ms.toFixed(3)} ms, p99 ${batchedBinary.p99ms.toFixed(3)} ms`);

  // (e) hot swap: alias moves 1 -> 2 -> 1 ... every 2 s under load; a probe after each move records the version served.
  const load = wrk(infer, 16, SWAP_S, luaPost);
  const served: string[] = [];
  let version = 1;
  let moves = 0;
  for (let t = 2; t < SWAP_S; t += 2) {
    await sleep(2000);
    version = version === 1 ? 2 : 1;
    await api('PUT', `${url}/api/v1/models/lr/aliases/production`, { version, actor: 'bench' });
    moves++;
    await sleep(300);
    served.push((await api('POST', infer, JSON.parse(body))).model_version);
  }
  const swap = await load;
  const swapFailed = swap.non2xx + swap.socketErrors;
  say(`(e) hot swap @16 for ${SWAP_S} s, ${moves} alias moves: ${f(swap.requests)} requests, ${swap.non2xx} non-200, ${swap.socketErrors} socket errors; versions served 300 ms after each move: ${served.join(' ')}`);

  // Summary.
  const added = c1.p50ms - ortP50;
  const rows: [string, string, string, boolean][] = [
    ['p50 added over in-process ORT @1', `${added.toFixed(3)} ms (${c1.p50ms.toFixed(3)} - ${ortP50.toFixed(3)})`, '<= 0.5 ms', added <= 0.5],
    [`throughput (b)@${HIGH} / bare node:http (a)`, `${(cHigh.rps / bare.rps).toFixed(2)}x (${f(cHigh.rps)} / ${f(bare.rps)})`, '>= 0.3x', cHigh.rps / bare.rps >= 0.3],
    [`  same, binary tensor data (b') / (a)`, `${(binary.rps / bare.rps).toFixed(2)}x (${f(binary.rps)} / ${f(bare.rps)})`, '>= 0.3x', binary.rps / bare.rps >= 0.3],
    [`  floor (f): bare server + ORT, JSON / (a)`, `${(floors['JSON']!.rps / bare.rps).toFixed(2)}x; binary ${(floors['binary']!.rps / bare.rps).toFixed(2)}x; batched ${(floors['JSON, batched']!.rps / bare.rps).toFixed(2)}x / ${(floors['binary, batched']!.rps / bare.rps).toFixed(2)}x`, '', true],
    [`  Strata / floor: JSON, binary, batched`, `${(cHigh.rps / floors['JSON']!.rps).toFixed(2)}x, ${(binary.rps / floors['binary']!.rps).toFixed(2)}x, ${(batched.rps / floors['JSON, batched']!.rps).toFixed(2)}x / ${(batchedBinary.rps / floors['binary, batched']!.rps).toFixed(2)}x`, '', true],
    [`batched / unbatched @${HIGH}`, `${(batched.rps / cHigh.rps).toFixed(2)}x (${f(batched.rps)} / ${f(cHigh.rps)})`, '>= 1.5x', batched.rps / cHigh.rps >= 1.5],
    [`  same, binary tensor data (d') / (b')`, `${(batchedBinary.rps / binary.rps).toFixed(2)}x (${f(batchedBinary.rps)} / ${f(binary.rps)})`, '>= 1.5x', batchedBinary.rps / binary.rps >= 1.5],
    [`failed requests during ${SWAP_S} s hot swap`, `${swapFailed} of ${f(swap.requests)}`, '0', swapFailed === 0],
  ];
  say('\n' + ['MEASURE'.padEnd(44), 'RESULT'.padEnd(36), 'TARGET'.padEnd(10), 'MET'].join(' '));
  for (const [what, result, target, ok] of rows) say([what.padEnd(44), result.padEnd(36), target.padEnd(10), target === '' ? '-' : ok ? 'yes' : 'NO'].join(' '));
} finally {
  cleanup();
  clearTimeout(deadline);
  rmSync(work, { recursive: true, force: true });
}
