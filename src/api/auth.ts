import type { FastifyInstance, FastifyRequest } from 'fastify';
import { defaultAuthor } from '../data/service.js';
import { auditOf, ForbiddenError, UnauthenticatedError, type Principal } from '../governance/access.js';
import type { PendingAudit } from '../governance/audit.js';
import { authorizeOperation, beginEntry, finishEntry, lookupIn, record } from '../governance/authorize.js';
import { routeOperation, tokenRequired, type AuthMode, type Fields, type Operation } from '../governance/operations.js';
import type { Instance } from '../instance.js';

// The request boundary of the HTTP server: authenticate (onRequest), then
// authorize against the operations table once the body is parsed
// (preHandler), then run the handler with its audit entry pending, so the
// operation's transaction writes it (AuditLog.run); an operation that commits
// none, fails or is denied gets its entry when the response is sent
// (onResponse), with outcome ok / denied / error and the client's address.
//
// A route missing from the operations table is refused (fail closed), and
// every registered route is collected here so a test can assert there is none.

export interface AuthOptions {
  /** required: a token on every request. auto (default): required unless the server is bound to a loopback address. */
  mode?: AuthMode;
  /** The address the server binds: decides `auto`. */
  host?: string;
}

interface RequestState {
  op?: Operation;
  principal?: Principal;
  target?: string;
  denied?: boolean;
  /** The audited operation's entry while its handler runs. */
  pending?: PendingAudit;
}

const states = new WeakMap<FastifyRequest, RequestState>();
const routesOf = new WeakMap<FastifyInstance, { method: string; url: string }[]>();

/** Every route registered on `app` (after installAuth), as METHOD and URL pattern. */
export function registeredRoutes(app: FastifyInstance): { method: string; url: string }[] {
  return routesOf.get(app) ?? [];
}

/**
 * Bearer tokens (MLflow's client sends MLFLOW_TRACKING_TOKEN so too); also HTTP Basic whose password is a
 * Strata token (MLFLOW_TRACKING_PASSWORD). Basic credentials that are not a Strata token carry only a
 * name for attribution, as before access control, and count as no token.
 */
function presentedToken(req: FastifyRequest): string | undefined {
  const header = req.headers.authorization;
  if (!header) return undefined;
  if (/^bearer\s+/i.test(header)) return header.replace(/^bearer\s+/i, '');
  if (/^basic\s+/i.test(header)) {
    const decoded = Buffer.from(header.replace(/^basic\s+/i, ''), 'base64').toString('utf8');
    const password = decoded.slice(decoded.indexOf(':') + 1);
    return password.startsWith('st_') ? password : undefined;
  }
  return header;
}

function fieldsOf(req: FastifyRequest): Fields {
  const body = req.body && typeof req.body === 'object' && !Array.isArray(req.body) ? (req.body as Fields) : {};
  return { ...((req.query ?? {}) as Fields), ...body, ...((req.params ?? {}) as Fields) };
}

/** Where an authenticated user's name replaces what the client claims (author, creator, actor): nobody acts as someone else. */
const IDENTITY: Record<string, { in: 'query' | 'body'; field: string }> = {
  'commit.create': { in: 'query', field: 'author' },
  'pipeline.create': { in: 'body', field: 'creator' },
  'deployment.create': { in: 'body', field: 'creator' },
  'model.version.create': { in: 'body', field: 'user' },
  'model.alias.set': { in: 'body', field: 'actor' },
  'model.alias.delete': { in: 'query', field: 'actor' },
  'run.create': { in: 'body', field: 'user_id' },
  'mlflow.runs.create': { in: 'body', field: 'user_id' },
  'classification.detector.create': { in: 'body', field: 'creator' },
};

function stampIdentity(req: FastifyRequest, action: string, user: string): void {
  const where = IDENTITY[action];
  if (!where) return;
  const holder = where.in === 'query' ? req.query : req.body;
  if (holder && typeof holder === 'object') (holder as Record<string, unknown>)[where.field] = user;
  else if (where.in === 'body') req.body = { [where.field]: user };
  // MLflow clients also send the user as the run tag mlflow.user, which MLflow's UI shows as the run's user.
  const tags = (req.body as { tags?: unknown } | undefined)?.tags;
  if (action === 'mlflow.runs.create' && Array.isArray(tags)) {
    for (const tag of tags) if (tag && typeof tag === 'object' && (tag as { key?: unknown }).key === 'mlflow.user') (tag as { value?: unknown }).value = user;
  }
}

export function installAuth(app: FastifyInstance, instance: Instance, opts: AuthOptions = {}): void {
  const required = tokenRequired(opts.mode ?? 'auto', opts.host ?? '127.0.0.1');
  const routes: { method: string; url: string }[] = [];
  routesOf.set(app, routes);
  const lookup = lookupIn(instance.meta.db);

  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) routes.push({ method, url: route.url });
  });

  app.addHook('onRequest', async (req) => {
    const url = req.routeOptions.url;
    if (url === undefined) return; // no such endpoint: the 404 handler answers
    const state: RequestState = { op: routeOperation(req.method, url) };
    states.set(req, state);
    const token = presentedToken(req);
    if (token !== undefined) {
      // A presented token is always checked, even on public endpoints.
      state.principal = await instance.access.authenticate(token);
    } else if (state.op?.level === 'public') {
      state.principal = { user: 'anonymous' };
    } else if (required) {
      throw new UnauthenticatedError(
        'this server requires an API token: set STRATA_TOKEN (the CLI sends it as "Authorization: Bearer <token>"); `strata init` printed the first one, and an admin makes more with `strata token create --user NAME`',
      );
    } else {
      // Loopback in auto mode: whoever can reach 127.0.0.1 can read the instance's files anyway.
      state.principal = { user: defaultAuthor(), owner: true };
    }
    if (!state.op) throw new ForbiddenError(`${req.method} ${url} is not classified for access control, so it is refused (add it to governance/operations.ts)`);
  });

  app.addHook('preHandler', async (req, reply) => {
    const state = states.get(req);
    if (!state?.op || !state.principal) return;
    await authorizeOperation(instance.access, state.principal, state.op, fieldsOf(req), lookup, (target) => (state.target = target));
    if (!state.principal.owner) stampIdentity(req, state.op.action, state.principal.user);
    if (state.op.audited) {
      const target = state.target ?? req.url.split('?')[0]!;
      const pending = beginEntry(auditOf(instance), { actor: state.principal.user, action: state.op.action, target, client: req.ip, detail: { method: req.method } });
      state.pending = pending;
      // A client that hangs up mid-answer (a download cut short) gets no onResponse: record it here.
      reply.raw.once('close', () => {
        if (!reply.raw.writableFinished) void finishEntry(auditOf(instance), pending, 'error', { status: reply.statusCode, aborted: true });
      });
    }
  });
  // Callback style, so the handler runs inside the entry's scope (an async hook's context ends with it).
  app.addHook('preHandler', (req, _reply, done) => {
    const pending = states.get(req)?.pending;
    if (pending) instance.audit.run(pending, done);
    else done();
  });

  app.addHook('onResponse', async (req, reply) => {
    const state = states.get(req);
    if (!state) return;
    const status = reply.statusCode;
    const outcome = status === 401 || status === 403 ? 'denied' : status >= 400 ? 'error' : 'ok';
    // Denials are always recorded; otherwise only operations marked audited (not health checks or predictions).
    if (outcome !== 'denied' && !state.op?.audited) return;
    if (state.pending) return finishEntry(auditOf(instance), state.pending, outcome, { status });
    await record(auditOf(instance), {
      actor: state.principal?.user ?? 'anonymous',
      action: state.op?.action ?? `http.${req.method.toLowerCase()}`,
      target: state.target ?? req.url.split('?')[0]!,
      outcome,
      client: req.ip,
      detail: { method: req.method, status },
    });
  });
}

/** Who made the request (set by installAuth's onRequest hook). */
/** The request's principal, or undefined where no access control ran (e.g. an app without installAuth). */
export function authenticatedUser(req: FastifyRequest): Principal | undefined {
  return states.get(req)?.principal;
}

export function principalOf(req: FastifyRequest): Principal {
  const principal = states.get(req)?.principal;
  if (!principal) throw new UnauthenticatedError('no authenticated user for this request');
  return principal;
}
