import { InvalidArgumentError } from '../errors.js';

// Pachyderm's glob semantics, which decide how an input commit is cut into
// datums. Pachyderm 2.x compiles globs with its `ohmyglob` library (a fork of
// gobwas/glob with capture groups) into a Go regexp anchored at both ends, and
// matches it against every file *and every directory* of the commit (directory
// paths without their trailing slash). A matched directory covers every file
// under it. We translate the same syntax into a JavaScript RegExp: both
// engines are leftmost-first with greedy quantifiers, so captures agree.
//
//   *        any run of characters except '/'
//   **       any run of characters, '/' included
//   ?        one character except '/'
//   [abc] [a-z] [!abc]   character classes ('!' negates; a negated class never matches '/')
//   {a,b}    alternatives (each may itself be a glob)
//   (a|b)    capture group, numbered by its opening parenthesis, for join_on / group_by ("$1")
//   *(..) ?(..) +(..) @(..)   extglob captures: zero or more, optional, one or more, exactly one
//   \c       the character c
//
// `/` is special-cased as in Pachyderm: it matches the root, one datum holding
// every file. `!(..)` (negated extglob) is not supported: ohmyglob's meaning
// for it depends on the rest of the pattern in ways no spec should rely on.

/** A glob compiled to an anchored RegExp. */
export interface CompiledGlob {
  /** The normalized pattern (leading '/', no trailing '/', no '//'). */
  readonly pattern: string;
  readonly regex: RegExp;
  /** Number of capture groups, for checking `$N` references in join_on / group_by. */
  readonly groups: number;
  /** [whole path, group 1, group 2, ...] ('' for a group that did not take part), or null. */
  match(path: string): string[] | null;
}

/** One glob match: a file, or a directory and every file under it. */
export interface GlobMatch<F> {
  /** The matched path ('/' for the root, directories without a trailing '/'). */
  path: string;
  isDir: boolean;
  /** The files covered, sorted by path. */
  files: F[];
  /** [whole path, group 1, ...] as in CompiledGlob.match. */
  captures: string[];
}

/** Pachyderm cleans globs like paths: "*" is "/*", "/a/" is "/a". */
export function normalizeGlob(pattern: string): string {
  let p = pattern.trim().replace(/\/{2,}/g, '/');
  if (!p.startsWith('/')) p = '/' + p;
  if (p.length > 1 && p.endsWith('/') && !p.endsWith('\\/')) p = p.slice(0, -1);
  return p;
}

/** Compiles a glob; throws InvalidArgumentError naming the problem on bad syntax. */
export function compileGlob(pattern: string): CompiledGlob {
  const normalized = normalizeGlob(pattern);
  const parser = new GlobParser(normalized);
  const body = parser.parse();
  let regex: RegExp;
  try {
    regex = new RegExp(`^${body}$`, 'su');
  } catch (err) {
    throw new InvalidArgumentError(`glob "${pattern}" is invalid: ${(err as Error).message}`, { cause: err });
  }
  return {
    pattern: normalized,
    regex,
    groups: parser.groups,
    match(path: string): string[] | null {
      if (normalized === '/') return path === '/' ? ['/'] : null;
      const m = regex.exec(path);
      return m ? Array.from(m, (s) => s ?? '') : null;
    },
  };
}

/**
 * Matches a glob against a commit's files (paths '/'-prefixed, files only:
 * directories are implied by the paths). Returns the matched files and
 * directories in Pachyderm's order (by path, a directory sorting as "dir/").
 * A glob matching nothing returns [] — that is a job with 0 datums, not an error.
 */
export function matchGlob<F extends { path: string }>(glob: string | CompiledGlob, files: readonly F[]): GlobMatch<F>[] {
  const g = typeof glob === 'string' ? compileGlob(glob) : glob;
  const sorted = isSortedByPath(files) ? files : [...files].sort((a, b) => compare(a.path, b.path));
  if (sorted.length === 0) return [];
  if (g.pattern === '/') return [{ path: '/', isDir: true, files: [...sorted], captures: ['/'] }];

  const matches: Array<GlobMatch<F> & { key: string }> = [];
  const paths = sorted.map((f) => f.path);
  for (const f of sorted) {
    const captures = g.match(f.path);
    if (captures) matches.push({ path: f.path, isDir: false, files: [f], captures, key: f.path });
  }
  for (const dir of impliedDirectories(paths)) {
    const captures = g.match(dir);
    if (!captures) continue;
    // Every file under `dir` sorts in [dir + '/', dir + '0'): '0' follows '/'.
    const from = lowerBound(paths, dir + '/');
    const to = lowerBound(paths, dir + '0', from);
    matches.push({ path: dir, isDir: true, files: sorted.slice(from, to), captures, key: dir + '/' });
  }
  matches.sort((a, b) => compare(a.key, b.key));
  return matches.map(({ key: _key, ...m }) => m);
}

/**
 * Expands a join_on / group_by template against a match's captures with Go's
 * regexp.Expand rules (which Pachyderm uses): `$1` or `${1}` is group 1, `$0`
 * the whole path, `$$` a literal '$'. A name is the longest run of letters,
 * digits and '_', so write `${1}x` rather than `$1x`. Unknown groups expand to ''.
 */
export function expandTemplate(template: string, captures: readonly string[]): string {
  let out = '';
  for (const part of templateParts(template)) {
    if (typeof part === 'string') out += part;
    else if (typeof part.ref === 'number') out += captures[part.ref] ?? '';
  }
  return out;
}

/** The capture groups a template refers to: numbers, and names (globs have no named groups). */
export function templateRefs(template: string): { numbers: number[]; names: string[] } {
  const numbers: number[] = [];
  const names: string[] = [];
  for (const part of templateParts(template)) {
    if (typeof part === 'string') continue;
    if (typeof part.ref === 'number') numbers.push(part.ref);
    else names.push(part.ref);
  }
  return { numbers, names };
}

function templateParts(template: string): Array<string | { ref: number | string }> {
  const parts: Array<string | { ref: number | string }> = [];
  let rest = template;
  for (;;) {
    const at = rest.indexOf('$');
    if (at < 0) break;
    parts.push(rest.slice(0, at));
    rest = rest.slice(at + 1);
    if (rest.startsWith('$')) {
      parts.push('$');
      rest = rest.slice(1);
      continue;
    }
    const m = /^\{([A-Za-z0-9_]+)\}/.exec(rest) ?? /^([A-Za-z0-9_]+)/.exec(rest);
    if (!m) {
      parts.push('$'); // malformed: Go keeps the '$' as text
      continue;
    }
    rest = rest.slice(m[0].length);
    const name = m[1]!;
    parts.push({ ref: /^[0-9]+$/.test(name) ? Number(name) : name });
  }
  parts.push(rest);
  return parts;
}

// Every directory implied by the file paths, except the root.
function* impliedDirectories(paths: readonly string[]): Generator<string> {
  const seen = new Set<string>();
  for (const path of paths) {
    for (let i = path.lastIndexOf('/'); i > 0; i = path.lastIndexOf('/', i - 1)) {
      const dir = path.slice(0, i);
      if (seen.has(dir)) break; // its ancestors were added with it
      seen.add(dir);
      yield dir;
    }
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function isSortedByPath(files: readonly { path: string }[]): boolean {
  for (let i = 1; i < files.length; i++) if (files[i - 1]!.path > files[i]!.path) return false;
  return true;
}

function lowerBound(sorted: readonly string[], value: string, from = 0): number {
  let lo = from;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

type Context = 'top' | 'terms' | 'capture';

const escapeText = (s: string) => s.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
const escapeClass = (s: string) => s.replace(/[\\\]\[^-]/g, '\\$&');

// Recursive descent over ohmyglob's syntax, emitting RegExp source. Only glob
// captures become capturing groups, so RegExp group numbers equal glob ones.
class GlobParser {
  private i = 0;
  groups = 0;

  constructor(private readonly src: string) {}

  parse(): string {
    const out = this.sequence('top');
    return out;
  }

  private fail(message: string): never {
    throw new InvalidArgumentError(`glob "${this.src}" is invalid: ${message}`);
  }

  private sequence(ctx: Context): string {
    const s = this.src;
    let out = '';
    while (this.i < s.length) {
      const c = s[this.i]!;
      if (ctx === 'terms' && (c === ',' || c === '}')) return out;
      if (ctx === 'capture' && (c === '|' || c === ')')) return out;
      const next = s[this.i + 1];
      switch (c) {
        case '\\':
          if (next === undefined) this.fail('it ends with a lone "\\"');
          out += escapeText(next);
          this.i += 2;
          break;
        case '*':
          if (next === '*') {
            out += '.*';
            this.i += 2;
          } else if (next === '(') {
            out += this.capture('*');
          } else {
            out += '[^/]*';
            this.i += 1;
          }
          break;
        case '?':
          if (next === '(') out += this.capture('?');
          else {
            out += '[^/]';
            this.i += 1;
          }
          break;
        case '+':
        case '@':
        case '!':
          if (next === '(') out += this.capture(c);
          else {
            out += escapeText(c);
            this.i += 1;
          }
          break;
        case '(':
          out += this.capture('(');
          break;
        case '[':
          out += this.characterClass();
          break;
        case '{':
          out += this.alternatives();
          break;
        default:
          out += escapeText(c);
          this.i += 1;
      }
    }
    if (ctx === 'terms') this.fail('a "{" is never closed');
    if (ctx === 'capture') this.fail('a "(" is never closed');
    return out;
  }

  private capture(kind: '*' | '?' | '+' | '@' | '!' | '('): string {
    if (kind === '!') this.fail('negated groups "!(...)" are not supported');
    this.i += kind === '(' ? 1 : 2;
    this.groups += 1;
    const alternatives = [this.sequence('capture')];
    while (this.src[this.i] === '|') {
      this.i += 1;
      alternatives.push(this.sequence('capture'));
    }
    this.i += 1; // ')', guaranteed by sequence()
    const body = alternatives.join('|');
    switch (kind) {
      case '*':
        return `((?:${body})*)`;
      case '?':
        return `((?:${body})?)`;
      case '+':
        return `((?:${body})+)`;
      default:
        return `(${body})`;
    }
  }

  private alternatives(): string {
    this.i += 1;
    const alternatives = [this.sequence('terms')];
    while (this.src[this.i] === ',') {
      this.i += 1;
      alternatives.push(this.sequence('terms'));
    }
    this.i += 1; // '}', guaranteed by sequence()
    return `(?:${alternatives.join('|')})`;
  }

  private characterClass(): string {
    const s = this.src;
    this.i += 1;
    let negated = false;
    if (s[this.i] === '!') {
      negated = true;
      this.i += 1;
    }
    let body = '';
    let empty = true;
    for (;;) {
      if (this.i >= s.length) this.fail('a "[" is never closed');
      let c = s[this.i]!;
      if (c === ']' && !empty) {
        this.i += 1;
        break;
      }
      if (c === '\\') {
        if (this.i + 1 >= s.length) this.fail('it ends with a lone "\\"');
        c = s[++this.i]!;
      }
      this.i += 1;
      empty = false;
      if (s[this.i] === '-' && this.i + 1 < s.length && s[this.i + 1] !== ']') {
        let hi = s[this.i + 1]!;
        this.i += 2;
        if (hi === '\\' && this.i < s.length) hi = s[this.i++]!;
        if (hi < c) this.fail(`range "${c}-${hi}" is out of order`);
        body += `${escapeClass(c)}-${escapeClass(hi)}`;
      } else {
        body += escapeClass(c);
      }
    }
    return negated ? `[^/${body}]` : `[${body}]`;
  }
}
