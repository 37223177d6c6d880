import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { tempDir } from '../fixtures.js';
import { strata } from './run.js';

// Output far larger than a pipe's buffer reaches the reader whole: the CLI
// must not exit before standard output is written (an early process.exit once
// cut `ls --json` of 6k files short at 438 KB when stdout was a pipe).

const dir = tempDir();
after(() => dir.cleanup());

it('writes a listing of megabytes to a pipe whole', () => {
  const env = { STRATA_HOME: join(dir.path, '.strata') };
  const ok = (...args: string[]) => {
    const r = strata(args, { env });
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };
  ok('init');
  ok('repo', 'create', 'many');
  const src = join(dir.path, 'src');
  mkdirSync(src);
  // Long names make the JSON listing ~2 MB with few files.
  const name = (i: number) => `${String(i).padStart(5, '0')}-${'x'.repeat(180)}.txt`;
  for (let i = 0; i < 4000; i++) writeFileSync(join(src, name(i)), `${i}\n`);
  ok('put', 'many@master', `${src}/`);
  const listing = ok('ls', 'many@master:/', '--json');
  assert.ok(listing.length > 1_000_000, `${listing.length} bytes`);
  const entries = JSON.parse(listing) as { path: string }[];
  assert.equal(entries.length, 4000);
  assert.equal(entries.at(-1)!.path, `/${name(3999)}`);
});

it('prints its version, the package\'s', () => {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  for (const flag of ['--version', '-V']) {
    const r = strata([flag]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${pkg.version}\n`);
  }
});
