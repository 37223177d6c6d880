import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Kysely } from 'kysely';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError, StrataError } from '../errors.js';
import { checkName } from '../data/paths.js';
import type { Schema } from '../meta/schema.js';
import type { AuditLog } from './audit.js';
import { parseDuration } from '../pipelines/duration.js';

// Users, API tokens and role grants. A grant gives a role either
// instance-wide (resource '*') or on one resource (repo:NAME, pipeline:NAME,
// model:NAME, deployment:NAME); a user's level on a resource is the highest
// of the two. Roles are ordered reader < writer < admin; a user with no grant
// can do nothing but ask who they are.

export type Role = 'reader' | 'writer' | 'admin';
export type Level = 'read' | 'write' | 'admin';
export const ROLES: readonly Role[] = ['reader', 'writer', 'admin'];
export const RESOURCE_KINDS = ['repo', 'pipeline', 'model', 'deployment'] as const;
export type ResourceKind = (typeof RESOURCE_KINDS)[number];

/** '*' is the whole instance; otherwise kind:name. */
export type Resource = '*' | `${ResourceKind}:${string}`;

const RANK: Record<Role, number> = { reader: 1, writer: 2, admin: 3 };
const NEEDS: Record<Level, number> = { read: 1, write: 2, admin: 3 };
const ROLE_FOR: Record<Level, Role> = { read: 'reader', write: 'writer', admin: 'admin' };

/** Who is making a request. `local` is the OS user of the in-process CLI, who owns the instance files. */
export interface Principal {
  user: string;
  /** The token used, if any. */
  tokenId?: string;
  /** Acts as admin without grants: the instance owner (loopback without --auth required, or the in-process CLI without STRATA_TOKEN). */
  owner?: boolean;
}

export interface UserInfo {
  name: string;
  created_by: string;
  created: string;
  grants: GrantInfo[];
}

export interface TokenInfo {
  id: string;
  user: string;
  name: string;
  created: string;
  expires: string | null;
  revoked: string | null;
  last_used: string | null;
}

export interface GrantInfo {
  user: string;
  role: Role;
  /** '*' for instance-wide. */
  on: Resource;
  granted_by: string;
  created: string;
}

export class ForbiddenError extends StrataError {
  constructor(message: string) {
    super('FORBIDDEN', message);
  }
}

export class UnauthenticatedError extends StrataError {
  constructor(message: string) {
    super('UNAUTHENTICATED', message);
  }
}

const TOKEN = /^st_([A-Za-z0-9_-]{16})_([A-Za-z0-9_-]{43})$/;
const HOW_TO_GET_ONE = 'set STRATA_TOKEN to a valid token (an admin creates one with `strata token create --user NAME`)';

function iso(ms: number | null): string | null {
  if (ms === null || ms === undefined) return null;
  // A time past what Date can hold (an expiry stored before createToken refused them) is as good as never.
  const d = new Date(Number(ms));
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/** The longest token lifetime: 100 years (beyond it, expiry times stop being representable and mean "never" anyway). */
const MAX_EXPIRY_MS = 100 * 365 * 86_400_000;

// Tokens carry 256 bits of randomness, so a single SHA-256 is enough to store
// them: there is nothing to brute-force, which is what a slow KDF (bcrypt,
// scrypt) protects low-entropy passwords against.
function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export function parseResource(text: string | undefined): Resource {
  if (text === undefined || text === '' || text === '*') return '*';
  const colon = text.indexOf(':');
  const kind = text.slice(0, colon);
  if (colon < 0 || !(RESOURCE_KINDS as readonly string[]).includes(kind)) {
    throw new InvalidArgumentError(`--on "${text}" is invalid: expected repo:NAME, pipeline:NAME, model:NAME or deployment:NAME`);
  }
  return `${kind as ResourceKind}:${checkName(text.slice(colon + 1), `${kind} name in "${text}"`)}`;
}

function parseRole(text: string): Role {
  if (!(ROLES as readonly string[]).includes(text)) throw new InvalidArgumentError(`role "${text}" is invalid: expected admin, writer or reader`);
  return text as Role;
}

/** Token lifetimes: 30d, 12h, 90m, 2w (or any Go duration such as 1h30m). */
export function parseExpiry(text: string): number {
  const m = /^(\d+)(m|h|d|w)$/.exec(text.trim());
  const ms = m ? Number(m[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }[m[2] as 'm' | 'h' | 'd' | 'w'] : parseDuration(text);
  if (ms === undefined || !(ms > 0)) throw new InvalidArgumentError(`--expires "${text}" is not a duration: expected e.g. 30d, 12h, 90m or 2w`);
  return ms;
}

export function describeResource(resource: Resource): string {
  return resource === '*' ? 'the instance' : resource;
}

export class AccessControl {
  constructor(private db: Kysely<Schema>) {}

  // ---- users ----

  async createUser(name: string, by: string): Promise<UserInfo> {
    checkName(name, 'user name');
    const row = await this.db.selectFrom('users').select(['name', 'deleted_at']).where('name', '=', name).executeTakeFirst();
    if (row && row.deleted_at === null) throw new AlreadyExistsError(`user "${name}" already exists (strata user list shows the users)`);
    const now = Date.now();
    if (row) await this.db.updateTable('users').set({ created_by: by, created_at: now, deleted_at: null }).where('name', '=', name).execute();
    else await this.db.insertInto('users').values({ name, created_by: by, created_at: now, deleted_at: null }).execute();
    return { name, created_by: by, created: iso(now)!, grants: [] };
  }

  async listUsers(): Promise<UserInfo[]> {
    const users = await this.db.selectFrom('users').selectAll().where('deleted_at', 'is', null).orderBy('name').execute();
    const grants = await this.listGrants();
    return users.map((u) => ({ name: u.name, created_by: u.created_by, created: iso(u.created_at)!, grants: grants.filter((g) => g.user === u.name) }));
  }

  async inspectUser(name: string): Promise<UserInfo> {
    const u = await this.db.selectFrom('users').selectAll().where('name', '=', name).where('deleted_at', 'is', null).executeTakeFirst();
    if (!u) throw new NotFoundError(`user "${name}" not found (strata user list shows the users)`);
    return { name: u.name, created_by: u.created_by, created: iso(u.created_at)!, grants: await this.listGrants({ user: name }) };
  }

  /** 'active', 'deleted', or 'unknown' (never a user: e.g. the OS user who created a pipeline before users existed). */
  async userState(name: string): Promise<'active' | 'deleted' | 'unknown'> {
    const u = await this.db.selectFrom('users').select('deleted_at').where('name', '=', name).executeTakeFirst();
    return !u ? 'unknown' : u.deleted_at === null ? 'active' : 'deleted';
  }

  /** Deletes the user: their grants go and their tokens are revoked (both kept in the audit log). */
  async deleteUser(name: string): Promise<void> {
    await this.inspectUser(name);
    const now = Date.now();
    await this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('grants').where('user_name', '=', name).execute();
      await trx.updateTable('tokens').set({ revoked_at: now }).where('user_name', '=', name).where('revoked_at', 'is', null).execute();
      await trx.updateTable('users').set({ deleted_at: now }).where('name', '=', name).execute();
    });
  }

  /** The first admin, made by `strata init`: the user (if new), an instance-wide admin grant, and a token. */
  async bootstrap(osUser: string): Promise<TokenInfo & { token: string }> {
    // An OS user name may hold characters user names may not (DOMAIN\\user, spaces).
    const name = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(osUser) ? osUser : osUser.replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 128) || 'admin';
    if ((await this.userState(name)) !== 'active') await this.createUser(name, name);
    await this.grant('admin', name, undefined, name);
    return this.createToken(name, { name: 'init' });
  }

  // ---- tokens ----

  /** Makes a token for `user`; the returned `token` is the only time its secret exists outside the caller. */
  async createToken(user: string, opts: { name?: string; expiresInMs?: number } = {}): Promise<TokenInfo & { token: string }> {
    await this.inspectUser(user);
    if (opts.expiresInMs !== undefined && !(opts.expiresInMs > 0)) throw new InvalidArgumentError('token expiry must be a positive duration (e.g. 30d)');
    // A lifetime past what a date can hold would store an expiry no listing can show (and so no token could be revoked).
    if (opts.expiresInMs !== undefined && opts.expiresInMs > MAX_EXPIRY_MS) {
      throw new InvalidArgumentError('token expiry is too far away: at most 100 years (36500d); omit --expires for a token that does not expire');
    }
    const id = randomBytes(12).toString('base64url');
    const secret = randomBytes(32).toString('base64url');
    const now = Date.now();
    const expires = opts.expiresInMs === undefined ? null : now + opts.expiresInMs;
    const name = opts.name ?? 'default';
    await this.db
      .insertInto('tokens')
      .values({ id, user_name: user, name, hash: hashSecret(secret), created_at: now, expires_at: expires, revoked_at: null, last_used_at: null })
      .execute();
    return { id, user, name, created: iso(now)!, expires: iso(expires), revoked: null, last_used: null, token: `st_${id}_${secret}` };
  }

  async listTokens(opts: { user?: string } = {}): Promise<TokenInfo[]> {
    let q = this.db.selectFrom('tokens').selectAll().orderBy('created_at').orderBy('id');
    if (opts.user !== undefined) q = q.where('user_name', '=', opts.user);
    return (await q.execute()).map((t) => ({
      id: t.id,
      user: t.user_name,
      name: t.name,
      created: iso(t.created_at)!,
      expires: iso(t.expires_at),
      revoked: iso(t.revoked_at),
      last_used: iso(t.last_used_at),
    }));
  }

  async inspectToken(id: string): Promise<TokenInfo> {
    const t = (await this.listTokens()).find((x) => x.id === id);
    if (!t) throw new NotFoundError(`token "${id}" not found (strata token list shows the tokens)`);
    return t;
  }

  async revokeToken(id: string): Promise<TokenInfo> {
    const t = await this.inspectToken(id);
    if (t.revoked) return t;
    await this.db.updateTable('tokens').set({ revoked_at: Date.now() }).where('id', '=', id).execute();
    return this.inspectToken(id);
  }

  /** The user a presented token belongs to; UNAUTHENTICATED (saying what to do) when it is malformed, unknown, expired or revoked. */
  async authenticate(token: string): Promise<Principal> {
    const m = TOKEN.exec(token.trim());
    if (!m) throw new UnauthenticatedError(`the token is malformed (Strata tokens look like st_<id>_<secret>): ${HOW_TO_GET_ONE}`);
    const row = await this.db.selectFrom('tokens').selectAll().where('id', '=', m[1]!).executeTakeFirst();
    // Compare hashes in constant time even when the id is unknown, so timing does not tell which ids exist.
    const presented = Buffer.from(hashSecret(m[2]!), 'hex');
    const stored = Buffer.from(row?.hash ?? '0'.repeat(64), 'hex');
    if (!timingSafeEqual(presented, stored) || !row) throw new UnauthenticatedError(`the token is not valid: ${HOW_TO_GET_ONE}`);
    const now = Date.now();
    if (row.revoked_at !== null) throw new UnauthenticatedError(`token ${row.id} was revoked at ${iso(row.revoked_at)}: ${HOW_TO_GET_ONE}`);
    if (row.expires_at !== null && Number(row.expires_at) <= now) throw new UnauthenticatedError(`token ${row.id} expired at ${iso(row.expires_at)}: ${HOW_TO_GET_ONE}`);
    if ((await this.userState(row.user_name)) !== 'active') throw new UnauthenticatedError(`token ${row.id} belongs to deleted user "${row.user_name}": ${HOW_TO_GET_ONE}`);
    // last_used is informational: a coarse minute resolution spares a write per request.
    if (row.last_used_at === null || now - Number(row.last_used_at) > 60_000) {
      await this.db.updateTable('tokens').set({ last_used_at: now }).where('id', '=', row.id).execute();
    }
    return { user: row.user_name, tokenId: row.id };
  }

  // ---- grants ----

  async grant(role: string, user: string, on: string | undefined, by: string): Promise<GrantInfo> {
    const r = parseRole(role);
    const resource = parseResource(on);
    await this.inspectUser(user);
    const now = Date.now();
    const existing = await this.findGrant(user, r, resource);
    if (existing) return existing;
    await this.db.insertInto('grants').values({ user_name: user, role: r, resource, granted_by: by, created_at: now }).execute();
    return { user, role: r, on: resource, granted_by: by, created: iso(now)! };
  }

  async revoke(role: string, user: string, on: string | undefined): Promise<GrantInfo> {
    const r = parseRole(role);
    const resource = parseResource(on);
    const existing = await this.findGrant(user, r, resource);
    if (!existing) throw new NotFoundError(`user "${user}" has no ${r} grant on ${describeResource(resource)} (strata user list shows the grants)`);
    await this.db.deleteFrom('grants').where('user_name', '=', user).where('role', '=', r).where('resource', '=', resource).execute();
    return existing;
  }

  async listGrants(opts: { user?: string } = {}): Promise<GrantInfo[]> {
    let q = this.db.selectFrom('grants').selectAll().orderBy('user_name').orderBy('resource').orderBy('role');
    if (opts.user !== undefined) q = q.where('user_name', '=', opts.user);
    return (await q.execute()).map((g) => ({ user: g.user_name, role: g.role as Role, on: g.resource as Resource, granted_by: g.granted_by, created: iso(g.created_at)! }));
  }

  private async findGrant(user: string, role: Role, resource: Resource): Promise<GrantInfo | undefined> {
    return (await this.listGrants({ user })).find((g) => g.role === role && g.on === resource);
  }

  /** The highest role `principal` holds on `resource` (instance-wide grants count everywhere), or null. */
  async roleOn(principal: Principal, resource: Resource): Promise<Role | null> {
    if (principal.owner) return 'admin';
    const rows = await this.db
      .selectFrom('grants')
      .select('role')
      .where('user_name', '=', principal.user)
      .where('resource', 'in', resource === '*' ? ['*'] : ['*', resource])
      .execute();
    let best: Role | null = null;
    for (const { role } of rows) if (role in RANK && (best === null || RANK[role as Role] > RANK[best])) best = role as Role;
    return best;
  }

  /** Whether `principal` holds any grant at all (listings need that much). */
  async isMember(principal: Principal): Promise<boolean> {
    if (principal.owner) return true;
    return (await this.db.selectFrom('grants').select('role').where('user_name', '=', principal.user).limit(1).execute()).length > 0;
  }

  /** Throws FORBIDDEN (naming the user, the role needed and the resource) unless `principal` has `level` on `resource`. */
  async check(principal: Principal, level: Level, resource: Resource): Promise<void> {
    const role = await this.roleOn(principal, resource);
    if (role !== null && RANK[role] >= NEEDS[level]) return;
    const where = describeResource(resource);
    const has = role === null ? 'has no role there' : `is only ${role} there`;
    const on = resource === '*' ? '' : ` --on ${resource}`;
    throw new ForbiddenError(
      `user "${principal.user}" needs the ${ROLE_FOR[level]} role on ${where} but ${has} (an admin can run \`strata grant ${ROLE_FOR[level]} ${principal.user}${on}\`)`,
    );
  }
}

/** The part of governance/audit.ts's AuditLog that access control uses. */
export type AuditAppender = Pick<AuditLog, 'append' | 'pending' | 'run' | 'finish'>;

export function auditOf(instance: { audit?: AuditAppender }): AuditAppender | undefined {
  return instance.audit;
}
