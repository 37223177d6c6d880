import { AsyncLocalStorage } from 'node:async_hooks';
import { sql, type CompiledQuery, type DatabaseConnection, type Kysely } from 'kysely';
import { CorruptionError, InvalidArgumentError } from '../errors.js';
import { bulkInsert, type CommitHooks } from '../meta/driver.js';
import type { Schema } from '../meta/schema.js';
import { parseDuration } from '../pipelines/duration.js';
import { ensureInstanceKey, publicKeyFromBase64, signText, verifyText, type InstanceKey } from './keys.js';
import { EMPTY_ROOT, leafHash, MerkleBuilder, nodeHash } from './merkle.js';

// The audit log: an append-only record of mutations and data reads, kept as an
// RFC 6962 Merkle tree over the entries' canonical bytes. Rows live in the
// metadata database; signed checkpoints (size + root) let anyone holding one
// prove later that the first `size` entries were not changed.
//
// An audited operation's entry is written inside the operation's own
// transaction where it has one (see AuditLog.run): the change and its entry
// commit together, so no crash can keep one without the other, and the
// entry costs no commit of its own.

export type AuditOutcome = 'ok' | 'denied' | 'error';

export interface AuditEntryInput {
  actor: string;
  action: string;
  target: string;
  outcome: AuditOutcome;
  /** Client address, or 'local' for the in-process CLI (the default). */
  client?: string;
  /** Small JSON: ids, counts, error codes; never file contents or PII values. */
  detail?: Record<string, unknown>;
}

export interface AuditEntry extends Required<Omit<AuditEntryInput, 'detail'>> {
  seq: number;
  time: string;
  detail: Record<string, unknown>;
  leaf: string;
}

export interface SignedCheckpoint {
  size: number;
  root: string;
  time: string;
  public_key: string;
  signature: string;
}

export type AuditProblemKind = 'missing' | 'duplicate' | 'modified' | 'reordered' | 'inserted' | 'checkpoint';

export interface AuditProblem {
  seq?: number;
  kind: AuditProblemKind;
  message: string;
}

export interface AuditVerifyResult {
  ok: boolean;
  size: number;
  root: string;
  checked_checkpoints: number;
  problems: AuditProblem[];
}

export interface AuditListFilter {
  /** ISO time, epoch ms, or a duration back from now ("1h", "30m", "7d"). */
  since?: string;
  actor?: string;
  /** Exact target, or a prefix ending at '@', ':' or '/' ("repo:emails" matches "repo:emails@master:/a.txt"). */
  target?: string;
  action?: string;
  /** The most recent `limit` matching entries (default 1000), oldest first. */
  limit?: number;
}

const OUTCOMES: readonly AuditOutcome[] = ['ok', 'denied', 'error'];
/** A signed checkpoint is taken automatically every this many appends. */
export const AUTO_CHECKPOINT_EVERY = 1000;
const PAGE = 10_000;
/** Detailed entry problems kept for the report; the rest are counted. */
const MAX_MISMATCHES = 2000;

let isoSecond = NaN;
let isoPrefix = '';
/** Date#toISOString, reusing the text up to the second: verify formats a million mostly-sequential times. */
function isoTime(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== isoSecond) {
    const full = new Date(ms).toISOString();
    if (full.length !== 24) return full; // years outside 0000-9999
    isoSecond = second;
    isoPrefix = full.slice(0, 20);
  }
  return `${isoPrefix}${String(ms - second * 1000).padStart(3, '0')}Z`;
}

/** The bytes a leaf hashes. Fixed key order; `detail` is stored already canonical and embedded verbatim. */
export function entryBytes(seq: number, timeMs: number, actor: string, action: string, target: string, outcome: string, client: string, detail: string): string {
  return (
    `{"seq":${seq},"time":"${isoTime(timeMs)}","actor":${JSON.stringify(actor)},` +
    `"action":${JSON.stringify(action)},"target":${JSON.stringify(target)},"outcome":${JSON.stringify(outcome)},` +
    `"client":${JSON.stringify(client)},"detail":${detail}}`
  );
}

/** JSON with object keys sorted at every level, so equal values give equal bytes. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    const s = JSON.stringify(value);
    return s === undefined ? 'null' : s;
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}

/** The text a checkpoint signature covers. */
export function checkpointText(size: number, root: string, time: string): string {
  return `strata audit checkpoint v1\nsize ${size}\nroot ${root}\ntime ${time}\n`;
}

type Row = Schema['audit_entries'];

function rowLeaf(r: Row, seq = Number(r.seq)): Buffer {
  return leafHash(entryBytes(seq, Number(r.time), r.actor, r.action, r.target, r.outcome, r.client, r.detail));
}

function toEntry(r: Row): AuditEntry {
  let detail: Record<string, unknown>;
  try {
    detail = JSON.parse(r.detail);
  } catch {
    detail = { unparseable: r.detail };
  }
  return {
    seq: Number(r.seq),
    time: new Date(Number(r.time)).toISOString(),
    actor: r.actor,
    action: r.action,
    target: r.target,
    outcome: r.outcome as AuditOutcome,
    client: r.client,
    detail,
    leaf: r.leaf,
  };
}

function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return e?.code === '23505' || e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || e?.code === 'SQLITE_CONSTRAINT_UNIQUE';
}

/** "1h" / "7d" back from now, ISO-8601, or epoch milliseconds. */
export function parseSince(text: string, now = Date.now()): number {
  const t = text.trim();
  const days = /^(\d+(?:\.\d+)?)d$/.exec(t);
  if (days) return now - Number(days[1]) * 86_400_000;
  const d = /^[0-9.]+[a-z\u00b5\u03bc]/.test(t) ? parseDuration(t) : undefined;
  if (d !== undefined) return now - d;
  if (/^\d+$/.test(t)) return Number(t);
  const ms = Date.parse(t);
  if (!t || Number.isNaN(ms)) {
    throw new InvalidArgumentError(`--since "${text}" is neither a time (ISO-8601, e.g. 2026-01-31T09:00:00Z) nor a duration back from now (e.g. 1h, 30m, 7d)`);
  }
  return ms;
}

/**
 * Characters the databases cannot store as given: an unpaired UTF-16 surrogate
 * (SQLite and PostgreSQL both store U+FFFD instead) and NUL (PostgreSQL refuses
 * the row). A leaf hashed over the text as given would then never match the
 * stored row, and one such entry (a target from a request) would make every
 * later verify fail and stop checkpoints; so they are recorded as U+FFFD.
 */
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

function checkField(value: unknown, name: string): string {
  if (typeof value !== 'string' || value === '') throw new InvalidArgumentError(`audit entry ${name} must be a non-empty string`);
  if (value.length > 1000) throw new InvalidArgumentError(`audit entry ${name} is longer than 1000 characters`);
  return value.replace(UNSTORABLE, '\ufffd');
}

/**
 * The entry of an audited operation while it runs. The first transaction of the
 * operation that changes rows writes it (outcome ok) before it commits; an
 * operation that never commits one gets its entry from finish().
 */
export class PendingAudit {
  /** open: not written; writing: in a transaction not yet committed; written: committed; closed: finished. */
  state: 'open' | 'writing' | 'written' | 'closed' = 'open';
  /** The committed entry's seq (state written). */
  seq?: number;
  /** Resolves when a transaction writing the entry has committed or rolled back. */
  settled: Promise<void> = Promise.resolve();
  /** finish() was called: later calls do nothing. */
  finished = false;

  constructor(readonly input: AuditEntryInput) {}
}

/** The operation in progress in this async context (set by AuditLog.run). */
const inProgress = new AsyncLocalStorage<PendingAudit>();
/**
 * Pending entries not yet finished. At 0 the storage is disabled: an enabled AsyncLocalStorage
 * makes Node track every promise (~3% of a busy inference server), and the next run() enables it.
 */
let unfinished = 0;

const ENTRY_COLUMNS = ['seq', 'time', 'actor', 'action', 'target', 'outcome', 'client', 'detail', 'leaf'] as const;

export class AuditLog {
  private keyCache?: InstanceKey;
  private lastSeqQuery?: CompiledQuery;

  /** With `hooks`, entries of operations run through run() commit inside the operation's transaction. */
  constructor(
    private readonly db: Kysely<Schema>,
    private readonly home: string,
    hooks?: CommitHooks,
  ) {
    hooks?.beforeCommit((connection) => this.writePending(connection));
  }

  /** An entry for an operation about to run; its fields are checked now. */
  pending(input: Omit<AuditEntryInput, 'outcome'>): PendingAudit {
    const entry = { ...input, outcome: 'ok' as const };
    this.rowOf(entry, 0); // throws on a bad field before the operation runs
    unfinished++;
    return new PendingAudit(entry);
  }

  /** Runs `fn` (the operation) so that its first writing transaction also writes `pending`. */
  run<T>(pending: PendingAudit, fn: () => T): T {
    return inProgress.run(pending, fn);
  }

  /**
   * Ends the operation's entry: nothing more when it committed with the change and the
   * operation succeeded; otherwise appended now with the outcome. An operation that failed
   * after a transaction of it committed gets both: the ok entry of what committed, and
   * this one (with `committed_entry`, that entry's seq).
   */
  async finish(pending: PendingAudit, outcome: AuditOutcome, detail?: Record<string, unknown>): Promise<AuditEntry | undefined> {
    if (pending.finished) return undefined; // once, also when called again while the first call waits
    pending.finished = true;
    if (--unfinished === 0) inProgress.disable();
    if (pending.state === 'writing') await pending.settled;
    if (pending.state === 'written') {
      pending.state = 'closed';
      if (outcome === 'ok') return undefined;
      return this.append({ ...pending.input, outcome, detail: { ...pending.input.detail, ...detail, committed_entry: pending.seq } });
    }
    pending.state = 'closed';
    return this.append({ ...pending.input, outcome, detail: { ...pending.input.detail, ...detail } });
  }

  /** The commit hook: writes the pending entry of the operation in progress into the transaction about to commit. */
  private async writePending(connection: DatabaseConnection): Promise<((committed: boolean) => void) | undefined> {
    const pending = inProgress.getStore();
    if (!pending || pending.state !== 'open' || pending.finished) return undefined;
    pending.state = 'writing';
    let settle!: () => void;
    pending.settled = new Promise((resolve) => (settle = resolve));
    let seq: number;
    try {
      const row = this.rowOf(pending.input, Date.now());
      this.lastSeqQuery ??= this.db.selectFrom('audit_entries').select(sql<number | string | null>`max(seq)`.as('m')).compile();
      for (let attempt = 0; ; attempt++) {
        const max = (await connection.executeQuery<{ m: number | string | null }>(this.lastSeqQuery)).rows[0]?.m;
        row.seq = Number(max ?? 0) + 1;
        row.leaf = rowLeaf(row).toString('hex');
        // A concurrent transaction (PostgreSQL) that took this seq commits first: read max() again.
        const values = ENTRY_COLUMNS.map((c) => row[c]);
        const res = await connection.executeQuery(bulkInsert('audit_entries', ENTRY_COLUMNS, [values], 'on conflict (seq) do nothing'));
        if (res.numAffectedRows === 1n) break;
        if (attempt >= 1000) throw new Error('could not take an audit sequence number after 1000 tries');
      }
      seq = Number(row.seq);
    } catch (err) {
      pending.state = 'open';
      settle();
      throw err;
    }
    return (committed) => {
      pending.state = committed ? 'written' : 'open';
      if (committed) pending.seq = seq;
      settle();
      if (committed && seq % AUTO_CHECKPOINT_EVERY === 0) void this.autoCheckpoint(seq);
    };
  }

  /** A row for `input` (seq and leaf still to set); throws naming a bad field. */
  private rowOf(input: AuditEntryInput, time: number): Row {
    const actor = checkField(input.actor, 'actor');
    const action = checkField(input.action, 'action');
    const target = checkField(input.target, 'target');
    if (!OUTCOMES.includes(input.outcome)) throw new InvalidArgumentError(`audit entry outcome must be one of ${OUTCOMES.join(', ')}, not "${input.outcome}"`);
    const client = input.client === undefined ? 'local' : checkField(input.client, 'client');
    if (input.detail !== undefined && (input.detail === null || typeof input.detail !== 'object' || Array.isArray(input.detail))) {
      throw new InvalidArgumentError('audit entry detail must be a JSON object');
    }
    const detail = canonicalJson(input.detail ?? {});
    if (detail.length > 16_384) throw new InvalidArgumentError('audit entry detail is larger than 16 KiB: record ids and counts, not contents');
    return { seq: 0, time, actor, action, target, outcome: input.outcome, client, detail, leaf: '' };
  }

  /** The instance key, made now if the instance predates audit checkpoints. */
  private get key(): InstanceKey {
    this.keyCache ??= ensureInstanceKey(this.home);
    return this.keyCache;
  }

  /** Appends one entry: one max() read and one insert (retried if another appender took the same seq). */
  async append(input: AuditEntryInput): Promise<AuditEntry> {
    const row = this.rowOf(input, Date.now());
    for (let attempt = 0; ; attempt++) {
      row.seq = (await this.lastSeq()) + 1;
      row.leaf = rowLeaf(row).toString('hex');
      try {
        await this.db.insertInto('audit_entries').values(row).execute();
      } catch (err) {
        // Another process appended seq first: take the next one. The primary
        // key makes a duplicate impossible; max()+1 makes a gap impossible.
        if (isUniqueViolation(err) && attempt < 10_000) {
          await new Promise((r) => setTimeout(r, Math.random() * Math.min(20, attempt + 1)));
          continue;
        }
        throw err;
      }
      const seq = Number(row.seq);
      if (seq % AUTO_CHECKPOINT_EVERY === 0) await this.autoCheckpoint(seq);
      return toEntry(row);
    }
  }

  private async lastSeq(): Promise<number> {
    const r = await this.db.selectFrom('audit_entries').select(sql<number | string | null>`max(seq)`.as('m')).executeTakeFirst();
    return Number(r?.m ?? 0);
  }

  private async autoCheckpoint(size: number): Promise<void> {
    try {
      await this.checkpointAt(size);
    } catch (err) {
      // The entry is recorded; a log that cannot be checkpointed is what
      // `strata audit verify` exists to explain, so say so instead of failing the caller.
      process.emitWarning(`automatic audit checkpoint at ${size} entries failed: ${(err as Error).message}; run \`strata audit verify\``);
    }
  }

  async list(filter: AuditListFilter = {}): Promise<AuditEntry[]> {
    const limit = filter.limit ?? 1000;
    if (!Number.isInteger(limit) || limit < 1) throw new InvalidArgumentError(`limit must be a positive integer, not ${filter.limit}`);
    let q = this.db.selectFrom('audit_entries').selectAll();
    if (filter.since !== undefined) q = q.where('time', '>=', parseSince(filter.since));
    if (filter.actor !== undefined) q = q.where('actor', '=', filter.actor);
    if (filter.action !== undefined) q = q.where('action', '=', filter.action);
    if (filter.target !== undefined) {
      const t = filter.target;
      const n = t.length;
      q = q.where((eb) =>
        eb.or([
          eb('target', '=', t),
          eb.and([eb(sql`substr(target, 1, ${n})`, '=', t), eb(sql`substr(target, ${n + 1}, 1)`, 'in', ['@', ':', '/'])]),
        ]),
      );
    }
    const rows = await q.orderBy('seq', 'desc').limit(limit).execute();
    return rows.reverse().map(toEntry);
  }

  /** Signs and stores a checkpoint of the whole log as it is now. */
  async checkpoint(): Promise<SignedCheckpoint> {
    return this.checkpointAt(await this.lastSeq());
  }

  /** Stored checkpoints, oldest first. */
  async checkpoints(): Promise<SignedCheckpoint[]> {
    const rows = await this.db.selectFrom('audit_checkpoints').select(['size', 'root', 'time', 'public_key', 'signature']).orderBy('size').execute();
    return rows.map((r) => ({ ...r, size: Number(r.size) }));
  }

  /**
   * The checkpoint of the first `size` entries. Extends the latest valid stored
   * checkpoint's frontier rather than rereading the log, and refuses to sign
   * entries whose content does not match their leaf.
   */
  private async checkpointAt(size: number): Promise<SignedCheckpoint> {
    const key = this.key;
    let builder = new MerkleBuilder();
    const base = await this.db.selectFrom('audit_checkpoints').selectAll().where('size', '<=', size).orderBy('size', 'desc').limit(1).executeTakeFirst();
    if (base && base.public_key === key.publicKeyBase64 && verifyText(key.publicKey, checkpointText(Number(base.size), base.root, base.time), base.signature)) {
      try {
        const resumed = MerkleBuilder.fromFrontier(Number(base.size), (JSON.parse(base.frontier) as string[]).map((h) => Buffer.from(h, 'hex')));
        if (resumed.root().toString('hex') === base.root) builder = resumed;
      } catch {
        // A damaged frontier: start from the beginning.
      }
    }
    for (let after = builder.size; after < size; ) {
      const rows = await this.db.selectFrom('audit_entries').selectAll().where('seq', '>', after).where('seq', '<=', size).orderBy('seq').limit(PAGE).execute();
      if (rows.length === 0) break;
      for (const r of rows) {
        const seq = Number(r.seq);
        if (seq !== builder.size + 1) {
          throw new CorruptionError(`audit entry ${builder.size + 1} is missing (found ${seq} next): not signing a checkpoint; run \`strata audit verify\``);
        }
        const leaf = rowLeaf(r);
        if (leaf.toString('hex') !== r.leaf) {
          throw new CorruptionError(`audit entry ${seq} does not match its recorded hash: not signing a checkpoint; run \`strata audit verify\``);
        }
        builder.push(leaf);
      }
      after = Number(rows[rows.length - 1].seq);
    }
    if (builder.size !== size) throw new CorruptionError(`the audit log has ${builder.size} contiguous entries, not ${size}: run \`strata audit verify\``);
    const root = builder.root().toString('hex');
    const time = new Date().toISOString();
    const cp: SignedCheckpoint = { size, root, time, public_key: key.publicKeyBase64, signature: signText(key, checkpointText(size, root, time)) };
    await this.db
      .insertInto('audit_checkpoints')
      .values({ ...cp, frontier: JSON.stringify(builder.frontier().map((h) => h.toString('hex'))) })
      .onConflict((oc) => oc.column('size').doNothing())
      .execute();
    const stored = await this.db.selectFrom('audit_checkpoints').select(['size', 'root', 'time', 'public_key', 'signature']).where('size', '=', size).executeTakeFirstOrThrow();
    if (stored.root !== root) {
      throw new CorruptionError(`a stored audit checkpoint of size ${size} has root ${stored.root}, but the entries give ${root}: run \`strata audit verify\``);
    }
    return { ...stored, size: Number(stored.size) };
  }

  /**
   * Recomputes every leaf and the tree, checks seq contiguity, and checks every
   * stored checkpoint (and `opts.checkpoint`) for signature, key and root.
   */
  async verify(opts: { checkpoint?: SignedCheckpoint } = {}): Promise<AuditVerifyResult> {
    const key = this.key;
    const problems: AuditProblem[] = [];
    const checkpoints: Array<SignedCheckpoint & { origin: string }> = (await this.checkpoints()).map((c) => ({ ...c, origin: 'stored checkpoint' }));
    if (opts.checkpoint) checkpoints.push({ ...checkSignedCheckpoint(opts.checkpoint), origin: 'the given checkpoint' });
    const bySize = new Map<number, typeof checkpoints>();
    for (const c of checkpoints) {
      const name = `${c.origin} of size ${c.size} (taken ${c.time})`;
      if (c.public_key !== key.publicKeyBase64) {
        problems.push({ kind: 'checkpoint', message: `${name} is signed by a different key (${c.public_key}), not this instance's (${key.publicKeyBase64})` });
      } else if (!verifyText(key.publicKey, checkpointText(c.size, c.root, c.time), c.signature)) {
        problems.push({ kind: 'checkpoint', message: `${name} has a bad signature: the checkpoint itself was altered or forged` });
      }
      bySize.set(c.size, [...(bySize.get(c.size) ?? []), c]);
    }
    let checked = 0;
    const builder = new MerkleBuilder();
    const checkAt = (size: number) => {
      const list = bySize.get(size);
      if (!list) return;
      const root = builder.root().toString('hex');
      for (const c of list) {
        checked++;
        if (c.root !== root) {
          problems.push({
            kind: 'checkpoint',
            message:
              `${c.origin} of size ${c.size} (taken ${c.time}) does not match: ` +
              (size === 0 ? 'the log was empty then' : `one or more of entries 1..${c.size} were changed, removed, inserted or reordered since`) +
              ` (root now ${root}, signed ${c.root})`,
          });
        }
      }
    };
    checkAt(0);

    interface Mismatch {
      row: Row;
      seq: number;
      origin: number | null;
    }
    const mismatches: Mismatch[] = [];
    let mismatchCount = 0;
    let lastSeq = 0;
    let after: number | null = null;
    for (;;) {
      let q = this.db.selectFrom('audit_entries').selectAll().orderBy('seq').limit(PAGE);
      if (after !== null) q = q.where('seq', '>', after);
      const rows = await q.execute();
      if (rows.length === 0) break;
      for (const r of rows) {
        const seq = Number(r.seq);
        if (seq === lastSeq) {
          problems.push({ seq, kind: 'duplicate', message: `audit entry ${seq} appears more than once` });
        } else if (seq !== lastSeq + 1) {
          const range = seq - 1 === lastSeq + 1 ? `${lastSeq + 1}` : `${lastSeq + 1}..${seq - 1}`;
          problems.push({ seq: lastSeq + 1, kind: 'missing', message: `audit entr${range.includes('.') ? 'ies' : 'y'} ${range} ${range.includes('.') ? 'are' : 'is'} missing (deleted)` });
        }
        lastSeq = seq;
        const leaf = rowLeaf(r, seq);
        if (leaf.toString('hex') !== r.leaf) {
          mismatchCount++;
          if (mismatches.length < MAX_MISMATCHES) {
            // Was this row moved? Its stored leaf was computed with its original seq.
            let origin: number | null = null;
            for (const s of [seq - 1, seq + 1]) if (s > 0 && rowLeaf(r, s).toString('hex') === r.leaf) origin = s;
            mismatches.push({ row: r, seq, origin });
          }
        }
        builder.push(leaf);
        checkAt(builder.size);
      }
      after = Number(rows[rows.length - 1].seq);
    }
    const size = builder.size;
    for (const c of checkpoints) {
      if (c.size > size) {
        problems.push({
          kind: 'checkpoint',
          message: `${c.origin} of size ${c.size} (taken ${c.time}) covers entries 1..${c.size}, but the log now has ${size}: entries were deleted`,
        });
      }
    }
    problems.push(...classifyMismatches(mismatches));
    if (mismatchCount > mismatches.length) {
      problems.push({ kind: 'modified', message: `${mismatchCount - mismatches.length} more entries do not match their recorded hash (not listed)` });
    }
    // Entry problems in seq order first (the first one is the first bad entry), then checkpoints.
    const order = (p: AuditProblem) => (p.seq === undefined ? Number.MAX_SAFE_INTEGER : p.seq);
    problems.sort((a, b) => order(a) - order(b));
    return { ok: problems.length === 0, size, root: (size === 0 ? EMPTY_ROOT : builder.root()).toString('hex'), checked_checkpoints: checked, problems };
  }
}

/**
 * Explains rows whose content does not match their stored leaf. A row whose
 * stored leaf matches its content under another seq was moved: runs of rows
 * moved up by one mean an entry was inserted before them, runs moved down mean
 * one was deleted, and pairs that trade places were reordered.
 */
function classifyMismatches(list: Array<{ row: Row; seq: number; origin: number | null }>): AuditProblem[] {
  // Rows moved further than one place: look for their origin among the other bad rows.
  const seqs = list.map((m) => m.seq).slice(0, 200);
  for (const m of list.slice(0, 200)) {
    if (m.origin !== null) continue;
    for (const s of seqs) if (s !== m.seq && rowLeaf(m.row, s).toString('hex') === m.row.leaf) m.origin = s;
  }
  const problems = new Map<number, AuditProblem>();
  const add = (p: AuditProblem & { seq: number }) => {
    if (!problems.has(p.seq) || problems.get(p.seq)!.kind === 'modified') problems.set(p.seq, p);
  };
  for (let i = 0; i < list.length; i++) {
    const { seq, origin } = list[i];
    const prev = list[i - 1];
    const next = list[i + 1];
    if (origin === null) {
      add({ seq, kind: 'modified', message: `audit entry ${seq} was modified: its content does not match its recorded hash` });
    } else if (origin === seq - 1) {
      if (prev && prev.seq === seq - 1 && prev.origin === seq - 2) continue; // same run
      add({ seq: seq - 1, kind: 'inserted', message: `audit entry ${seq - 1} was inserted: the entries after it were renumbered (entry ${seq} was originally ${seq - 1})` });
    } else if (origin === seq + 1) {
      if (next && next.seq === seq + 1 && next.origin === seq) {
        add({ seq, kind: 'reordered', message: `audit entries ${seq} and ${seq + 1} were swapped` });
        i++;
        continue;
      }
      if (prev && prev.seq === seq - 1 && prev.origin === seq) continue; // same run
      add({ seq, kind: 'missing', message: `audit entry ${seq} was deleted and the entries after it renumbered (entry ${seq} was originally ${seq + 1})` });
    } else {
      add({ seq, kind: 'reordered', message: `audit entry ${seq} holds the entry originally at seq ${origin}: entries were reordered` });
    }
  }
  return [...problems.values()];
}

/** Validates a checkpoint read from a user's file or a request body. */
export function checkSignedCheckpoint(value: unknown): SignedCheckpoint {
  const c = value as Partial<SignedCheckpoint> | null;
  const bad = (what: string) => new InvalidArgumentError(`not an audit checkpoint: ${what} (expected the JSON printed by \`strata audit checkpoint\`)`);
  if (!c || typeof c !== 'object') throw bad('not a JSON object');
  if (!Number.isSafeInteger(c.size) || c.size! < 0) throw bad('"size" must be a non-negative integer');
  if (typeof c.root !== 'string' || !/^[0-9a-f]{64}$/.test(c.root)) throw bad('"root" must be 64 hex digits');
  if (typeof c.time !== 'string' || c.time === '') throw bad('"time" must be a string');
  if (typeof c.public_key !== 'string') throw bad('"public_key" must be a string');
  publicKeyFromBase64(c.public_key);
  if (typeof c.signature !== 'string') throw bad('"signature" must be a string');
  return { size: c.size!, root: c.root, time: c.time, public_key: c.public_key, signature: c.signature };
}

// Re-exported for tests and tools that build trees by hand.
export { leafHash, nodeHash };
