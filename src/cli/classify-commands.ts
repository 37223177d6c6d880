import type { Command } from 'commander';
import { InvalidArgumentError } from '../errors.js';
import type { CommitClassification, LabelKind, LabelSet } from '../sdk/client.js';
import type { WithClient } from './main.js';
import { printJson, printTable } from './output.js';

// `strata classify ...`: PII findings per file (counts, never values), labels
// of repos, pipelines and models through lineage, and the instance's custom
// regex detectors. Thin adapters over StrataClient; --json prints one document.

export function registerClassifyCommands(program: Command, withClient: WithClient): void {
  const classify = program
    .command('classify')
    .description('PII classification: findings per file of REF (scanned now if not yet), labels, custom detectors')
    .argument('[ref]', 'REPO[@BRANCH|@COMMIT][:/path]')
    .option('--json', 'print JSON: {repo, commit, path, files: [{path, hash, size, status, bytes_scanned, findings}], totals, labels}')
    .action(
      withClient(async (client, ref: string | undefined, opts: { json?: boolean }) => {
        if (!ref) throw new InvalidArgumentError('classify: missing REF (e.g. strata classify emails@master); see strata classify --help');
        const result = await client.classify(ref);
        if (opts.json) return printJson(result);
        printFindings(result);
      }),
    );

  // Commander gives a --json after a subcommand to `classify` itself (it declares --json too): read both.
  const json = () => classify.opts<{ json?: boolean }>().json === true;

  classify
    .command('labels <target>')
    .description('PII labels of a repo (NAME or repo:NAME), pipeline:NAME or model:NAME[@VERSION|@ALIAS], direct and inherited through lineage')
    .option('--json', 'print JSON: {kind, name, labels, direct, inherited: [{label, from}], declassified: [{label, by}]}')
    .action(
      withClient(async (client, target: string, opts: { json?: boolean }) => {
        const { kind, name } = parseTarget(target);
        const set = await client.classificationLabels(kind, name);
        if (opts.json || json()) return printJson(set);
        printLabels(set);
      }),
    );

  const detector = classify.command('detector').description('custom PII detectors: named regular expressions, instance-wide');
  detector
    .command('add <name> <regex>')
    .description('add a detector; its matches count as type NAME (label pii:NAME)')
    .option('--flags <flags>', 'regex flags: any of i, m, s, u', '')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, name: string, pattern: string, opts: { flags: string; json?: boolean }) => {
        const d = await client.addPiiDetector({ name, pattern, flags: opts.flags });
        if (opts.json || json()) return printJson(d);
        process.stdout.write(`added detector ${d.name} /${d.pattern}/${d.flags}\n`);
      }),
    );
  detector
    .command('list')
    .description('list custom detectors')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, opts: { json?: boolean }) => {
        const list = await client.listPiiDetectors();
        if (opts.json || json()) return printJson(list);
        printTable(['NAME', 'REGEX', 'FLAGS', 'CREATOR', 'CREATED'], list.map((d) => [d.name, d.pattern, d.flags, d.creator, d.created]));
      }),
    );
  detector
    .command('rm <name>')
    .description('remove a custom detector')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, name: string, opts: { json?: boolean }) => {
        await client.removePiiDetector(name);
        if (opts.json || json()) return printJson({ removed: name });
        process.stdout.write(`removed detector ${name}\n`);
      }),
    );
}

function parseTarget(target: string): { kind: LabelKind; name: string } {
  const colon = target.indexOf(':');
  if (colon < 0) return { kind: 'repo', name: target };
  const kind = target.slice(0, colon);
  const name = target.slice(colon + 1);
  if (kind !== 'repo' && kind !== 'pipeline' && kind !== 'model') {
    throw new InvalidArgumentError(`classify labels: "${target}": expected REPO, repo:NAME, pipeline:NAME or model:NAME`);
  }
  if (!name) throw new InvalidArgumentError(`classify labels: "${target}" names no ${kind}`);
  return { kind, name };
}

const formatCounts = (counts: Record<string, number>) =>
  Object.entries(counts)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([type, n]) => `${type}=${n}`)
    .join(' ') || '-';

function printFindings(c: CommitClassification): void {
  process.stdout.write(`${c.repo}@${c.commit.slice(0, 12)}${c.path === '/' ? '' : `:${c.path}`}: ${c.labels.length ? c.labels.join(', ') : 'no PII found'}\n`);
  printTable(
    ['PATH', 'STATUS', 'FINDINGS'],
    c.files.map((f) => [f.path, f.status, formatCounts(f.findings) + (f.timed_out?.length ? ` (timed out: ${f.timed_out.join(', ')})` : '')]),
  );
}

function printLabels(s: LabelSet): void {
  process.stdout.write(`${s.kind} ${s.name}: ${s.labels.length ? s.labels.join(', ') : 'no PII labels'}\n`);
  for (const l of s.direct) process.stdout.write(`  ${l}  found in its files\n`);
  for (const l of s.inherited) process.stdout.write(`  ${l.label}  inherited from ${l.from}\n`);
  for (const l of s.declassified) process.stdout.write(`  ${l.label}  declassified by pipeline ${l.by}\n`);
}
