import type { Command } from 'commander';
import { InvalidArgumentError } from '../errors.js';
import type { Run } from '../sdk/client.js';
import type { WithClient } from './main.js';
import { formatTime, printJson, printTable } from './output.js';

// `strata run ...` and `strata experiment ...`: tracked runs (every pipeline
// job is one) — list with MLflow filters, show, compare, metric history.


const num = (v: number | null | undefined) => (v === null || v === undefined ? '-' : Number.isInteger(v) ? String(v) : v.toPrecision(4));

export function registerRunCommands(program: Command, withClient: WithClient): void {
  const run = program.command('run').description('tracked runs: every pipeline job is one; notebooks create their own');
  run
    .command('list')
    .description('list runs, newest first')
    .option('--pipeline <name>', "only this pipeline's runs")
    .option('--experiment <id-or-name>', 'only this experiment')
    .option('--filter <expr>', "MLflow search syntax: metrics.accuracy > 0.9 and params.lr = '0.01'")
    .option('--sort <key>', 'e.g. -metrics.accuracy (descending) or start_time', collect, [])
    .option('--limit <n>', 'at most N runs', '100')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, opts: { pipeline?: string; experiment?: string; filter?: string; sort: string[]; limit: string; json?: boolean }) => {
        const limit = Number(opts.limit);
        if (!Number.isInteger(limit) || limit < 1) throw new InvalidArgumentError(`--limit: expected a positive whole number, got "${opts.limit}"`);
        let experimentIds: string[] | undefined;
        if (opts.experiment) {
          const all = await client.listExperiments();
          const exp = all.find((e) => e.experiment_id === opts.experiment || e.name === opts.experiment);
          if (!exp) throw new InvalidArgumentError(`--experiment: no experiment "${opts.experiment}" (strata experiment list shows them)`);
          experimentIds = [exp.experiment_id];
        }
        const { runs } = await client.searchRuns({ pipeline: opts.pipeline, experiment_ids: experimentIds, filter: opts.filter, order_by: opts.sort, max_results: limit });
        if (opts.json) return printJson(runs);
        const metricKeys = [...new Set(runs.flatMap((r) => Object.keys(r.data.metrics)))].sort().slice(0, 4);
        printTable(
          ['RUN', 'NAME', 'STATUS', 'STARTED', ...metricKeys.map((k) => k.toUpperCase())],
          runs.map((r) => [r.info.run_id.slice(0, 12), r.info.run_name, r.info.status, formatTime(r.info.start_time), ...metricKeys.map((k) => num(r.data.metrics[k]?.value))]),
        );
      }),
    );
  run
    .command('show <id>')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, id: string, opts: { json?: boolean }) => {
        const r = await client.getRun(id);
        if (opts.json) return printJson(r);
        printRun(r);
      }),
    );
  run
    .command('compare <ids...>')
    .description('params side by side, final metric values and deltas against the first run')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, ids: string[], opts: { json?: boolean }) => {
        const c = await client.compareRuns(ids);
        if (opts.json) return printJson(c);
        const head = ['', ...c.runs.map((r) => `${r.run_name} (${r.run_id.slice(0, 8)})`)];
        printTable(head, [
          ...c.params.map((p) => [`params.${p.key}`, ...p.values.map((v) => v ?? '-')]),
          ...c.metrics.map((m) => [
            `metrics.${m.key}`,
            ...m.values.map((v, i) => (i === 0 || m.deltas[i] === null ? num(v) : `${num(v)} (${m.deltas[i]! >= 0 ? '+' : ''}${num(m.deltas[i])})`)),
          ]),
        ]);
      }),
    );
  run
    .command('metrics <id> <key>')
    .description("a metric's history: every logged point")
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, id: string, key: string, opts: { json?: boolean }) => {
        const points = await client.metricHistory(id, key);
        if (opts.json) return printJson(points);
        printTable(['STEP', 'VALUE', 'TIME'], points.map((p) => [String(p.step), num(p.value), formatTime(p.timestamp)]));
      }),
    );

  const experiment = program.command('experiment').description('experiments group runs (each pipeline has one)');
  experiment
    .command('list')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, opts: { json?: boolean }) => {
        const list = await client.listExperiments();
        if (opts.json) return printJson(list);
        printTable(['ID', 'NAME', 'CREATED'], list.map((e) => [e.experiment_id, e.name, formatTime(e.creation_time)]));
      }),
    );
  experiment
    .command('create <name>')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, name: string, opts: { json?: boolean }) => {
        const e = await client.createExperiment(name);
        if (opts.json) return printJson(e);
        process.stdout.write(`created experiment ${e.name} (id ${e.experiment_id})\n`);
      }),
    );
}

function printRun(r: Run) {
  const i = r.info;
  const lines = [
    `Run: ${i.run_id} (${i.run_name})`,
    `Status: ${i.status}`,
    `Experiment: ${i.experiment_id}`,
    `Started: ${formatTime(i.start_time)}   Ended: ${formatTime(i.end_time)}`,
    `User: ${i.user_id || '-'}`,
  ];
  if (i.pipeline) lines.push(`Pipeline: ${i.pipeline}  Job: ${i.job}`, `Code version: ${i.code_version ?? '-'}`);
  if (i.input_commits.length) lines.push(`Inputs: ${i.input_commits.map((c) => `${c.repo}@${c.commit.slice(0, 12)}`).join(', ')}`);
  if (i.output_commit) lines.push(`Output commit: ${i.output_commit}`);
  lines.push('Params:', ...Object.entries(r.data.params).map(([k, v]) => `  ${k} = ${v}`));
  lines.push('Metrics (latest):', ...Object.entries(r.data.metrics).map(([k, m]) => `  ${k} = ${num(m.value)} (step ${m.step})`));
  lines.push('Tags:', ...Object.entries(r.data.tags).map(([k, v]) => `  ${k} = ${v}`));
  process.stdout.write(lines.join('\n') + '\n');
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
