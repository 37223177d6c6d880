import { InvalidArgumentError } from '../errors.js';

// Paths inside a repo are absolute, '/'-separated, without '.', '..' or empty
// components. Everything a user types is normalized here, once, so the tree
// code never sees a path that could escape its root.

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** Validates a repo or branch name; `what` names the field in the error. */
export function checkName(name: string, what: string): string {
  if (!NAME.test(name)) {
    throw new InvalidArgumentError(
      `${what} "${name}" is invalid: use letters, digits, '_', '-' and '.', starting with a letter or digit, at most 128 characters`,
    );
  }
  return name;
}

/** Normalizes a repo path to `/a/b` form ('/' for the root). Rejects `..`. */
export function normalizePath(path: string, what = 'path'): string {
  if (path.includes('\0')) throw new InvalidArgumentError(`${what} "${path}" contains a NUL byte`);
  const parts: string[] = [];
  for (const part of path.replaceAll('\\', '/').split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      throw new InvalidArgumentError(`${what} "${path}" contains "..": paths in a repo cannot leave its root`);
    }
    parts.push(part);
  }
  return '/' + parts.join('/');
}

export function splitPath(path: string): string[] {
  return path === '/' ? [] : path.slice(1).split('/');
}

export function joinPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}
