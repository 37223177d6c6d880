import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Instance } from '../../src/instance.js';
import { tempDir, until } from '../fixtures.js';
import { cli, STRATA_BIN } from './run.js';

// The CLI's default: a put returns once its data is committed, and a detached
// `strata index` scans it for PII and updates the catalog afterwards.


describe('strata index', () => {
  it('runs detached after a put (STRATA_INDEX=background) and can be run by hand', async () => {
    const dir = tempDir('strata-index-');
    const home = join(dir.path, '.strata');
    const files = tempDir('strata-index-files-');
    const background = cli({ STRATA_HOME: home, STRATA_SERVER: '', STRATA_INDEX: 'background' });
    background.ok('init');
    background.ok('repo', 'create', 'people');
    writeFileSync(join(files.path, 'contacts.csv'), 'name,email\nann,ann@example.com\n');
    const put = background.json('put', 'people', join(files.path, 'contacts.csv'));

    // The put has exited; its commit gets scanned by the process it left behind.
    const scanned = async () => {
      const instance = await Instance.open(home);
      try {
        const rows = await instance.meta.db.selectFrom('pii_scans').select('findings').execute();
        const entry = await instance.meta.db.selectFrom('catalog_entries').select('name').where('name', '=', 'people').executeTakeFirst();
        return rows.length === 1 && entry ? rows[0]!.findings : undefined;
      } finally {
        await instance.close();
      }
    };
    assert.deepEqual(JSON.parse(await until('the background scan', 20_000, scanned)), { email: 1 });

    // By hand: every repo's head by default, or the refs given; --json says what it found.
    const wait = cli({ STRATA_HOME: home, STRATA_SERVER: '', STRATA_INDEX: 'wait' });
    const all = wait.json('index');
    assert.deepEqual(all.commits, [{ ref: `people@${put.commit}`, files: 1, labels: ['pii:email'] }]);
    assert.match(wait.ok('index', 'people@master').stdout, /people@[0-9a-f]{12}: 1 file\(s\), pii:email/);
    assert.deepEqual(wait.json('catalog', 'search', '--label', 'pii:email').map((h: { name: string }) => h.name), ['people']);
    // One indexer at a time: a live holder of index.lock makes the next one wait; a dead holder's lock is void.
    const lock = join(home, 'index.lock');
    writeFileSync(lock, String(process.pid));
    const waiting = spawn(process.execPath, [STRATA_BIN, 'index', '--quiet'], { env: { ...process.env, STRATA_HOME: home, STRATA_SERVER: '' }, stdio: 'ignore' });
    const exited = new Promise<number | null>((done) => waiting.once('exit', done));
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(waiting.exitCode, null, 'still waiting for the lock');
    rmSync(lock);
    assert.equal(await exited, 0);
    assert.equal(existsSync(lock), false, 'released');
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
    writeFileSync(lock, dead);
    wait.ok('index', '--quiet');
    assert.equal(existsSync(lock), false);

    cli({ STRATA_HOME: home, STRATA_SERVER: '', STRATA_INDEX: 'later' }).fails(2, ['ls', 'people'], /STRATA_INDEX must be "background" \(default\) or "wait"/);
    cli({ STRATA_HOME: home, STRATA_SERVER: 'http://127.0.0.1:9' }).fails(2, ['index'], /works on a local instance/);
    wait.fails(2, ['index', 'nosuchrepo@master'], /not found/);
  });
});
