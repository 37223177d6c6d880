import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { compileGlob, expandTemplate, matchGlob } from './glob.js';
import { childInputs, type Input } from './spec.js';

// Datum planning: cutting a job's input commits into units of work with
// Pachyderm 2.x's semantics (worker/datum/iterator.go):
//   pfs    one datum per glob match
//   cross  the cartesian product of the children's datums
//   union  the children's datums one after another
//   join   datums whose join_on keys are equal are combined (a cross product
//          per key); a child marked outer_join also keeps its unmatched datums
//   group  one datum per group_by key, holding every match with that key
//   cron   a pfs input with glob "/*" over the tick files (Pachyderm's choice)
//   git    a pfs input with glob "/": the whole checkout is one datum
// Children are ordered by input name, as Pachyderm sorts them. A datum's id
// is content-addressed: SHA-256 over the transform hash and, per input, its
// name, matched path, join/group key and files' content hashes. So a datum
// whose inputs did not change keeps its id (and its output can be reused),
// while a new transform or salt changes every id. Join and group use maps
// keyed by join_on / group_by, so planning stays linear in the number of matches.

export interface FileRef {
  /** Path relative to the repo root, '/'-prefixed. */
  path: string;
  hash: string;
  size: number;
}

export interface InputCommit {
  repo: string;
  commit: string;
  /** Every file of that input's commit, sorted by path. */
  files: FileRef[];
}

export interface DatumInput {
  name: string;
  repo: string;
  commit: string;
  /** The matched path ('/' for the whole commit). */
  path: string;
  files: FileRef[];
  joinOn?: string;
  groupBy?: string;
}

export interface Datum {
  id: string;
  inputs: DatumInput[];
}

// A datum under construction: its inputs, each remembering whether it came
// from an outer_join input (which decides what survives an unmatched join key).
interface Part {
  input: DatumInput;
  outer: boolean;
}
type Row = Part[];

/**
 * Plans a job's datums, in a deterministic order.
 * `commits` maps each leaf input's name to its commit (for union branches that
 * share a name, an entry keyed by the repo name also works). An input without
 * a commit contributes no datums, as in Pachyderm.
 */
export function planDatums(input: Input, commits: ReadonlyMap<string, InputCommit>, transformHash: string): Datum[] {
  const datums: Datum[] = [];
  const seen = new Set<string>();
  for (const row of plan(input, commits)) {
    const inputs = row.map((p) => p.input);
    const id = datumId(transformHash, inputs);
    // The same datum twice (identical union branches, an outer join's
    // repeated leftovers) would do the same work twice: keep the first.
    if (seen.has(id)) continue;
    seen.add(id);
    datums.push({ id, inputs });
  }
  return datums;
}

function plan(input: Input, commits: ReadonlyMap<string, InputCommit>): Row[] {
  if ('pfs' in input) {
    const { name, repo, glob, joinOn, groupBy, outerJoin } = input.pfs;
    return leaf(name, repo, glob, commits, { joinOn, groupBy, outer: outerJoin });
  }
  if ('cron' in input) return leaf(input.cron.name, input.cron.repo, '/*', commits, {});
  if ('git' in input) return leaf(input.git.name, input.git.repo, '/', commits, {});

  const children = byInputName(childInputs(input)).map((child) => plan(child, commits));
  if ('union' in input) return children.flat();
  if ('cross' in input) return cross(children);
  if ('join' in input) return join(children);
  return group(children);
}

function leaf(
  name: string,
  repo: string,
  glob: string,
  commits: ReadonlyMap<string, InputCommit>,
  opts: { joinOn?: string | undefined; groupBy?: string | undefined; outer?: boolean },
): Row[] {
  const commit = findCommit(name, repo, commits);
  if (!commit) return [];
  return matchGlob(compileGlob(glob), commit.files).map((m) => {
    const input: DatumInput = { name, repo, commit: commit.commit, path: m.path, files: m.files };
    if (opts.joinOn !== undefined) input.joinOn = expandTemplate(opts.joinOn, m.captures);
    if (opts.groupBy !== undefined) input.groupBy = expandTemplate(opts.groupBy, m.captures);
    return [{ input, outer: opts.outer ?? false }];
  });
}

function findCommit(name: string, repo: string, commits: ReadonlyMap<string, InputCommit>): InputCommit | undefined {
  for (const candidate of [commits.get(name), commits.get(repo)]) if (candidate?.repo === repo) return candidate;
  for (const candidate of commits.values()) if (candidate.repo === repo) return candidate;
  return undefined;
}

function cross(children: Row[][]): Row[] {
  let rows: Row[] = [[]];
  for (const child of children) {
    const next: Row[] = [];
    for (const row of rows) for (const c of child) next.push([...row, ...c]);
    rows = next;
  }
  return children.length === 0 ? [] : rows;
}

/** Each child's parts bucketed by key; every part of a child datum is keyed on its own. */
function bucket(children: Row[][], key: (input: DatumInput) => string | undefined): Map<string, Part[][]> {
  const buckets = new Map<string, Part[][]>();
  children.forEach((rows, i) => {
    for (const row of rows) {
      for (const part of row) {
        const k = key(part.input) ?? '';
        let lists = buckets.get(k);
        if (!lists) buckets.set(k, (lists = children.map(() => [])));
        lists[i]!.push(part);
      }
    }
  });
  return new Map([...buckets].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

// Inner join by default: a key present in every child yields the cross
// product of that key's matches. Where some child lacks the key, the
// combination keeps only its outer_join parts (none: no datum).
function join(children: Row[][]): Row[] {
  const rows: Row[] = [];
  for (const lists of bucket(children, (i) => i.joinOn).values()) {
    const present = lists.filter((l) => l.length > 0);
    const complete = present.length === children.length;
    for (const combination of cross(present.map((list) => list.map((part) => [part])))) {
      const kept = complete ? combination : combination.filter((p) => p.outer);
      if (kept.length > 0) rows.push(kept);
    }
  }
  return rows;
}

// One datum per group_by key with every match carrying it, in child order.
function group(children: Row[][]): Row[] {
  return [...bucket(children, (i) => i.groupBy).values()].map((lists) => lists.flat());
}

function inputName(input: Input): string {
  if ('pfs' in input) return input.pfs.name;
  if ('cron' in input) return input.cron.name;
  if ('git' in input) return input.git.name;
  const first = byInputName(childInputs(input))[0];
  return first ? inputName(first) : '';
}

function byInputName(inputs: Input[]): Input[] {
  const named = inputs.map((input) => ({ input, name: inputName(input) }));
  named.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)); // stable
  return named.map((n) => n.input);
}

/** SHA-256 hex of the transform hash and the canonical list of the datum's inputs. */
export function datumId(transformHash: string, inputs: readonly DatumInput[]): string {
  const canonical = inputs
    .map((i) => [i.name, i.path, i.joinOn ?? null, i.groupBy ?? null, i.files.map((f) => [f.path, f.hash])] as const)
    .sort((a, b) => (a[0] !== b[0] ? (a[0] < b[0] ? -1 : 1) : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return createHash('sha256').update(JSON.stringify([transformHash, canonical])).digest('hex');
}

export interface DatumEnvOptions {
  /** Where the step sees its inputs (default /pfs; the unsandboxed executor remaps it). */
  pfsRoot?: string;
}

/**
 * The per-datum environment, with Pachyderm's names (worker driver
 * UserCodeEnv) and STRATA_ equivalents: `<input>` is the input's matched path
 * under /pfs, `<input>_COMMIT` its commit, `PACH_DATUM_<input>_JOIN_ON` /
 * `_GROUP_BY` its key when it has one, and `PACH_DATUM_ID`. When several
 * inputs share a name (a group), the last one's values win, as in Pachyderm.
 * The job's variables (PACH_JOB_ID) are the runner's to add.
 */
export function datumEnv(datum: Datum, opts: DatumEnvOptions = {}): Record<string, string> {
  const root = opts.pfsRoot ?? '/pfs';
  const env: Record<string, string> = {};
  for (const input of datum.inputs) {
    env[input.name] = input.path === '/' ? posix.join(root, input.name) : posix.join(root, input.name, input.path);
    env[`${input.name}_COMMIT`] = input.commit;
    if (input.joinOn) {
      env[`PACH_DATUM_${input.name}_JOIN_ON`] = input.joinOn;
      env[`STRATA_DATUM_${input.name}_JOIN_ON`] = input.joinOn;
    }
    if (input.groupBy) {
      env[`PACH_DATUM_${input.name}_GROUP_BY`] = input.groupBy;
      env[`STRATA_DATUM_${input.name}_GROUP_BY`] = input.groupBy;
    }
  }
  env.PACH_DATUM_ID = datum.id;
  env.STRATA_DATUM_ID = datum.id;
  return env;
}
