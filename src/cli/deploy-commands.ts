import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { InvalidArgumentError } from '../errors.js';
import type { DeploymentInfo } from '../sdk/client.js';
import type { WithClient } from './main.js';
import { formatTime, printJson, printTable } from './output.js';

// `strata deploy ...` and `strata predict`: deployments of registered models
// and predictions against them, locally (the model is loaded in this process)
// or through a server.



function printDeployment(d: DeploymentInfo): void {
  const serving = d.serving ? `${d.serving.state}${d.serving.version !== null ? ` (version ${d.serving.version})` : ''}${d.serving.error ? `: ${d.serving.error}` : ''}` : '-';
  printTable(
    ['FIELD', 'VALUE'],
    [
      ['name', d.name],
      ['model', d.model],
      ['follows', d.target_kind === 'alias' ? `alias ${d.target}` : `version ${d.target} (fixed)`],
      ['serving', serving],
      ...runtime(d),
      ...traffic(d),
      ['creator', d.creator],
      ['created', formatTime(d.created_at)],
      ['updated', formatTime(d.updated_at)],
    ],
  );
}

/** The runtime row, and the model process's state on the process runtime. */
function runtime(d: DeploymentInfo): string[][] {
  const config = d.config as { runtime?: string; command?: string; ready_timeout_s?: number };
  if (config.runtime !== 'process') return [['runtime', 'onnx (ONNX Runtime in the server)']];
  const rows = [['runtime', `process: ${config.command}${config.ready_timeout_s !== undefined ? ` (ready within ${config.ready_timeout_s} s)` : ''}`]];
  const p = d.serving?.process;
  if (p) {
    const where = p.pid !== null ? `pid ${p.pid} on port ${p.port}` : 'no process';
    const next = p.next_restart_at ? `, next restart ${formatTime(p.next_restart_at)}` : '';
    rows.push(['process', `${p.state}, ${where}, ${p.restarts} restart${p.restarts === 1 ? '' : 's'}${p.last_exit ? `; last exit: ${p.last_exit}` : ''}${next}`]);
  }
  return rows;
}

const lane = (l: { state: string; version: number | null; error?: string }) => `${l.state}${l.version !== null ? ` (version ${l.version})` : ''}${l.error ? `: ${l.error}` : ''}`;
const diff = (v: number | null) => (v === null ? '-' : v.toPrecision(3));

/** Canary, shadow and per-version request rows of `deploy inspect`. */
function traffic(d: DeploymentInfo): string[][] {
  const rows: string[][] = [];
  const config = d.config as { canary?: { model: string; weight: number }; shadow?: { model: string } };
  const canary = d.serving?.canary;
  if (config.canary) rows.push(['canary', `${config.canary.model} takes ${config.canary.weight}% of requests${canary ? `: ${lane(canary)}` : ''}`]);
  const shadow = d.serving?.shadow;
  if (config.shadow) rows.push(['shadow', `${config.shadow.model} gets a copy of every request${shadow ? `: ${lane(shadow)}` : ''}`]);
  if (shadow) {
    const st = shadow.stats;
    rows.push(['shadow requests', `${st.requests} mirrored, ${st.failures} failed, ${st.dropped} dropped${st.last_error ? ` (last error: ${st.last_error})` : ''}`]);
    rows.push(['shadow vs primary', `${st.differing} of ${st.compared} responses differ; max abs diff ${diff(st.max_abs_diff)}`]);
    for (const [name, o] of Object.entries(st.outputs)) rows.push([`  output ${name}`, `${o.differing} of ${o.compared} differ; max abs diff ${diff(o.max_abs_diff)}`]);
  }
  const batching = (d.config as { batching?: { max_batch_size: number; max_batch_delay_us: number } }).batching;
  if (batching) {
    const b = d.serving?.batching;
    const state = b ? (b.active ? ': on' : `: off${b.reason ? ` (${b.reason})` : ''}`) : '';
    rows.push(['batching', `up to ${batching.max_batch_size} rows per run, waiting at most ${batching.max_batch_delay_us} µs${state}`]);
  }
  const logging = (d.config as { logging?: { rate: number } }).logging;
  const log = d.serving?.logging;
  if (logging || log) {
    const rate = `${(logging?.rate ?? 0) * 100}% of requests to repo ${log?.repo ?? `${d.name}-predictions`}`;
    rows.push(['prediction log', logging ? rate : 'off (buffered records still written)']);
    if (log) {
      rows.push([
        'logged',
        `${log.sampled} sampled, ${log.committed} committed in ${log.files} files, ${log.buffered} buffered, ${log.dropped} dropped (buffer full), ${log.errors} failed writes (${log.lost} records lost)${log.last_error ? `; last error: ${log.last_error}` : ''}`,
      ]);
    }
  }
  if (d.serving?.traffic) {
    const versions = Object.entries(d.serving.traffic.versions);
    const since = formatTime(d.serving.traffic.since);
    if (versions.length === 0) rows.push(['requests', `none since ${since} (counted in memory by this server)`]);
    for (const [v, c] of versions) rows.push([`requests ${v}`, `${c.requests} (${c.failures} failed) since ${since}`]);
  }
  return rows;
}

/** --log-predictions RATE: a fraction from 0 to 1. */
function parseRate(text: string): number {
  const rate = /^\d+(\.\d+)?$|^\.\d+$/.test(text) ? Number(text) : NaN;
  if (!(rate >= 0 && rate <= 1)) throw new InvalidArgumentError(`--log-predictions "${text}" must be a fraction from 0 (off) to 1 (every request), e.g. 0.1`);
  return rate;
}

/** --runtime: onnx or process. */
function parseRuntime(text: string): 'onnx' | 'process' {
  if (text !== 'onnx' && text !== 'process') throw new InvalidArgumentError(`--runtime "${text}" must be onnx (ONNX Runtime in the server, the default) or process (--command serves the Open Inference Protocol)`);
  return text;
}

/** --ready-timeout: seconds above 0. */
function parseSeconds(text: string): number {
  const s = /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
  if (!(s > 0)) throw new InvalidArgumentError(`--ready-timeout "${text}" must be a number of seconds above 0, e.g. 120`);
  return s;
}

/** --max-batch-size, --max-batch-delay-us: a whole number. */
function parseWhole(text: string): number {
  if (!/^\d+$/.test(text)) throw new InvalidArgumentError(`"${text}" must be a whole number`);
  return Number(text);
}

interface CreateOptions {
  model: string;
  canary?: string;
  shadow?: string;
  logPredictions?: number;
  maxBatchSize?: number;
  maxBatchDelayUs?: number;
  runtime?: 'onnx' | 'process';
  command?: string;
  readyTimeout?: number;
  json?: boolean;
}

interface UpdateOptions {
  model?: string;
  canary?: string | false;
  shadow?: string | false;
  logPredictions?: number;
  maxBatchSize?: number;
  maxBatchDelayUs?: number;
  command?: string;
  readyTimeout?: number;
  json?: boolean;
}

export function registerDeployCommands(program: Command, withClient: WithClient): void {
  const deploy = program.command('deploy').description('deployments: serve a registered model (MODEL@ALIAS follows the alias, MODEL@VERSION is fixed)');
  deploy
    .command('create <name>')
    .requiredOption('--model <model>', 'MODEL@ALIAS or MODEL@VERSION, e.g. spam@production')
    .option('--canary <model=percent>', 'a canary version taking PERCENT of requests (sticky by request id), e.g. spam@3=10')
    .option('--shadow <model>', 'a shadow version every request is mirrored to (responses compared, never returned), e.g. spam@3')
    .option('--log-predictions <rate>', 'commit this fraction of requests (0 to 1) with their responses to the repo NAME-predictions', parseRate)
    .option('--max-batch-size <n>', 'adaptive batching: coalesce concurrent requests into model runs of up to N rows (with --max-batch-delay-us)', parseWhole)
    .option('--max-batch-delay-us <n>', 'adaptive batching: the longest a request waits for others, in microseconds', parseWhole)
    .option('--runtime <runtime>', 'onnx (default): ONNX Runtime in the server; process: --command serves the Open Inference Protocol on $PORT', parseRuntime)
    .option('--command <command>', 'process runtime: the command (any language) serving the model at $STRATA_MODEL_PATH over OIP on $PORT, e.g. "python3 serve.py"')
    .option('--ready-timeout <seconds>', 'process runtime: how long a start may take before GET /v2/health/ready answers 200 (default 60)', parseSeconds)
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, name: string, opts: CreateOptions) => {
        const d = await client.createDeployment({
          name,
          model: opts.model,
          canary: opts.canary,
          shadow: opts.shadow,
          log_predictions: opts.logPredictions,
          max_batch_size: opts.maxBatchSize,
          max_batch_delay_us: opts.maxBatchDelayUs,
          runtime: opts.runtime,
          command: opts.command,
          ready_timeout_s: opts.readyTimeout,
        });
        if (opts.json) return printJson(d);
        process.stdout.write(`Created deployment ${d.name} serving ${d.model}${d.config.runtime === 'process' ? ` with ${String(d.config.command)}` : ''}\n`);
      }),
    );
  deploy
    .command('list')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, opts: { json?: boolean }) => {
        const all = await client.listDeployments();
        if (opts.json) return printJson(all);
        printTable(
          ['NAME', 'MODEL', 'SERVING', 'UPDATED'],
          all.map((d) => [d.name, d.model, d.serving ? `${d.serving.state}${d.serving.version !== null ? ` v${d.serving.version}` : ''}` : '-', formatTime(d.updated_at)]),
        );
      }),
    );
  deploy
    .command('inspect <name>')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, name: string, opts: { json?: boolean }) => {
        const d = await client.inspectDeployment(name);
        if (opts.json) return printJson(d);
        printDeployment(d);
      }),
    );
  deploy
    .command('update <name>')
    .option('--model <model>', 'MODEL@ALIAS or MODEL@VERSION')
    .option('--canary <model=percent>', 'set the canary, e.g. spam@3=10')
    .option('--no-canary', 'remove the canary')
    .option('--shadow <model>', 'set the shadow, e.g. spam@3')
    .option('--no-shadow', 'remove the shadow')
    .option('--log-predictions <rate>', 'commit this fraction of requests (0 to 1) to the repo NAME-predictions; 0 turns logging off', parseRate)
    .option('--max-batch-size <n>', 'adaptive batching: most rows per model run; 1 turns batching off', parseWhole)
    .option('--max-batch-delay-us <n>', 'adaptive batching: the longest a request waits for others, in microseconds', parseWhole)
    .option('--command <command>', 'process runtime: a new command (the versions are restarted with it)')
    .option('--ready-timeout <seconds>', 'process runtime: how long a start may take before it is ready', parseSeconds)
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, name: string, opts: UpdateOptions) => {
        const change = (v: string | false | undefined) => (v === false ? null : v);
        const d = await client.updateDeployment(name, {
          model: opts.model,
          canary: change(opts.canary),
          shadow: change(opts.shadow),
          log_predictions: opts.logPredictions,
          max_batch_size: opts.maxBatchSize,
          max_batch_delay_us: opts.maxBatchDelayUs,
          command: opts.command,
          ready_timeout_s: opts.readyTimeout,
        });
        if (opts.json) return printJson(d);
        process.stdout.write(`Deployment ${d.name} now serves ${d.model}\n`);
      }),
    );
  deploy
    .command('delete <name>')
    .action(
      withClient(async (client, name: string) => {
        await client.deleteDeployment(name);
        process.stdout.write(`Deleted deployment ${name}\n`);
      }),
    );

  program
    .command('predict <deployment>')
    .description('predict with a deployment; the input is an Open Inference Protocol request or {"inputs": {"<name>": nested array}}')
    .requiredOption('--input <file>', 'the request JSON file, or - for stdin')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, name: string, opts: { input: string; json?: boolean }) => {
        let text: string;
        try {
          text = readFileSync(opts.input === '-' ? 0 : opts.input, 'utf8');
        } catch (err) {
          throw new InvalidArgumentError(`--input: cannot read ${opts.input === '-' ? 'stdin' : opts.input}: ${(err as Error).message}`, { cause: err });
        }
        let request: unknown;
        try {
          request = JSON.parse(text);
        } catch (err) {
          throw new InvalidArgumentError(`--input is not valid JSON: ${(err as Error).message}`, { cause: err });
        }
        const result = await client.predict(name, request);
        if (opts.json) return printJson(result);
        if ('model_name' in result) {
          process.stdout.write(`${result.parameters['strata-model']} version ${result.model_version} (data: ${result.parameters['strata-data-commit'] || '-'})\n`);
          for (const o of result.outputs) process.stdout.write(`${o.name} ${o.datatype} [${o.shape.join(', ')}]: ${JSON.stringify(o.data)}\n`);
        } else {
          process.stdout.write(`${result.model} version ${result.version} (data: ${result.data_commit || '-'})\n`);
          for (const [k, v] of Object.entries(result.outputs)) process.stdout.write(`${k}: ${JSON.stringify(v)}\n`);
        }
      }),
    );
}
