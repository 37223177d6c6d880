import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkpointText, entryBytes, leafHash, AUTO_CHECKPOINT_EVERY } from '../src/governance/audit.js';
import { ensureInstanceKey, signText } from '../src/governance/keys.js';
import { MerkleBuilder } from '../src/governance/merkle.js';
import { Instance } from '../src/instance.js';
import type { Schema } from '../src/meta/schema.js';

// bench/audit (issue 6): (1) `audit verify` over 1M entries, with a signed
// checkpoint every 1,000 as the live log would have (target <= 10 s); (2) the
// time a 12k-small-file put gains from its one audit append (target <= 10%).
// The 1M entries are bulk-inserted with the same leaves append computes
// (appending them one by one would time SQLite's fsyncs, not the audit code).
// Database: embedded SQLite, or $STRATA_DATABASE (a postgres:// URL).
// Usage: node dist/bench/audit.js [--entries N] [--files N] [--rounds N]

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const ENTRIES = arg('--entries', 1_000_000);
const FILES = arg('--files', 12_000);
const ROUNDS = arg('--rounds', 3);
const work = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'strata-bench-audit-'));
const secs = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const instance = await Instance.init(join(work, '.strata'));
try {
  process.stdout.write(`# bench/audit (${new Date().toISOString()}, node ${process.version}, ${instance.meta.dialect})\n\n`);
  const db = instance.meta.db;

  // ---- (1) verify over ENTRIES entries ----
  let started = process.hrtime.bigint();
  const key = ensureInstanceKey(instance.home);
  const tree = new MerkleBuilder();
  const t0 = Date.now() - ENTRIES;
  const BATCH = 2000;
  for (let from = 1; from <= ENTRIES; from += BATCH) {
    const rows: Schema['audit_entries'][] = [];
    const checkpoints: Schema['audit_checkpoints'][] = [];
    for (let seq = from; seq < from + BATCH && seq <= ENTRIES; seq++) {
      const row = {
        seq,
        time: t0 + seq,
        actor: `user${seq % 50}`,
        action: seq % 3 ? 'file.read' : 'commit.create',
        target: `repo:data${seq % 20}@master:/part-${seq}.csv`,
        outcome: seq % 97 ? 'ok' : 'denied',
        client: '127.0.0.1',
        detail: `{"n":${seq}}`,
        leaf: '',
      };
      const leaf = leafHash(entryBytes(row.seq, row.time, row.actor, row.action, row.target, row.outcome, row.client, row.detail));
      row.leaf = leaf.toString('hex');
      tree.push(leaf);
      rows.push(row);
      if (seq % AUTO_CHECKPOINT_EVERY === 0) {
        const root = tree.root().toString('hex');
        const time = new Date().toISOString();
        checkpoints.push({ size: seq, root, time, public_key: key.publicKeyBase64, signature: signText(key, checkpointText(seq, root, time)), frontier: JSON.stringify(tree.frontier().map((h) => h.toString('hex'))) });
      }
    }
    await db.transaction().execute(async (tx) => {
      for (let i = 0; i < rows.length; i += 500) await tx.insertInto('audit_entries').values(rows.slice(i, i + 500)).execute();
      if (checkpoints.length) await tx.insertInto('audit_checkpoints').values(checkpoints).execute();
    });
  }
  process.stdout.write(`built ${ENTRIES.toLocaleString('en-US')} entries (+ ${Math.floor(ENTRIES / AUTO_CHECKPOINT_EVERY)} checkpoints) in ${secs(started).toFixed(1)} s\n`);
  const userCheckpoint = await instance.audit.checkpoint();
  started = process.hrtime.bigint();
  const result = await instance.audit.verify({ checkpoint: userCheckpoint });
  const verifySecs = secs(started);
  if (!result.ok || result.size !== ENTRIES) throw new Error(`verify failed on an untouched log: ${JSON.stringify(result.problems.slice(0, 3))}`);
  process.stdout.write(`audit verify, ${result.size.toLocaleString('en-US')} entries, ${result.checked_checkpoints} checkpoints: ${verifySecs.toFixed(2)} s (target <= 10 s) ${verifySecs <= 10 ? 'PASS' : 'FAIL'}\n\n`);

  // ---- (2) a 12k-small-file put, with and without its audit append ----
  await instance.data.createRepo({ name: 'bench' });
  const files = () => Array.from({ length: FILES }, (_, i) => ({ op: 'put' as const, path: `/dir${i % 100}/file${i}.txt`, content: randomBytes(200 + (i % 7000)) }));
  const plain: number[] = [];
  const audited: number[] = [];
  const appends: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    // Fresh random content every put, so neither side gains from deduplication.
    for (const withAudit of round % 2 ? [true, false] : [false, true]) {
      const changes = files();
      started = process.hrtime.bigint();
      const put = await instance.data.commit('bench', 'master', changes);
      const a0 = process.hrtime.bigint();
      if (withAudit) {
        await instance.audit.append({ actor: 'bench', action: 'commit.create', target: 'repo:bench@master', outcome: 'ok', detail: { commit: put.commit, files: FILES } });
        appends.push(secs(a0));
      }
      (withAudit ? audited : plain).push(secs(started));
    }
  }
  const p = median(plain);
  const a = median(audited);
  const added = median(appends);
  process.stdout.write(`put of ${FILES.toLocaleString('en-US')} small files: ${p.toFixed(2)} s without audit, ${a.toFixed(2)} s with (medians of ${ROUNDS})\n`);
  process.stdout.write(`the audit append itself: ${(added * 1000).toFixed(2)} ms = ${((added / p) * 100).toFixed(3)}% of the put (target <= 10%) ${added / p <= 0.1 ? 'PASS' : 'FAIL'}\n`);
} finally {
  await instance.close();
  rmSync(work, { recursive: true, force: true });
}
