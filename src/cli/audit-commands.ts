import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { InvalidArgumentError } from '../errors.js';
import { checkSignedCheckpoint, type SignedCheckpoint } from '../governance/audit.js';
import type { WithClient } from './main.js';
import { printJson, printTable } from './output.js';

// `strata audit ...`: read the audit log, take signed checkpoints, verify the
// log against them. `verify` exits 1 when the log does not check out, like fsck.

export function registerAuditCommands(program: Command, withClient: WithClient): void {
  const audit = program.command('audit').description('the audit log: who did what to which target, as a verifiable Merkle tree');

  audit
    .command('log')
    .description('audit entries, oldest first (the most recent --limit of those matching)')
    .option('--since <time>', 'only entries since a time (ISO-8601) or a duration back from now (1h, 30m, 7d)')
    .option('--actor <user>', 'only entries by this actor')
    .option('--target <ref>', 'only entries on this target or under it (repo:emails matches repo:emails@master:/a.txt)')
    .option('--action <action>', 'only entries with this action (e.g. commit.create)')
    .option('--limit <n>', 'at most this many entries (default 1000)', parseLimit)
    .option('--json', 'print JSON: the full entries')
    .action(
      withClient(async (client, opts: { since?: string; actor?: string; target?: string; action?: string; limit?: number; json?: boolean }) => {
        const entries = await client.auditLog({ since: opts.since, actor: opts.actor, target: opts.target, action: opts.action, limit: opts.limit });
        if (opts.json) return printJson(entries);
        printTable(
          ['SEQ', 'TIME', 'ACTOR', 'ACTION', 'TARGET', 'OUTCOME'],
          entries.map((e) => [String(e.seq), e.time.replace('T', ' ').slice(0, 19), e.actor, e.action, e.target, e.outcome]),
        );
      }),
    );

  audit
    .command('checkpoint')
    .description('sign a checkpoint (size and Merkle root) of the whole log with the instance key; keep the JSON somewhere else')
    .option('--json', 'print JSON (the checkpoint is always printed as JSON)')
    .action(
      withClient(async (client) => {
        printJson(await client.auditCheckpoint());
      }),
    );

  audit
    .command('verify')
    .description('recompute the Merkle tree and check every entry and checkpoint (exit 1 on problems)')
    .option('--checkpoint <file>', 'also prove the log extends this checkpoint (the JSON printed by `strata audit checkpoint`)')
    .option('--json', 'print JSON')
    .action(
      withClient(async (client, opts: { checkpoint?: string; json?: boolean }) => {
        const checkpoint = opts.checkpoint === undefined ? undefined : readCheckpoint(opts.checkpoint);
        const result = await client.auditVerify({ checkpoint });
        if (opts.json) printJson(result);
        else {
          process.stdout.write(`checked ${result.size} entries and ${result.checked_checkpoints} checkpoint(s); root ${result.root}\n`);
          for (const p of result.problems) process.stdout.write(`problem: ${p.kind}${p.seq === undefined ? '' : ` at entry ${p.seq}`}: ${p.message}\n`);
          if (result.ok && checkpoint) {
            process.stdout.write(`entries 1..${checkpoint.size} still hash to the root signed at ${checkpoint.time}: the log only grew since that checkpoint\n`);
          }
          process.stdout.write(result.ok ? 'ok\n' : `${result.problems.length} problem(s) found; the first: ${result.problems[0].message}\n`);
        }
        if (!result.ok) process.exitCode = 1;
      }),
    );
}

function parseLimit(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`--limit must be a positive integer, not "${value}"`);
  return n;
}

function readCheckpoint(file: string): SignedCheckpoint {
  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(`cannot read checkpoint file ${file}: ${(err as Error).message}`);
  }
  try {
    return checkSignedCheckpoint(JSON.parse(text));
  } catch (err) {
    if (err instanceof SyntaxError) throw new InvalidArgumentError(`checkpoint file ${file} is not JSON: ${err.message}`);
    throw err;
  }
}
