import type { Kysely } from 'kysely';
import { InvalidArgumentError, StrataError } from '../errors.js';
import type { Schema } from '../meta/schema.js';
import type { GateRule } from './types.js';

// Promotion gates: declarative rules per (model, alias), checked when the
// alias moves. Rules are data (GateRule, stored as JSON in promotion_gates);
// this file validates them, parses the CLI's one-line form, and evaluates
// them against the candidate version's run (latest_metrics, run_tags) and the
// current holder's. Every failing rule is reported in one POLICY_VIOLATION
// message that names the rule and the values it saw.

type MetricRule = Extract<GateRule, { metric: string }>;
type BetterRule = Extract<GateRule, { better_than_current: string }>;
type TagRule = Extract<GateRule, { tag: string }>;
type LabelRule = Extract<GateRule, { no_label: string }>;

const OPS = ['>', '>=', '<', '<=', '=', '!='] as const;
type Op = (typeof OPS)[number];

/** What a rule is checked against: a model version and the run that made it. */
export interface GateSubject {
  version: number;
  run_id: string | null;
  tags: Record<string, string>;
  /** Its classification labels (pii:email, ...); absent when no classification is available. */
  labels?: string[];
}

/** Whether any of `rules` needs the candidate's classification labels. */
export function needsLabels(rules: GateRule[]): boolean {
  return rules.some((r) => 'no_label' in r);
}

export class PromotionGates {
  constructor(private db: Kysely<Schema>) {}

  /** Replaces the rules of (name, alias); an empty list removes the gate. Returns the stored rules. */
  async setGates(name: string, alias: string, rules: unknown, db: Kysely<Schema> = this.db): Promise<GateRule[]> {
    const valid = validateGateRules(rules);
    if (valid.length === 0) {
      await db.deleteFrom('promotion_gates').where('name', '=', name).where('alias', '=', alias).execute();
      return [];
    }
    const text = JSON.stringify(valid);
    await db
      .insertInto('promotion_gates')
      .values({ name, alias, rules: text })
      .onConflict((oc) => oc.columns(['name', 'alias']).doUpdateSet({ rules: text }))
      .execute();
    return valid;
  }

  async getGates(name: string, alias: string, db: Kysely<Schema> = this.db): Promise<GateRule[]> {
    const row = await db.selectFrom('promotion_gates').select('rules').where('name', '=', name).where('alias', '=', alias).executeTakeFirst();
    return row ? (JSON.parse(row.rules) as GateRule[]) : [];
  }

  /**
   * Throws POLICY_VIOLATION naming every rule of (name, alias) that `candidate`
   * fails. `current` is the version holding the alias now, if any. Pass the
   * transaction that moves the alias as `db`, so the check sees what it moves.
   */
  async checkGates(name: string, alias: string, candidate: GateSubject, current: GateSubject | null, db: Kysely<Schema> = this.db): Promise<void> {
    const rules = await this.getGates(name, alias, db);
    const failures: string[] = [];
    for (const rule of rules) {
      const why = await evaluate(db, rule, candidate, current);
      if (why) failures.push(`${formatGateRule(rule)} failed: ${why}`);
    }
    if (failures.length) {
      throw new StrataError('POLICY_VIOLATION', `gate on ${name}@${alias}: ${failures.join('; ')}`);
    }
  }
}

/** Why `candidate` fails `rule`, or null when it passes. */
async function evaluate(db: Kysely<Schema>, rule: GateRule, candidate: GateSubject, current: GateSubject | null): Promise<string | null> {
  const v = `version ${candidate.version}`;
  if ('metric' in rule) {
    const value = await runMetric(db, candidate, rule.metric);
    if (typeof value === 'string') return value;
    return compare(value, rule.op, rule.value) ? null : `${v} has ${rule.metric} ${value}`;
  }
  if ('better_than_current' in rule) {
    // Nothing to beat: no holder, the holder is the candidate itself, or the holder has no such metric.
    if (!current || current.version === candidate.version) return null;
    const key = rule.better_than_current;
    const mine = await runMetric(db, candidate, key);
    if (typeof mine === 'string') return mine;
    const theirs = await runMetric(db, current, key);
    if (typeof theirs === 'string') return null;
    const gain = rule.lower_is_better ? theirs - mine : mine - theirs;
    const minDelta = rule.min_delta ?? 0;
    if (gain > 0 && gain >= minDelta) return null;
    const need = minDelta > 0 ? ` (needs to be ${rule.lower_is_better ? 'lower' : 'higher'} by at least ${minDelta})` : '';
    return `${v} has ${key} ${mine}, current holder version ${current.version} has ${theirs}${need}`;
  }
  if ('no_label' in rule) {
    if (!candidate.labels) return `${v} has no classification to check (PII classification is not running in this process)`;
    return candidate.labels.includes(rule.no_label) ? `${v} carries ${rule.no_label} (strata classify labels model:NAME@${candidate.version} says where from)` : null;
  }
  const found = await tagValue(db, candidate, rule.tag);
  if (found === null) {
    return `${v} has no tag ${rule.tag} (on the version${candidate.run_id ? ` or its run ${candidate.run_id}` : ''})`;
  }
  if (rule.value !== undefined && found.value !== rule.value) return `${v} has ${rule.tag}=${found.value} (${found.where})`;
  return null;
}

/** The latest value of a metric in the subject's run, or a sentence saying why there is none. */
async function runMetric(db: Kysely<Schema>, subject: GateSubject, key: string): Promise<number | string> {
  const v = `version ${subject.version}`;
  if (!subject.run_id) return `${v} has no run, so no metric ${key} (register it with a run)`;
  const row = await db.selectFrom('latest_metrics').select('value').where('run_id', '=', subject.run_id).where('key', '=', key).executeTakeFirst();
  if (!row) return `${v}'s run ${subject.run_id} has no metric ${key}`;
  return Number(row.value);
}

/** A tag of the version, else of its run. */
async function tagValue(db: Kysely<Schema>, subject: GateSubject, key: string): Promise<{ value: string; where: string } | null> {
  if (key in subject.tags) return { value: subject.tags[key]!, where: 'version tag' };
  if (!subject.run_id) return null;
  const row = await db.selectFrom('run_tags').select('value').where('run_id', '=', subject.run_id).where('key', '=', key).executeTakeFirst();
  return row ? { value: row.value, where: `tag of run ${subject.run_id}` } : null;
}

function compare(a: number, op: Op, b: number): boolean {
  switch (op) {
    case '>':
      return a > b;
    case '>=':
      return a >= b;
    case '<':
      return a < b;
    case '<=':
      return a <= b;
    case '=':
      return a === b;
    case '!=':
      return a !== b;
  }
}

// ---- validation ----

/** Checks a list of rules (as sent over the API) and returns them normalized. */
export function validateGateRules(rules: unknown): GateRule[] {
  if (!Array.isArray(rules)) throw new InvalidArgumentError('gate rules must be a list of rules');
  return rules.map((r, i) => validateGateRule(r, `rule ${i + 1}`));
}

export function validateGateRule(rule: unknown, what = 'rule'): GateRule {
  if (typeof rule !== 'object' || rule === null || Array.isArray(rule)) {
    throw new InvalidArgumentError(`${what} must be an object: {metric, op, value}, {better_than_current}, {tag, value?} or {no_label}`);
  }
  const r = rule as Record<string, unknown>;
  const only = (allowed: string[]) => {
    const extra = Object.keys(r).filter((k) => !allowed.includes(k));
    if (extra.length) throw new InvalidArgumentError(`${what} has unknown field "${extra[0]}" (allowed: ${allowed.join(', ')})`);
  };
  const key = (field: string) => {
    const v = r[field];
    if (typeof v !== 'string' || !v.trim() || v.length > 250) throw new InvalidArgumentError(`${what}: "${field}" must be a non-empty name (at most 250 characters)`);
    return v.trim();
  };
  const kinds = ['metric', 'better_than_current', 'tag', 'no_label'].filter((k) => k in r);
  if (kinds.length !== 1) {
    throw new InvalidArgumentError(
      `${what} must have exactly one of "metric", "better_than_current", "tag" or "no_label"${kinds.length ? ` (it has ${kinds.join(' and ')})` : ''}`,
    );
  }
  if ('no_label' in r) {
    only(['no_label']);
    return { no_label: key('no_label') } satisfies LabelRule;
  }
  if ('metric' in r) {
    only(['metric', 'op', 'value']);
    const op = r.op === '==' ? '=' : r.op;
    if (!OPS.includes(op as Op)) throw new InvalidArgumentError(`${what}: op ${JSON.stringify(r.op)} is not one of ${OPS.join(' ')}`);
    if (typeof r.value !== 'number' || !Number.isFinite(r.value)) throw new InvalidArgumentError(`${what}: "value" must be a finite number`);
    return { metric: key('metric'), op: op as Op, value: r.value } satisfies MetricRule;
  }
  if ('better_than_current' in r) {
    only(['better_than_current', 'lower_is_better', 'min_delta']);
    const out: BetterRule = { better_than_current: key('better_than_current') };
    if (r.lower_is_better !== undefined) {
      if (typeof r.lower_is_better !== 'boolean') throw new InvalidArgumentError(`${what}: "lower_is_better" must be true or false`);
      if (r.lower_is_better) out.lower_is_better = true;
    }
    if (r.min_delta !== undefined) {
      if (typeof r.min_delta !== 'number' || !Number.isFinite(r.min_delta) || r.min_delta < 0) {
        throw new InvalidArgumentError(`${what}: "min_delta" must be a number >= 0`);
      }
      if (r.min_delta > 0) out.min_delta = r.min_delta;
    }
    return out;
  }
  only(['tag', 'value']);
  const out: TagRule = { tag: key('tag') };
  if (r.value !== undefined) {
    if (typeof r.value !== 'string') throw new InvalidArgumentError(`${what}: tag "value" must be a string`);
    out.value = r.value;
  }
  return out;
}

// ---- the one-line form (CLI) ----

/**
 * Parses a rule as typed on the command line:
 *   metrics.accuracy >= 0.9
 *   better_than_current:metrics.f1            (options: lower_is_better, min_delta=0.01)
 *   tag:validated=true      tag:reviewed
 *   no_label:pii:ssn                          (its classification must not include the label)
 * or a rule as JSON ({"metric":"accuracy","op":">=","value":0.9}).
 */
export function parseGateRule(text: string): GateRule {
  const t = text.trim();
  const bad = (why: string) =>
    new InvalidArgumentError(
      `gate rule "${text}": ${why}; expected "metrics.KEY OP NUMBER" (OP: ${OPS.join(' ')}), ` +
        '"better_than_current:metrics.KEY [lower_is_better] [min_delta=N]", "tag:KEY[=VALUE]" or "no_label:LABEL" (e.g. no_label:pii:ssn)',
    );
  if (t.startsWith('{')) {
    let value: unknown;
    try {
      value = JSON.parse(t);
    } catch (err) {
      throw new InvalidArgumentError(`gate rule "${text}" is not valid JSON: ${(err as Error).message}`, { cause: err });
    }
    return validateGateRule(value, `gate rule "${text}"`);
  }
  let m = /^no_label\s*:\s*(\S+)$/.exec(t);
  if (m) return validateGateRule({ no_label: m[1] }, `gate rule "${text}"`);
  m = /^tags?[:.]([^=]+?)\s*(?:=\s*(.*))?$/.exec(t);
  if (m) return validateGateRule(m[2] === undefined ? { tag: m[1] } : { tag: m[1], value: m[2] }, `gate rule "${text}"`);
  m = /^better_than_current\s*:\s*(?:metrics?\.)?(\S+)((?:\s+\S+)*)$/.exec(t);
  if (m) {
    const rule: Record<string, unknown> = { better_than_current: m[1] };
    for (const opt of m[2]!.trim().split(/\s+/).filter(Boolean)) {
      const delta = /^min_delta=(.+)$/.exec(opt);
      if (opt === 'lower_is_better') rule.lower_is_better = true;
      else if (delta) rule.min_delta = numberOf(delta[1]!, bad);
      else throw bad(`unknown option "${opt}"`);
    }
    return validateGateRule(rule, `gate rule "${text}"`);
  }
  m = /^metrics?\.([^\s<>=!]+)\s*(>=|<=|!=|==|=|>|<)\s*(\S+)$/.exec(t);
  if (m) return validateGateRule({ metric: m[1], op: m[2], value: numberOf(m[3]!, bad) }, `gate rule "${text}"`);
  throw bad('not understood');
}

function numberOf(text: string, bad: (why: string) => Error): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n)) throw bad(`"${text}" is not a finite number`);
  return n;
}

/** The one-line form of a rule, as parseGateRule reads it and error messages show it. */
export function formatGateRule(rule: GateRule): string {
  if ('metric' in rule) return `metrics.${rule.metric} ${rule.op} ${rule.value}`;
  if ('better_than_current' in rule) {
    const opts = [rule.lower_is_better ? ' lower_is_better' : '', rule.min_delta ? ` min_delta=${rule.min_delta}` : ''].join('');
    return `better_than_current:metrics.${rule.better_than_current}${opts}`;
  }
  if ('no_label' in rule) return `no_label:${rule.no_label}`;
  return rule.value === undefined ? `tag:${rule.tag}` : `tag:${rule.tag}=${rule.value}`;
}
