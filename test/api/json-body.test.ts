import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { serve, type Served } from './harness.js';

// JSON request bodies: plain JSON is parsed as is; prototype poisoning (also
// spelled with \u escapes) and malformed JSON are INVALID_ARGUMENT; a leading
// BOM is accepted. Through the real server, on a route that takes JSON.

let s: Served;
let runId: string;
before(async () => {
  s = await serve();
  runId = (await s.instance.tracking.createRun({ run_name: 'json' })).info.run_id;
});
after(async () => s?.close());

const post = async (body: string) => {
  const res = await fetch(`${s.url}/api/v1/runs/${runId}/log`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
};

it('parses plain JSON, and JSON with a BOM', async () => {
  assert.equal((await post('{"metrics":[{"key":"a","value":1}]}')).status, 204);
  assert.equal((await post('\ufeff{"metrics":[{"key":"a","value":2,"step":1}]}')).status, 204);
  assert.equal((await s.instance.tracking.metricHistory(runId, 'a')).length, 2);
});

it('refuses prototype poisoning however it is spelled, and malformed JSON, changing nothing', async () => {
  for (const body of [
    '{"metrics":[],"__proto__":{"polluted":true}}',
    '{"metrics":[],"\\u005f_proto__":{"polluted":true}}',
    '{"metrics":[],"constructor":{"prototype":{"polluted":true}}}',
    '{"metrics":[{"key":"a","value":3}]',
  ]) {
    const res = await post(body);
    assert.equal(res.status, 400, body);
    assert.equal(res.body.error.code, 'INVALID_ARGUMENT');
    assert.match(res.body.error.message, /request body is not valid JSON/);
  }
  assert.equal(({} as { polluted?: boolean }).polluted, undefined);
  assert.equal((await s.instance.tracking.metricHistory(runId, 'a')).length, 2);
});

it('takes a key that merely contains "constructor" or an escaped character', async () => {
  assert.equal((await post('{"tags":[{"key":"constructor_name","value":"caf\\u00e9"}]}')).status, 204);
  const run = await s.instance.tracking.getRun(runId);
  assert.equal(run.data.tags.constructor_name, 'café');
});
