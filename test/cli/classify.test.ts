// `strata classify` as a user runs it: in-process (a short-lived `put` scans
// what it committed before it exits) and through a running server (which
// scans in the background); --json shapes, labels, custom detectors, errors.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { cli, startServerProcess } from './run.js';
import { tempDir } from '../fixtures.js';

const PERSON = 'Ana Silva <ana.silva@example.com>, phone (415) 555-2671, SSN 078-05-1121\n';
const sha256 = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('strata classify', () => {
  const dir = tempDir('strata-classify-');
  const home = join(dir.path, '.strata');
  const local = cli({ STRATA_HOME: home });
  /** Scan rows stored for a content hash, read straight from the instance's SQLite file. */
  const storedScans = (hash: string) => {
    const db = new Database(join(home, 'strata.db'), { readonly: true });
    try {
      return db.prepare('select status, findings from pii_scans where hash = ?').all(hash) as { status: string; findings: string }[];
    } finally {
      db.close();
    }
  };
  let server: Awaited<ReturnType<typeof startServerProcess>> | undefined;
  before(() => {
    local.ok('init');
    local.ok('repo', 'create', 'people');
    writeFileSync(join(dir.path, 'people.txt'), PERSON.repeat(2));
    writeFileSync(join(dir.path, 'blob.bin'), Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 0, 0, 1]));
  });
  after(async () => {
    await server?.stop();
    dir.cleanup();
  });

  it('scans in the put process before it exits, and shows per-file findings', () => {
    local.ok('put', 'people', join(dir.path, 'people.txt'), join(dir.path, 'blob.bin'));
    assert.deepEqual(
      storedScans(sha256(PERSON.repeat(2))).map((r) => [r.status, JSON.parse(r.findings)]),
      [['scanned', { email: 2, phone: 2, ssn: 2 }]],
      'the short-lived CLI process finished scanning its commit',
    );
    const result = local.json('classify', 'people@master');
    assert.equal(result.repo, 'people');
    assert.match(result.commit, /^[0-9a-f]{64}$/);
    assert.deepEqual(
      result.files.map((f: { path: string; status: string; findings: object }) => [f.path, f.status, f.findings]),
      [
        ['/blob.bin', 'binary', {}],
        ['/people.txt', 'scanned', { email: 2, phone: 2, ssn: 2 }],
      ],
    );
    assert.deepEqual(result.labels, ['pii:email', 'pii:phone', 'pii:ssn']);
    assert.ok(!JSON.stringify(result).includes('ana.silva'), 'never values');
    const human = local.ok('classify', 'people').stdout;
    assert.match(human, /pii:email, pii:phone, pii:ssn/);
    assert.match(human, /\/people\.txt\s+scanned\s+email=2 phone=2 ssn=2/);
    assert.match(human, /\/blob\.bin\s+binary/);
  });

  it('shows labels, and manages custom detectors with --json', () => {
    assert.deepEqual(local.json('classify', 'labels', 'people'), {
      kind: 'repo',
      name: 'people',
      labels: ['pii:email', 'pii:phone', 'pii:ssn'],
      direct: ['pii:email', 'pii:phone', 'pii:ssn'],
      inherited: [],
      declassified: [],
    });
    const added = local.json('classify', 'detector', 'add', 'ticket', 'TICKET-\\d+', '--flags', 'i');
    assert.deepEqual([added.name, added.pattern, added.flags], ['ticket', 'TICKET-\\d+', 'i']);
    assert.deepEqual(local.json('classify', 'detector', 'list').map((d: { name: string }) => d.name), ['ticket']);
    writeFileSync(join(dir.path, 'tickets.txt'), 'ticket-1 and TICKET-22\n');
    local.ok('put', 'people', join(dir.path, 'tickets.txt'));
    assert.deepEqual(local.json('classify', 'people@master:/tickets.txt').totals, { ticket: 2 });
    assert.deepEqual(local.json('classify', 'detector', 'rm', 'ticket'), { removed: 'ticket' });
    assert.deepEqual(local.json('classify', 'detector', 'list'), []);
  });

  it('refuses bad input with exit 2 and a message naming it', () => {
    local.fails(2, ['classify', 'detector', 'add', 'bad', 'a(b'], /custom detector "bad": bad regex \/a\(b\/: Unterminated group/);
    local.fails(2, ['classify', 'detector', 'add', 'slow', '(a+)+$'], /"slow".*too long on adversarial input/);
    local.fails(2, ['classify', 'detector', 'rm', 'nope'], /custom detector "nope" not found/);
    local.fails(2, ['classify'], /missing REF/);
    local.fails(2, ['classify', 'nope@master'], /repo "nope" not found/);
    local.fails(2, ['classify', 'labels', 'thing:x'], /expected REPO, repo:NAME, pipeline:NAME or model:NAME/);
    local.fails(2, ['classify', 'labels', 'model:nope'], /nope/);
  });

  it('works the same through a server, which scans new commits in the background', async () => {
    server = await startServerProcess({ STRATA_HOME: home });
    const remote = cli({ STRATA_HOME: home, STRATA_SERVER: server.url });
    assert.deepEqual(remote.json('classify', 'people@master:/people.txt').totals, { email: 2, phone: 2, ssn: 2 });
    assert.deepEqual(remote.json('classify', 'labels', 'repo:people').labels, ['pii:email', 'pii:phone', 'pii:ssn']);
    remote.json('classify', 'detector', 'add', 'ticket', 'TICKET-\\d+');
    assert.deepEqual(remote.json('classify', 'detector', 'list').map((d: { name: string }) => d.name), ['ticket']);
    remote.fails(2, ['classify', 'detector', 'add', 'ticket', 'x'], /already exists/);
    remote.fails(2, ['classify', 'detector', 'add', 'bad', '[a-'], /custom detector "bad": bad regex/);
    remote.json('classify', 'detector', 'rm', 'ticket');

    const card = 'card 4111 1111 1111 1111\n';
    writeFileSync(join(dir.path, 'card.txt'), card);
    remote.ok('put', 'people', join(dir.path, 'card.txt'));
    let rows = storedScans(sha256(card));
    for (let i = 0; i < 100 && rows.length === 0; i++, rows = storedScans(sha256(card))) await sleep(50);
    assert.deepEqual(rows.map((r) => JSON.parse(r.findings)), [{ credit_card: 1 }], 'the server scanned the commit it received');
  });
});
