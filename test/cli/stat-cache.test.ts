import assert from 'node:assert/strict';
import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, it } from 'node:test';
import Database from 'better-sqlite3';
import { tempDir } from '../fixtures.js';
import { strata } from './run.js';

// Re-putting unchanged files sends their hashes instead of their bytes; a
// changed file, or one changed within the racy window, is always re-read.

const dir = tempDir();
after(() => dir.cleanup());
const env = { STRATA_HOME: join(dir.path, '.strata') };
const ok = (...args: string[]) => {
  const r = strata(args, { env });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
};

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
