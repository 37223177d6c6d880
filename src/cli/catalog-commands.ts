import type { Command } from 'commander';
import { InvalidArgumentError } from '../errors.js';
import { parseCatalogRef, type CatalogAnnotation, type CatalogDetails } from '../governance/catalog.js';
import type { FileSchema } from '../governance/schema-infer.js';
import type { LabelSet } from '../governance/classifier.js';
import type { WithClient } from './main.js';
import { printJson, printTable } from './output.js';

// `strata catalog ...`: search, inspect and annotate repos, pipelines, models
// and deployments. Thin adapters over StrataClient; --json prints one JSON
// document. REF is KIND:NAME, or a bare NAME for a repo.

const collect = (value: string, all: string[]) => [...all, value];

export function registerCatalogCommands(program: Command, withClient: WithClient): void {
  const catalog = program.command('catalog').description('find and document data: search, inspect and annotate repos, pipelines, models and deployments');

  catalog
    .command('search [words...]')
    .description('rank entities by relevance over names, labels, column names, descriptions, owners and READMEs (the last word may be a prefix)')
    .option('--kind <kind>', 'only this kind: repo, pipeline, model or deployment')
    .option('--label <k=v>', 'only entities with this label (k=v) or label key (k); repeatable, all must hold', collect, [])
    .option('--limit <n>', 'at most this many results (default 20)')
    .option('--json', 'print JSON: [{kind, name, score, description, owners, labels, matched}]')
    .action(
      withClient(async (client, words: string[], opts: { kind?: string; label: string[]; limit?: string; json?: boolean }) => {
        const limit = opts.limit === undefined ? undefined : Number(opts.limit);
        if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) throw new InvalidArgumentError(`--limit: expected a positive whole number, got "${opts.limit}"`);
        const hits = await client.searchCatalog(words.join(' '), { kind: opts.kind, labels: opts.label, limit });
        if (opts.json) return printJson(hits);
        if (hits.length === 0) {
          process.stdout.write('no matches\n');
          return;
        }
        printTable(
          ['KIND', 'NAME', 'SCORE', 'MATCHED', 'DESCRIPTION'],
          hits.map((h) => [h.kind, h.name, h.score.toFixed(2), h.matched.join(','), h.description]),
        );
      }),
    );

  catalog
    .command('inspect <ref>')
    .description('everything about one entity (REF: NAME for a repo, or repo:|pipeline:|model:|deployment:NAME)')
    .option('--json', 'print JSON: {kind, name, description, owners, labels, readme, schemas, lineage, annotations, classification?}')
    .action(
      withClient(async (client, ref: string, opts: { json?: boolean }) => {
        const { kind, name } = parseCatalogRef(ref);
        const d = await client.inspectCatalog(kind, name);
        if (opts.json) return printJson(d);
        printDetails(d);
      }),
    );

  catalog
    .command('set <ref>')
    .description('annotate an entity: --description and --owner replace its own, --label adds, --unlabel removes')
    .option('--description <text>', 'what it is')
    .option('--owner <user>', 'an owner (repeatable; the list replaces the current owners)', collect, [])
    .option('--label <k=v>', 'a label (repeatable)', collect, [])
    .option('--unlabel <k>', 'remove a label (repeatable)', collect, [])
    .option('--json', 'print JSON: the entity as catalog inspect shows it')
    .action(
      withClient(async (client, ref: string, opts: { description?: string; owner: string[]; label: string[]; unlabel: string[]; json?: boolean }) => {
        const { kind, name } = parseCatalogRef(ref);
        const changes: CatalogAnnotation = {};
        if (opts.description !== undefined) changes.description = opts.description;
        if (opts.owner.length) changes.owners = opts.owner;
        if (opts.label.length) changes.labels = Object.fromEntries(opts.label.map(parseLabel));
        if (opts.unlabel.length) changes.unlabel = opts.unlabel;
        if (Object.keys(changes).length === 0) throw new InvalidArgumentError('catalog set: nothing to set; give --description, --owner, --label or --unlabel');
        const d = await client.annotateCatalog(kind, name, changes);
        if (opts.json) return printJson(d);
        process.stdout.write(`updated ${d.kind}:${d.name}\n`);
      }),
    );
}

function parseLabel(text: string): [string, string] {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError(`--label "${text}": expected key=value`);
  return [text.slice(0, eq), text.slice(eq + 1)];
}

function printDetails(d: CatalogDetails): void {
  const out: string[] = [];
  const labels = Object.entries(d.labels).map(([k, v]) => `${k}=${v}`);
  out.push(`${d.kind}:${d.name}`);
  out.push(`  description: ${d.description || '-'}`);
  out.push(`  owners:      ${d.owners.join(', ') || '-'}`);
  out.push(`  labels:      ${labels.join(', ') || '-'}`);
  const refs = (list: { kind: string; name: string }[]) => list.map((e) => `${e.kind}:${e.name}`).join(', ') || '-';
  out.push(`  upstream:    ${refs(d.lineage.upstream)}`);
  out.push(`  downstream:  ${refs(d.lineage.downstream)}`);
  if (d.classification) out.push(...classificationLines(d.classification));
  for (const [path, schema] of Object.entries(d.schemas)) out.push(`  schema ${path}: ${schemaLine(schema)}`);
  if (d.readme) out.push('', d.readme.trimEnd());
  process.stdout.write(out.join('\n') + '\n');
}

function schemaLine(s: FileSchema): string {
  const columns = s.columns.map((c) => `${c.name} ${c.type}${c.nullable ? '?' : ''}`).join(', ');
  return `${s.format}, ${s.rows}${s.truncated ? '+' : ''} rows: ${columns || '(no columns)'}${s.error ? ` (${s.error})` : ''}`;
}

/** PII labels with where each came from (the LabelSet of governance/classifier.ts); other shapes as JSON. */
function classificationLines(c: unknown): string[] {
  const set = c as Partial<LabelSet>;
  if (!Array.isArray(set.labels) || !Array.isArray(set.direct) || !Array.isArray(set.inherited) || !Array.isArray(set.declassified)) {
    return [`  classification: ${JSON.stringify(c)}`];
  }
  const parts = [
    ...set.direct.map((l) => `${l} (in its files)`),
    ...set.inherited.map((i) => `${i.label} (from ${i.from})`),
    ...set.declassified.map((d) => `${d.label} declassified by ${d.by}`),
  ];
  return [`  pii:         ${parts.length ? parts.join(', ') : 'none found'}`];
}
