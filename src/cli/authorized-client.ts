import { defaultAuthor } from '../data/service.js';
import { auditOf, ForbiddenError, type Principal } from '../governance/access.js';
import type { PendingAudit } from '../governance/audit.js';
import { authorizeOperation, beginEntry, errorDetail, finishEntry, linksCheckedFor, lookupIn, outcomeOf, readableBy, record } from '../governance/authorize.js';
import { CLIENT_METHODS, operation } from '../governance/operations.js';
import type { Instance } from '../instance.js';
import type { StrataClient } from '../sdk/client.js';
import type { Change } from '../data/types.js';

// The in-process CLI's request boundary: every StrataClient call is authorized
// against the same operations table as the HTTP server (keyed by the client
// method's action) and audited with client 'local'.
//
// Who: the user of $STRATA_TOKEN when it is set. Without it, the OS user who
// runs the CLI, who owns the instance's files (database, objects) and could
// read or change them directly anyway, so is treated as the instance's admin.

/**
 * The principal of this process: STRATA_TOKEN's user, else the instance owner. A refused token is
 * audited as `anonymous` (action auth.denied), as the server records requests with a bad token.
 */
export async function localPrincipal(instance: Instance, token = process.env.STRATA_TOKEN): Promise<Principal> {
  if (!token) return { user: defaultAuthor(), owner: true };
  try {
    return await instance.access.authenticate(token);
  } catch (err) {
    await record(auditOf(instance), { actor: 'anonymous', action: 'auth.denied', target: 'instance', outcome: outcomeOf(err), client: 'local', detail: errorDetail(err) });
    throw err;
  }
}

/** Identity arguments a token user cannot set to someone else (the local client defaults them to the OS user). */
function stampIdentity(method: string, args: unknown[], user: string): unknown[] {
  const copy = [...args];
  const merge = (i: number, patch: Record<string, unknown>) => (copy[i] = { ...((copy[i] as object | undefined) ?? {}), ...patch });
  if (method === 'commit') merge(3, { author: user });
  else if (method === 'registerModelVersion') merge(1, { user });
  else if (method === 'setModelAlias') merge(3, { actor: user });
  else if (method === 'deleteModelAlias') merge(2, { actor: user });
  else if (method === 'createRun') merge(0, { user_id: user });
  return copy;
}

export function authorizedClient(instance: Instance, inner: StrataClient, principal: Principal): StrataClient {
  const lookup = lookupIn(instance.meta.db);
  const audit = auditOf(instance);

  type Guarded = { action: string; target: string; audited: boolean; pending?: PendingAudit; args: unknown[] };
  const guard = async (method: string, args: unknown[]): Promise<Guarded> => {
    const entry = CLIENT_METHODS[method];
    if (!entry) {
      // A client method missing from the operations table: the owner may use it, a token user may not (fail closed).
      if (!principal.owner) throw new ForbiddenError(`${method} is not classified for access control, so it is refused to token users`);
      return { action: `client.${method}`, target: 'instance', audited: true, args };
    }
    const op = operation(entry.action);
    let target = 'instance';
    try {
      await authorizeOperation(instance.access, principal, op, entry.fields(...args), lookup, (t) => (target = t));
    } catch (err) {
      await record(audit, { actor: principal.user, action: op.action, target, outcome: outcomeOf(err), client: 'local', detail: errorDetail(err) });
      throw err;
    }
    const pending = op.audited ? beginEntry(audit, { actor: principal.user, action: op.action, target, client: 'local' }) : undefined;
    return { action: op.action, target, audited: op.audited, pending, args: principal.owner ? args : stampIdentity(method, args, principal.user) };
  };

  /** Runs the call with its entry pending, so the call's transaction writes it (AuditLog.run). */
  const within = <T>(g: Guarded, call: () => T): T => (g.pending && audit ? audit.run(g.pending, call) : call());

  const finish = (g: Guarded, err?: unknown) => {
    const outcome = err === undefined ? 'ok' : outcomeOf(err);
    const detail = err === undefined ? undefined : errorDetail(err);
    if (g.pending) return finishEntry(audit, g.pending, outcome, detail);
    return g.audited || outcome === 'denied'
      ? record(audit, { actor: principal.user, action: g.action, target: g.target, outcome, client: 'local', ...(detail ? { detail } : {}) })
      : Promise.resolve();
  };

  return new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof prop !== 'string' || typeof value !== 'function' || prop === 'close') return value;
      if (prop === 'walk') {
        // walk returns an AsyncIterable at once: authorize before the first file comes out.
        return (...args: unknown[]) =>
          (async function* () {
            const g = await guard(prop, args);
            // finally: a caller that stops early (break) ends the generator without an error; it is recorded too.
            let failure: { err: unknown } | undefined;
            try {
              yield* (value as (...a: unknown[]) => AsyncIterable<unknown>).apply(target, g.args);
            } catch (err) {
              failure = { err };
              throw err;
            } finally {
              await finish(g, failure?.err);
            }
          })();
      }
      return async (...args: unknown[]) => {
        const g = await guard(prop, args);
        // A user's catalog search shows only what they may read (as the server's does).
        if (prop === 'searchCatalog' && !principal.owner) g.args = [g.args[0], { ...(g.args[1] as object | undefined), visible: readableBy(instance.access, principal) }];
        if (prop === 'commit' && !principal.owner) {
          g.args = [g.args[0], g.args[1], await linksCheckedFor(instance.access, principal, g.args[2] as Iterable<Change>), ...g.args.slice(3)];
        }
        try {
          const result = await within(g, () => (value as (...a: unknown[]) => Promise<unknown>).apply(target, g.args));
          await finish(g);
          return result;
        } catch (err) {
          await finish(g, err);
          throw err;
        }
      };
    },
  });
}
