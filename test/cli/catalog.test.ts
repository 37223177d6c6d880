// `strata catalog search|inspect|set` as a user runs them: in-process and
// through a running server, on each metadata backend. Every command is a
// separate process, so indexing started by a commit must finish before the
// process exits, and a search must see what other processes changed.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { backends, tempDir } from '../fixtures.js';
import { cli, startServerProcess } from './run.js';

describe('strata catalog', async () => {
  for (const backend of await backends()) {
    it(`searches, inspects and annotates locally and over HTTP (${backend.name})`, { skip: backend.skip }, async () => {
      const { home, dispose } = await backend.instance();
      const files = tempDir('strata-catalog-files-');
      const env: NodeJS.ProcessEnv = { STRATA_HOME: home, STRATA_SERVER: '' };
      const { ok, json, fails } = cli(env);
      let server: Awaited<ReturnType<typeof startServerProcess>> | undefined;
      try {
        ok('repo', 'create', 'customers', '--description', 'CRM export', '--owner', 'ann', '--label', 'team=growth');
        ok('repo', 'create', 'email-archive', '--description', 'raw mailbox');
        ok('repo', 'create', 'weather', '--description', 'mentions customers in passing');
        writeFileSync(join(files.path, 'people.csv'), 'customer_id,email_address,signup_date\n1,a@example.com,2024-01-02\n');
        writeFileSync(join(files.path, 'README.md'), '# Customers\n\nOne row per customer, from the nightly CRM export.\n');
        ok('put', 'customers', join(files.path, 'people.csv'), join(files.path, 'README.md'));

        // A column name finds the repo (indexed by the `put` process before it exited).
        const byColumn = json('catalog', 'search', 'email_address');
        assert.deepEqual(byColumn.map((h: { name: string }) => h.name), ['customers']);
        // "email" also matches the pii:email label the scan of people.csv gave the repo.
        assert.deepEqual(byColumn[0].matched, ['labels', 'columns']);
        assert.deepEqual(byColumn[0].labels, { team: 'growth', 'pii:email': 'true' });
        // Name beats description; the last word is a prefix.
        const ranked = json('catalog', 'search', 'custom');
        assert.deepEqual(ranked.map((h: { name: string }) => h.name), ['customers', 'weather']);
        assert.deepEqual(json('catalog', 'search', 'emai', '--kind', 'repo').map((h: { name: string }) => h.name).sort(), ['customers', 'email-archive']);
        assert.deepEqual(json('catalog', 'search', 'customers', '--label', 'team=growth').map((h: { name: string }) => h.name), ['customers']);

        const details = json('catalog', 'inspect', 'customers');
        assert.match(details.readme, /nightly CRM export/);
        assert.deepEqual(
          details.schemas['/people.csv'].columns.map((c: { name: string; type: string }) => `${c.name}:${c.type}`),
          ['customer_id:integer', 'email_address:string', 'signup_date:timestamp'],
        );
        assert.deepEqual(details.lineage, { upstream: [], downstream: [] });
        const human = ok('catalog', 'inspect', 'repo:customers').stdout;
        assert.match(human, /email_address string/);
        assert.match(human, /# Customers/);

        // Annotate locally.
        const set = json('catalog', 'set', 'customers', '--label', 'tier=gold', '--owner', 'bob', '--owner', 'carol', '--unlabel', 'team');
        assert.deepEqual(set.labels, { tier: 'gold', 'pii:email': 'true' });
        assert.deepEqual(set.owners, ['bob', 'carol']);
        assert.deepEqual(json('catalog', 'search', '--label', 'tier=gold').map((h: { name: string }) => h.name), ['customers']);
        assert.deepEqual(json('catalog', 'search', '--label', 'team'), []);

        // Over HTTP: the same commands against a server.
        server = await startServerProcess({ STRATA_HOME: home });
        env.STRATA_SERVER = server.url;
        assert.deepEqual(json('catalog', 'search', 'carol').map((h: { name: string }) => h.name), ['customers']);
        const patched = json('catalog', 'set', 'email-archive', '--description', 'every mail since 2019', '--label', 'pii:email=true');
        assert.equal(patched.description, 'every mail since 2019');
        assert.deepEqual(json('catalog', 'inspect', 'email-archive').labels, { 'pii:email': 'true' });
        assert.deepEqual(json('catalog', 'search', 'mail', '--label', 'pii:email').map((h: { name: string }) => h.name), ['email-archive']);

        // Another process commits (not through the server); the server's next search sees it.
        writeFileSync(join(files.path, 'readings.jsonl'), '{"station":"x","temperature_c":21.5}\n');
        const local = cli({ STRATA_HOME: home, STRATA_SERVER: '' });
        local.ok('put', 'weather', join(files.path, 'readings.jsonl'));
        assert.deepEqual(json('catalog', 'search', 'temperature_c').map((h: { name: string }) => h.name), ['weather']);

        // Bad input: exit 2 with a message, the same way over HTTP and locally.
        for (const mode of ['http', 'local'] as const) {
          const run = mode === 'http' ? fails : local.fails;
          run(2, ['catalog', 'search'], /empty search query/);
          run(2, ['catalog', 'search', 'x', '--kind', 'table'], /unknown catalog kind "table"/);
          run(2, ['catalog', 'search', 'x', '--label', '=v'], /label filter "=v"/);
          run(2, ['catalog', 'inspect', 'widget:x'], /unknown catalog kind "widget"/);
          run(2, ['catalog', 'inspect', 'model:nope'], /model "nope" not found/);
          run(2, ['catalog', 'set', 'customers', '--label', 'novalue'], /expected key=value/);
          run(2, ['catalog', 'set', 'customers', '--label', 'bad key=v'], /label key "bad key"/);
          run(2, ['catalog', 'set', 'customers'], /nothing to set/);
        }
      } finally {
        await server?.stop();
        await dispose();
        files.cleanup();
      }
    });
  }
});
