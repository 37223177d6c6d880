// The demo's training step, run as the executor runs it (a child process with
// $STRATA_PFS and $STRATA_METRICS), on a small synthetic corpus: it must exit
// 0, log through the metrics-file protocol and write a model ONNX Runtime
// loads and that tells obvious spam from obvious ham.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { featurizeText } from '../../src/onnx/featurize.js';
import { readOnnxSignature } from '../../src/onnx/signature.js';

const step = fileURLToPath(new URL('../../demo/steps/train.js', import.meta.url));

const SPAM_WORDS = ['free', 'money', 'cash', 'winner', 'prize', 'click', 'offer', 'viagra', 'credit', 'unsubscribe', 'guaranteed', 'bonus'];
const HAM_WORDS = ['meeting', 'project', 'schedule', 'review', 'code', 'lunch', 'team', 'report', 'patch', 'kernel', 'thanks', 'agenda'];
const SHARED = ['the', 'a', 'to', 'and', 'you', 'is', 'for', 'this', 'on', 'we'];

/** Deterministic corpus: each email mixes its class's words with common words. */
function writeCorpus(pfs: string, perClass: number) {
  let s = 12345;
  const next = (n: number) => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return (s >>> 8) % n;
  };
  for (const [folder, words] of [['spam-1', SPAM_WORDS], ['easy-ham-1', HAM_WORDS]] as const) {
    const dir = join(pfs, 'emails', folder);
    mkdirSync(dir, { recursive: true });
    for (let i = 0; i < perClass; i++) {
      const body = Array.from({ length: 30 }, () => (next(3) === 0 ? SHARED[next(SHARED.length)] : words[next(words.length)])).join(' ');
      writeFileSync(join(dir, `${String(i).padStart(5, '0')}.txt`), `From: someone@example.com\nSubject: message ${i}\n\n${body}\n`, 'latin1');
      // The real corpus has .json metadata beside each email; the step must ignore it.
      writeFileSync(join(dir, `${String(i).padStart(5, '0')}.json`), '{}');
    }
  }
}

type Line = { param?: string; metric?: string; tag?: string; value: unknown; step?: number };

describe('demo train step', () => {
  let work: string;
  let pfs: string;
  let metricsFile: string;
  let result: ReturnType<typeof spawnSync>;

  before(() => {
    work = mkdtempSync(join(tmpdir(), 'strata-train-'));
    pfs = join(work, 'pfs');
    mkdirSync(join(pfs, 'out'), { recursive: true });
    writeCorpus(pfs, 60);
    metricsFile = join(work, 'metrics.jsonl');
    result = spawnSync(process.execPath, [step], {
      env: { ...process.env, STRATA_PFS: pfs, STRATA_METRICS: metricsFile },
      encoding: 'utf8',
      timeout: 60_000,
    });
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  it('exits 0 and prints a line per epoch', () => {
    assert.equal(result.status, 0, String(result.stderr));
    assert.equal(String(result.stdout).match(/^epoch \d+\/5:/gm)?.length, 5, String(result.stdout));
  });

  it('writes a model.onnx that ONNX Runtime loads and that separates obvious spam from obvious ham', async () => {
    const bytes = readFileSync(join(pfs, 'out', 'model.onnx'));
    const sig = readOnnxSignature(bytes);
    assert.deepEqual(sig.inputs[0]!.shape, ['batch', 4096]);
    const session = await ort.InferenceSession.create(bytes);
    try {
      const spam = featurizeText('click here for FREE money! cash prize winner, guaranteed bonus offer', 4096);
      const ham = featurizeText('thanks for the code review, the project meeting agenda and team lunch schedule', 4096);
      const x = new Float32Array(2 * 4096);
      x.set(spam, 0);
      x.set(ham, 4096);
      const out = await session.run({ input: new ort.Tensor('float32', x, [2, 4096]) });
      assert.deepEqual([...(out.label!.data as BigInt64Array)], [1n, 0n]);
      const p = out.probabilities!.data as Float32Array;
      assert.ok(p[1]! > 0.5 && p[2]! > 0.5, `P(spam | spam) = ${p[1]}, P(ham | ham) = ${p[2]}`);
    } finally {
      await session.release();
    }
  });

  it('writes metrics.json and a vocab.json that describes the featurization', () => {
    const metrics = JSON.parse(readFileSync(join(pfs, 'out', 'metrics.json'), 'utf8'));
    for (const key of ['accuracy', 'precision', 'recall', 'f1', 'train_loss']) assert.equal(typeof metrics[key], 'number', key);
    assert.equal(metrics.train_examples + metrics.test_examples, 120);
    assert.ok(metrics.accuracy >= 0.9, `accuracy ${metrics.accuracy}`);
    const vocab = JSON.parse(readFileSync(join(pfs, 'out', 'vocab.json'), 'utf8'));
    assert.equal(vocab.hash, 'fnv1a_32');
    assert.equal(vocab.buckets, 4096);
    assert.equal(vocab.token_pattern, '[a-z0-9]+|[$!]');
    assert.deepEqual(vocab.labels, ['ham', 'spam']);
  });

  it('logs params, per-epoch metrics with steps, final metrics and a tag as JSON lines', () => {
    const lines = readFileSync(metricsFile, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Line);
    const params = Object.fromEntries(lines.filter((l) => l.param).map((l) => [l.param, l.value]));
    assert.deepEqual(
      { epochs: params.epochs, lr: params.lr, features: params.features, l2: params.l2 },
      { epochs: '5', lr: '0.1', features: '4096', l2: '0.0001' },
    );
    for (const value of Object.values(params)) assert.equal(typeof value, 'string');
    for (const name of ['train_loss', 'accuracy']) {
      const points = lines.filter((l) => l.metric === name);
      assert.deepEqual(points.map((l) => l.step), [1, 2, 3, 4, 5], name);
      for (const p of points) assert.ok(typeof p.value === 'number' && Number.isFinite(p.value), `${name} ${p.value}`);
    }
    for (const name of ['precision', 'recall', 'f1']) {
      const points = lines.filter((l) => l.metric === name);
      assert.equal(points.length, 1, name);
      assert.ok(typeof points[0]!.value === 'number' && points[0]!.value >= 0 && points[0]!.value <= 1);
    }
    assert.ok(lines.some((l) => l.tag === 'model_type' && l.value === 'logistic_regression'));
  });

  it('refuses a bad param with exit code 2 naming the variable', () => {
    const bad = spawnSync(process.execPath, [step], {
      env: { ...process.env, STRATA_PFS: pfs, STRATA_METRICS: '', STRATA_PARAM_EPOCHS: 'many' },
      encoding: 'utf8',
    });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /STRATA_PARAM_EPOCHS="many"/);
  });
});
