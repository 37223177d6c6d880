import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { tempDir } from '../fixtures.js';
import { strata } from './run.js';

// Corrupted bytes on disk: fsck exits 1 and names the chunk; reads fail
// instead of returning wrong data.

const dir = tempDir();
after(() => dir.cleanup());
const env = { STRATA_HOME: join(dir.path, '.strata') };

function packFiles(root: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(root, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(join(e.parentPath ?? (e as any).path, e.name));
  }
  return out;
}

it('fsck finds a flipped byte and cat refuses to return it', () => {
  assert.equal(strata(['init'], { env }).code, 0);
  assert.equal(strata(['repo', 'create', 'f'], { env }).code, 0);
  const put = strata(['put', 'f@master:/hello.txt', '-'], { env, input: 'hello, integrity\n' });
  assert.equal(put.code, 0, put.stderr);
  assert.equal(JSON.parse(strata(['fsck', '--json'], { env }).stdout).ok, true);

  const packs = packFiles(join(dir.path, '.strata', 'objects', 'packs'));
  assert.equal(packs.length, 1);
  const bytes = readFileSync(packs[0]!);
  bytes[0] ^= 0xff; // the first byte of the only chunk
  writeFileSync(packs[0]!, bytes);

  const fsck = strata(['fsck', '--json'], { env });
  assert.equal(fsck.code, 1);
  const report = JSON.parse(fsck.stdout);
  assert.equal(report.ok, false);
  assert.ok(report.problems.some((p: any) => p.kind === 'chunk'), fsck.stdout);

  const cat = strata(['cat', 'f@master:/hello.txt'], { env });
  assert.equal(cat.code, 1);
  assert.equal(cat.stdout, '');
  assert.match(cat.stderr, /corrupt|does not match/i);
});
