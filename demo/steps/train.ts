import { appendFileSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { logisticRegressionModel } from '../../src/onnx/build.js';
import { emailBody, featurizerSpec, fnv1a32, sparseFeatures, type SparseFeatures } from '../../src/onnx/featurize.js';

// Pipeline step of the demo's `train` pipeline: a spam classifier over the
// whole `emails` input (/pfs/emails/<folder>/*.txt; spam iff the folder name
// starts with "spam"). Hashed bag-of-words of the body (src/onnx/featurize.ts)
// + logistic regression trained with mini-batch AdamW, in plain JS.
//
// Deterministic: a fixed-seed shuffle, and an 80/20 train/test split by the
// hash of each email's path inside the input, so an email stays on its side
// of the split when others are added or removed.
//
// Writes /pfs/out/model.onnx (inputs float[batch, features] -> probabilities
// [P(ham), P(spam)] and label, 1 = spam), metrics.json and vocab.json (how to
// featurize a request the same way). Logs params, per-epoch metrics and a tag
// through the metrics-file protocol ($STRATA_METRICS) when it is set.

const pfs = process.env.STRATA_PFS ?? '/pfs';
const emailsDir = join(pfs, 'emails');
const outDir = join(pfs, 'out');
const LABELS = ['ham', 'spam'] as const;

function fail(message: string, exitCode: number): never {
  process.stderr.write(`train: ${message}\n`);
  process.exit(exitCode);
}

function param(name: string, fallback: number, valid: (v: number) => boolean, what: string): { value: number; raw: string } {
  const env = `STRATA_PARAM_${name.toUpperCase()}`;
  const raw = process.env[env]?.trim();
  if (raw === undefined || raw === '') return { value: fallback, raw: String(fallback) };
  const value = Number(raw);
  if (!Number.isFinite(value) || !valid(value)) fail(`${env}=${JSON.stringify(raw)}: expected ${what}`, 2);
  return { value, raw };
}

const params = {
  epochs: param('epochs', 5, (v) => Number.isInteger(v) && v >= 1 && v <= 1000, 'an integer from 1 to 1000'),
  lr: param('lr', 0.1, (v) => v > 0 && v <= 10, 'a learning rate in (0, 10]'),
  features: param('features', 4096, (v) => Number.isInteger(v) && v >= 2 && v <= 1 << 20, 'an integer from 2 to 1048576'),
  l2: param('l2', 1e-4, (v) => v >= 0 && v < 1, 'an L2 penalty in [0, 1)'),
  batch_size: param('batch_size', 32, (v) => Number.isInteger(v) && v >= 1 && v <= 65536, 'an integer from 1 to 65536'),
  seed: param('seed', 42, (v) => Number.isInteger(v) && v >= 0 && v < 2 ** 32, 'an integer from 0 to 2^32-1'),
};
const epochs = params.epochs.value;
const lr = params.lr.value;
const buckets = params.features.value;
const l2 = params.l2.value;
const batchSize = params.batch_size.value;

// ---- metrics-file protocol ----------------------------------------------------

const metricsFile = process.env.STRATA_METRICS;
function log(record: Record<string, string | number>): void {
  if (metricsFile) appendFileSync(metricsFile, JSON.stringify(record) + '\n');
}

for (const [name, p] of Object.entries(params)) log({ param: name, value: p.raw });
log({ param: 'optimizer', value: 'adamw' });
log({ tag: 'model_type', value: 'logistic_regression' });

// ---- data -----------------------------------------------------------------------

interface Example {
  x: SparseFeatures;
  y: 0 | 1;
}

const started = performance.now();
if (!existsSync(emailsDir) || !statSync(emailsDir).isDirectory()) {
  fail(`no input at ${emailsDir}: the pipeline needs the emails repo as input "emails"`, 1);
}
const train: Example[] = [];
const test: Example[] = [];
for (const folder of readdirSync(emailsDir).sort()) {
  const dir = join(emailsDir, folder);
  if (!statSync(dir).isDirectory()) continue;
  const y = folder.startsWith('spam') ? 1 : 0;
  for (const name of readdirSync(dir).sort()) {
    if (!name.endsWith('.txt')) continue;
    const raw = readFileSync(join(dir, name), 'latin1');
    const example: Example = { x: sparseFeatures(emailBody(raw), buckets), y };
    (fnv1a32(`${folder}/${name}`) % 5 === 0 ? test : train).push(example);
  }
}
if (train.length === 0) fail(`no emails found under ${emailsDir}/<folder>/*.txt`, 1);
const trainSpam = train.filter((e) => e.y === 1).length;
if (trainSpam === 0 || trainSpam === train.length) {
  fail(`the training set needs both classes; it has ${trainSpam} spam and ${train.length - trainSpam} ham`, 1);
}
// A tiny corpus may hash nothing into the test set; evaluate on the training set then, and say so.
const evalSet = test.length > 0 ? test : train;
console.log(
  `train: ${train.length} train / ${test.length} test emails (${trainSpam} spam in train), ` +
    `${buckets} buckets, featurized in ${((performance.now() - started) / 1000).toFixed(1)}s` +
    (test.length === 0 ? '; no test emails, evaluating on the training set' : ''),
);

// ---- model -----------------------------------------------------------------------

const w = new Float32Array(buckets);
let b = 0;

function logit(x: SparseFeatures): number {
  let z = b;
  for (let i = 0; i < x.indices.length; i++) z += w[x.indices[i]!]! * x.values[i]!;
  return z;
}

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

/** Log-loss of one example from its logit, stable for large |z|. */
function logLoss(z: number, y: number): number {
  return Math.max(z, 0) - z * y + Math.log1p(Math.exp(-Math.abs(z)));
}

function evaluate(examples: Example[]) {
  let tp = 0, fp = 0, tn = 0, fn = 0, loss = 0;
  for (const e of examples) {
    const z = logit(e.x);
    loss += logLoss(z, e.y);
    const predicted = z > 0 ? 1 : 0; // P(spam) > 0.5, as the model's ArgMax decides
    if (predicted === 1 && e.y === 1) tp++;
    else if (predicted === 1) fp++;
    else if (e.y === 0) tn++;
    else fn++;
  }
  const precision = tp + fp ? tp / (tp + fp) : 0;
  const recall = tp + fn ? tp / (tp + fn) : 0;
  return {
    accuracy: (tp + tn) / examples.length,
    precision,
    recall,
    f1: precision + recall ? (2 * precision * recall) / (precision + recall) : 0,
    loss: loss / examples.length,
  };
}

/** mulberry32: a small seeded PRNG, so the shuffle order is reproducible. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// AdamW: Adam steps on the mean mini-batch gradient of log-loss, plus decoupled
// weight decay lr·l2·w (on the weights, not the bias). Decoupled decay keeps the
// penalty from being rescaled away by Adam's per-coordinate step sizes.
const beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
const grad = new Float32Array(buckets);
const m = new Float32Array(buckets), v = new Float32Array(buckets);
let mb = 0, vb = 0, t = 0;
const random = rng(params.seed.value);
const order = Array.from(train.keys());
let final = evaluate(evalSet);
let trainLoss = 0;

for (let epoch = 1; epoch <= epochs; epoch++) {
  const epochStart = performance.now();
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  let lossSum = 0;
  for (let start = 0; start < order.length; start += batchSize) {
    const end = Math.min(start + batchSize, order.length);
    grad.fill(0);
    let gb = 0;
    for (let k = start; k < end; k++) {
      const e = train[order[k]!]!;
      const z = logit(e.x);
      lossSum += logLoss(z, e.y);
      const err = sigmoid(z) - e.y;
      gb += err;
      for (let i = 0; i < e.x.indices.length; i++) grad[e.x.indices[i]!]! += err * e.x.values[i]!;
    }
    const scale = 1 / (end - start);
    t++;
    const c1 = 1 - beta1 ** t, c2 = 1 - beta2 ** t;
    for (let j = 0; j < buckets; j++) {
      const g = grad[j]! * scale;
      m[j] = beta1 * m[j]! + (1 - beta1) * g;
      v[j] = beta2 * v[j]! + (1 - beta2) * g * g;
      w[j]! -= lr * ((m[j]! / c1) / (Math.sqrt(v[j]! / c2) + eps) + l2 * w[j]!);
    }
    gb *= scale;
    mb = beta1 * mb + (1 - beta1) * gb;
    vb = beta2 * vb + (1 - beta2) * gb * gb;
    b -= (lr * (mb / c1)) / (Math.sqrt(vb / c2) + eps);
  }
  trainLoss = lossSum / order.length;
  final = evaluate(evalSet);
  log({ metric: 'train_loss', value: trainLoss, step: epoch });
  log({ metric: 'test_loss', value: final.loss, step: epoch });
  log({ metric: 'accuracy', value: final.accuracy, step: epoch });
  console.log(
    `epoch ${epoch}/${epochs}: train_loss ${trainLoss.toFixed(4)}  test_loss ${final.loss.toFixed(4)}  ` +
      `accuracy ${final.accuracy.toFixed(4)}  (${((performance.now() - epochStart) / 1000).toFixed(2)}s)`,
  );
}

log({ metric: 'precision', value: final.precision, step: epochs });
log({ metric: 'recall', value: final.recall, step: epochs });
log({ metric: 'f1', value: final.f1, step: epochs });

// ---- outputs ---------------------------------------------------------------------

const featurizer = { ...featurizerSpec(buckets), input: 'email body: the text after the first blank line' };
writeFileSync(
  join(outDir, 'model.onnx'),
  logisticRegressionModel({
    weights: w,
    bias: b,
    features: buckets,
    metadata: { labels: JSON.stringify(LABELS), featurizer: JSON.stringify(featurizer) },
  }),
);
writeFileSync(
  join(outDir, 'vocab.json'),
  JSON.stringify({ ...featurizer, model_input: 'input', labels: LABELS }, null, 2) + '\n',
);
const seconds = (performance.now() - started) / 1000;
writeFileSync(
  join(outDir, 'metrics.json'),
  JSON.stringify(
    {
      accuracy: final.accuracy,
      precision: final.precision,
      recall: final.recall,
      f1: final.f1,
      train_loss: trainLoss,
      test_loss: final.loss,
      evaluated_on: test.length > 0 ? 'test' : 'train',
      train_examples: train.length,
      test_examples: test.length,
      epochs,
      features: buckets,
    },
    null,
    2,
  ) + '\n',
);
console.log(
  `train: accuracy ${final.accuracy.toFixed(4)} precision ${final.precision.toFixed(4)} recall ${final.recall.toFixed(4)} ` +
    `f1 ${final.f1.toFixed(4)}; wrote model.onnx, vocab.json, metrics.json in ${seconds.toFixed(1)}s`,
);
