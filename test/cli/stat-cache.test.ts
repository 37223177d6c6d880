import assert from 'node:assert/strict';
import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, it } from 'node:test';
import Database from 'better-sqlite3';
import { tempDir } from '../fixtures.js';
import { StatCache } from '../../src/cli/stat-cache.js';
import { strata } from './run.js';

// Re-putting unchanged files sends their hashes instead of their bytes; a
// changed file, or one changed within the racy window, is always re-read.

const dir = tempDir();
after(() => dir.cleanup());
/** Runs the CLI on the instance at `home`, expecting success; returns its output. */
const cliAt =
  (home: string) =>
  (...args: string[]) => {
    const r = strata(args, { env: { STRATA_HOME: home } });
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };
const ok = cliAt(join(dir.path, '.strata'));

it('skips reading unchanged files and still sees every change', () => {
  ok('init');
  ok('repo', 'create', 'c');
  const src = join(dir.path, 'src');
  mkdirSync(src);
  const old = new Date(Date.now() - 60_000);
  for (let i = 0; i < 20; i++) {
    writeFileSync(join(src, `f${i}.txt`), `content ${i}`);
    utimesSync(join(src, `f${i}.txt`), old, old);
  }
  writeFileSync(join(src, 'fresh.txt'), 'v1'); // just written: racy, never cached
  ok('put', 'c@master', `${src}/`);

  const cache = new Database(join(dir.path, '.strata', 'stat-cache.db'), { readonly: true });
  const rows = cache.prepare('select path from files order by path').all() as { path: string }[];
  cache.close();
  assert.equal(rows.length, 20, 'the 20 old files are cached, the fresh one is not');

  writeFileSync(join(src, 'fresh.txt'), 'v2'); // same size, same second
  writeFileSync(join(src, 'f3.txt'), 'changed content 3');
  const again = JSON.parse(ok('put', 'c@master', `${src}/`, '--json'));
  assert.equal(again.files, 21);
  assert.equal(ok('cat', 'c@master:/fresh.txt'), 'v2');
  assert.equal(ok('cat', 'c@master:/f3.txt'), 'changed content 3');
  assert.equal(ok('cat', 'c@master:/f7.txt'), 'content 7');
  const diff = JSON.parse(ok('diff', 'c@master^', 'c@master', '--json'));
  assert.deepEqual(diff.modified.sort(), ['/f3.txt', '/fresh.txt']);
});

it('answers lookups from the directories it preloaded and from the database elsewhere, by exact signature', () => {
  const home = join(dir.path, 'unit');
  mkdirSync(home);
  const cache = StatCache.open(home)!;
  const stat = (size: number, mtime: bigint) => ({ size: BigInt(size), mtimeNs: mtime, ctimeNs: mtime + 1n, ino: 42n });
  const hash = (c: string) => c.repeat(64);
  const old = BigInt(Date.now() - 60_000) * 1_000_000n;
  const files: [string, string][] = [
    ['/data/src/a.txt', 'a'],
    ['/data/src/sub/b.txt', 'b'],
    ['/data/src2/c.txt', 'c'], // a sibling whose name starts like src: not under /data/src/
    ['/data/other.txt', 'd'],
  ];
  for (const [path] of files) cache.noteRead(path, stat(10, old));
  cache.commit(new Map(files.map(([path, c]) => [path, hash(c)])));
  cache.close();

  const again = StatCache.open(home)!;
  again.preload(['/data/src']);
  assert.equal(again.lookup('/data/src/a.txt', stat(10, old)), hash('a'));
  assert.equal(again.lookup('/data/src/sub/b.txt', stat(10, old)), hash('b'));
  assert.equal(again.lookup('/data/src2/c.txt', stat(10, old)), hash('c'));
  assert.equal(again.lookup('/data/other.txt', stat(10, old)), hash('d'));
  // Any difference in size, times or inode is a miss; so is a file never cached.
  assert.equal(again.lookup('/data/src/a.txt', stat(11, old)), undefined);
  assert.equal(again.lookup('/data/src/a.txt', stat(1, old)), undefined);
  assert.equal(again.lookup('/data/src/a.txt', { ...stat(10, old), ino: 43n }), undefined);
  assert.equal(again.lookup('/data/src/a.txt', { ...stat(10, old), mtimeNs: old + 1n }), undefined);
  assert.equal(again.lookup('/data/src/new.txt', stat(10, old)), undefined);
  assert.equal(again.lookup('/data/src2/c.txt', stat(10, old + 5n)), undefined);
  again.close();
});

it('sends an unchanged directory as one link to the tree it was committed as, and re-lists a changed one', () => {
  const home = join(dir.path, 'trees', '.strata');
  const run = cliAt(home);
  run('init');
  run('repo', 'create', 't');
  const src = join(dir.path, 'trees', 'src');
  const old = new Date(Date.now() - 60_000);
  const write = (rel: string, content: string) => {
    mkdirSync(join(src, rel, '..'), { recursive: true });
    writeFileSync(join(src, rel), content);
    utimesSync(join(src, rel), old, old);
  };
  for (const f of ['a/1.txt', 'a/2.txt', 'a/deep/3.txt', 'b/4.txt', 'b/5.txt']) write(f, `content of ${f}`);
  run('put', 't@master', `${src}/`);

  const db = () => new Database(join(home, 'stat-cache.db'));
  const cached = () => {
    const d = db();
    const rows = Object.fromEntries((d.prepare('select path, tree from dirs').all() as { path: string; tree: string }[]).map((r) => [r.path.slice(src.length), r.tree]));
    d.close();
    return rows;
  };
  const listed = JSON.parse(run('ls', 't@master:/', '--json')) as { path: string; hash: string }[];
  const treeOf = (p: string) => listed.find((e) => e.path === p)!.hash;
  assert.deepEqual(cached(), { '/a': treeOf('/a'), '/a/deep': cached()['/a/deep'], '/b': treeOf('/b') });

  // The cached tree is what gets committed: point a's entry at b's tree and a re-put places b's files at /a.
  const d = db();
  d.prepare('update dirs set tree = ? where path = ?').run(treeOf('/b'), `${src}/a`);
  d.close();
  run('put', 't@swapped', `${src}/`);
  const swapped = JSON.parse(run('ls', 't@swapped:/a', '--json')) as { path: string }[];
  assert.deepEqual(swapped.map((e) => e.path), ['/a/4.txt', '/a/5.txt']);

  // A tree this database does not hold: the put still lands, sending the files, and the directory cache starts over.
  const e = db();
  e.prepare('update dirs set tree = ?').run('e'.repeat(64));
  e.close();
  const recovered = JSON.parse(run('put', 't@recovered', `${src}/`, '--json'));
  assert.equal(recovered.files, 5);
  assert.deepEqual(JSON.parse(run('diff', 't@master', 't@recovered', '--json')), { added: [], modified: [], deleted: [] });
  assert.equal(cached()['/a'], treeOf('/a'));

  // One changed file: its directory is listed again and only it differs; the entry follows the new tree.
  write('b/5.txt', 'changed');
  run('put', 't@master', `${src}/`);
  assert.deepEqual(JSON.parse(run('diff', 't@master^', 't@master', '--json')), { added: [], modified: ['/b/5.txt'], deleted: [] });
  const now = JSON.parse(run('ls', 't@master:/', '--json')) as { path: string; hash: string }[];
  assert.equal(cached()['/b'], now.find((x) => x.path === '/b')!.hash);

  // A put merges into what is there: a linked directory keeps the files already at its destination.
  run('put', 't@master:/mix/own.txt', join(src, 'b', '4.txt'));
  run('put', 't@master:/mix', `${src}/a/`);
  const mix = JSON.parse(run('ls', 't@master:/mix', '--json', '--recursive')) as { path: string }[];
  assert.deepEqual(mix.map((x) => x.path), ['/mix/1.txt', '/mix/2.txt', '/mix/deep/3.txt', '/mix/own.txt']);
  const result = JSON.parse(run('put', 't@master:/mix', `${src}/a/`, '--json'));
  assert.equal(result.files, 3, 'the directory link counts the files it places');
});

it('caches the directory named on the command line too, and only when the repo holds exactly its files', () => {
  const home = join(dir.path, 'top', '.strata');
  const run = cliAt(home);
  run('init');
  run('repo', 'create', 'top');
  const src = join(dir.path, 'top', 'data');
  const old = new Date(Date.now() - 60_000);
  for (const f of ['x.txt', 'sub/y.txt', 'sub/deeper/z.txt', 'other/w.txt']) {
    mkdirSync(join(src, f, '..'), { recursive: true });
    writeFileSync(join(src, f), `content of ${f}`);
    utimesSync(join(src, f), old, old);
  }
  const cached = () => {
    const d = new Database(join(home, 'stat-cache.db'), { readonly: true });
    const rows = Object.fromEntries((d.prepare('select path, tree from dirs').all() as { path: string; tree: string }[]).map((r) => [r.path.slice(src.length) || '.', r.tree]));
    d.close();
    return rows;
  };
  const treeAt = (ref: string, path: string) => (JSON.parse(run('ls', ref, '--json')) as { path: string; hash: string }[]).find((e) => e.path === path)!.hash;

  run('put', 'top@master:/in', src);
  assert.deepEqual(Object.keys(cached()).sort(), ['.', '/other', '/sub', '/sub/deeper']);
  assert.equal(cached()['.'], treeAt('top@master:/in', '/in/data'));

  // Put again, unchanged: one link. Then with one file changed: the directories above it follow the new trees.
  run('put', 'top@master:/in', src);
  assert.deepEqual(JSON.parse(run('diff', 'top@master^', 'top@master', '--json')), { added: [], modified: [], deleted: [] });
  writeFileSync(join(src, 'sub', 'deeper', 'z.txt'), 'changed');
  utimesSync(join(src, 'sub', 'deeper', 'z.txt'), old, new Date(Date.now() - 30_000));
  run('put', 'top@master:/in', src);
  assert.deepEqual(JSON.parse(run('diff', 'top@master^', 'top@master', '--json')), { added: [], modified: ['/in/data/sub/deeper/z.txt'], deleted: [] });
  assert.equal(cached()['.'], treeAt('top@master:/in', '/in/data'));
  assert.equal(cached()['/sub'], treeAt('top@master:/in/data', '/in/data/sub'));
  assert.equal(cached()['/sub/deeper'], treeAt('top@master:/in/data/sub', '/in/data/sub/deeper'));

  // Changed, into a destination that holds one more file: the merged tree is not the local directory's, so the
  // directory's entry is dropped; its unchanged subdirectories keep theirs.
  run('put', 'top@merged:/in/data/extra.txt', join(src, 'other', 'w.txt'));
  writeFileSync(join(src, 'x.txt'), 'changed too');
  utimesSync(join(src, 'x.txt'), old, new Date(Date.now() - 30_000));
  run('put', 'top@merged:/in', src);
  assert.equal(cached()['.'], undefined);
  assert.equal(cached()['/sub'], treeAt('top@merged:/in/data', '/in/data/sub'));
  const merged = JSON.parse(run('ls', 'top@merged:/in/data', '--json')) as { path: string }[];
  assert.deepEqual(merged.map((e) => e.path), ['/in/data/extra.txt', '/in/data/other', '/in/data/sub', '/in/data/x.txt']);
});
