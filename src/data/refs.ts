import { InvalidArgumentError } from '../errors.js';
import { checkName, normalizePath } from './paths.js';

// A reference names a repo, optionally a branch or commit in it, and
// optionally a path:  repo | repo@branch | repo@<commit prefix> |
// repo@branch^ | repo@branch~3 | any of those followed by :/path.

export interface Ref {
  repo: string;
  /** Branch name or commit id prefix; undefined means the default branch. */
  at?: string;
  /** How many first-parent steps back from `at` (from ^ and ~N suffixes). */
  back: number;
  path: string;
  /** True when the text had an explicit `:path` part. */
  hasPath: boolean;
}

export const DEFAULT_BRANCH = 'master';

export function parseRef(text: string): Ref {
  if (!text) throw new InvalidArgumentError('empty reference: expected repo[@branch|@commit][:/path]');
  const colon = text.indexOf(':');
  const head = colon >= 0 ? text.slice(0, colon) : text;
  const rawPath = colon >= 0 ? text.slice(colon + 1) : '/';
  const at = head.indexOf('@');
  const repo = checkName(at >= 0 ? head.slice(0, at) : head, 'repo name');
  let rev = at >= 0 ? head.slice(at + 1) : undefined;
  let back = 0;
  if (rev !== undefined) {
    const m = /^(.*?)((?:\^|~\d*)*)$/.exec(rev)!;
    rev = m[1]!;
    for (const step of m[2]!.match(/\^|~\d*/g) ?? []) {
      back += step === '^' ? 1 : step === '~' ? 1 : Number(step.slice(1));
    }
    if (!rev) throw new InvalidArgumentError(`reference "${text}": missing branch or commit after "@"`);
    checkName(rev, `branch or commit in "${text}"`);
  }
  return { repo, at: rev, back, path: normalizePath(rawPath, `path in "${text}"`), hasPath: colon >= 0 };
}

export function formatRef(repo: string, at: string, path = '/'): string {
  return path === '/' ? `${repo}@${at}` : `${repo}@${at}:${path}`;
}
