import assert from 'node:assert/strict';
import { parseGateRule } from '../../src/tracking/gates.js';
import { after, before, describe, it } from 'node:test';
import type { Instance } from '../../src/instance.js';
import type { Change } from '../../src/data/types.js';
import { Classifier, type AuditSink } from '../../src/governance/classifier.js';
import { backends, rejectsWith } from '../fixtures.js';

// The classification service on a real instance: every commit scanned in the
// background, by content hash and only once, findings per file, binary and
// oversized files, on-demand scans, labels through a two-stage pipeline with
// and without `declassifies`, models inheriting labels, custom detectors.

const put = (path: string, content: string | Uint8Array): Change => ({ op: 'put', path, content: typeof content === 'string' ? new TextEncoder().encode(content) : content });
const sh = (script: string) => ['sh', '-c', script];

// Steps find their inputs under $STRATA_PFS when bubblewrap is missing (unsandboxed), else /pfs.
const PFS = '${STRATA_PFS:-/pfs}';
const CLEAN_STEP = sh(`sed -E 's/<[^>]*>/<redacted>/g; s/card [0-9 ]+/card ****/g' "${PFS}/raw/people.txt" > "${PFS}/out/people.txt"`);
const COPY_STEP = sh(`cp "${PFS}/clean/people.txt" "${PFS}/out/people.txt"`);
const PERSON = 'Ana Silva <ana.silva@example.com>, phone (415) 555-2671, card 4111 1111 1111 1111\n';

for (const backend of await backends()) {
  describe(`PII classification on ${backend.name}`, { skip: backend.skip }, () => {
    let instance: Instance;
    let dispose: () => Promise<void>;
    before(async () => ({ instance, dispose } = await backend.instance()));
    after(async () => dispose?.());

    it('scans each new commit in the background and records counts per file, binary files as binary', async () => {
      await instance.data.createRepo({ name: 'people' });
      const c = await instance.data.commit('people', 'master', [
        put('/a.txt', PERSON.repeat(3)),
        put('/notes.txt', 'nothing personal here, version 1.2.3.4.5\n'),
        put('/photo.bin', Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 13, ...new TextEncoder().encode('x@example.com')])),
      ]);
      await instance.classification.idle();
      const scansAfterCommit = instance.classification.scans;
      assert.ok(scansAfterCommit >= 3, 'the commit was scanned without being asked');
      const result = await instance.classification.classify('people@master');
      assert.equal(instance.classification.scans, scansAfterCommit, 'classify read stored results; nothing rescanned');
      assert.equal(result.commit, c.commit);
      const byPath = Object.fromEntries(result.files.map((f) => [f.path, f]));
      assert.deepEqual(byPath['/a.txt']!.findings, { email: 3, phone: 3, credit_card: 3 });
      assert.equal(byPath['/a.txt']!.status, 'scanned');
      assert.equal(byPath['/a.txt']!.bytes_scanned, PERSON.length * 3);
      assert.deepEqual(byPath['/notes.txt']!.findings, {});
      assert.deepEqual({ status: byPath['/photo.bin']!.status, findings: byPath['/photo.bin']!.findings }, { status: 'binary', findings: {} });
      assert.deepEqual(result.totals, { email: 3, phone: 3, credit_card: 3 });
      assert.deepEqual(result.labels, ['pii:credit_card', 'pii:email', 'pii:phone']);
      // Stored rows hold counts only: no value found in the content appears anywhere in them.
      const rows = await instance.meta.db.selectFrom('pii_scans').selectAll().execute();
      assert.ok(!JSON.stringify(rows).includes('ana.silva'), 'no PII values stored');
      // A path narrows the result.
      assert.deepEqual((await instance.classification.classify('people@master:/a.txt')).files.map((f) => f.path), ['/a.txt']);
    });

    it('never rescans content it has seen, in another commit or repo', async () => {
      const before = instance.classification.scans;
      await instance.data.createRepo({ name: 'copy' });
      await instance.data.commit('copy', 'master', [put('/same.txt', PERSON.repeat(3)), put('/other-name.txt', 'nothing personal here, version 1.2.3.4.5\n')]);
      await instance.data.commit('people', 'master', [put('/new.txt', 'ssn 078-05-1121\n')]);
      await instance.classification.idle();
      assert.equal(instance.classification.scans, before + 1, 'only /new.txt was new content');
      assert.deepEqual((await instance.classification.classify('copy@master')).totals, { email: 3, phone: 3, credit_card: 3 });
      assert.deepEqual((await instance.classification.classify('people@master')).totals, { email: 3, phone: 3, credit_card: 3, ssn: 1 });
      // An older commit keeps its own classification.
      assert.deepEqual((await instance.classification.classify('people@master^')).labels, ['pii:credit_card', 'pii:email', 'pii:phone']);
    });

    it('scans on demand what was not scanned, and truncates at the size cap', async () => {
      // Another classifier, with a small cap: a different ruleset, so nothing is stored for it yet.
      const small = new Classifier(instance.meta.db, instance.data, instance.pipelines, instance.registry, { maxBytes: 1024 });
      await instance.data.commit('people', 'master', [put('/big.txt', PERSON.repeat(100))]);
      await instance.classification.idle();
      const result = await small.classify('people@master:/big.txt');
      const big = result.files[0]!;
      assert.equal(big.status, 'truncated');
      assert.equal(big.bytes_scanned, 1024);
      assert.ok(big.findings.email! >= 11 && big.findings.email! <= 13, `emails in the first KiB: ${big.findings.email}`);
      assert.equal(small.scans, 1);
      await small.classify('people@master:/big.txt');
      assert.equal(small.scans, 1, 'the on-demand result was stored');
    });

    it('propagates labels through a two-stage pipeline, minus what a spec declassifies, and audits it', async () => {
      await instance.data.createRepo({ name: 'raw' });
      await instance.data.commit('raw', 'master', [put('/people.txt', PERSON.repeat(2))]);
      // Stage 1 removes emails and cards (so its own files have only phones); stage 2 copies.
      await instance.pipelines.create({
        pipeline: { name: 'clean' },
        input: { pfs: { repo: 'raw', glob: '/' } },
        transform: { cmd: CLEAN_STEP },
      });
      await instance.pipelines.create({
        pipeline: { name: 'features' },
        input: { pfs: { repo: 'clean', glob: '/' } },
        transform: { cmd: COPY_STEP },
      });
      await instance.scheduler.drain();
      await instance.classification.idle();
      assert.deepEqual((await instance.classification.classify('clean@master')).labels, ['pii:phone'], 'the step removed emails and cards');

      let clean = await instance.classification.labels('pipeline', 'clean');
      assert.deepEqual(clean.direct, ['pii:phone']);
      assert.deepEqual(clean.labels, ['pii:credit_card', 'pii:email', 'pii:phone'], 'without declassifies, the input labels are inherited');
      assert.deepEqual(clean.inherited.map((i) => `${i.label}<${i.from}`), ['pii:credit_card<raw', 'pii:email<raw', 'pii:phone<raw']);
      let features = await instance.classification.labels('repo', 'features');
      assert.deepEqual(features.labels, ['pii:credit_card', 'pii:email', 'pii:phone'], 'transitively, two stages down');
      assert.deepEqual(features.declassified, []);
      // The labels are catalog labels: a search by label finds the repos and pipelines downstream of the PII.
      const mine = new Set(['raw', 'clean', 'features']);
      const labelled = async () =>
        (await instance.catalog.search('', { labels: ['pii:email'] }))
          .filter((h) => mine.has(h.name))
          .map((h) => `${h.kind}:${h.name}`)
          .sort();
      assert.deepEqual(await labelled(), ['pipeline:clean', 'pipeline:features', 'repo:clean', 'repo:features', 'repo:raw']);

      // Declassify emails and cards in stage 1; record who did it.
      const entries: Parameters<AuditSink['append']>[0][] = [];
      const audited = new Classifier(instance.meta.db, instance.data, instance.pipelines, instance.registry, {
        audit: () => ({ append: async (e) => void entries.push(e) }),
      });
      audited.start();
      try {
        await instance.pipelines.create(
          {
            pipeline: { name: 'clean' },
            input: { pfs: { repo: 'raw', glob: '/' } },
            transform: { cmd: CLEAN_STEP },
            declassifies: ['email', 'pii:credit_card'],
          },
          { update: true, creator: 'dana' },
        );
      } finally {
        await audited.close();
      }
      assert.deepEqual(entries, [
        { actor: 'dana', action: 'classification.declassify', target: 'pipeline:clean', outcome: 'ok', detail: { labels: ['pii:credit_card', 'pii:email'] } },
      ]);

      clean = await instance.classification.labels('pipeline', 'clean');
      assert.deepEqual(clean.labels, ['pii:phone']);
      assert.deepEqual(clean.declassified, [
        { label: 'pii:credit_card', by: 'clean' },
        { label: 'pii:email', by: 'clean' },
      ]);
      features = await instance.classification.labels('repo', 'features');
      assert.deepEqual(features.labels, ['pii:phone']);
      assert.deepEqual(features.inherited.map((i) => `${i.label}<${i.from}`), ['pii:phone<clean', 'pii:phone<raw']);
      assert.deepEqual(features.declassified.map((d) => `${d.label}/${d.by}`), ['pii:credit_card/clean', 'pii:email/clean']);
      assert.deepEqual(await labelled(), ['repo:raw'], 'the catalog follows the declassification');
      // The raw repo itself is unchanged by a downstream declassification.
      assert.deepEqual((await instance.classification.labels('repo', 'raw')).labels, ['pii:credit_card', 'pii:email', 'pii:phone']);
    });

    it('gives a model the labels of the commit its version was registered from, and of that repo upstream', async () => {
      await instance.data.commit('features', 'master', [put('/model.bin', Uint8Array.from([0, 1, 2, 3]))]);
      await instance.classification.idle();
      const v = await instance.registry.registerVersion('churn', { from: 'features@master:/model.bin', user: 'ana' });
      const labels = await instance.classification.labels('model', 'churn');
      assert.deepEqual(labels.labels, ['pii:phone']);
      assert.deepEqual(labels.direct, []);
      assert.ok(labels.inherited.some((i) => i.label === 'pii:phone' && i.from === `features@${v.commit}`), JSON.stringify(labels.inherited));
      assert.ok(labels.inherited.some((i) => i.from === 'raw'), 'upstream of the source repo too');
      assert.deepEqual(labels.declassified.map((d) => d.label), ['pii:credit_card', 'pii:email']);
      assert.deepEqual((await instance.classification.labels('model', `churn@${v.version}`)).labels, ['pii:phone']);
      // In the catalog too: a model indexed before its first version gets the labels once a version lands.
      await instance.registry.createModel('churn-next');
      assert.equal((await instance.catalog.inspect('model', 'churn-next')).labels['pii:phone'], undefined);
      await instance.registry.registerVersion('churn-next', { from: 'features@master:/model.bin', user: 'ana' });
      assert.deepEqual((await instance.catalog.search('', { kind: 'model', labels: ['pii:phone'] })).map((h) => h.name).sort(), ['churn', 'churn-next']);
      // A promotion gate can refuse a version by its classification.
      await instance.registry.setGates('churn', 'production', [parseGateRule('no_label:pii:phone')]);
      await rejectsWith(instance.registry.setAlias('churn', 'production', v.version, { actor: 'ana' }), 'POLICY_VIOLATION', /no_label:pii:phone failed: version \d+ carries pii:phone/);
      await instance.registry.setGates('churn', 'production', [parseGateRule('no_label:pii:ssn')]);
      assert.equal((await instance.registry.setAlias('churn', 'production', v.version, { actor: 'ana' })).to_version, v.version);
      await rejectsWith(instance.classification.labels('model', 'nope'), 'NOT_FOUND');
      await rejectsWith(instance.classification.labels('repo', 'nope'), 'NOT_FOUND');
      await rejectsWith(instance.classification.labels('pipeline', 'raw'), 'NOT_FOUND', /pipeline "raw"/);
    });

    it('adds, uses, lists and removes custom detectors; refuses bad ones', async () => {
      await instance.classification.addDetector({ name: 'employee_id', pattern: 'EMP-\\d{5}', flags: 'i', creator: 'ana' });
      await rejectsWith(instance.classification.addDetector({ name: 'employee_id', pattern: 'x' }), 'ALREADY_EXISTS');
      await rejectsWith(instance.classification.addDetector({ name: 'broken', pattern: '[a-' }), 'INVALID_ARGUMENT', /"broken".*bad regex/);
      await rejectsWith(instance.classification.addDetector({ name: 'slow', pattern: '(\\w+\\s?)+$' }), 'INVALID_ARGUMENT', /"slow".*too long/);
      assert.deepEqual((await instance.classification.listDetectors()).map((d) => [d.name, d.pattern, d.flags, d.creator]), [['employee_id', 'EMP-\\d{5}', 'i', 'ana']]);

      await instance.data.createRepo({ name: 'hr' });
      await instance.data.commit('hr', 'master', [put('/staff.txt', 'emp-00042 and EMP-12345 report to ana@example.com\n')]);
      await instance.classification.idle();
      assert.deepEqual((await instance.classification.classify('hr@master')).totals, { email: 1, employee_id: 2 });
      // Content scanned before the detector existed is rescanned with it.
      assert.deepEqual((await instance.classification.classify('people@master:/a.txt')).totals, { email: 3, phone: 3, credit_card: 3 });
      assert.deepEqual((await instance.classification.labels('repo', 'hr')).labels, ['pii:email', 'pii:employee_id']);

      await instance.classification.removeDetector('employee_id');
      await rejectsWith(instance.classification.removeDetector('employee_id'), 'NOT_FOUND');
      assert.deepEqual((await instance.classification.classify('hr@master')).totals, { email: 1 });
    });
  });
}
