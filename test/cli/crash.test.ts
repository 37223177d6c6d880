import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { tempDir } from '../fixtures.js';
import { Instance } from '../../src/instance.js';
import { STRATA_BIN, strata } from './run.js';

// Kills `strata put` with SIGKILL at random moments, 50 times, and checks
// after each kill that the branch is at the old commit or at a complete new
// one, and that fsck finds nothing wrong.

const KILLS = 50;

const dir = tempDir();
let instance: Instance | undefined;
after(async () => {
  await instance?.close();
  dir.cleanup();
});

it(`survives SIGKILL at random points during ${KILLS} puts`, { timeout: 240_000 }, async () => {
  const env = { ...process.env, STRATA_HOME: join(dir.path, '.strata'), STRATA_NO_PROGRESS: '1' };
  const json = (...args: string[]) => {
    const r = strata([...args, '--json'], { env });
    assert.equal(r.code, 0, `strata ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  assert.equal(strata(['init'], { env }).code, 0);
  json('repo', 'create', 'crash');

  // Checks run in this process on the same SQLite file, the way a second user would see it.
  instance = await Instance.open(join(dir.path, '.strata'));
  const data = instance.data;
  let completed = 0;
  let interrupted = 0;
  for (let i = 0; i < KILLS; i++) {
    // A fresh payload each round: many small files plus two multi-chunk ones.
    const src = join(dir.path, `round-${i}`);
    mkdirSync(join(src, 'small'), { recursive: true });
    for (let f = 0; f < 150; f++) writeFileSync(join(src, 'small', `${f}.txt`), `${i}:${f}:${randomBytes(200).toString('hex')}`);
    writeFileSync(join(src, 'big1.bin'), randomBytes(2 << 20));
    writeFileSync(join(src, 'big2.bin'), randomBytes(3 << 20));

    const oldHead = (await data.inspectRepo('crash')).head;
    const child = spawn(process.execPath, [STRATA_BIN, 'put', 'crash@master', `${src}/`, '-m', `round ${i}`], { env, stdio: 'ignore' });
    const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
    const delay = 100 + Math.random() * 400; // start-up takes ~250 ms, the put a few hundred more
    const timer = setTimeout(() => child.kill('SIGKILL'), delay);
    const code = await exited;
    clearTimeout(timer);
    if (code === 0) completed++;
    else interrupted++;

    const head = (await data.inspectRepo('crash')).head;
    if (head !== oldHead) {
      const commit = await data.inspectCommit(`crash@${head}`);
      assert.deepEqual(commit.parents, oldHead ? [oldHead] : [], `round ${i}: new head must sit directly on the old one`);
      assert.equal(commit.message, `round ${i}`);
      assert.equal((await data.ls('crash@master:/small')).length, 150, `round ${i}: a landed commit holds every file`);
      const { stream } = await data.read('crash@master:/big2.bin');
      let bytes = 0;
      for await (const b of stream) bytes += b.length;
      assert.equal(bytes, 3 << 20);
    }
    if (i % 10 === 9) {
      const fsck = await data.fsck();
      assert.deepEqual(fsck.problems, [], `round ${i}`);
    }
  }
  const fsck = strata(['fsck', '--json'], { env });
  assert.equal(fsck.code, 0, `final fsck failed: ${fsck.stdout}`);
  assert.equal(JSON.parse(fsck.stdout).ok, true);
  console.log(`crash test: ${completed} puts completed, ${interrupted} killed mid-way`);
  assert.ok(interrupted >= 5, `expected most rounds to be interrupted, got ${interrupted}`);
});
