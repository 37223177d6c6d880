import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import Ajv2020 from 'ajv/dist/2020.js';
import { backends, readText, tempDir } from '../fixtures.js';
import type { Instance } from '../../src/instance.js';
import type { Change } from '../../src/data/types.js';
import {
  commitSetRunId,
  FACET_SCHEMA_URLS,
  gitUrlAsUri,
  jobRunId,
  RUN_EVENT_SCHEMA_URL,
  stableUuid,
  STRATA_PRODUCER,
  type Facet,
  type RunEvent,
} from '../../src/lineage/openlineage.js';
import { HttpSink, lineageEndpoint, OpenLineageExporter, resolveOpenLineageConfig, type LineageSink } from '../../src/lineage/openlineage-sink.js';

// OpenLineage export of real pipeline jobs, to a JSON-lines file and to a
// real HTTP server standing in for Marquez; every event and every facet is
// validated against the OpenLineage 2-0-2 JSON Schemas (../shared/openlineage).

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const schemaDir = process.env.STRATA_OPENLINEAGE_SCHEMAS ?? resolve(repoRoot, '../shared/openlineage');
const haveSchemas = existsSync(join(schemaDir, 'OpenLineage.json')) && existsSync(join(schemaDir, 'facets'));
if (!haveSchemas) console.log(`SKIPPED: OpenLineage schemas not found at ${schemaDir} (set STRATA_OPENLINEAGE_SCHEMAS)`);
const skip = haveSchemas ? undefined : `OpenLineage schemas not found at ${schemaDir}`;

const OPENLINEAGE_ID = 'https://openlineage.io/spec/2-0-2/OpenLineage.json';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

interface Validator {
  (data: unknown): boolean;
  errors?: unknown;
}

/** ajv (2020-12) with the event schema and every facet schema, so cross-file $refs resolve. */
function schemaValidator() {
  const Ajv = ((Ajv2020 as unknown as { default?: unknown }).default ?? Ajv2020) as new (opts: object) => {
    addSchema(schema: object): unknown;
    addKeyword(name: string): unknown;
    addFormat(name: string, format: RegExp | ((s: string) => boolean)): unknown;
    getSchema(ref: string): Validator | undefined;
  };
  const ajv = new Ajv({ allErrors: true, strict: true, strictRequired: false }); // the schemas' `not: {required}` names properties defined elsewhere
  // Annotation keywords the OpenLineage schemas use.
  ajv.addKeyword('example');
  ajv.addKeyword('documentation');
  ajv.addFormat('uuid', /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i);
  ajv.addFormat('date-time', (s) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/i.test(s) && !Number.isNaN(Date.parse(s)));
  ajv.addFormat('uri', (s) => {
    if (!/^[a-z][a-z0-9+.-]*:/i.test(s)) return false;
    try {
      new URL(s);
      return true;
    } catch {
      return false;
    }
  });
  ajv.addSchema(JSON.parse(readFileSync(join(schemaDir, 'OpenLineage.json'), 'utf8')));
  const facetSchemas = new Map<string, { properties: Record<string, unknown> }>();
  for (const f of readdirSync(join(schemaDir, 'facets')).filter((n) => n.endsWith('.json'))) {
    const schema = JSON.parse(readFileSync(join(schemaDir, 'facets', f), 'utf8'));
    ajv.addSchema(schema);
    facetSchemas.set(schema.$id, schema);
  }
  const check = (v: Validator | undefined, data: unknown, what: string) => {
    assert.ok(v, `no schema for ${what}`);
    assert.ok(v(data), `${what} is invalid: ${JSON.stringify(v.errors, null, 1)}\n${JSON.stringify(data, null, 1)}`);
  };
  const checkFacets = (facets: Record<string, Facet> | undefined, where: string) => {
    for (const [key, facet] of Object.entries(facets ?? {})) {
      assert.equal(facet._producer, STRATA_PRODUCER, `${where}.${key}._producer`);
      const [fileId] = facet._schemaURL.split('#');
      const file = facetSchemas.get(fileId!);
      assert.ok(file, `${where}.${key}._schemaURL ${facet._schemaURL} is none of the facet schemas`);
      assert.ok(key in file.properties, `${where}: facet key "${key}" is not the one ${fileId} defines (${Object.keys(file.properties)})`);
      check(ajv.getSchema(facet._schemaURL), facet, `${where}.${key} against ${facet._schemaURL}`);
      check(ajv.getSchema(fileId!), { [key]: facet }, `${where}.${key} against ${fileId}`);
    }
  };
  return (event: RunEvent) => {
    check(ajv.getSchema(OPENLINEAGE_ID), event, `${event.eventType} event of ${event.job.name}`);
    check(ajv.getSchema(event.schemaURL), event, `${event.eventType} event against its schemaURL`);
    assert.equal(event.schemaURL, RUN_EVENT_SCHEMA_URL);
    assert.equal(event.producer, STRATA_PRODUCER);
    assert.match(event.run.runId, UUID);
    checkFacets(event.run.facets, 'run.facets');
    checkFacets(event.job.facets, 'job.facets');
    for (const d of [...event.inputs, ...event.outputs]) checkFacets(d.facets, `dataset ${d.name}`);
  };
}

/** A stand-in for Marquez: records POST /api/v1/lineage bodies; can be told to fail the next N requests. */
async function fakeMarquez() {
  const received: { path: string; headers: IncomingHttpHeaders; body: RunEvent }[] = [];
  const state = { failNext: 0, status: 500, requests: 0 };
  const server: Server = createServer((req, res) => {
    let data = '';
    req.on('data', (c) => (data += c));
    req.on('end', () => {
      state.requests++;
      if (state.failNext > 0) {
        state.failNext--;
        res.writeHead(state.status).end('{"error":"try later"}');
        return;
      }
      if (req.method !== 'POST' || req.url !== '/api/v1/lineage') {
        res.writeHead(404).end();
        return;
      }
      received.push({ path: req.url, headers: req.headers, body: JSON.parse(data) });
      res.writeHead(201, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, received, state, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** A sink that keeps events in memory. */
const memorySink = (): LineageSink & { events: RunEvent[] } => {
  const events: RunEvent[] = [];
  return { events, write: (e) => void events.push(e), flush: async () => {} };
};

const put = (path: string, content: string): Change => ({ op: 'put', path, content: new TextEncoder().encode(content) });
const sh = (script: string) => ['sh', '-c', script];
const readLines = (path: string): RunEvent[] =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', args, { cwd, env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' } }).toString();

const ENV = ['STRATA_OPENLINEAGE_FILE', 'STRATA_OPENLINEAGE_URL', 'STRATA_OPENLINEAGE_NAMESPACE', 'STRATA_OPENLINEAGE_API_KEY'] as const;

for (const backend of await backends()) {
  describe(`OpenLineage export of pipeline jobs on ${backend.name}`, { skip: backend.skip ?? skip }, () => {
    let instance: Instance;
    let dispose: () => Promise<void>;
    let marquez: Awaited<ReturnType<typeof fakeMarquez>>;
    let validate: (e: RunEvent) => void;
    let file: string;
    const withSchema = memorySink();
    const saved: Partial<Record<(typeof ENV)[number], string | undefined>> = {};

    before(async () => {
      validate = schemaValidator();
      marquez = await fakeMarquez();
      ({ instance, dispose } = await backend.instance());
      file = join(instance.home, 'lineage', 'events.jsonl');
      for (const k of ENV) saved[k] = process.env[k];
      // The instance reads these when its scheduler is made (below).
      process.env.STRATA_OPENLINEAGE_FILE = 'lineage/events.jsonl';
      process.env.STRATA_OPENLINEAGE_URL = marquez.url;
      process.env.STRATA_OPENLINEAGE_NAMESPACE = 'ol-test';
      process.env.STRATA_OPENLINEAGE_API_KEY = 'sekret';
      assert.ok(instance.scheduler);
      for (const k of ENV) if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
      assert.ok(instance.openLineage, 'the env turned the export on');
      // A second exporter with a provider of its own: schemaOf is pluggable.
      new OpenLineageExporter({
        catalog: instance.data,
        sinks: [withSchema],
        namespace: 'ol-test',
        schemaOf: async (repo, commit) => {
          const text = await readText(instance, `${repo}@${commit}:/people.csv`).catch(() => '');
          if (!text) return null;
          return text.split('\n')[0]!.split(',').map((name) => ({ name, type: name === 'age' ? 'INTEGER' : 'STRING' }));
        },
      }).attach(instance.scheduler);
    });
    after(async () => {
      await dispose?.();
      await marquez?.close();
    });

    const eventsOf = (events: RunEvent[], pipeline: string) => events.filter((e) => e.job.name === pipeline);

    it('emits START and COMPLETE for each job of a two-stage pipeline, to the file and the endpoint, all valid', async () => {
      await instance.data.createRepo({ name: 'raw', owner: 'team:data', description: 'People as delivered' });
      const user = await instance.data.commit('raw', 'master', [put('/people.csv', 'name,age\nada,36\nalan,41\n')]);
      await instance.pipelines.create({ pipeline: { name: 'clean' }, input: { pfs: { repo: 'raw', glob: '/' } }, transform: { cmd: sh('cp "${STRATA_PFS:-/pfs}"/raw/* "${STRATA_PFS:-/pfs}"/out/') } });
      await instance.pipelines.create({ pipeline: { name: 'stats' }, input: { pfs: { repo: 'clean', glob: '/' } }, transform: { cmd: sh('wc -l < "${STRATA_PFS:-/pfs}"/clean/people.csv > "${STRATA_PFS:-/pfs}"/out/count') } });
      await instance.scheduler.drain();
      await instance.openLineage!.flush();
      const [clean] = await instance.pipelines.listJobs({ pipeline: 'clean' });
      const [stats] = await instance.pipelines.listJobs({ pipeline: 'stats' });
      assert.equal(clean!.state, 'success', clean!.reason);
      assert.equal(stats!.state, 'success', stats!.reason);

      const fromFile = readLines(file);
      assert.deepEqual(fromFile.map((e) => `${e.job.name}:${e.eventType}`), ['clean:START', 'clean:COMPLETE', 'stats:START', 'stats:COMPLETE']);
      assert.deepEqual(marquez.received.map((r) => r.body), fromFile, 'the endpoint got the same events, in order');
      for (const r of marquez.received) assert.equal(r.headers.authorization, 'Bearer sekret');
      for (const e of fromFile) validate(e);

      for (const [pipeline, job, input] of [['clean', clean!, 'raw'], ['stats', stats!, 'clean']] as const) {
        const [start, complete] = eventsOf(fromFile, pipeline);
        assert.equal(start!.run.runId, complete!.run.runId, 'START and COMPLETE share the run');
        assert.equal(start!.run.runId, jobRunId(job.id));
        assert.ok(Date.parse(start!.eventTime) <= Date.parse(complete!.eventTime));
        assert.deepEqual(start!.job.namespace, 'ol-test');
        assert.deepEqual(complete!.job.facets!.jobType, { _producer: STRATA_PRODUCER, _schemaURL: FACET_SCHEMA_URLS.jobType, processingType: 'BATCH', integration: 'STRATA', jobType: 'PIPELINE' });
        assert.deepEqual(start!.run.facets!.parent!.run, { runId: commitSetRunId(user.commit) }, 'the commit set is the parent run');
        assert.deepEqual(start!.run.facets!.parent!.job, { namespace: 'ol-test', name: 'commit-set' });
        const inputCommit = job.inputs[0]!.commit;
        assert.equal(job.inputs[0]!.repo, input);
        assert.deepEqual(complete!.inputs.map((d) => [d.namespace, d.name, d.facets!.version?.datasetVersion]), [['strata://ol-test', input, inputCommit]]);
        assert.deepEqual(complete!.outputs.map((d) => [d.name, d.facets!.version?.datasetVersion]), [[pipeline, job.output_commit]]);
        assert.equal(start!.outputs[0]!.facets!.version, undefined, 'the output version is only known on COMPLETE');
      }
      const [, cleanComplete] = eventsOf(fromFile, 'clean');
      const raw = cleanComplete!.inputs[0]!.facets!;
      assert.deepEqual(raw.ownership!.owners, [{ name: 'team:data', type: 'OWNER' }]);
      assert.equal(raw.documentation!.description, 'People as delivered');
      // The instance's exporter names the columns schema inference found in the CSV.
      assert.deepEqual(raw.schema!.fields, [
        { name: 'name', type: 'string', ordinal_position: 1 },
        { name: 'age', type: 'integer', ordinal_position: 2 },
      ]);

      // The custom provider's fields are what the schema facets carry.
      await new Promise((r) => setTimeout(r, 50));
      for (const e of withSchema.events) validate(e);
      const [, complete] = eventsOf(withSchema.events, 'clean');
      assert.deepEqual(complete!.inputs[0]!.facets!.schema!.fields, [
        { name: 'name', type: 'STRING', ordinal_position: 1 },
        { name: 'age', type: 'INTEGER', ordinal_position: 2 },
      ]);
      assert.deepEqual(complete!.outputs[0]!.facets!.schema!.fields, complete!.inputs[0]!.facets!.schema!.fields);
      const [, statsComplete] = eventsOf(withSchema.events, 'stats');
      assert.equal(statsComplete!.outputs[0]!.facets!.schema, undefined, 'no schema where the provider has none');

      // The checks above can fail: broken copies of a valid event are refused.
      const broken = (change: (e: RunEvent) => void) => {
        const copy = structuredClone(complete!) as RunEvent;
        change(copy);
        return copy;
      };
      assert.throws(() => validate(broken((e) => delete e.inputs[0]!.facets!.version!.datasetVersion)), /invalid/);
      assert.throws(() => validate(broken((e) => (e.run.runId = 'job-1'))), /invalid|match/);
      assert.throws(() => validate(broken((e) => (e.eventType = 'DONE' as never))), /invalid/);
      assert.throws(() => validate(broken((e) => (e.job.facets!.jobType!._schemaURL = FACET_SCHEMA_URLS.ownership))), /not the one/);
      assert.throws(() => validate(broken((e) => delete (e.run.facets!.parent!.job as { name?: string }).name)), /invalid/);
    });

    it('emits FAIL with an error message facet for a failing job', async () => {
      await instance.data.createRepo({ name: 'bad' });
      await instance.data.commit('bad', 'master', [put('/x', 'x')]);
      await instance.pipelines.create({
        pipeline: { name: 'broken' },
        input: { pfs: { repo: 'bad', glob: '/' } },
        transform: { cmd: sh('echo "no such column" >&2; exit 7') },
        datum_tries: 1,
      });
      await instance.scheduler.drain();
      await instance.openLineage!.flush();
      const [job] = await instance.pipelines.listJobs({ pipeline: 'broken' });
      assert.equal(job!.state, 'failure');
      const events = eventsOf(readLines(file), 'broken');
      assert.deepEqual(events.map((e) => e.eventType), ['START', 'FAIL']);
      for (const e of events) validate(e);
      const fail = events[1]!;
      assert.equal(fail.run.runId, events[0]!.run.runId);
      assert.equal(fail.run.facets!.errorMessage!.message, job!.reason);
      assert.match(String(fail.run.facets!.errorMessage!.message), /exit code 7/);
      assert.equal(fail.run.facets!.errorMessage!.programmingLanguage, 'SHELL');
      assert.equal(fail.outputs[0]!.facets!.version, undefined, 'a failed job has no output version');
      assert.deepEqual(eventsOf(marquez.received.map((r) => r.body), 'broken'), events);
    });

    it('emits ABORT when a user stops a running job', async () => {
      await instance.data.createRepo({ name: 'slow' });
      await instance.data.commit('slow', 'master', [put('/x', 'x')]);
      await instance.pipelines.create({ pipeline: { name: 'sleeper' }, input: { pfs: { repo: 'slow', glob: '/' } }, transform: { cmd: ['sleep', '60'] } });
      const draining = instance.scheduler.drain();
      let job;
      for (let i = 0; i < 200 && job?.state !== 'running'; i++) {
        await new Promise((r) => setTimeout(r, 50));
        [job] = await instance.pipelines.listJobs({ pipeline: 'sleeper' });
      }
      assert.equal(job?.state, 'running');
      await instance.pipelines.stopJob(job!.id);
      await draining;
      await instance.openLineage!.flush();
      const events = eventsOf(readLines(file), 'sleeper');
      assert.deepEqual(events.map((e) => e.eventType), ['START', 'ABORT']);
      for (const e of events) validate(e);
      assert.equal(events[1]!.run.runId, jobRunId(job!.id));
    });

    it('names the git checkout a job ran as its source code location', async () => {
      const dir = tempDir();
      try {
        const code = join(dir.path, 'code');
        mkdirSync(code);
        git(code, 'init', '-q', '-b', 'main');
        writeFileSync(join(code, 'run.sh'), 'echo ran > "${STRATA_PFS:-/pfs}"/out/r\n');
        git(code, 'add', '.');
        git(code, 'commit', '-q', '-m', 'v1');
        const sha = git(code, 'rev-parse', 'HEAD').trim();
        await instance.pipelines.create({ pipeline: { name: 'coded' }, input: { git: { url: code, branch: 'main', name: 'src' } }, transform: { cmd: sh('sh "${STRATA_PFS:-/pfs}"/src/run.sh') } });
        await instance.triggers.syncGit();
        await instance.scheduler.drain();
        await instance.openLineage!.flush();
        const events = eventsOf(readLines(file), 'coded');
        assert.deepEqual(events.map((e) => e.eventType), ['START', 'COMPLETE']);
        for (const e of events) validate(e);
        const location = events[1]!.job.facets!.sourceCodeLocation!;
        assert.deepEqual(
          { type: location.type, url: location.url, repoUrl: location.repoUrl, version: location.version, branch: location.branch },
          { type: 'git', url: pathToFileURL(code).href, repoUrl: code, version: sha, branch: 'main' },
        );
        assert.deepEqual(events[1]!.inputs.map((d) => d.name), ['coded_src']);
      } finally {
        dir.cleanup();
      }
    });
  });
}

describe('OpenLineage delivery', () => {
  let marquez: Awaited<ReturnType<typeof fakeMarquez>>;
  before(async () => (marquez = await fakeMarquez()));
  after(async () => marquez?.close());

  const event = (n: number): RunEvent => ({
    eventType: 'START',
    eventTime: new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString(),
    producer: STRATA_PRODUCER,
    schemaURL: RUN_EVENT_SCHEMA_URL,
    run: { runId: stableUuid('test', String(n)) },
    job: { namespace: 'strata', name: `job${n}` },
    inputs: [],
    outputs: [],
  });

  it('retries 5xx answers with backoff and delivers in order', async () => {
    marquez.received.length = 0;
    marquez.state.requests = 0;
    marquez.state.failNext = 3;
    marquez.state.status = 500;
    const sink = new HttpSink(marquez.url, { baseDelayMs: 10, apiKey: 'k1' });
    sink.write(event(1));
    sink.write(event(2));
    await sink.flush();
    assert.equal(marquez.state.requests, 5, '3 refused attempts, then 2 deliveries');
    assert.deepEqual(marquez.received.map((r) => r.body.job.name), ['job1', 'job2']);
    assert.equal(marquez.received[0]!.headers.authorization, 'Bearer k1');
    assert.equal(marquez.received[0]!.headers['content-type'], 'application/json');
    assert.deepEqual([sink.delivered, sink.dropped], [2, 0]);
  });

  it('drops an event the endpoint rejects with 4xx without retrying it', async () => {
    marquez.received.length = 0;
    marquez.state.requests = 0;
    marquez.state.failNext = 1;
    marquez.state.status = 400;
    const sink = new HttpSink(marquez.url, { baseDelayMs: 10 });
    sink.write(event(1));
    sink.write(event(2));
    await sink.flush();
    assert.equal(marquez.state.requests, 2);
    assert.deepEqual(marquez.received.map((r) => r.body.job.name), ['job2']);
    assert.deepEqual([sink.delivered, sink.dropped], [1, 1]);
  });

  it('never blocks the writer: a bounded queue drops the oldest events while the endpoint is down', async () => {
    const closed = await fakeMarquez();
    await closed.close(); // nothing listens on this port any more
    const sink = new HttpSink(closed.url, { maxQueue: 3, maxAttempts: 2, baseDelayMs: 5 });
    const started = performance.now();
    for (let i = 0; i < 10; i++) sink.write(event(i));
    assert.ok(performance.now() - started < 50, 'write() returns at once');
    await sink.flush();
    // One in flight, three queued, six pushed out; the four that were tried ran out of attempts.
    assert.deepEqual([sink.delivered, sink.dropped], [0, 10]);
  });

  it('resolves config: env over config.json, file relative to the instance, off without file or url', () => {
    assert.equal(resolveOpenLineageConfig(undefined, '/home/x', {}), null);
    assert.equal(resolveOpenLineageConfig({ namespace: 'n' }, '/home/x', {}), null);
    assert.deepEqual(resolveOpenLineageConfig({ file: 'ol.jsonl', namespace: 'a', api_key: 'c' }, '/home/x', {}), { file: '/home/x/ol.jsonl', namespace: 'a', apiKey: 'c' });
    assert.deepEqual(
      resolveOpenLineageConfig({ file: 'ol.jsonl', url: 'http://a', namespace: 'a' }, '/home/x', {
        STRATA_OPENLINEAGE_FILE: '/abs/e.jsonl',
        STRATA_OPENLINEAGE_URL: 'http://marquez:5000',
        STRATA_OPENLINEAGE_NAMESPACE: 'b',
      }),
      { file: '/abs/e.jsonl', url: 'http://marquez:5000', namespace: 'b' },
    );
    assert.equal(lineageEndpoint('http://marquez:5000'), 'http://marquez:5000/api/v1/lineage');
    assert.equal(lineageEndpoint('https://lineage.example/custom/in'), 'https://lineage.example/custom/in');
  });

  it('derives stable RFC 4122 run ids and URIs for git URLs', () => {
    assert.equal(jobRunId('abc'), jobRunId('abc'));
    assert.notEqual(jobRunId('abc'), jobRunId('abd'));
    assert.notEqual(jobRunId('abc'), commitSetRunId('abc'));
    assert.match(jobRunId('abc'), /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(gitUrlAsUri('https://github.com/o/r.git'), 'https://github.com/o/r.git');
    assert.equal(gitUrlAsUri('git@github.com:o/r.git'), 'ssh://git@github.com/o/r.git');
    assert.equal(gitUrlAsUri('/srv/code'), 'file:///srv/code');
  });
});
