import type { Command } from 'commander';
import { defaultAuthor } from '../data/service.js';
import { InvalidArgumentError } from '../errors.js';
import type { AliasChange, ModelVersion, RegisteredModel } from '../sdk/client.js';
import { formatGateRule, parseGateRule } from '../tracking/gates.js';
import { checkVersion, parseInstant } from '../tracking/registry.js';
import { formatBytes } from './progress.js';
import type { WithClient } from './main.js';
import { printJson, printTable } from './output.js';

// `strata model ...`: the model registry, its aliases and promotion gates.
// Thin adapters over StrataClient, like the rest of the CLI; --json prints one
// JSON document. A gate that refuses an alias move exits 2 (POLICY_VIOLATION).


export function registerModelCommands(program: Command, withClient: WithClient): void {
  const model = program.command('model').description('the model registry: versions, aliases and promotion gates');

  model
    .command('register <name>')
    .description('register a file in a commit as the next version of a model (created if needed)')
    .requiredOption('--from <ref>', 'the model file: REPO[@BRANCH|@COMMIT]:/path, e.g. train@master:/model.onnx')
    .option('--run <id>', 'the run that made it (default: the run of the pipeline job that made the commit)')
    .option('--description <text>', 'what this version is')
    .option('--tag <key=value>', 'a version tag (repeatable)', collectTag, {})
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, name: string, opts: { from: string; run?: string; description?: string; tag: Record<string, string>; json?: boolean }) => {
        const v = await client.registerModelVersion(name, {
          from: opts.from,
          run_id: opts.run,
          description: opts.description,
          tags: opts.tag,
          user: defaultAuthor(),
        });
        if (opts.json) return printJson(v);
        process.stdout.write(`registered ${v.name} version ${v.version} from ${shortSource(v)} (${v.format}, ${formatBytes(v.size)})\n`);
      }),
    );

  model
    .command('create <name>')
    .description('create a registered model with no versions yet')
    .option('--description <text>', 'what the model is for')
    .option('--tag <key=value>', 'a model tag (repeatable)', collectTag, {})
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, name: string, opts: { description?: string; tag: Record<string, string>; json?: boolean }) => {
        const m = await client.createModel({ name, description: opts.description, tags: opts.tag });
        if (opts.json) return printJson(m);
        process.stdout.write(`created model ${m.name}\n`);
      }),
    );

  model
    .command('list')
    .description('list registered models')
    .option('--filter <text>', 'only models whose name contains this')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, opts: { filter?: string; json?: boolean }) => {
        const models = await client.listModels({ filter: opts.filter });
        if (opts.json) return printJson(models);
        printTable(
          ['NAME', 'LATEST', 'ALIASES', 'UPDATED', 'DESCRIPTION'],
          models.map((m) => [m.name, m.latest_version === null ? '-' : String(m.latest_version), aliasList(m), iso(m.last_updated_timestamp), m.description]),
        );
      }),
    );

  model
    .command('show <name>')
    .description('a model with its versions and aliases')
    .option('--json', 'print JSON: the model with a "versions" list')
    .action(
      withClient(async (client, name: string, opts: { json?: boolean }) => {
        const m = await client.inspectModel(name);
        const versions = await client.listModelVersions(name);
        if (opts.json) return printJson({ ...m, versions });
        const tags = Object.entries(m.tags).map(([k, v]) => `${k}=${v}`).join(', ');
        process.stdout.write(
          `Name: ${m.name}\nDescription: ${m.description}\nTags: ${tags}\nLatest version: ${m.latest_version ?? '-'}\nAliases: ${aliasList(m) || '-'}\n` +
            `Created: ${iso(m.creation_timestamp)}\nUpdated: ${iso(m.last_updated_timestamp)}\n\n`,
        );
        printVersions(versions);
      }),
    );

  model
    .command('versions <name>')
    .description('versions of a model, oldest first')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, name: string, opts: { json?: boolean }) => {
        const versions = await client.listModelVersions(name);
        if (opts.json) return printJson(versions);
        printVersions(versions);
      }),
    );

  model
    .command('version <name> <version>')
    .description('one version (or the one an alias points at): source, hash, signature, run and lineage')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, name: string, which: string, opts: { json?: boolean }) => {
        const v = /^\d+$/.test(which) ? await client.inspectModelVersion(name, checkVersion(which)) : await client.inspectModelAlias(name, which);
        if (opts.json) return printJson(v);
        const tags = Object.entries(v.tags).map(([k, val]) => `${k}=${val}`).join(', ');
        process.stdout.write(
          `Model: ${v.name}\nVersion: ${v.version}\nAliases: ${v.aliases.join(', ') || '-'}\nSource: ${v.source}\nFormat: ${v.format}\n` +
            `Size: ${formatBytes(v.size)}\nHash: ${v.hash}\nRun: ${v.run_id ?? '-'}\nUser: ${v.user_id}\nCreated: ${iso(v.creation_timestamp)}\n` +
            `Description: ${v.description}\nTags: ${tags}\n`,
        );
        if (v.signature) {
          const spec = (t: { name: string; onnxType: string; shape: unknown[] }) => `  ${t.name}: ${t.onnxType} [${t.shape.map((d) => d ?? '?').join(', ')}]`;
          process.stdout.write(`Inputs:\n${v.signature.inputs.map(spec).join('\n')}\nOutputs:\n${v.signature.outputs.map(spec).join('\n')}\n`);
        }
        process.stdout.write(`Lineage: ${v.lineage.map((l) => `${l.repo}@${l.commit.slice(0, 12)}`).join(', ') || '-'}\n`);
      }),
    );

  model
    .command('delete <name>')
    .description('delete a model with its versions, aliases and gates (the alias history is kept)')
    .action(
      withClient(async (client, name: string) => {
        await client.deleteModel(name);
        process.stdout.write(`deleted model ${name}\n`);
      }),
    );

  // ---- aliases ----
  const alias = model.command('alias').description('aliases (production, staging, ...) that point at versions');
  alias
    .command('set <name> <alias> <version>')
    .description("point ALIAS at VERSION, if the alias's promotion gates pass (exit 2 if they refuse)")
    .option('--reason <text>', 'why, for the alias history')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, name: string, aliasName: string, version: string, opts: { reason?: string; json?: boolean }) => {
        const change = await client.setModelAlias(name, aliasName, checkVersion(version), { actor: defaultAuthor(), reason: opts.reason });
        if (opts.json) return printJson(change);
        if (change.from_version === change.to_version) process.stdout.write(`${name}@${aliasName} already points at version ${version}\n`);
        else process.stdout.write(`${name}@${aliasName}: ${change.from_version ?? '-'} -> ${change.to_version}\n`);
      }),
    );
  alias
    .command('rm <name> <alias>')
    .description('remove an alias')
    .option('--reason <text>', 'why, for the alias history')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, name: string, aliasName: string, opts: { reason?: string; json?: boolean }) => {
        const change = await client.deleteModelAlias(name, aliasName, { actor: defaultAuthor(), reason: opts.reason });
        if (opts.json) return printJson(change);
        process.stdout.write(`removed ${name}@${aliasName} (was version ${change.from_version})\n`);
      }),
    );
  alias
    .command('history <name> [alias]')
    .description('who moved which alias from which version to which, and when (newest first); --at: which version held it then')
    .option('--at <time>', 'ISO-8601 date/time (or epoch ms): show the version that held each alias at that instant')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, name: string, aliasName: string | undefined, opts: { at?: string; json?: boolean }) => {
        if (opts.at !== undefined) {
          const time = parseInstant(opts.at, '--at');
          let aliases = aliasName ? [aliasName] : [];
          if (!aliasName) aliases = [...new Set((await client.aliasHistory(name)).map((c) => c.alias))].sort();
          const held = await Promise.all(aliases.map((a) => client.aliasAt(name, a, time)));
          const out = held.map((h) => ({ ...h, at: new Date(h.time).toISOString() }));
          if (opts.json) return printJson(aliasName ? out[0] : out);
          if (out.length === 0) process.stdout.write(`${name} had no aliases at ${new Date(time).toISOString()}\n`);
          for (const h of out) process.stdout.write(`${name}@${h.alias} at ${h.at}: ${h.version === null ? 'not set' : `version ${h.version}`}\n`);
          return;
        }
        const history = await client.aliasHistory(name, { alias: aliasName });
        if (opts.json) return printJson(history);
        printTable(
          ['TIME', 'ALIAS', 'FROM', 'TO', 'ACTOR', 'REASON'],
          history.map((c: AliasChange) => [iso(c.time), c.alias, c.from_version === null ? '-' : String(c.from_version), c.to_version === null ? '-' : String(c.to_version), c.actor, c.reason]),
        );
      }),
    );

  // ---- gates ----
  const gate = model.command('gate').description('promotion gates: rules checked when an alias moves');
  gate
    .command('set <name> <alias> <rules...>')
    .description(
      'replace the rules of ALIAS; each RULE is one argument: "metrics.accuracy >= 0.9", ' +
        '"better_than_current:metrics.f1 [lower_is_better] [min_delta=N]", "tag:validated=true", "no_label:pii:ssn", or a JSON rule',
    )
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, name: string, aliasName: string, texts: string[], opts: { json?: boolean }) => {
        const rules = await client.setGates(name, aliasName, texts.map(parseGateRule));
        if (opts.json) return printJson(rules);
        process.stdout.write(`gate on ${name}@${aliasName}:\n${rules.map((r) => `  ${formatGateRule(r)}\n`).join('')}`);
      }),
    );
  gate
    .command('rm <name> <alias>')
    .description('remove the gate of ALIAS (moves are no longer checked)')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, name: string, aliasName: string, opts: { json?: boolean }) => {
        const rules = await client.setGates(name, aliasName, []);
        if (opts.json) return printJson(rules);
        process.stdout.write(`removed the gate on ${name}@${aliasName}\n`);
      }),
    );
  gate
    .command('show <name> <alias>')
    .description('the rules of ALIAS')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, name: string, aliasName: string, opts: { json?: boolean }) => {
        const rules = await client.getGates(name, aliasName);
        if (opts.json) return printJson(rules);
        if (rules.length === 0) process.stdout.write(`${name}@${aliasName} has no gate\n`);
        else process.stdout.write(rules.map((r) => `${formatGateRule(r)}\n`).join(''));
      }),
    );
}

function printVersions(versions: ModelVersion[]) {
  printTable(
    ['VERSION', 'ALIASES', 'SOURCE', 'FORMAT', 'SIZE', 'RUN', 'CREATED'],
    versions.map((v) => [String(v.version), v.aliases.join(',') || '-', shortSource(v), v.format, formatBytes(v.size), v.run_id ?? '-', iso(v.creation_timestamp)]),
  );
}

function shortSource(v: ModelVersion): string {
  return v.repo && v.commit && v.path ? `${v.repo}@${v.commit.slice(0, 12)}:${v.path}` : v.source;
}

function aliasList(m: RegisteredModel): string {
  return Object.entries(m.aliases)
    .map(([a, v]) => `${a}=${v}`)
    .join(',');
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function collectTag(value: string, tags: Record<string, string>) {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError(`--tag "${value}": expected key=value`);
  return { ...tags, [value.slice(0, eq)]: value.slice(eq + 1) };
}
