import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { InvalidArgumentError, StrataError } from '../errors.js';
import type { TensorSpec } from '../onnx/signature.js';
import { elementTypeOf, flatten, oipOutputs, toTensor } from './protocol.js';
import type { HostTensor, LoadContext, LoadedModel, ModelRuntime, ModelSignature, ProcessStatus } from './runtime.js';

// The process runtime: a user command, in any language, that serves the Open
// Inference Protocol v2 REST API on a port Strata gives it. For each model
// version it serves:
//
//   write the version's file into a fresh directory
//     -> pick a free loopback port, start the command there (cwd = that
//        directory; env STRATA_MODEL_PATH, STRATA_MODEL_NAME,
//        STRATA_MODEL_VERSION, PORT and STRATA_PORT)
//     -> poll GET /v2/health/ready until 200 (a clear error with the tail of
//        its output when it exits first or never gets ready)
//     -> read GET /v2/models/<name>: its inputs and outputs are the signature
//        Strata checks requests against
//     -> proxy each inference to POST /v2/models/<name>/infer (keep-alive)
//
// Supervision: a child that dies while serving is started again after a delay
// that doubles from RESTART.initialMs to RESTART.maxMs (reset once a child has
// stayed up RESTART.stableMs); meanwhile requests get 503. Each child leads
// its own process group, so ending it (SIGTERM, then SIGKILL after the grace
// period) also ends whatever it started; the children still alive when this
// process exits are killed by pid from an exit hook, so none outlives it.

/** Restart policy of a model process that died, as data (STYLE.md: retry as data). */
export const RESTART = { initialMs: 500, maxMs: 30_000, factor: 2, stableMs: 10_000 } as const;

/** Default wait for GET /v2/health/ready after a start. */
export const DEFAULT_READY_TIMEOUT_S = 60;

/** How long a model process has to exit after SIGTERM before it gets SIGKILL. */
const GRACE_MS = 5_000;

/** Bytes of a model process's stdout and stderr kept (the tail), for errors. */
const LOG_BYTES = 64 * 1024;

/** A process deployment's command, as stored in its config. */
export interface ProcessSpec {
  command: string;
  /** Seconds a start may take before GET /v2/health/ready answers 200. */
  ready_timeout_s?: number;
}

/** Every model process a ServingManager started, so that stopping the manager ends them all. */
export class ProcessGroup {
  private models = new Set<ProcessModel>();

  add(model: ProcessModel): void {
    this.models.add(model);
  }

  delete(model: ProcessModel): void {
    this.models.delete(model);
  }

  /** Ends every model process (SIGTERM, SIGKILL after the grace period) and waits until they are gone. */
  async stopAll(): Promise<void> {
    await Promise.all([...this.models].map((m) => m.release()));
  }
}

/** Children alive in this process, killed by pid if it exits without stopping them. */
const alive = new Set<ChildProcess>();
let exitHook = false;

function track(child: ChildProcess): void {
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => {
      for (const c of alive) signalGroup(c, 'SIGKILL');
    });
  }
  alive.add(child);
}

export class ProcessRuntime implements ModelRuntime {
  constructor(
    private spec: ProcessSpec,
    private group: ProcessGroup,
  ) {
    checkProcessSpec(spec);
  }

  async load(bytes: Uint8Array, _signature: ModelSignature | null, context: LoadContext): Promise<LoadedModel> {
    const dir = await mkdtemp(join(tmpdir(), 'strata-model-'));
    const file = join(dir, safeName(context.filename));
    const model = new ProcessModel(dir, file, context, this.spec, this.group);
    try {
      await writeFile(file, bytes);
      await model.start();
    } catch (err) {
      await model.release();
      throw err;
    }
    return model;
  }
}

/** Checks a process spec from a deployment config or a request. */
export function checkProcessSpec(spec: { command?: unknown; ready_timeout_s?: unknown }): ProcessSpec {
  if (typeof spec.command !== 'string' || spec.command.trim() === '') {
    throw new InvalidArgumentError('the process runtime needs a command that serves the Open Inference Protocol on $PORT, e.g. --command "python3 serve.py"');
  }
  const t = spec.ready_timeout_s;
  if (t !== undefined && (typeof t !== 'number' || !Number.isFinite(t) || t <= 0 || t > 3600)) {
    throw new InvalidArgumentError(`ready timeout "${String(t)}" must be a number of seconds above 0, at most 3600`);
  }
  return { command: spec.command, ...(t !== undefined ? { ready_timeout_s: t } : {}) };
}

/** The registered file name, without directories; `model` when there is none. */
function safeName(filename: string): string {
  const name = basename(filename);
  return name === '' || name === '.' || name === '..' ? 'model' : name;
}

/** The last `LOG_BYTES` of a child's output. */
class LogTail {
  private parts: Buffer[] = [];
  private size = 0;

  write(chunk: Buffer): void {
    this.parts.push(chunk);
    this.size += chunk.length;
    while (this.size > LOG_BYTES && this.parts.length > 1) this.size -= this.parts.shift()!.length;
  }

  /** The last `lines` lines, for error messages. */
  tail(lines = 20): string {
    const text = Buffer.concat(this.parts).toString('utf8').slice(-LOG_BYTES);
    const all = text.split('\n');
    if (all.at(-1) === '') all.pop();
    return all.slice(-lines).join('\n');
  }
}

function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `killed by ${signal}` : `exited with code ${code}`;
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // ESRCH: the group is gone already.
  }
}

/** SIGKILL to the child's process group until no live process is left in it (bounded: a process stuck in the kernel is reported, not waited for). */
async function endGroup(child: ChildProcess): Promise<void> {
  const pgid = child.pid;
  if (pgid === undefined) return;
  for (let i = 0; i < 250; i++) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      return; // ESRCH: gone
    }
    if (!(await liveMembers(pgid))) return;
    await sleep(20);
  }
  process.stderr.write(`strata serving: processes of model process group ${pgid} did not end after SIGKILL\n`);
}

/**
 * Whether the group has a process that is not a zombie. A process the shell
 * started is reparented to init when the shell dies, and stays a zombie (still
 * in the group, but dead, holding no port) until init reaps it, which some
 * container inits do only now and then. Without /proc, any member counts.
 */
async function liveMembers(pgid: number): Promise<boolean> {
  let pids: string[];
  try {
    pids = (await readdir('/proc')).filter((d) => /^\d+$/.test(d));
  } catch {
    return true;
  }
  for (const pid of pids) {
    let stat: string;
    try {
      stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) === pgid && fields[0] !== 'Z' && fields[0] !== 'X') return true;
  }
  return false;
}

/**
 * The command as the shell runs it: a simple command is exec'd, so the model
 * process is the child itself (its pid is the one `deploy inspect` shows and
 * its exit is seen at once); lists, pipes, subshells and leading variable
 * assignments keep the shell in between.
 */
export function shellCommand(command: string): string {
  const simple = !/[;&|(){}`\n]/.test(command) && !/^\s*[A-Za-z_][A-Za-z0-9_]*=/.test(command) && !/^\s*(?:(?:if|for|while|until|case|exec)\b|!)/.test(command);
  return simple ? `exec ${command}` : command;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Launch {
  child: ChildProcess;
  port: number;
  /** Set when the child exited (how). */
  exit?: string;
  exited: Promise<void>;
}

export class ProcessModel implements LoadedModel {
  signature?: ModelSignature;
  private launch?: Launch;
  private state: ProcessStatus['state'] = 'starting';
  private restarts = 0;
  private attempt = 0;
  private lastExit?: string;
  private upSince = 0;
  private nextRestartAt?: number;
  private timer?: NodeJS.Timeout;
  private released?: Promise<void>;
  private log = new LogTail();
  // Keep-alive: a proxied request does not pay for a TCP handshake.
  private agent = new Agent({ keepAlive: true, maxSockets: 256 });

  constructor(
    private dir: string,
    private modelPath: string,
    private context: LoadContext,
    private spec: ProcessSpec,
    private group: ProcessGroup,
  ) {
    group.add(this);
  }

  private get what(): string {
    return `the model process of ${this.context.name} version ${this.context.version} (${this.spec.command})`;
  }

  /** Starts the command and waits until it is ready; reads its signature. */
  async start(): Promise<void> {
    await this.run();
    this.signature = await this.readSignature();
    if (this.launch!.exit !== undefined) throw this.startFailure(`${this.launch!.exit} right after it was ready`);
    this.state = 'running';
    this.upSince = Date.now();
  }

  runtimeStatus(): ProcessStatus {
    const running = this.launch && this.launch.exit === undefined;
    return {
      state: this.state,
      pid: running ? (this.launch!.child.pid ?? null) : null,
      port: running ? this.launch!.port : null,
      restarts: this.restarts,
      ...(this.lastExit ? { last_exit: this.lastExit } : {}),
      ...(this.state === 'restarting' && this.nextRestartAt ? { next_restart_at: this.nextRestartAt } : {}),
    };
  }

  /** Spawns the command on a free port and waits for GET /v2/health/ready; on failure the child is killed. */
  private async run(): Promise<void> {
    const port = await freePort();
    if (this.isStopped()) throw new StrataError('UNAVAILABLE', `${this.what} was stopped while starting`);
    const { name, version } = this.context;
    const child = spawn(shellCommand(this.spec.command), {
      shell: true,
      cwd: this.dir,
      // Its own process group: ending it ends what it started (a shell's children, worker processes).
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...modelProcessEnv(process.env),
        STRATA_MODEL_PATH: this.modelPath,
        STRATA_MODEL_NAME: name,
        STRATA_MODEL_VERSION: String(version),
        PORT: String(port),
        STRATA_PORT: String(port),
      },
    });
    track(child);
    const launch: Launch = { child, port, exited: Promise.resolve() };
    launch.exited = new Promise<void>((resolve) => {
      const done = (reason: string) => {
        if (launch.exit !== undefined) return;
        launch.exit = reason;
        alive.delete(child);
        resolve();
        this.exited(launch);
      };
      child.once('exit', (code, signal) => done(describeExit(code, signal)));
      child.once('error', (err) => done(`could not be started: ${err.message}`));
    });
    child.stdout!.on('data', (d: Buffer) => this.log.write(d));
    child.stderr!.on('data', (d: Buffer) => this.log.write(d));
    this.launch = launch;

    const timeoutS = this.spec.ready_timeout_s ?? DEFAULT_READY_TIMEOUT_S;
    const deadline = Date.now() + timeoutS * 1000;
    for (;;) {
      if (launch.exit !== undefined) throw this.startFailure(`${launch.exit} before it was ready`);
      if (this.isStopped()) {
        await this.kill(launch);
        throw new StrataError('UNAVAILABLE', `${this.what} was stopped while starting`);
      }
      try {
        const res = await call(undefined, port, 'GET', '/v2/health/ready', undefined, 2000);
        if (res.status === 200) return;
      } catch {
        // Not listening yet.
      }
      if (Date.now() >= deadline) {
        await this.kill(launch);
        throw this.startFailure(`was not ready within ${timeoutS} s (GET /v2/health/ready on port ${port} never answered 200; a slow model can be given longer with --ready-timeout)`);
      }
      await Promise.race([sleep(100), launch.exited]);
    }
  }

  /** Released (read through a call: release() may run during any await). */
  private isStopped(): boolean {
    return this.state === 'stopped';
  }

  private startFailure(why: string): StrataError {
    const tail = this.log.tail();
    return new StrataError('FAILED_PRECONDITION', `${this.what} ${why}; ${tail ? `its output ends with:\n${tail}` : 'it printed nothing'}`);
  }

  /** GET /v2/models/<name>: the inputs and outputs requests are checked against. */
  private async readSignature(): Promise<ModelSignature> {
    const launch = this.launch!;
    const path = `/v2/models/${encodeURIComponent(this.context.name)}`;
    let res: { status: number; text: string };
    try {
      res = await call(this.agent, launch.port, 'GET', path, undefined, 10_000);
    } catch (err) {
      await this.kill(launch);
      throw this.startFailure(`did not answer GET ${path}: ${(err as Error).message}`);
    }
    try {
      if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${res.text.slice(0, 300)}`);
      return signatureOf(JSON.parse(res.text));
    } catch (err) {
      await this.kill(launch);
      throw new StrataError(
        'FAILED_PRECONDITION',
        `${this.what} gave no usable model metadata at GET ${path} (expected {"inputs": [{"name", "datatype", "shape"}], "outputs": [...]}): ${(err as Error).message}`,
      );
    }
  }

  /** A child ended. While serving, that is a crash: restart with backoff. */
  private exited(launch: Launch): void {
    if (launch !== this.launch || this.state !== 'running') return;
    // What it started may still hold the port or the model: the group goes with it.
    signalGroup(launch.child, 'SIGKILL');
    this.lastExit = launch.exit;
    process.stderr.write(`strata serving: ${this.what} ${launch.exit}; restarting\n`);
    this.state = 'restarting';
    this.scheduleRestart(Date.now() - this.upSince >= RESTART.stableMs);
  }

  private scheduleRestart(stable: boolean): void {
    if (stable) this.attempt = 0;
    const delay = Math.min(RESTART.maxMs, RESTART.initialMs * RESTART.factor ** this.attempt);
    this.attempt++;
    this.nextRestartAt = Date.now() + delay;
    this.timer = setTimeout(() => void this.restart(), delay);
  }

  private async restart(): Promise<void> {
    if (this.state !== 'restarting') return;
    this.restarts++;
    try {
      await this.run();
    } catch (err) {
      if (this.state !== 'restarting') return;
      const message = (err as Error).message;
      process.stderr.write(`strata serving: restarting failed: ${message}\n`);
      // The first line says how it failed; the output tail went to stderr above.
      this.lastExit = message.split('\n')[0]!.replace(/; its output ends with:$/, '');
      this.scheduleRestart(false);
      return;
    }
    if (this.state !== 'restarting') return; // released meanwhile; release ends the child
    if (this.launch!.exit !== undefined) {
      this.lastExit = this.launch!.exit;
      this.scheduleRestart(false);
      return;
    }
    this.state = 'running';
    this.upSince = Date.now();
    this.nextRestartAt = undefined;
  }

  async infer(inputs: Record<string, HostTensor>, outputNames?: string[]): Promise<Record<string, HostTensor>> {
    const launch = this.launch;
    if (this.state !== 'running' || !launch || launch.exit !== undefined) throw this.unavailable();
    const path = `/v2/models/${encodeURIComponent(this.context.name)}/infer`;
    const body = JSON.stringify({ inputs: oipOutputs(inputs), ...(outputNames ? { outputs: outputNames.map((name) => ({ name })) } : {}) });
    let res: { status: number; text: string };
    try {
      res = await call(this.agent, launch.port, 'POST', path, body);
    } catch (err) {
      // The child died under the request, or is dying: the same 503 as while it restarts.
      // A refused connection can come before its exit is seen; wait briefly for that, so
      // readiness and inspect already say 'restarting' when this answer arrives.
      await Promise.race([launch.exited, sleep(1000)]);
      throw new StrataError('UNAVAILABLE', `${this.what} did not answer: ${(err as Error).message}`, { cause: err });
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(res.text);
    } catch {
      parsed = undefined;
    }
    if (res.status !== 200) throw this.childError(res.status, parsed, res.text);
    try {
      return outputsOf(parsed, outputNames);
    } catch (err) {
      throw new StrataError('INTERNAL', `${this.what} answered with a bad inference response: ${(err as Error).message}`, { cause: err });
    }
  }

  private unavailable(): StrataError {
    if (this.state === 'stopped') return new StrataError('UNAVAILABLE', `${this.what} has been stopped`);
    const wait = this.nextRestartAt ? `; the next restart is in ${Math.max(0, (this.nextRestartAt - Date.now()) / 1000).toFixed(1)} s` : '';
    return new StrataError('UNAVAILABLE', `${this.what} is not running (${this.lastExit ?? 'it exited'}); it is being restarted${wait}, retry shortly`);
  }

  /** An error response of the child as the OIP error it stands for: its 4xx are the request's fault, 503 is unavailability, the rest the model's. */
  private childError(status: number, body: unknown, text: string): StrataError {
    const detail = body && typeof body === 'object' && typeof (body as { error?: unknown }).error === 'string' ? (body as { error: string }).error : text.slice(0, 500);
    if (status >= 400 && status < 500 && status !== 404) return new InvalidArgumentError(`the model rejected the request: ${detail}`);
    if (status === 503) return new StrataError('UNAVAILABLE', `${this.what} is unavailable: ${detail}`);
    return new StrataError('INTERNAL', `${this.what} failed the request (HTTP ${status}): ${detail}`);
  }

  /** SIGTERM to the child's group; SIGKILL if it is still there after the grace period. */
  private async kill(launch: Launch): Promise<void> {
    if (launch.exit === undefined) {
      signalGroup(launch.child, 'SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((r) => (timer = setTimeout(r, GRACE_MS)));
      await Promise.race([launch.exited, grace]);
      clearTimeout(timer);
      if (launch.exit === undefined) {
        signalGroup(launch.child, 'SIGKILL');
        await launch.exited;
      }
    }
    // Whatever the child left behind in its group (the command's own processes when the shell did not exec) goes with it.
    await endGroup(launch.child);
  }

  /** Stops the child (and any restart) and removes its directory; idempotent. */
  release(): Promise<void> {
    this.released ??= (async () => {
      this.state = 'stopped';
      clearTimeout(this.timer);
      if (this.launch) await this.kill(this.launch);
      this.agent.destroy();
      this.group.delete(this);
      await rm(this.dir, { recursive: true, force: true });
    })();
    return this.released;
  }
}

/** One HTTP exchange with a child on 127.0.0.1. */
function call(agent: Agent | undefined, port: number, method: string, path: string, body?: string, timeoutMs?: number): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent: agent ?? false,
        headers: body !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {},
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (timeoutMs !== undefined) req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.end(body);
  });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A signature from OIP model metadata: -1 dimensions are dynamic; a tensor without a shape has an unknown rank. */
export function signatureOf(meta: unknown): ModelSignature {
  if (!isObject(meta)) throw new Error('the metadata is not a JSON object');
  const specs = (key: 'inputs' | 'outputs'): TensorSpec[] => {
    const list = meta[key];
    if (!Array.isArray(list) || (key === 'inputs' && list.length === 0)) throw new Error(`"${key}" must be a${key === 'inputs' ? ' non-empty' : 'n'} array`);
    return list.map((t, i) => {
      if (!isObject(t) || typeof t.name !== 'string') throw new Error(`${key}[${i}] must be an object with a "name"`);
      const datatype = t.datatype;
      if (typeof datatype !== 'string' || !elementTypeOf(datatype)) throw new Error(`${key}[${i}] ("${t.name}") has datatype ${JSON.stringify(datatype)}, which serving cannot carry`);
      if (t.shape === undefined) return { name: t.name, datatype, onnxType: '', shape: [], unknownRank: true };
      if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && (d as number) >= -1)) {
        throw new Error(`${key}[${i}] ("${t.name}") shape must be an array of sizes, -1 for any size`);
      }
      return { name: t.name, datatype, onnxType: '', shape: (t.shape as number[]).map((d) => (d === -1 ? null : d)) };
    });
  };
  return { inputs: specs('inputs'), outputs: specs('outputs') };
}

/** The outputs of an OIP inference response as host tensors (only the requested ones, when some were). */
function outputsOf(body: unknown, outputNames?: string[]): Record<string, HostTensor> {
  if (!isObject(body) || !Array.isArray(body.outputs)) throw new Error('expected {"outputs": [{"name", "shape", "datatype", "data"}]}');
  const out: Record<string, HostTensor> = {};
  for (const [i, o] of body.outputs.entries()) {
    if (!isObject(o) || typeof o.name !== 'string') throw new Error(`outputs[${i}] must be an object with a "name"`);
    if (outputNames && !outputNames.includes(o.name)) continue;
    if (typeof o.datatype !== 'string' || !elementTypeOf(o.datatype)) throw new Error(`output "${o.name}" has datatype ${JSON.stringify(o.datatype)}`);
    const shape = o.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) throw new Error(`output "${o.name}": "shape" must be an array of sizes`);
    const values = Array.isArray(o.data) ? flatten(o.data, o.name) : [o.data];
    try {
      out[o.name] = toTensor({ name: o.name, datatype: o.datatype, onnxType: '', shape: shape as number[] }, shape as number[], values);
    } catch (err) {
      throw new Error(`output "${o.name}": ${(err as Error).message.replace(/^input "[^"]*": /, '')}`);
    }
  }
  for (const name of outputNames ?? []) if (!out[name]) throw new Error(`output "${name}" was asked for but not returned`);
  return out;
}

/**
 * The server's environment minus Strata's own settings and secrets (API token, database URL with its
 * password, OpenLineage key) and libpq's: a model process needs PATH, HOME, its language's variables, not
 * the keys to the instance.
 */
export function modelProcessEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('STRATA_') && !/^PG[A-Z]+$/.test(k)));
}
