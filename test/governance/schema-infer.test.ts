// Schema inference of CSV, TSV and JSON-lines content: types, bounds and bad input.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { inferSchema, MAX_BYTES, MAX_ROWS, readPrefix, schemaFormat, SchemaCache } from '../../src/governance/schema-infer.js';
import { backends } from '../fixtures.js';

const csv = (text: string, complete = true) => inferSchema(Buffer.from(text), 'csv', complete);
const types = (s: { columns: { name: string; type: string }[] }) => Object.fromEntries(s.columns.map((c) => [c.name, c.type]));

describe('schema inference', () => {
  it('infers CSV column names and types: integer, number, boolean, timestamp, string, null and mixed', () => {
    const s = csv(
      'id,score,active,signed_up,email,empty,odd\n' +
        '1,0.5,true,2024-01-02T03:04:05Z,a@example.com,,1\n' +
        '2,3,FALSE,2024-01-03,"b, quoted",,x\n' +
        '3,-1e3,false,2024-01-04 10:00:00,c@example.com,,true\n',
    );
    assert.equal(s.error, undefined);
    assert.equal(s.rows, 3);
    assert.equal(s.truncated, false);
    assert.deepEqual(types(s), {
      id: 'integer',
      score: 'number',
      active: 'boolean',
      signed_up: 'timestamp',
      email: 'string',
      empty: 'null',
      odd: 'mixed',
    });
    assert.equal(s.columns.find((c) => c.name === 'empty')!.nullable, true);
    assert.equal(s.columns.find((c) => c.name === 'id')!.nullable, false);
  });

  it('names blank and duplicate CSV headers, and reads TSV', () => {
    assert.deepEqual(
      csv('a,,a\n1,2,3\n').columns.map((c) => c.name),
      ['a', 'column_2', 'a_2'],
    );
    const tsv = inferSchema(Buffer.from('user\tage\nann\t31\n'), 'tsv', true);
    assert.deepEqual(types(tsv), { user: 'string', age: 'integer' });
  });

  it('infers JSON lines: keys in first-seen order, missing keys nullable, nested values', () => {
    const text = [
      JSON.stringify({ id: 1, email: 'a@example.com', at: '2024-05-01T00:00:00Z' }),
      JSON.stringify({ id: 2.5, email: null, tags: ['x'], meta: { a: 1 } }),
      '',
      JSON.stringify({ id: 3, email: 'c@example.com', ok: true }),
    ].join('\n');
    const s = inferSchema(Buffer.from(text), 'jsonl', true);
    assert.equal(s.error, undefined);
    assert.equal(s.rows, 3);
    assert.deepEqual(types(s), { id: 'number', email: 'string', at: 'timestamp', tags: 'array', meta: 'object', ok: 'boolean' });
    const byName = Object.fromEntries(s.columns.map((c) => [c.name, c.nullable]));
    assert.deepEqual(byName, { id: false, email: true, at: true, tags: true, meta: true, ok: true });
  });

  it('reports bad JSON lines without failing, and keeps the good ones', () => {
    const s = inferSchema(Buffer.from('{"a":1}\nnot json\n[1,2]\n{"a":2}\n'), 'jsonl', true);
    assert.deepEqual(types(s), { a: 'integer' });
    assert.equal(s.rows, 2);
    assert.match(s.error!, /2 line\(s\) skipped/);
    const none = inferSchema(Buffer.from('hello\nworld\n'), 'jsonl', true);
    assert.deepEqual(none.columns, []);
    assert.match(none.error!, /not JSON lines/);
  });

  it('never throws on binary or malformed content', () => {
    const binary = inferSchema(Buffer.from([0x50, 0x4b, 0x03, 0x04, 0, 0, 0xff, 0xfe, 0x0a]), 'csv', true);
    assert.deepEqual(binary.columns, []);
    assert.match(binary.error!, /binary/);
    const open = csv('a,b\n1,"never closed\n2,3\n');
    assert.ok(Array.isArray(open.columns));
    assert.equal(csv('').columns.length, 0);
  });

  it('is bounded: a cut-off last line is dropped, and at most MAX_ROWS rows are read', () => {
    const rows = ['n,label'];
    for (let i = 0; i < MAX_ROWS * 3; i++) rows.push(`${i},row${i}`);
    const s = csv(rows.join('\n') + '\n');
    assert.equal(s.rows, MAX_ROWS);
    assert.equal(s.truncated, true);
    // Cut mid-line: the partial "12" of the last line must not become an integer row of a different shape.
    const cut = csv('n,label\n1,a\n2,b\n12', false);
    assert.equal(cut.rows, 2);
    assert.equal(cut.truncated, true);
    assert.deepEqual(types(cut), { n: 'integer', label: 'string' });
  });

  it('reads only a prefix of a long stream', async () => {
    let pulled = 0;
    async function* endless() {
      for (;;) {
        pulled++;
        yield Buffer.alloc(64 * 1024, 0x61);
      }
    }
    const { bytes, complete } = await readPrefix(endless(), MAX_BYTES);
    assert.equal(bytes.length, MAX_BYTES);
    assert.equal(complete, false);
    assert.ok(pulled <= MAX_BYTES / (64 * 1024) + 1);
  });

  it('knows formats by extension', () => {
    assert.equal(schemaFormat('/a/B.CSV'), 'csv');
    assert.equal(schemaFormat('/x.tsv'), 'tsv');
    assert.equal(schemaFormat('/x.jsonl'), 'jsonl');
    assert.equal(schemaFormat('/x.ndjson'), 'jsonl');
    assert.equal(schemaFormat('/x.json'), null);
  });
});

describe('schema cache', async () => {
  for (const backend of await backends()) {
    it(`infers each content hash once (${backend.name})`, { skip: backend.skip }, async () => {
      const { instance, dispose } = await backend.instance();
      try {
        const cache = new SchemaCache(instance.meta.db);
        let opened = 0;
        const open = () => {
          opened++;
          return (async function* () {
            yield Buffer.from('a,b\n1,x\n');
          })();
        };
        const first = await cache.get('h1', 'csv', open);
        const second = await cache.get('h1', 'csv', open);
        assert.deepEqual(second, first);
        assert.equal(opened, 1);
        assert.deepEqual(types(first), { a: 'integer', b: 'string' });
        await cache.get('h1', 'jsonl', open); // same bytes, other format: its own entry
        assert.equal(opened, 2);
      } finally {
        await dispose();
      }
    });
  }
});
