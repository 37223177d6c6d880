import type { Command } from 'commander';
import { auditOf, parseExpiry, type GrantInfo, type Principal, type TokenInfo } from '../governance/access.js';
import { authorizeOperation, errorDetail, lookupIn, outcomeOf, record } from '../governance/authorize.js';
import { operation, type Fields } from '../governance/operations.js';
import { findHome, Instance } from '../instance.js';
import { HttpAccessClient, type AccessClient, type WhoAmI } from '../sdk/access-client.js';
import { localPrincipal } from './authorized-client.js';
import { printJson, printTable } from './output.js';

// `strata user|token|grant|revoke|whoami`: users, API tokens and role grants.
// With --server they go over HTTP; without, in-process, authorized and
// audited through the same operations table as the server.

interface Globals {
  home?: string;
  server?: string;
  database?: string;
}

/** Access control in this process: each call checked and audited with client 'local', like cli/authorized-client.ts. */
function localAccessClient(instance: Instance, principal: Principal): AccessClient {
  const access = instance.access;
  const lookup = lookupIn(instance.meta.db);
  const guarded = async <T>(action: string, fields: Fields, fn: () => Promise<T>): Promise<T> => {
    const op = operation(action);
    let target = 'instance';
    try {
      await authorizeOperation(access, principal, op, fields, lookup, (t) => (target = t));
      const result = await fn();
      if (op.audited) await record(auditOf(instance), { actor: principal.user, action, target, outcome: 'ok', client: 'local' });
      return result;
    } catch (err) {
      if (op.audited || outcomeOf(err) === 'denied') {
        await record(auditOf(instance), { actor: principal.user, action, target, outcome: outcomeOf(err), client: 'local', detail: errorDetail(err) });
      }
      throw err;
    }
  };
  return {
    createUser: (name) => guarded('user.create', { name }, () => access.createUser(name, principal.user)),
    listUsers: () => guarded('user.list', {}, () => access.listUsers()),
    deleteUser: (name) => guarded('user.delete', { name }, () => access.deleteUser(name)),
    createToken: (opts) => {
      const user = opts.user ?? principal.user;
      return guarded('token.create', { user }, () =>
        access.createToken(user, { name: opts.name, expiresInMs: opts.expires === undefined ? undefined : parseExpiry(opts.expires) }),
      );
    },
    listTokens: (opts = {}) => guarded('token.list', {}, () => access.listTokens(opts)),
    revokeToken: (id) => guarded('token.revoke', { id }, () => access.revokeToken(id)),
    grant: (role, user, on) => guarded('grant.create', { user }, () => access.grant(role, user, on, principal.user)),
    revoke: (role, user, on) => guarded('grant.delete', { user }, () => access.revoke(role, user, on)),
    whoami: async (): Promise<WhoAmI> => ({
      user: principal.user,
      owner: principal.owner === true,
      token: principal.tokenId ?? null,
      grants: principal.owner ? [] : await access.listGrants({ user: principal.user }),
    }),
    close: () => instance.close(),
  };
}

async function openAccess(g: Globals): Promise<AccessClient> {
  const server = g.server ?? process.env.STRATA_SERVER;
  if (server) return new HttpAccessClient(server, { token: process.env.STRATA_TOKEN });
  const instance = await Instance.open(findHome(g.home), { database: g.database });
  try {
    return localAccessClient(instance, await localPrincipal(instance));
  } catch (err) {
    await instance.close();
    throw err;
  }
}

function grantText(g: GrantInfo): string {
  return `${g.role} on ${g.on === '*' ? 'the instance' : g.on}`;
}

function tokenState(t: TokenInfo): string {
  if (t.revoked) return `revoked ${t.revoked}`;
  if (t.expires && Date.parse(t.expires) <= Date.now()) return `expired ${t.expires}`;
  return t.expires ? `expires ${t.expires}` : 'no expiry';
}

export function registerAccessCommands(program: Command, globals: () => Globals): void {
  const run =
    <A extends unknown[]>(fn: (client: AccessClient, ...args: A) => Promise<void>) =>
    async (...args: A) => {
      const client = await openAccess(globals());
      try {
        await fn(client, ...args);
      } finally {
        await client.close();
      }
    };

  const user = program.command('user').description('users who can hold API tokens and roles (admin)');
  user
    .command('create <name>')
    .description('create a user (no roles until granted)')
    .option('--json', 'print JSON')
    .action(
      run(async (c, name: string, opts: { json?: boolean }) => {
        const u = await c.createUser(name);
        if (opts.json) return printJson(u);
        process.stdout.write(`created user ${u.name} (no roles yet: strata grant reader ${u.name} [--on repo:NAME])\n`);
      }),
    );
  user
    .command('list')
    .description('list users and their grants')
    .option('--json', 'print JSON')
    .action(
      run(async (c, opts: { json?: boolean }) => {
        const users = await c.listUsers();
        if (opts.json) return printJson(users);
        printTable(['USER', 'CREATED', 'ROLES'], users.map((u) => [u.name, u.created, u.grants.map(grantText).join(', ') || '-']));
      }),
    );
  user
    .command('delete <name>')
    .description('delete a user: their grants are removed and their tokens revoked')
    .option('--json', 'print JSON')
    .action(
      run(async (c, name: string, opts: { json?: boolean }) => {
        await c.deleteUser(name);
        if (opts.json) return printJson({ deleted: name });
        process.stdout.write(`deleted user ${name}\n`);
      }),
    );

  const token = program.command('token').description('API tokens (sent as STRATA_TOKEN)');
  token
    .command('create')
    .description('create a token; its secret is printed once')
    .option('--user <name>', 'whose token (default: you)')
    .option('--name <name>', 'what it is for')
    .option('--expires <duration>', 'lifetime, e.g. 30d, 12h, 2w (default: none)')
    .option('--json', 'print JSON')
    .action(
      run(async (c, opts: { user?: string; name?: string; expires?: string; json?: boolean }) => {
        const t = await c.createToken({ user: opts.user, name: opts.name, expires: opts.expires });
        if (opts.json) return printJson(t);
        process.stdout.write(`created token ${t.id} for ${t.user} (${tokenState(t)}); shown once, keep it secret:\n${t.token}\n`);
      }),
    );
  token
    .command('list')
    .description('list tokens (never their secrets)')
    .option('--user <name>', 'only this user\'s')
    .option('--json', 'print JSON')
    .action(
      run(async (c, opts: { user?: string; json?: boolean }) => {
        const tokens = await c.listTokens({ user: opts.user });
        if (opts.json) return printJson(tokens);
        printTable(['ID', 'USER', 'NAME', 'STATE', 'LAST USED'], tokens.map((t) => [t.id, t.user, t.name, tokenState(t), t.last_used ?? '-']));
      }),
    );
  token
    .command('revoke <id>')
    .description('revoke a token at once')
    .option('--json', 'print JSON')
    .action(
      run(async (c, id: string, opts: { json?: boolean }) => {
        const t = await c.revokeToken(id);
        if (opts.json) return printJson(t);
        process.stdout.write(`revoked token ${t.id} of ${t.user}\n`);
      }),
    );

  const on = '--on <resource>';
  const onHelp = 'repo:NAME, pipeline:NAME, model:NAME or deployment:NAME (default: the whole instance)';
  program
    .command('grant <role> <user>')
    .description('give a user a role (admin, writer, reader), instance-wide or on one resource')
    .option(on, onHelp)
    .option('--json', 'print JSON')
    .action(
      run(async (c, role: string, name: string, opts: { on?: string; json?: boolean }) => {
        const g = await c.grant(role, name, opts.on);
        if (opts.json) return printJson(g);
        process.stdout.write(`granted ${name} ${grantText(g)}\n`);
      }),
    );
  program
    .command('revoke <role> <user>')
    .description('take a role back (effective on the next request)')
    .option(on, onHelp)
    .option('--json', 'print JSON')
    .action(
      run(async (c, role: string, name: string, opts: { on?: string; json?: boolean }) => {
        const g = await c.revoke(role, name, opts.on);
        if (opts.json) return printJson(g);
        process.stdout.write(`revoked ${grantText(g)} from ${name}\n`);
      }),
    );

  program
    .command('whoami')
    .description('who the CLI acts as (STRATA_TOKEN\'s user, else the instance owner) and their roles')
    .option('--json', 'print JSON')
    .action(
      run(async (c, opts: { json?: boolean }) => {
        const w = await c.whoami();
        if (opts.json) return printJson(w);
        if (w.owner) process.stdout.write(`${w.user} (instance owner: no token, acting as admin)\n`);
        else process.stdout.write(`${w.user} (token ${w.token}): ${w.grants.map(grantText).join(', ') || 'no roles'}\n`);
      }),
    );
}
