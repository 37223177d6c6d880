// The catalog over each metadata backend: ranking, column and label search,
// staleness across instance handles, README and schemas, annotations,
// derived labels, lineage neighbours and bad input.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sql } from 'kysely';
import { Instance } from '../../src/instance.js';
import { logisticRegressionModel } from '../../src/onnx/build.js';
import { backends, rejectsWith } from '../fixtures.js';

const put = (instance: Instance, repo: string, files: Record<string, string>) =>
  instance.data.commit(
    repo,
    'master',
    Object.entries(files).map(([path, text]) => ({ op: 'put' as const, path, content: Buffer.from(text) })),
  );

const names = (hits: { kind: string; name: string }[]) => hits.map((h) => `${h.kind}:${h.name}`);

describe('catalog', async () => {
  for (const backend of await backends()) {
    const test = (name: string, fn: (instance: Instance, home: string) => Promise<void>) =>
      it(`${name} (${backend.name})`, { skip: backend.skip }, async () => {
        const { instance, home, dispose } = await backend.instance();
        try {
          await fn(instance, home);
        } finally {
          await dispose();
        }
      });

    test('ranks a name match above a description match, and reports the matched fields', async (instance) => {
      await instance.data.createRepo({ name: 'archive', description: 'old emails from 2019 and other things' });
      await instance.data.createRepo({ name: 'emails', description: 'inbox dump' });
      await instance.data.createRepo({ name: 'images', description: 'cats' });
      const hits = await instance.catalog.search('emails');
      assert.deepEqual(names(hits), ['repo:emails', 'repo:archive']);
      assert.ok(hits[0]!.score > hits[1]!.score);
      assert.deepEqual(hits[0]!.matched, ['name']);
      assert.deepEqual(hits[1]!.matched, ['description']);
      assert.equal(hits[1]!.description, 'old emails from 2019 and other things');
      // The last word is a prefix; every word must match.
      assert.deepEqual(names(await instance.catalog.search('emai')), ['repo:emails', 'repo:archive']);
      assert.deepEqual(names(await instance.catalog.search('old emai')), ['repo:archive']);
      assert.deepEqual(await instance.catalog.search('nothing-like-this'), []);
    });

    test('finds a repo by a column of its CSV or JSON-lines files, and shows the schemas and README', async (instance) => {
      await instance.data.createRepo({ name: 'customers', owner: 'ann' });
      await instance.data.createRepo({ name: 'other' });
      await put(instance, 'customers', {
        '/README.md': '# Customers\n\nOne row per customer, refreshed nightly from the CRM.\n',
        '/data/people.csv': 'customer_id,email_address,signup_date\n1,a@example.com,2024-01-02\n',
        '/events/clicks.jsonl': '{"session":"s1","clicked_at":"2024-01-02T00:00:00Z","x":1}\n',
        '/blob.bin': 'not a table',
      });
      await instance.catalog.drain();
      for (const q of ['email_address', 'email address', 'signup', 'clicked_at']) {
        const hits = await instance.catalog.search(q);
        assert.deepEqual(names(hits), ['repo:customers'], q);
        assert.ok(hits[0]!.matched.includes('columns'), q);
      }
      const byReadme = await instance.catalog.search('nightly CRM');
      assert.deepEqual(names(byReadme), ['repo:customers']);
      assert.deepEqual(byReadme[0]!.matched, ['readme']);
      assert.deepEqual((await instance.catalog.search('customers nightly'))[0]!.matched, ['name', 'readme']);
      const details = await instance.catalog.inspect('repo', 'customers');
      assert.match(details.readme!, /refreshed nightly/);
      assert.deepEqual(Object.keys(details.schemas).sort(), ['/data/people.csv', '/events/clicks.jsonl']);
      assert.deepEqual(
        details.schemas['/data/people.csv']!.columns.map((c) => [c.name, c.type]),
        [
          ['customer_id', 'integer'],
          ['email_address', 'string'],
          ['signup_date', 'timestamp'],
        ],
      );
      assert.deepEqual(details.owners, ['ann']);
      // The README goes when it is deleted.
      await instance.data.commit('customers', 'master', [{ op: 'delete', path: '/README.md' }]);
      await instance.catalog.drain();
      assert.equal((await instance.catalog.inspect('repo', 'customers')).readme, null);
    });

    test('indexes huge and binary table files within bounds, without failing', async (instance) => {
      await instance.data.createRepo({ name: 'bulk' });
      const big = 'row_id,payload\n' + Array.from({ length: 150_000 }, (_, i) => `${i},${'x'.repeat(20)}`).join('\n') + '\n';
      assert.ok(big.length > 3 * 1024 * 1024);
      await instance.data.commit('bulk', 'master', [
        { op: 'put', path: '/big.csv', content: Buffer.from(big) },
        { op: 'put', path: '/image.csv', content: Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0x00, 0x1a, 0x0a, 0xff]) },
        { op: 'put', path: '/broken.jsonl', content: Buffer.from('{"a": 1\n') },
      ]);
      await instance.catalog.drain();
      const { schemas } = await instance.catalog.inspect('repo', 'bulk');
      assert.equal(schemas['/big.csv']!.truncated, true);
      assert.equal(schemas['/big.csv']!.rows, 1000);
      assert.deepEqual(schemas['/big.csv']!.columns.map((c) => `${c.name}:${c.type}`), ['row_id:integer', 'payload:string']);
      assert.match(schemas['/image.csv']!.error!, /binary/);
      assert.match(schemas['/broken.jsonl']!.error!, /not JSON lines/);
      assert.deepEqual(names(await instance.catalog.search('row_id')), ['repo:bulk']);
    });

    test('filters by label value and label presence, and by kind', async (instance) => {
      await instance.data.createRepo({ name: 'sales-eu', labels: { team: 'growth', region: 'eu' } });
      await instance.data.createRepo({ name: 'sales-us', labels: { team: 'growth' } });
      await instance.data.createRepo({ name: 'sales-raw', labels: { team: 'infra' } });
      await instance.registry.createModel('sales-forecast', { description: 'predicts sales', tags: { team: 'growth' } });
      const growth = names(await instance.catalog.search('sales', { labels: ['team=growth'] })).sort();
      assert.deepEqual(growth, ['model:sales-forecast', 'repo:sales-eu', 'repo:sales-us']);
      assert.deepEqual(names(await instance.catalog.search('sales', { labels: ['team=growth'], kind: 'repo' })).sort(), ['repo:sales-eu', 'repo:sales-us']);
      assert.deepEqual(names(await instance.catalog.search('sales', { labels: ['region'] })), ['repo:sales-eu']);
      assert.deepEqual(names(await instance.catalog.search('', { labels: ['team=infra'] })), ['repo:sales-raw']);
      // A label is searchable as text too.
      assert.deepEqual(names(await instance.catalog.search('infra')), ['repo:sales-raw']);
      assert.deepEqual(names(await instance.catalog.search('sales', { kind: 'model' })), ['model:sales-forecast']);
    });

    test('picks up changes another instance handle made, and forgets deleted entities with their annotations', async (instance, home) => {
      await instance.data.createRepo({ name: 'logs' });
      assert.deepEqual(await instance.catalog.search('latency_ms'), []);
      const other = await Instance.open(home);
      try {
        // No commit listener in that handle: only the search-time sync can see this commit.
        other.catalog.unwatch();
        await put(other, 'logs', { '/requests.csv': 'path,latency_ms\n/a,12\n' });
        await other.data.createRepo({ name: 'late', description: 'made elsewhere' });
      } finally {
        await other.close();
      }
      assert.deepEqual(names(await instance.catalog.search('latency_ms')), ['repo:logs']);
      assert.deepEqual(names(await instance.catalog.search('elsewhere')), ['repo:late']);

      await instance.catalog.annotate('repo', 'logs', { labels: { tier: 'gold' } });
      assert.deepEqual(names(await instance.catalog.search('', { labels: ['tier=gold'] })), ['repo:logs']);
      await instance.data.deleteRepo('logs');
      assert.deepEqual(await instance.catalog.search('latency_ms'), []);
      const left = await instance.meta.db.selectFrom('catalog_annotations').select('name').execute();
      assert.deepEqual(left, []);
      await instance.data.createRepo({ name: 'logs' });
      assert.deepEqual((await instance.catalog.inspect('repo', 'logs')).labels, {}, 'a new repo of the same name starts clean');
    });

    test('annotations override description and owners, add labels and hide the entity’s own', async (instance) => {
      await instance.data.createRepo({ name: 'tx', description: 'transactions', owner: 'bob', labels: { stale: 'yes', team: 'pay' } });
      const after = await instance.catalog.annotate('repo', 'tx', {
        description: 'card transactions, deduplicated',
        owners: ['carol', 'dan'],
        labels: { domain: 'finance' },
        unlabel: ['stale'],
      });
      assert.equal(after.description, 'card transactions, deduplicated');
      assert.deepEqual(after.owners, ['carol', 'dan']);
      assert.deepEqual(after.labels, { team: 'pay', domain: 'finance' });
      assert.deepEqual(after.annotations, { description: 'card transactions, deduplicated', owners: ['carol', 'dan'], labels: { domain: 'finance' }, unlabel: ['stale'] });
      assert.deepEqual(names(await instance.catalog.search('carol')), ['repo:tx']);
      assert.deepEqual((await instance.catalog.search('carol'))[0]!.matched, ['owners']);
      assert.deepEqual(await instance.catalog.search('', { labels: ['stale'] }), []);
      // A later annotation keeps what earlier ones set.
      const again = await instance.catalog.annotate('repo', 'tx', { labels: { stale: 'no' } });
      assert.deepEqual(again.labels, { team: 'pay', domain: 'finance', stale: 'no' });
      assert.deepEqual(again.owners, ['carol', 'dan']);
    });

    test('labels from a registered source are searchable and filterable; classification shows on inspect', async (instance) => {
      await instance.data.createRepo({ name: 'contacts' });
      await instance.data.createRepo({ name: 'weather' });
      assert.deepEqual(names(await instance.catalog.search('contacts')), ['repo:contacts']);
      instance.catalog.addLabelSource(async (kind, name): Promise<Record<string, string>> => (kind === 'repo' && name === 'contacts' ? { 'pii:email': 'true' } : {}));
      instance.catalog.setClassificationProvider(async (kind, name) => ({ entity: `${kind}:${name}`, pii: name === 'contacts' ? ['email'] : [] }));
      // Entries indexed before the source answered differently are rebuilt once invalidated.
      assert.deepEqual(await instance.catalog.search('', { labels: ['pii:email'] }), []);
      await instance.catalog.invalidate('repo', 'contacts');
      assert.deepEqual(names(await instance.catalog.search('', { labels: ['pii:email'] })), ['repo:contacts']);
      assert.deepEqual(names(await instance.catalog.search('pii')), ['repo:contacts']);
      const details = await instance.catalog.inspect('repo', 'contacts');
      assert.equal(details.labels['pii:email'], 'true');
      assert.deepEqual(details.classification, { entity: 'repo:contacts', pii: ['email'] });
    });

    test('inspect shows lineage neighbours of repos, pipelines, models and deployments', async (instance) => {
      await instance.data.createRepo({ name: 'raw' });
      await put(instance, 'raw', { '/a.txt': 'x' });
      await instance.pipelines.create(
        { pipeline: { name: 'clean' }, description: 'cleans raw', input: { pfs: { repo: 'raw', glob: '/*' } }, transform: { cmd: ['true'] } },
        { creator: 'erin' },
      );
      const model = logisticRegressionModel({ weights: Float32Array.of(1, 2), bias: 0, features: 2 });
      await instance.data.commit('clean', 'master', [{ op: 'put', path: '/model.onnx', content: model }]);
      await instance.registry.registerVersion('scorer', { from: 'clean@master:/model.onnx' });
      await instance.serving.deployments.create({ name: 'scorer-api', model: 'scorer@1', creator: 'frank' });

      const raw = await instance.catalog.inspect('repo', 'raw');
      assert.deepEqual(raw.lineage, { upstream: [], downstream: [{ kind: 'pipeline', name: 'clean' }] });
      const pipeline = await instance.catalog.inspect('pipeline', 'clean');
      assert.equal(pipeline.description, 'cleans raw');
      assert.deepEqual(pipeline.owners, ['erin']);
      assert.deepEqual(pipeline.lineage, { upstream: [{ kind: 'repo', name: 'raw' }], downstream: [{ kind: 'repo', name: 'clean' }] });
      const out = await instance.catalog.inspect('repo', 'clean');
      assert.deepEqual(out.lineage, { upstream: [{ kind: 'pipeline', name: 'clean' }], downstream: [{ kind: 'model', name: 'scorer' }] });
      const scorer = await instance.catalog.inspect('model', 'scorer');
      assert.deepEqual(scorer.lineage, { upstream: [{ kind: 'repo', name: 'clean' }], downstream: [{ kind: 'deployment', name: 'scorer-api' }] });
      const deployment = await instance.catalog.inspect('deployment', 'scorer-api');
      assert.deepEqual(deployment.owners, ['frank']);
      assert.deepEqual(deployment.lineage, { upstream: [{ kind: 'model', name: 'scorer' }], downstream: [] });
      assert.deepEqual(names(await instance.catalog.search('frank')), ['deployment:scorer-api']);
      assert.equal(names(await instance.catalog.search('cleans'))[0], 'pipeline:clean');
    });

    test('refuses bad input with clear errors', async (instance) => {
      await instance.data.createRepo({ name: 'x' });
      await rejectsWith(instance.catalog.search(''), 'INVALID_ARGUMENT', /empty search query/);
      await rejectsWith(instance.catalog.search('  ,, '), 'INVALID_ARGUMENT', /empty search query/);
      await rejectsWith(instance.catalog.search('x', { kind: 'table' }), 'INVALID_ARGUMENT', /unknown catalog kind "table"/);
      await rejectsWith(instance.catalog.search('x', { labels: ['=v'] }), 'INVALID_ARGUMENT', /label filter "=v"/);
      await rejectsWith(instance.catalog.inspect('repo', 'nope'), 'NOT_FOUND', /repo "nope" not found/);
      await rejectsWith(instance.catalog.inspect('widget', 'x'), 'INVALID_ARGUMENT', /unknown catalog kind/);
      await rejectsWith(instance.catalog.annotate('model', 'x', { description: 'd' }), 'NOT_FOUND', /model "x" not found/);
      await rejectsWith(instance.catalog.annotate('repo', 'x', { labels: { 'bad key': 'v' } }), 'INVALID_ARGUMENT', /label key "bad key"/);
      await rejectsWith(instance.catalog.annotate('repo', 'x', { owners: [''] }), 'INVALID_ARGUMENT', /owners/);
      // Query syntax of the underlying engines is not exposed: quotes and operators are just text.
      assert.deepEqual(names(await instance.catalog.search('"x" (* -')), ['repo:x']);
    });

    test('searches 10k entries well under 100 ms once indexed', async (instance) => {
      const N = 10_000;
      const rows = Array.from({ length: N }, (_, i) => ({
        name: `ds-${i}`,
        description: `dataset number ${i} about ${['sales', 'weather', 'clicks', 'emails'][i % 4]}`,
        owner: `owner${i % 50}`,
        labels: JSON.stringify({ team: `t${i % 20}` }),
        created_at: new Date().toISOString(),
      }));
      for (let i = 0; i < N; i += 500) {
        await instance.meta.db.insertInto('repos').values(rows.slice(i, i + 500)).execute();
        await instance.meta.db.insertInto('branches').values(rows.slice(i, i + 500).map((r) => ({ repo: r.name, name: 'master', head: null }))).execute();
      }
      const t0 = performance.now();
      assert.equal(await instance.catalog.sync(), N);
      const indexMs = performance.now() - t0;
      const timings: number[] = [];
      for (const q of ['emails', 'emai', 'dataset number', 'owner3', 'ds 9983']) {
        const t = performance.now();
        const hits = await instance.catalog.search(q, { labels: ['team=t3'] });
        timings.push(performance.now() - t);
        assert.ok(hits.length > 0, q);
      }
      timings.sort((a, b) => a - b);
      const median = timings[2]!;
      console.log(`# ${backend.name}: indexed ${N} entries in ${indexMs.toFixed(0)} ms; search median ${median.toFixed(1)} ms, max ${timings[4]!.toFixed(1)} ms`);
      assert.ok(median < 100, `median search took ${median} ms`);
      const count = await sql<{ n: number }>`select count(*) as n from catalog_entries`.execute(instance.meta.db);
      assert.equal(Number(count.rows[0]!.n), N);
    });
  }
});
