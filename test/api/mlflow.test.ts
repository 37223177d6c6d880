import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { serve, type Served } from './harness.js';

// The MLflow-compatible REST API, driven with the requests the stock `mlflow`
// 2.x Python client makes (mlflow/store/tracking/rest_store.py,
// model_registry/rest_store.py, artifact/http_artifact_repo.py): bodies as its
// message_to_json writes them (snake_case, int64 as numbers, unset fields
// left out, run_uuid beside run_id), GET fields in the query string with
// repeated keys for lists, and artifact URIs resolved as
// MlflowArtifactsRepository does.

type Body = Record<string, unknown>;

interface Answer {
  status: number;
  body: any;
}

class MlflowWire {
  constructor(
    private url: string,
    private prefix: '/api' | '/ajax-api' = '/api',
    private headers: Record<string, string> = {},
  ) {}

  /** rest_utils.call_endpoint: GET sends params=, every other method json=. */
  async call(method: string, endpoint: string, body: Body = {}): Promise<Answer> {
    const target = `${this.url}${this.prefix}/2.0/mlflow/${endpoint}`;
    const headers = { 'user-agent': 'mlflow-python-client/2.16.2', ...this.headers };
    const res =
      method === 'GET'
        ? await fetch(`${target}?${query(body)}`, { headers })
        : await fetch(target, { method, headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  }

  async ok(method: string, endpoint: string, body: Body = {}): Promise<any> {
    const res = await this.call(method, endpoint, body);
    assert.equal(res.status, 200, `${method} ${endpoint}: ${JSON.stringify(res.body)}`);
    return res.body;
  }

  async fails(method: string, endpoint: string, body: Body, status: number, code: string, message?: RegExp): Promise<string> {
    const res = await this.call(method, endpoint, body);
    assert.equal(res.status, status, `${method} ${endpoint}: ${JSON.stringify(res.body)}`);
    assert.deepEqual(Object.keys(res.body).sort(), ['error_code', 'message']);
    assert.equal(res.body.error_code, code, res.body.message);
    if (message) assert.match(res.body.message, message);
    return res.body.message;
  }
}

/** As `requests` encodes params: lists as repeated keys, None left out. */
function query(body: Body): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(body)) {
    if (v === undefined || v === null) continue;
    for (const item of Array.isArray(v) ? v : [v]) q.append(k, String(item));
  }
  return q.toString();
}

/** MlflowArtifactsRepository.resolve_uri: mlflow-artifacts:/<path> → <tracking uri>/api/2.0/mlflow-artifacts/artifacts/<path>. */
function resolveArtifactUri(trackingUri: string, artifactUri: string): string {
  assert.match(artifactUri, /^mlflow-artifacts:\//);
  return `${trackingUri}/api/2.0/mlflow-artifacts/artifacts/${artifactUri.slice('mlflow-artifacts:'.length).replace(/^\/+/, '')}`;
}

const now = () => Date.now();
const tags = (record: Record<string, string>) => Object.entries(record).map(([key, value]) => ({ key, value }));
const asRecord = (list: { key: string; value: string }[]) => Object.fromEntries(list.map((t) => [t.key, t.value]));

/** mlflow.start_run(): runs/create with the context tags the client resolves. */
async function startRun(m: MlflowWire, experimentId: string, runName: string): Promise<any> {
  const body = await m.ok('POST', 'runs/create', {
    experiment_id: experimentId,
    user_id: 'ana',
    start_time: now(),
    tags: tags({
      'mlflow.user': 'ana',
      'mlflow.source.name': 'train.py',
      'mlflow.source.type': 'LOCAL',
      'mlflow.source.git.commit': '3f2a9c1d0b7e',
      'mlflow.runName': runName,
    }),
    run_name: runName,
  });
  return body.run;
}

describe('MLflow REST API: tracking', () => {
  let s: Served;
  let m: MlflowWire;
  before(async () => {
    s = await serve();
    m = new MlflowWire(s.url);
  });
  after(async () => {
    await s.close();
  });

  it('has the Default experiment "0"', async () => {
    const { experiment } = await m.ok('GET', 'experiments/get', { experiment_id: '0' });
    assert.equal(experiment.experiment_id, '0');
    assert.equal(experiment.name, 'Default');
    assert.equal(experiment.lifecycle_stage, 'active');
  });

  it('replays set_experiment, start_run, log_param(s), log_metric(s), set_tag, log_artifact, end_run', async () => {
    // mlflow.set_experiment("spam"): get-by-name answers RESOURCE_DOES_NOT_EXIST, so the client creates it.
    await m.fails('GET', 'experiments/get-by-name', { experiment_name: 'spam' }, 404, 'RESOURCE_DOES_NOT_EXIST', /spam/);
    const { experiment_id } = await m.ok('POST', 'experiments/create', { name: 'spam' });
    assert.equal(typeof experiment_id, 'string');
    const { experiment } = await m.ok('GET', 'experiments/get', { experiment_id });
    assert.deepEqual(
      { name: experiment.name, lifecycle_stage: experiment.lifecycle_stage, artifact_location: experiment.artifact_location },
      { name: 'spam', lifecycle_stage: 'active', artifact_location: `mlflow-artifacts:/${experiment_id}` },
    );
    assert.equal(typeof experiment.creation_time, 'number');

    // mlflow.start_run(run_name="baseline")
    const run = await startRun(m, experiment_id, 'baseline');
    const runId: string = run.info.run_id;
    assert.match(runId, /^[0-9a-f]{32}$/);
    assert.deepEqual(
      { ...run.info, start_time: 0 },
      {
        run_id: runId,
        run_uuid: runId,
        run_name: 'baseline',
        experiment_id,
        user_id: 'ana',
        status: 'RUNNING',
        start_time: 0,
        artifact_uri: `mlflow-artifacts:/${experiment_id}/${runId}/artifacts`,
        lifecycle_stage: 'active',
      },
    );
    assert.equal(asRecord(run.data.tags)['mlflow.source.name'], 'train.py');

    // mlflow.log_param / log_params
    await m.ok('POST', 'runs/log-parameter', { run_id: runId, run_uuid: runId, key: 'lr', value: '0.01' });
    await m.ok('POST', 'runs/log-batch', { run_id: runId, params: tags({ epochs: '3', model: 'logreg' }) });

    // mlflow.log_metric per step, then log_metrics
    const t0 = now();
    for (const [step, loss] of [0.9, 0.5, 0.3].entries()) {
      await m.ok('POST', 'runs/log-metric', { run_id: runId, run_uuid: runId, key: 'loss', value: loss, timestamp: t0 + step, step });
    }
    await m.ok('POST', 'runs/log-batch', {
      run_id: runId,
      metrics: [
        { key: 'accuracy', value: 0.93, timestamp: t0 + 3, step: 2 },
        { key: 'f1', value: 0.9, timestamp: t0 + 3, step: 2 },
      ],
    });

    // mlflow.set_tag
    await m.ok('POST', 'runs/set-tag', { run_id: runId, run_uuid: runId, key: 'team', value: 'ml' });

    // mlflow.log_artifact: runs/get for artifact_uri, then a PUT per file with the guessed mime type.
    const { run: fetched } = await m.ok('GET', 'runs/get', { run_uuid: runId, run_id: runId });
    const root = resolveArtifactUri(s.url, fetched.info.artifact_uri);
    const confusion = 'tp=90 fp=3\nfn=7 tn=100\n';
    const roc = '{ "auc": 0.97,\n  "points": [] }';
    let res = await fetch(`${root}/confusion.txt`, { method: 'PUT', headers: { 'content-type': 'text/plain' }, body: confusion });
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual(await res.json(), {});
    // A .json artifact is sent as application/json: its bytes are stored as they are, not parsed.
    res = await fetch(`${root}/plots/roc.json`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: roc });
    assert.equal(res.status, 200, await res.clone().text());
    res = await fetch(`${root}/empty.bin`, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array() });
    assert.equal(res.status, 200, await res.clone().text());

    // list_artifacts (HttpArtifactRepository): GET .../artifacts?path=<root tail>[/dir], names relative to the directory.
    const list = async (path: string) => {
      const r = await fetch(`${s.url}/api/2.0/mlflow-artifacts/artifacts?${new URLSearchParams({ path })}`);
      assert.equal(r.status, 200);
      return (await r.json()).files;
    };
    const tail = `${experiment_id}/${runId}/artifacts`;
    assert.deepEqual(await list(tail), [
      { path: 'confusion.txt', is_dir: false, file_size: Buffer.byteLength(confusion) },
      { path: 'empty.bin', is_dir: false, file_size: 0 },
      { path: 'plots', is_dir: true },
    ]);
    assert.deepEqual(await list(`${tail}/plots`), [{ path: 'roc.json', is_dir: false, file_size: Buffer.byteLength(roc) }]);
    assert.deepEqual(await list(`${tail}/nothing-here`), []);

    // The tracking-side listing (client.list_artifacts against a tracking server): paths from the run's root.
    const listed = await m.ok('GET', 'artifacts/list', { run_id: runId, run_uuid: runId, path: 'plots' });
    assert.deepEqual(listed, { root_uri: `mlflow-artifacts:/${experiment_id}/${runId}/artifacts`, files: [{ path: 'plots/roc.json', is_dir: false, file_size: Buffer.byteLength(roc) }] });

    // download_artifacts: GET the file.
    res = await fetch(`${root}/plots/roc.json`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), roc);

    // mlflow.end_run()
    const end = now();
    const { run_info } = await m.ok('POST', 'runs/update', { run_uuid: runId, run_id: runId, status: 'FINISHED', end_time: end });
    assert.equal(run_info.status, 'FINISHED');
    assert.equal(run_info.end_time, end);

    const { run: done } = await m.ok('GET', 'runs/get', { run_uuid: runId, run_id: runId });
    assert.equal(done.info.status, 'FINISHED');
    assert.deepEqual(asRecord(done.data.params), { lr: '0.01', epochs: '3', model: 'logreg' });
    const metrics = Object.fromEntries(done.data.metrics.map((x: any) => [x.key, x]));
    assert.deepEqual(metrics.loss, { key: 'loss', value: 0.3, timestamp: t0 + 2, step: 2 });
    assert.equal(metrics.accuracy.value, 0.93);
    const runTags = asRecord(done.data.tags);
    assert.equal(runTags.team, 'ml');
    assert.equal(runTags['mlflow.user'], 'ana');
    assert.equal(runTags['mlflow.runName'], 'baseline');
    assert.deepEqual(done.inputs, {});

    // client.get_metric_history
    const history = await m.ok('GET', 'metrics/get-history', { run_uuid: runId, run_id: runId, metric_key: 'loss' });
    assert.deepEqual(
      history.metrics.map((p: any) => [p.step, p.value]),
      [
        [0, 0.9],
        [1, 0.5],
        [2, 0.3],
      ],
    );
    assert.equal(history.next_page_token, undefined);
    const page1 = await m.ok('GET', 'metrics/get-history', { run_id: runId, metric_key: 'loss', max_results: 2 });
    assert.equal(page1.metrics.length, 2);
    const page2 = await m.ok('GET', 'metrics/get-history', { run_id: runId, metric_key: 'loss', max_results: 2, page_token: page1.next_page_token });
    assert.deepEqual(page2.metrics.map((p: any) => p.step), [2]);
    assert.equal(page2.next_page_token, undefined);
    // A metric never logged has an empty history, as in MLflow.
    assert.deepEqual((await m.ok('GET', 'metrics/get-history', { run_id: runId, metric_key: 'never' })).metrics, []);
  });

  it('searches runs with a filter, order_by and paging (client.search_runs)', async () => {
    const { experiment_id } = await m.ok('POST', 'experiments/create', { name: 'search' });
    const made: Record<string, string> = {};
    for (const [name, acc, lr] of [
      ['a', 0.7, '0.01'],
      ['b', 0.95, '0.01'],
      ['c', 0.85, '0.01'],
      ['d', 0.99, '0.1'],
    ] as const) {
      const run = await startRun(m, experiment_id, name);
      made[name] = run.info.run_id;
      await m.ok('POST', 'runs/log-batch', {
        run_id: run.info.run_id,
        metrics: [{ key: 'accuracy', value: acc, timestamp: now(), step: 0 }],
        params: [{ key: 'lr', value: lr }],
      });
    }
    const search = (extra: Body) =>
      m.ok('POST', 'runs/search', {
        experiment_ids: [experiment_id],
        filter: "metrics.accuracy > 0.8 and params.lr = '0.01'",
        run_view_type: 'ACTIVE_ONLY',
        max_results: 1000,
        order_by: ['metrics.accuracy DESC'],
        ...extra,
      });
    const all = await search({});
    assert.deepEqual(all.runs.map((r: any) => r.info.run_name), ['b', 'c']);
    assert.equal(all.next_page_token, undefined);
    assert.ok(all.runs[0].data.params.some((p: any) => p.key === 'lr' && p.value === '0.01'));

    const first = await search({ max_results: 1 });
    assert.deepEqual(first.runs.map((r: any) => r.info.run_name), ['b']);
    assert.ok(first.next_page_token);
    const second = await search({ max_results: 1, page_token: first.next_page_token });
    assert.deepEqual(second.runs.map((r: any) => r.info.run_name), ['c']);

    // Deleted runs: only with run_view_type DELETED_ONLY or ALL, and restorable.
    await m.ok('POST', 'runs/delete', { run_id: made.b });
    assert.deepEqual((await search({})).runs.map((r: any) => r.info.run_name), ['c']);
    const deleted = await search({ run_view_type: 'DELETED_ONLY', filter: '' });
    assert.deepEqual(deleted.runs.map((r: any) => [r.info.run_name, r.info.lifecycle_stage]), [['b', 'deleted']]);
    await m.ok('POST', 'runs/restore', { run_id: made.b });
    assert.deepEqual((await search({ run_view_type: 'ALL' })).runs.map((r: any) => r.info.run_name), ['b', 'c']);

    // A bad filter is the client's mistake.
    await m.fails('POST', 'runs/search', { experiment_ids: [experiment_id], filter: 'metrics.accuracy >' }, 400, 'INVALID_PARAMETER_VALUE', /filter/);
  });

  it('manages experiments: search (POST and GET), rename, tags, delete and restore', async () => {
    const { experiment_id } = await m.ok('POST', 'experiments/create', { name: 'exp-alpha', tags: tags({ team: 'ml' }) });
    await m.ok('POST', 'experiments/create', { name: 'exp-beta' });

    const byPost = await m.ok('POST', 'experiments/search', { max_results: 10, filter: "name LIKE 'exp-%'", order_by: ['name ASC'], view_type: 'ACTIVE_ONLY' });
    assert.deepEqual(byPost.experiments.map((e: any) => e.name), ['exp-alpha', 'exp-beta']);
    const byGet = await m.ok('GET', 'experiments/search', { max_results: 1, filter: "tags.team = 'ml'" });
    assert.deepEqual(byGet.experiments.map((e: any) => e.name), ['exp-alpha']);
    assert.deepEqual(byGet.experiments[0].tags, [{ key: 'team', value: 'ml' }]);
    const paged = await m.ok('GET', 'experiments/search', { max_results: 1, filter: "name ILIKE 'EXP-%'", order_by: 'name DESC' });
    assert.deepEqual(paged.experiments.map((e: any) => e.name), ['exp-beta']);
    const rest = await m.ok('GET', 'experiments/search', { max_results: 1, filter: "name ILIKE 'EXP-%'", order_by: 'name DESC', page_token: paged.next_page_token });
    assert.deepEqual(rest.experiments.map((e: any) => e.name), ['exp-alpha']);
    await m.fails('GET', 'experiments/search', { filter: "colour = 'red'" }, 400, 'INVALID_PARAMETER_VALUE', /colour/);

    await m.ok('POST', 'experiments/update', { experiment_id, new_name: 'exp-gamma' });
    await m.ok('POST', 'experiments/set-experiment-tag', { experiment_id, key: 'mlflow.note.content', value: 'notes' });
    const { experiment } = await m.ok('GET', 'experiments/get-by-name', { experiment_name: 'exp-gamma' });
    assert.equal(experiment.experiment_id, experiment_id);
    assert.deepEqual(asRecord(experiment.tags), { team: 'ml', 'mlflow.note.content': 'notes' });

    await m.ok('POST', 'experiments/delete', { experiment_id });
    assert.equal((await m.ok('GET', 'experiments/get', { experiment_id })).experiment.lifecycle_stage, 'deleted');
    const active = await m.ok('POST', 'experiments/search', { filter: "name LIKE 'exp-%'", view_type: 'ACTIVE_ONLY' });
    assert.deepEqual(active.experiments.map((e: any) => e.name), ['exp-beta']);
    const gone = await m.ok('POST', 'experiments/search', { filter: "name LIKE 'exp-%'", view_type: 'DELETED_ONLY' });
    assert.deepEqual(gone.experiments.map((e: any) => e.name), ['exp-gamma']);
    await m.ok('POST', 'experiments/restore', { experiment_id });
    assert.equal((await m.ok('GET', 'experiments/get', { experiment_id })).experiment.lifecycle_stage, 'active');
  });

  it('records log_model metadata in mlflow.log-model.history and deletes tags', async () => {
    const run = await startRun(m, '0', 'with-model');
    const runId = run.info.run_id;
    const model = { artifact_path: 'model', flavors: { python_function: { loader_module: 'mlflow.sklearn' } }, utc_time_created: '2024-05-07 09:00:00.000000', run_id: runId };
    await m.ok('POST', 'runs/log-model', { run_id: runId, model_json: JSON.stringify(model) });
    await m.ok('POST', 'runs/log-model', { run_id: runId, model_json: JSON.stringify({ ...model, artifact_path: 'model2' }) });
    const { run: got } = await m.ok('GET', 'runs/get', { run_id: runId });
    const history = JSON.parse(asRecord(got.data.tags)['mlflow.log-model.history']!);
    assert.deepEqual(history.map((h: any) => h.artifact_path), ['model', 'model2']);
    await m.fails('POST', 'runs/log-model', { run_id: runId, model_json: JSON.stringify({ artifact_path: 'x' }) }, 400, 'INVALID_PARAMETER_VALUE', /flavors/);

    await m.ok('POST', 'runs/set-tag', { run_id: runId, key: 'temp', value: '1' });
    await m.ok('POST', 'runs/delete-tag', { run_id: runId, key: 'temp' });
    const { run: after } = await m.ok('GET', 'runs/get', { run_id: runId });
    assert.equal(asRecord(after.data.tags).temp, undefined);
    await m.fails('POST', 'runs/delete-tag', { run_id: runId, key: 'temp' }, 404, 'RESOURCE_DOES_NOT_EXIST');
  });

  it('answers errors in MLflow shape with MLflow statuses', async () => {
    const unknown = 'ab'.repeat(16);
    await m.fails('GET', 'runs/get', { run_id: unknown, run_uuid: unknown }, 404, 'RESOURCE_DOES_NOT_EXIST', new RegExp(unknown));
    await m.fails('POST', 'runs/log-metric', { run_id: unknown, key: 'x', value: 1, timestamp: now(), step: 0 }, 404, 'RESOURCE_DOES_NOT_EXIST');
    await m.fails('GET', 'experiments/get', { experiment_id: '424242' }, 404, 'RESOURCE_DOES_NOT_EXIST');

    const run = await startRun(m, '0', 'errors');
    const runId = run.info.run_id;
    await m.ok('POST', 'runs/log-parameter', { run_id: runId, run_uuid: runId, key: 'lr', value: '0.01' });
    await m.ok('POST', 'runs/log-parameter', { run_id: runId, run_uuid: runId, key: 'lr', value: '0.01' }); // the same value again is fine
    await m.fails('POST', 'runs/log-parameter', { run_id: runId, run_uuid: runId, key: 'lr', value: '0.1' }, 400, 'INVALID_PARAMETER_VALUE', /lr/);
    await m.fails('POST', 'runs/log-batch', { run_id: runId, params: [{ key: 'lr', value: '0.2' }] }, 400, 'INVALID_PARAMETER_VALUE', /lr/);
    // protobuf-JSON writes NaN as the string "NaN": Strata refuses non-finite metrics, and the whole batch with them.
    await m.fails(
      'POST',
      'runs/log-batch',
      { run_id: runId, metrics: [{ key: 'ok', value: 1, timestamp: now(), step: 0 }, { key: 'bad', value: 'NaN', timestamp: now(), step: 0 }] },
      400,
      'INVALID_PARAMETER_VALUE',
      /bad/,
    );
    assert.deepEqual((await m.ok('GET', 'runs/get', { run_id: runId })).run.data.metrics, []);

    await m.ok('POST', 'experiments/create', { name: 'twice' });
    await m.fails('POST', 'experiments/create', { name: 'twice' }, 400, 'RESOURCE_ALREADY_EXISTS', /twice/);
    await m.fails('POST', 'experiments/create', { name: 'elsewhere', artifact_location: 's3://bucket/x' }, 400, 'INVALID_PARAMETER_VALUE', /artifact_location/);

    await m.fails('POST', 'runs/set-tag', { key: 'k', value: 'v' }, 400, 'INVALID_PARAMETER_VALUE', /run_id/);
    await m.fails('POST', 'runs/update', { run_id: runId, status: 'DONE' }, 400, 'INVALID_PARAMETER_VALUE', /status/);

    const bad = await fetch(`${s.url}/api/2.0/mlflow/runs/set-tag`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"run_id": ' });
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).error_code, 'INVALID_PARAMETER_VALUE');

    // Endpoints Strata does not serve: MLflow's ENDPOINT_NOT_FOUND.
    await m.fails('POST', 'runs/log-inputs', { run_id: runId, datasets: [] }, 404, 'ENDPOINT_NOT_FOUND', /log-inputs/);
    await m.fails('GET', 'no/such/thing', {}, 404, 'ENDPOINT_NOT_FOUND');
    const del = await fetch(`${s.url}/api/2.0/mlflow-artifacts/artifacts/0/${runId}/artifacts/x`, { method: 'DELETE' });
    assert.equal(del.status, 404);
    assert.equal((await del.json()).error_code, 'ENDPOINT_NOT_FOUND');
    // Multipart uploads are declined the way MLflow's client expects, so it falls back to one PUT.
    const mpu = await fetch(`${s.url}/api/2.0/mlflow-artifacts/mpu/create/0/${runId}/artifacts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ path: 'big.bin', num_parts: 2 }),
    });
    assert.equal(mpu.status, 501);
    assert.match((await mpu.json()).message, /^Multipart upload is not supported for the current artifact repository/);

    // Artifact paths outside a run, or under the wrong experiment.
    const outside = await fetch(`${s.url}/api/2.0/mlflow-artifacts/artifacts/0/file.txt`, { method: 'PUT', body: 'x' });
    assert.equal(outside.status, 400);
    assert.equal((await outside.json()).error_code, 'INVALID_PARAMETER_VALUE');
    const wrongExp = await fetch(`${s.url}/api/2.0/mlflow-artifacts/artifacts/999/${runId}/artifacts/file.txt`, { method: 'PUT', body: 'x' });
    assert.equal(wrongExp.status, 404);
    assert.equal((await wrongExp.json()).error_code, 'RESOURCE_DOES_NOT_EXIST');
    const missing = await fetch(`${s.url}/api/2.0/mlflow-artifacts/artifacts/0/${runId}/artifacts/absent.txt`);
    assert.equal(missing.status, 404);
    assert.equal((await missing.json()).error_code, 'RESOURCE_DOES_NOT_EXIST');

    // Strata's own API keeps its error shape.
    const own = await fetch(`${s.url}/api/v1/runs/${unknown}`);
    assert.equal(own.status, 404);
    assert.equal((await own.json()).error.code, 'NOT_FOUND');
  });

  it('serves the same API under /ajax-api', async () => {
    const ajax = new MlflowWire(s.url, '/ajax-api');
    await ajax.fails('GET', 'experiments/get-by-name', { experiment_name: 'ajax' }, 404, 'RESOURCE_DOES_NOT_EXIST');
    const { experiment_id } = await ajax.ok('POST', 'experiments/create', { name: 'ajax' });
    const run = await startRun(ajax, experiment_id, 'from-ui');
    await ajax.ok('POST', 'runs/log-metric', { run_id: run.info.run_id, key: 'm', value: 1.5, timestamp: now(), step: 1 });
    const found = await ajax.ok('POST', 'runs/search', { experiment_ids: [experiment_id], filter: 'metrics.m = 1.5' });
    assert.deepEqual(found.runs.map((r: any) => r.info.run_id), [run.info.run_id]);
    await ajax.fails('POST', 'experiments/create', { name: 'ajax' }, 400, 'RESOURCE_ALREADY_EXISTS');
    await ajax.fails('GET', 'nope', {}, 404, 'ENDPOINT_NOT_FOUND');
    const put = await fetch(`${s.url}/ajax-api/2.0/mlflow-artifacts/artifacts/${experiment_id}/${run.info.run_id}/artifacts/a.txt`, { method: 'PUT', body: 'hi' });
    assert.equal(put.status, 200);
    const got = await fetch(`${s.url}/ajax-api/2.0/mlflow-artifacts/artifacts/${experiment_id}/${run.info.run_id}/artifacts/a.txt`);
    assert.equal(await got.text(), 'hi');
  });

  it('documents the /api/2.0 routes in /openapi.json and hides the /ajax-api twins', async () => {
    const doc = await (await fetch(`${s.url}/openapi.json`)).json();
    assert.ok(doc.paths['/api/2.0/mlflow/runs/create'].post.summary);
    assert.ok(doc.paths['/api/2.0/mlflow/registered-models/alias'].delete);
    assert.ok(!Object.keys(doc.paths).some((p) => p.startsWith('/ajax-api')));
    // The artifact path is a declared path parameter; the ENDPOINT_NOT_FOUND catch-alls are not documented.
    const artifact = doc.paths['/api/2.0/mlflow-artifacts/artifacts/{*}'];
    assert.deepEqual(Object.keys(artifact).sort(), ['get', 'put']);
    assert.equal(artifact.put.parameters[0].name, '*');
    assert.ok(!doc.paths['/api/2.0/mlflow/{*}']);
  });
});

describe('MLflow REST API: model registry', () => {
  let s: Served;
  let m: MlflowWire;
  let modelCommit: string;
  const modelBytes = Buffer.from('not onnx, just a model file');

  before(async () => {
    s = await serve();
    // Alias moves are attributed to the Basic-auth user the client sends (MLFLOW_TRACKING_USERNAME).
    m = new MlflowWire(s.url, '/api', { authorization: `Basic ${Buffer.from('ana:secret').toString('base64')}` });
    await s.instance.data.createRepo({ name: 'models' });
    ({ commit: modelCommit } = await s.instance.data.commit('models', 'master', [{ op: 'put', path: '/spam/model.bin', content: modelBytes }]));
  });
  after(async () => {
    await s.close();
  });

  it('replays create_registered_model, create_model_version, aliases, search and deletes', async () => {
    const { registered_model } = await m.ok('POST', 'registered-models/create', { name: 'spam-clf', tags: tags({ team: 'ml' }), description: 'spam filter' });
    assert.deepEqual(
      { ...registered_model, creation_timestamp: 0, last_updated_timestamp: 0 },
      { name: 'spam-clf', creation_timestamp: 0, last_updated_timestamp: 0, description: 'spam filter', latest_versions: [], tags: [{ key: 'team', value: 'ml' }], aliases: [] },
    );
    // mlflow.register_model first tries to create the model and carries on past RESOURCE_ALREADY_EXISTS.
    await m.fails('POST', 'registered-models/create', { name: 'spam-clf' }, 400, 'RESOURCE_ALREADY_EXISTS', /spam-clf/);

    // A version from a Strata data ref, tied to an MLflow run.
    const run = await startRun(m, '0', 'trainer');
    const v1 = (
      await m.ok('POST', 'model-versions/create', {
        name: 'spam-clf',
        source: `models@${modelCommit}:/spam/model.bin`,
        run_id: run.info.run_id,
        description: 'first',
        tags: tags({ stage: 'candidate' }),
      })
    ).model_version;
    assert.deepEqual(
      { ...v1, creation_timestamp: 0, last_updated_timestamp: 0 },
      {
        name: 'spam-clf',
        version: '1',
        creation_timestamp: 0,
        last_updated_timestamp: 0,
        user_id: 'ana',
        current_stage: 'None',
        description: 'first',
        source: `models@${modelCommit}:/spam/model.bin`,
        run_id: run.info.run_id,
        status: 'READY',
        tags: [{ key: 'stage', value: 'candidate' }],
        aliases: [],
      },
    );

    // A version from runs:/ of a pipeline run: the file in that run's output commit (its pipeline's repo).
    await s.instance.data.createRepo({ name: 'train' });
    const { commit: trained } = await s.instance.data.commit('train', 'master', [{ op: 'put', path: '/out/model.bin', content: Buffer.from('trained') }]);
    const job = await s.instance.tracking.createRun({ experiment_id: '0', pipeline: 'train', job: 'job-1', run_name: 'train-job-1' });
    await s.instance.tracking.updateRun(job.info.run_id, { status: 'FINISHED', end_time: now(), output_commit: trained });
    const v2 = (await m.ok('POST', 'model-versions/create', { name: 'spam-clf', source: `runs:/${job.info.run_id}/out/model.bin`, run_id: job.info.run_id })).model_version;
    assert.equal(v2.version, '2');
    assert.equal(v2.source, `train@${trained}:/out/model.bin`);
    assert.equal(v2.run_id, job.info.run_id);
    // The same file named the way register_model sends runs:/ sources: the run's artifact_uri plus the path.
    const v3 = (await m.ok('POST', 'model-versions/create', { name: 'spam-clf', source: `mlflow-artifacts:/0/${job.info.run_id}/artifacts/out/model.bin`, run_id: job.info.run_id }))
      .model_version;
    assert.equal(v3.version, '3');
    assert.equal(v3.source, v2.source);

    // Sources Strata cannot register are refused, naming what it accepts.
    await m.fails('POST', 'model-versions/create', { name: 'spam-clf', source: `runs:/${run.info.run_id}/model`, run_id: run.info.run_id }, 400, 'INVALID_PARAMETER_VALUE', /REPO@COMMIT:\/path/);
    await m.fails('POST', 'model-versions/create', { name: 'spam-clf', source: 's3://bucket/model' }, 400, 'INVALID_PARAMETER_VALUE', /runs:\/<run_id>\/<path>/);
    await m.fails('POST', 'model-versions/create', { name: 'spam-clf', source: 'models:/other/1' }, 400, 'INVALID_PARAMETER_VALUE');
    await m.fails('POST', 'model-versions/create', { name: 'spam-clf', source: `models@${modelCommit}:/nope.bin` }, 404, 'RESOURCE_DOES_NOT_EXIST', /nope\.bin/);
    await m.fails('POST', 'model-versions/create', { name: 'spam-clf', source: `runs:/${job.info.run_id}/out/model.bin`, run_id: run.info.run_id }, 400, 'INVALID_PARAMETER_VALUE', /does not match/);

    // client.set_registered_model_alias / get_model_version_by_alias
    await m.ok('POST', 'registered-models/alias', { name: 'spam-clf', alias: 'champion', version: '2' });
    const byAlias = (await m.ok('GET', 'registered-models/alias', { name: 'spam-clf', alias: 'champion' })).model_version;
    assert.equal(byAlias.version, '2');
    assert.deepEqual(byAlias.aliases, ['champion']);
    const model = (await m.ok('GET', 'registered-models/get', { name: 'spam-clf' })).registered_model;
    assert.deepEqual(model.aliases, [{ alias: 'champion', version: '2' }]);
    assert.deepEqual(model.latest_versions.map((v: any) => v.version), ['3']);
    await m.fails('POST', 'registered-models/alias', { name: 'spam-clf', alias: 'champion', version: '9' }, 404, 'RESOURCE_DOES_NOT_EXIST');

    // client.search_model_versions
    const all = await m.ok('GET', 'model-versions/search', { filter: "name='spam-clf'" });
    assert.deepEqual(all.model_versions.map((v: any) => v.version), ['3', '2', '1']);
    const ofRun = await m.ok('GET', 'model-versions/search', { filter: `name = 'spam-clf' AND run_id = '${run.info.run_id}'` });
    assert.deepEqual(ofRun.model_versions.map((v: any) => v.version), ['1']);
    const paged = await m.ok('GET', 'model-versions/search', { filter: "name='spam-clf'", max_results: 2, order_by: ['version_number ASC'] });
    assert.deepEqual(paged.model_versions.map((v: any) => v.version), ['1', '2']);
    assert.ok(paged.next_page_token);
    assert.deepEqual((await m.ok('GET', 'model-versions/search', { filter: "name='unknown'" })).model_versions, []);

    // get_latest_versions (stages are all "None" in Strata), both of its endpoints
    assert.deepEqual((await m.ok('POST', 'registered-models/get-latest-versions', { name: 'spam-clf', stages: ['None'] })).model_versions.map((v: any) => v.version), ['3']);
    assert.deepEqual((await m.ok('GET', 'registered-models/get-latest-versions', { name: 'spam-clf', stages: ['Production'] })).model_versions, []);

    // get_model_version_download_uri: the version's data ref.
    assert.deepEqual(await m.ok('GET', 'model-versions/get-download-uri', { name: 'spam-clf', version: '1' }), { artifact_uri: `models@${modelCommit}:/spam/model.bin` });

    // Descriptions and tags of models and versions
    await m.ok('PATCH', 'model-versions/update', { name: 'spam-clf', version: '1', description: 'retired' });
    await m.ok('POST', 'model-versions/set-tag', { name: 'spam-clf', version: '1', key: 'approved', value: 'no' });
    await m.ok('DELETE', 'model-versions/delete-tag', { name: 'spam-clf', version: '1', key: 'stage' });
    const v1b = (await m.ok('GET', 'model-versions/get', { name: 'spam-clf', version: '1' })).model_version;
    assert.equal(v1b.description, 'retired');
    assert.deepEqual(v1b.tags, [{ key: 'approved', value: 'no' }]);
    await m.ok('PATCH', 'registered-models/update', { name: 'spam-clf', description: 'the spam filter' });
    await m.ok('POST', 'registered-models/set-tag', { name: 'spam-clf', key: 'owner', value: 'ana' });
    await m.ok('DELETE', 'registered-models/delete-tag', { name: 'spam-clf', key: 'team' });
    const found = await m.ok('GET', 'registered-models/search', { filter: "name LIKE 'spam%'", max_results: 10 });
    assert.deepEqual(found.registered_models.map((r: any) => [r.name, r.description, r.tags]), [['spam-clf', 'the spam filter', [{ key: 'owner', value: 'ana' }]]]);
    assert.deepEqual((await m.ok('GET', 'registered-models/search', { filter: "tags.owner = 'bob'" })).registered_models, []);

    // What Strata does differently: no rename, no stages, and an alias holds its version.
    await m.fails('POST', 'registered-models/rename', { name: 'spam-clf', new_name: 'ham' }, 400, 'INVALID_PARAMETER_VALUE', /renaming/);
    await m.fails('POST', 'model-versions/transition-stage', { name: 'spam-clf', version: '2', stage: 'Production', archive_existing_versions: false }, 400, 'INVALID_PARAMETER_VALUE', /alias/);
    await m.fails('DELETE', 'model-versions/delete', { name: 'spam-clf', version: '2' }, 409, 'RESOURCE_CONFLICT', /champion/);

    // A promotion gate that refuses: PERMISSION_DENIED (403), not a retried 5xx.
    await s.instance.registry.setGates('spam-clf', 'production', [{ tag: 'approved', value: 'yes' }]);
    await m.fails('POST', 'registered-models/alias', { name: 'spam-clf', alias: 'production', version: '1' }, 403, 'PERMISSION_DENIED', /approved/);

    // client.delete_registered_model_alias: DELETE with a JSON body.
    await m.ok('DELETE', 'registered-models/alias', { name: 'spam-clf', alias: 'champion' });
    await m.fails('GET', 'registered-models/alias', { name: 'spam-clf', alias: 'champion' }, 404, 'RESOURCE_DOES_NOT_EXIST');
    const moves = await s.instance.registry.aliasHistory('spam-clf', 'champion');
    assert.deepEqual(
      moves.map((c) => [c.from_version, c.to_version, c.actor]),
      [
        [2, null, 'ana'],
        [null, 2, 'ana'],
      ],
    );

    await m.ok('DELETE', 'model-versions/delete', { name: 'spam-clf', version: '2' });
    await m.fails('GET', 'model-versions/get', { name: 'spam-clf', version: '2' }, 404, 'RESOURCE_DOES_NOT_EXIST');
    await m.ok('DELETE', 'registered-models/delete', { name: 'spam-clf' });
    await m.fails('GET', 'registered-models/get', { name: 'spam-clf' }, 404, 'RESOURCE_DOES_NOT_EXIST');
  });
});

describe('MLflow REST API: unexpected failures', () => {
  it('answer 500 INTERNAL_ERROR in MLflow shape with a generic message, and log the details', async () => {
    const served = await serve();
    const logged: unknown[][] = [];
    const consoleError = console.error;
    console.error = (...args: unknown[]) => void logged.push(args);
    try {
      await served.instance.close(); // the database is gone: every query now fails unexpectedly
      const res = await fetch(`${served.url}/api/2.0/mlflow/experiments/get?experiment_id=0`);
      assert.equal(res.status, 500);
      const body = await res.json();
      assert.equal(body.error_code, 'INTERNAL_ERROR');
      assert.match(body.message, /^internal server error \(request [^)]+\); the server log has the details$/);
      assert.equal(logged.length, 1);
      assert.match(String(logged[0]![0]), /internal error on GET \/api\/2\.0\/mlflow\/experiments\/get/);
    } finally {
      console.error = consoleError;
      await served.close();
    }
  });
});
