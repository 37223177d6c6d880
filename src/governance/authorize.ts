import type { Kysely } from 'kysely';
import { StrataError } from '../errors.js';
import type { Change } from '../data/types.js';
import type { Schema } from '../meta/schema.js';
import { findJob } from '../pipelines/service.js';
import { inputRepos, type PipelineSpec } from '../pipelines/spec.js';
import { ForbiddenError, type AccessControl, type AuditAppender, type Principal, type Resource } from './access.js';
import type { PendingAudit } from './audit.js';
import type { Fields, Lookup, Operation, Target } from './operations.js';

// One authorization step shared by the HTTP server and the in-process CLI
// client: compute the operation's target from the request's fields, then
// check every level it needs. And one way to write the audit entry for it.

export function lookupIn(db: Kysely<Schema>): Lookup {
  return {
    async jobPipeline(id) {
      return (await findJob(db, id)).pipeline;
    },
    async pipelineInputRepos(name) {
      const row = await db.selectFrom('pipelines').select('spec').where('name', '=', name).executeTakeFirst();
      return row ? inputRepos(JSON.parse(row.spec) as PipelineSpec) : [];
    },
  };
}

/**
 * Throws FORBIDDEN unless `principal` may perform `op` on what `fields` name; returns the audit target.
 * `onTarget` learns the target as soon as it is known, so a refusal is audited against it too.
 */
export async function authorizeOperation(
  access: AccessControl,
  principal: Principal,
  op: Operation,
  fields: Fields,
  lookup: Lookup,
  onTarget?: (target: string) => void,
): Promise<Target> {
  const target = await op.target(fields, lookup);
  onTarget?.(target.target);
  if (op.level === 'public' || op.level === 'self') return target;
  if (op.level === 'member' && !(await access.isMember(principal))) {
    throw new ForbiddenError(`user "${principal.user}" has no role on this instance yet (an admin can run \`strata grant reader ${principal.user}\`)`);
  }
  for (const need of target.needs) await access.check(principal, need.level, need.resource);
  return target;
}

export function outcomeOf(err: unknown): 'denied' | 'error' {
  return err instanceof StrataError && (err.code === 'FORBIDDEN' || err.code === 'UNAUTHENTICATED') ? 'denied' : 'error';
}

/** The longest target an audit entry holds (AuditLog.append refuses longer ones). */
const MAX_TARGET = 1000;

type EntryFields = { actor: string; action: string; target: string; client: string; detail?: Record<string, unknown> };

/**
 * A target too long for an entry (a ref padded with `/./` segments reads the same file) is cut short,
 * with its full length in the detail, so such a request is still recorded.
 */
function fitted<E extends EntryFields>(entry: E): E {
  if (entry.target.length <= MAX_TARGET) return entry;
  return { ...entry, target: `${entry.target.slice(0, MAX_TARGET - 3)}...`, detail: { ...entry.detail, target_length: entry.target.length } };
}

function warn(entry: { action: string; target: string }, err: unknown): void {
  process.stderr.write(`strata: warning: could not write the audit entry for ${entry.action} on ${entry.target}: ${(err as Error).message}\n`);
}

/** Appends one entry; an audit failure is reported on stderr but never changes the answer already given. */
export async function record(audit: AuditAppender | undefined, entry: EntryFields & { outcome: 'ok' | 'denied' | 'error' }): Promise<void> {
  if (!audit) return;
  try {
    await audit.append(fitted(entry));
  } catch (err) {
    warn(entry, err);
  }
}

/**
 * The entry of an audited operation about to run: run the operation inside `audit.run(pending, ...)` so its
 * transaction writes the entry, then call finishEntry. Undefined (after a warning) if it cannot be made.
 */
export function beginEntry(audit: AuditAppender | undefined, entry: EntryFields): PendingAudit | undefined {
  if (!audit) return undefined;
  try {
    return audit.pending(fitted(entry));
  } catch (err) {
    warn(entry, err);
    return undefined;
  }
}

/** Ends an operation's entry with its outcome (AuditLog.finish); a failure is reported on stderr. */
export async function finishEntry(
  audit: AuditAppender | undefined,
  pending: PendingAudit | undefined,
  outcome: 'ok' | 'denied' | 'error',
  detail?: Record<string, unknown>,
): Promise<void> {
  if (!audit || !pending) return;
  try {
    await audit.finish(pending, outcome, detail);
  } catch (err) {
    warn(pending.input, err);
  }
}

/** The error's code for the audit detail: never its message, which may quote data. */
export function errorDetail(err: unknown): Record<string, unknown> {
  return { code: err instanceof StrataError ? err.code : 'INTERNAL' };
}

/**
 * For catalog search: whether `principal` may read an entity. Undefined (everything) for the owner; a user
 * sees entities they hold any role on, so a search cannot reveal the README or columns of a repo they cannot read.
 */
export function readableBy(access: AccessControl, principal: Principal | undefined): ((kind: string, name: string) => Promise<boolean>) | undefined {
  if (!principal || principal.owner) return undefined;
  // The user's grants, read once per search rather than once per candidate.
  let on: Promise<Set<Resource>> | undefined;
  return async (kind, name) => {
    on ??= access.listGrants({ user: principal.user }).then((grants) => new Set(grants.map((g) => g.on)));
    const resources = await on;
    return resources.has('*') || resources.has(`${kind}:${name}` as Resource);
  };
}

/**
 * A commit's changes as given, or, for a principal who is not an admin of the instance, the same changes
 * refusing any `link` (FORBIDDEN, which aborts the commit): placing stored content by its hash would let a
 * writer copy into their repo content of repos they cannot read, given its hash. Everyone else sends the
 * bytes (deduplicated all the same). Without a principal (no access control) nothing is refused.
 */
export async function linksCheckedFor(
  access: AccessControl,
  principal: Principal | undefined,
  changes: AsyncIterable<Change> | Iterable<Change>,
): Promise<AsyncIterable<Change> | Iterable<Change>> {
  if (!principal || (await access.roleOn(principal, '*')) === 'admin') return changes;
  return (async function* () {
    for await (const change of changes) {
      if (change.op === 'link') {
        throw new ForbiddenError(
          `placing stored content by its hash (${change.type === 'dir' ? 'link-dir:' : 'link:'}${change.path}) needs admin on the instance; ` +
            `${principal.user} sends the ${change.type === 'dir' ? 'files' : "file's bytes"} instead (stored once all the same)`,
        );
      }
      yield change;
    }
  })();
}
