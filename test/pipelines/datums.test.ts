import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { datumEnv, planDatums, type Datum, type FileRef, type InputCommit } from '../../src/pipelines/datums.js';
import { transformHash, validateSpec, type PipelineSpec } from '../../src/pipelines/spec.js';

// Datum planning on small file lists with the datums Pachyderm would make,
// including the data of Pachyderm's join and group examples.

const file = (path: string, content = path): FileRef => ({ path, hash: createHash('sha256').update(content).digest('hex'), size: content.length });

function commit(repo: string, paths: Array<string | FileRef>, id = `${repo}-c1`): InputCommit {
  const files = paths.map((p) => (typeof p === 'string' ? file(p) : p)).sort((a, b) => (a.path < b.path ? -1 : 1));
  return { repo, commit: id, files };
}

function specWith(input: unknown, extra: Record<string, unknown> = {}): PipelineSpec {
  return validateSpec({ pipeline: { name: 'p' }, input, transform: { cmd: ['true'] }, ...extra });
}

function plan(spec: PipelineSpec, ...commits: InputCommit[]): Datum[] {
  const map = new Map<string, InputCommit>();
  for (const c of commits) map.set(c.repo, c); // input names default to repo names
  return planDatums(spec.input, map, transformHash(spec));
}

/** A datum as "name:path[,name:path...]" for compact expectations. */
const show = (d: Datum) => d.inputs.map((i) => `${i.name}:${i.path}`).join(' + ');

describe('pfs input', () => {
  it('makes one datum per glob match, with the files it covers', () => {
    const spec = specWith({ pfs: { repo: 'images', glob: '/*' } });
    const datums = plan(spec, commit('images', ['/a.png', '/b.png', '/more/c.png', '/more/d.png']));
    assert.deepEqual(datums.map(show), ['images:/a.png', 'images:/b.png', 'images:/more']);
    const [first] = datums;
    assert.deepEqual(first!.inputs[0], { name: 'images', repo: 'images', commit: 'images-c1', path: '/a.png', files: [file('/a.png')] });
    assert.deepEqual(datums[2]!.inputs[0]!.files.map((f) => f.path), ['/more/c.png', '/more/d.png']);
    assert.match(first!.id, /^[0-9a-f]{64}$/);
  });

  it('"/" is one datum with every file; a glob matching nothing is zero datums', () => {
    const images = commit('images', ['/a.png', '/b/c.png']);
    const whole = plan(specWith({ pfs: { repo: 'images', glob: '/' } }), images);
    assert.deepEqual(whole.map(show), ['images:/']);
    assert.equal(whole[0]!.inputs[0]!.files.length, 2);
    assert.deepEqual(plan(specWith({ pfs: { repo: 'images', glob: '/*.jpg' } }), images), []);
    assert.deepEqual(plan(specWith({ pfs: { repo: 'images', glob: '/' } }), commit('images', [])), []);
  });

  it('an input without a commit contributes no datums', () => {
    assert.deepEqual(planDatums(specWith({ pfs: { repo: 'images', glob: '/*' } }).input, new Map(), 'h'), []);
  });

  it('finds commits by input name', () => {
    const spec = specWith({ pfs: { repo: 'images', name: 'pics', glob: '/*' } });
    const datums = planDatums(spec.input, new Map([['pics', commit('images', ['/a'])]]), transformHash(spec));
    assert.deepEqual(datums.map(show), ['pics:/a']);
    assert.equal(datums[0]!.inputs[0]!.repo, 'images');
  });
});

describe('cross and union', () => {
  it('the opencv montage: a cross of two whole repos is one datum', () => {
    const spec = specWith({ cross: [{ pfs: { repo: 'images', glob: '/' } }, { pfs: { repo: 'edges', glob: '/' } }] });
    const datums = plan(spec, commit('images', ['/a.png', '/b.png']), commit('edges', ['/a.png']));
    // Pachyderm orders the children of a cross by input name.
    assert.deepEqual(datums.map(show), ['edges:/ + images:/']);
  });

  it('a cross is the cartesian product', () => {
    const spec = specWith({ cross: [{ pfs: { repo: 'b', glob: '/*' } }, { pfs: { repo: 'a', glob: '/*' } }] });
    const datums = plan(spec, commit('a', ['/1', '/2']), commit('b', ['/x', '/y', '/z']));
    assert.deepEqual(datums.map(show), [
      'a:/1 + b:/x',
      'a:/1 + b:/y',
      'a:/1 + b:/z',
      'a:/2 + b:/x',
      'a:/2 + b:/y',
      'a:/2 + b:/z',
    ]);
    assert.deepEqual(plan(spec, commit('a', ['/1']), commit('b', [])), [], 'crossing with nothing is nothing');
  });

  it('a union concatenates; each datum comes from one branch', () => {
    const spec = specWith({ union: [{ pfs: { repo: 'b', glob: '/*' } }, { pfs: { repo: 'a', glob: '/*' } }] });
    const datums = plan(spec, commit('a', ['/1', '/2']), commit('b', ['/x']));
    assert.deepEqual(datums.map(show), ['a:/1', 'a:/2', 'b:/x']);
  });

  it('union branches may share a name; their commits are found by repo', () => {
    const spec = specWith({ union: [{ pfs: { repo: 'a', name: 'in', glob: '/*' } }, { pfs: { repo: 'b', name: 'in', glob: '/*' } }] });
    const datums = plan(spec, commit('a', ['/1']), commit('b', ['/2']));
    assert.deepEqual(datums.map((d) => `${d.inputs[0]!.name}:${d.inputs[0]!.repo}:${d.inputs[0]!.path}`), ['in:a:/1', 'in:b:/2']);
  });

  it('the same datum reached twice is planned once', () => {
    const spec = specWith({ union: [{ pfs: { repo: 'a', name: 'in', glob: '/*' } }, { pfs: { repo: 'a', name: 'in', glob: '/x*' } }] });
    assert.deepEqual(plan(spec, commit('a', ['/x1', '/y1'])).map(show), ['in:/x1', 'in:/y1']);
  });

  it('a cross of a union', () => {
    const spec = specWith({
      cross: [{ union: [{ pfs: { repo: 'a', glob: '/*' } }, { pfs: { repo: 'b', glob: '/*' } }] }, { pfs: { repo: 'model', glob: '/' } }],
    });
    const datums = plan(spec, commit('a', ['/1']), commit('b', ['/2']), commit('model', ['/m.onnx']));
    assert.deepEqual(datums.map(show), ['a:/1 + model:/', 'b:/2 + model:/']);
  });
});

// The retail data of Pachyderm's joins and group examples, reduced: stores
// STOREID<n>.txt, purchases and returns ORDERW<id>_STOREID<n>.txt.
const stores = commit('stores', ['/STOREID1.txt', '/STOREID2.txt', '/STOREID3.txt', '/STOREID4.txt']);
const purchases = commit('purchases', ['/ORDERW1_STOREID1.txt', '/ORDERW2_STOREID1.txt', '/ORDERW3_STOREID2.txt', '/ORDERW4_STOREID5.txt']);
const returns = commit('returns', ['/ORDERW2_STOREID1.txt', '/ORDERW9_STOREID3.txt', '/ORDERW8_STOREID6.txt']);

describe('join', () => {
  it('inner join: datums only for keys present in every input, a cross product per key', () => {
    const spec = specWith({
      join: [
        { pfs: { repo: 'stores', glob: '/STOREID(*).txt', join_on: '$1' } },
        { pfs: { repo: 'purchases', glob: '/*_STOREID(*).txt', join_on: '$1' } },
      ],
    });
    const datums = plan(spec, stores, purchases);
    assert.deepEqual(datums.map(show), [
      'purchases:/ORDERW1_STOREID1.txt + stores:/STOREID1.txt',
      'purchases:/ORDERW2_STOREID1.txt + stores:/STOREID1.txt',
      'purchases:/ORDERW3_STOREID2.txt + stores:/STOREID2.txt',
    ]);
    assert.deepEqual(datums[0]!.inputs.map((i) => i.joinOn), ['1', '1']);
  });

  it('outer join on both sides keeps the unmatched datums of each', () => {
    const spec = specWith({
      join: [
        { pfs: { repo: 'stores', glob: '/STOREID(*).txt', join_on: '$1', outer_join: true } },
        { pfs: { repo: 'returns', glob: '/*_STOREID(*).txt', join_on: '$1', outer_join: true } },
      ],
    });
    assert.deepEqual(plan(spec, stores, returns).map(show), [
      'returns:/ORDERW2_STOREID1.txt + stores:/STOREID1.txt',
      'stores:/STOREID2.txt',
      'returns:/ORDERW9_STOREID3.txt + stores:/STOREID3.txt',
      'stores:/STOREID4.txt',
      'returns:/ORDERW8_STOREID6.txt',
    ]);
  });

  it('outer join on one side (the readings/parameters example from the Pachyderm docs)', () => {
    const spec = specWith({
      join: [
        { pfs: { repo: 'readings', glob: '/*/(*).txt', join_on: '$1' } },
        { pfs: { repo: 'parameters', glob: '/(*).txt', join_on: '$1', outer_join: true } },
      ],
    });
    const readings = commit('readings', [1, 2, 3, 4, 5].map((i) => `/ID1234/file${i}.txt`));
    const parameters = commit('parameters', [1, 2, 3, 4, 5, 6, 7, 8].map((i) => `/file${i}.txt`));
    const datums = plan(spec, readings, parameters);
    assert.equal(datums.length, 8, 'five pairs plus three unmatched parameters');
    assert.deepEqual(datums.slice(4).map(show), ['parameters:/file5.txt + readings:/ID1234/file5.txt', 'parameters:/file6.txt', 'parameters:/file7.txt', 'parameters:/file8.txt']);
    const inner = specWith({
      join: [
        { pfs: { repo: 'readings', glob: '/*/(*).txt', join_on: '$1' } },
        { pfs: { repo: 'parameters', glob: '/(*).txt', join_on: '$1' } },
      ],
    });
    assert.equal(plan(inner, readings, parameters).length, 5);
  });

  it('joins on several capture groups', () => {
    const spec = specWith({
      join: [
        { pfs: { repo: 'a', glob: '/(*)/(*).csv', join_on: '$1-$2' } },
        { pfs: { repo: 'b', glob: '/(*)_(*).json', join_on: '$1-$2' } },
      ],
    });
    const datums = plan(spec, commit('a', ['/2024/jan.csv', '/2024/feb.csv']), commit('b', ['/2024_jan.json', '/2023_jan.json']));
    assert.deepEqual(datums.map(show), ['a:/2024/jan.csv + b:/2024_jan.json']);
    assert.equal(datums[0]!.inputs[0]!.joinOn, '2024-jan');
  });
});

describe('group', () => {
  const labresults = commit('labresults', [
    '/T1606707557-LIPID-PATID1-CLIA24D9871327.txt',
    '/T1606331395-LIPID-PATID2-CLIA24D9871327.txt',
    '/T1606707613-LIPID-PATID1-CLIA24D9871328.txt',
    '/T1606707579-LIPID-PATID3-CLIA24D9871327.txt',
    '/T1606707635-LIPID-PATID3-CLIA24D9871328.txt',
    '/T1606707597-LIPID-PATID4-CLIA24D9871327.txt',
  ]);

  it('the lab results grouped by patient: one datum per patient (the README table)', () => {
    const spec = specWith({ group: [{ pfs: { repo: 'labresults', branch: 'master', glob: '/*-PATID(*)-*.txt', group_by: '$1' } }] });
    const datums = plan(spec, labresults);
    assert.deepEqual(
      datums.map((d) => [d.inputs[0]!.groupBy, d.inputs.map((i) => i.path)]),
      [
        ['1', ['/T1606707557-LIPID-PATID1-CLIA24D9871327.txt', '/T1606707613-LIPID-PATID1-CLIA24D9871328.txt']],
        ['2', ['/T1606331395-LIPID-PATID2-CLIA24D9871327.txt']],
        ['3', ['/T1606707579-LIPID-PATID3-CLIA24D9871327.txt', '/T1606707635-LIPID-PATID3-CLIA24D9871328.txt']],
        ['4', ['/T1606707597-LIPID-PATID4-CLIA24D9871327.txt']],
      ],
    );
    assert.equal(datumEnv(datums[0]!).PACH_DATUM_labresults_GROUP_BY, '1');
  });

  it('the lab results grouped by hospital', () => {
    const spec = specWith({ group: [{ pfs: { repo: 'labresults', glob: '/*-CLIA(*).txt', group_by: '$1' } }] });
    assert.deepEqual(
      plan(spec, labresults).map((d) => [d.inputs[0]!.groupBy, d.inputs.length]),
      [
        ['24D9871327', 4],
        ['24D9871328', 2],
      ],
    );
  });

  it('the retail group across three repos: every match of a store id, stores first', () => {
    const spec = specWith({
      group: [
        { pfs: { repo: 'stores', glob: '/STOREID(*).txt', group_by: '$1' } },
        { pfs: { repo: 'purchases', glob: '/*_STOREID(*).txt', group_by: '$1' } },
        { pfs: { repo: 'returns', glob: '/*_STOREID(*).txt', group_by: '$1' } },
      ],
    });
    assert.deepEqual(plan(spec, stores, purchases, returns).map(show), [
      'purchases:/ORDERW1_STOREID1.txt + purchases:/ORDERW2_STOREID1.txt + returns:/ORDERW2_STOREID1.txt + stores:/STOREID1.txt',
      'purchases:/ORDERW3_STOREID2.txt + stores:/STOREID2.txt',
      'returns:/ORDERW9_STOREID3.txt + stores:/STOREID3.txt',
      'stores:/STOREID4.txt',
      'purchases:/ORDERW4_STOREID5.txt',
      'returns:/ORDERW8_STOREID6.txt',
    ]);
  });
});

describe('cron and git inputs', () => {
  it('a cron input is "/*" over its tick files', () => {
    const spec = specWith({ cron: { name: 'tick', spec: '@hourly' } });
    const ticks = commit('p_tick', ['/2024-01-01T00:00:00Z', '/2024-01-01T01:00:00Z']);
    assert.deepEqual(plan(spec, ticks).map(show), ['tick:/2024-01-01T00:00:00Z', 'tick:/2024-01-01T01:00:00Z']);
  });

  it('a git input is its whole checkout as one datum', () => {
    const spec = specWith({ cross: [{ git: { url: '/src/train.git', name: 'code' } }, { pfs: { repo: 'data', glob: '/*' } }] });
    const datums = plan(spec, commit('p_code', ['/train.py', '/lib/util.py']), commit('data', ['/a.csv', '/b.csv']));
    assert.deepEqual(datums.map(show), ['code:/ + data:/a.csv', 'code:/ + data:/b.csv']);
  });
});

describe('datum ids', () => {
  const spec = specWith({ pfs: { repo: 'emails', glob: '/*' } }, { salt: 'one' });
  const v1 = commit('emails', [file('/1.eml', 'hello'), file('/2.eml', 'spam'), file('/dir/3.eml', 'x')], 'c1');

  it('are stable when the inputs do not change, even in a new commit', () => {
    const again = plan(spec, { ...v1, commit: 'c2' });
    assert.deepEqual(again.map((d) => d.id), plan(spec, v1).map((d) => d.id));
  });

  it('change only for the datums whose files changed', () => {
    const before = plan(spec, v1);
    const v2 = commit('emails', [file('/1.eml', 'hello'), file('/2.eml', 'SPAM'), file('/dir/3.eml', 'x'), file('/dir/4.eml', 'y'), file('/5.eml', 'new')], 'c2');
    const after = new Map(plan(spec, v2).map((d) => [d.inputs[0]!.path, d.id]));
    const was = new Map(before.map((d) => [d.inputs[0]!.path, d.id]));
    assert.equal(after.get('/1.eml'), was.get('/1.eml'), 'unchanged file keeps its id');
    assert.notEqual(after.get('/2.eml'), was.get('/2.eml'), 'changed content');
    assert.notEqual(after.get('/dir'), was.get('/dir'), 'a file added under a matched directory');
    assert.ok(after.has('/5.eml'));
  });

  it('all change with the salt or the transform', () => {
    const ids = new Set(plan(spec, v1).map((d) => d.id));
    const salted = specWith({ pfs: { repo: 'emails', glob: '/*' } }, { salt: 'two' });
    for (const d of plan(salted, v1)) assert.ok(!ids.has(d.id));
    const changed = validateSpec({ pipeline: { name: 'p' }, input: { pfs: { repo: 'emails', glob: '/*' } }, transform: { cmd: ['false'] }, salt: 'one' });
    for (const d of plan(changed, v1)) assert.ok(!ids.has(d.id));
  });

  it('do not depend on the description or parallelism', () => {
    const other = specWith({ pfs: { repo: 'emails', glob: '/*' } }, { salt: 'one', description: 'x', parallelism_spec: { constant: 4 } });
    assert.deepEqual(plan(other, v1).map((d) => d.id), plan(spec, v1).map((d) => d.id));
  });

  it('depend on the input name, the matched path and the join/group key', () => {
    const renamed = specWith({ pfs: { repo: 'emails', name: 'mail', glob: '/*' } }, { salt: 'one' });
    const ids = new Set(plan(spec, v1).map((d) => d.id));
    for (const d of planDatums(renamed.input, new Map([['mail', v1]]), transformHash(renamed))) assert.ok(!ids.has(d.id));
    const whole = specWith({ pfs: { repo: 'emails', glob: '/' } }, { salt: 'one' });
    const everything = specWith({ pfs: { repo: 'emails', glob: '/**' } }, { salt: 'one' });
    assert.notEqual(plan(whole, v1)[0]!.id, plan(everything, v1)[0]!.id);
  });
});

describe('datum env', () => {
  it('sets the Pachyderm variables and their STRATA_ equivalents', () => {
    const spec = specWith({
      join: [
        { pfs: { repo: 'stores', glob: '/STOREID(*).txt', join_on: '$1' } },
        { pfs: { repo: 'purchases', glob: '/*_STOREID(*).txt', join_on: '$1' } },
      ],
    });
    const [datum] = plan(spec, stores, purchases);
    assert.deepEqual(datumEnv(datum!), {
      purchases: '/pfs/purchases/ORDERW1_STOREID1.txt',
      purchases_COMMIT: 'purchases-c1',
      PACH_DATUM_purchases_JOIN_ON: '1',
      STRATA_DATUM_purchases_JOIN_ON: '1',
      stores: '/pfs/stores/STOREID1.txt',
      stores_COMMIT: 'stores-c1',
      PACH_DATUM_stores_JOIN_ON: '1',
      STRATA_DATUM_stores_JOIN_ON: '1',
      PACH_DATUM_ID: datum!.id,
      STRATA_DATUM_ID: datum!.id,
    });
  });

  it('points at the input root for "/" and honours another pfs root', () => {
    const [datum] = plan(specWith({ pfs: { repo: 'map', glob: '/' } }), commit('map', ['/a/b']));
    assert.equal(datumEnv(datum!).map, '/pfs/map');
    assert.equal(datumEnv(datum!, { pfsRoot: '/tmp/job/pfs' }).map, '/tmp/job/pfs/map');
    assert.equal(datumEnv(datum!).PACH_DATUM_map_JOIN_ON, undefined);
  });
});

describe('planning performance', () => {
  const many = (repo: string, n: number, name = (i: number) => `/f${String(i).padStart(5, '0')}.txt`) =>
    commit(repo, Array.from({ length: n }, (_, i) => file(name(i), `${repo}${i}`)));

  it('plans 10,000 datums from 10,000 files well under a second', () => {
    const spec = specWith({ pfs: { repo: 'big', glob: '/*' } });
    const big = many('big', 10_000);
    const start = performance.now();
    const datums = plan(spec, big);
    const ms = performance.now() - start;
    assert.equal(datums.length, 10_000);
    assert.ok(ms < 1000, `took ${ms.toFixed(0)} ms`);
  });

  it('joins and groups 10,000 x 10,000 matches in linear time', () => {
    const a = many('a', 10_000, (i) => `/A${i}.txt`);
    const b = many('b', 10_000, (i) => `/B${i}.txt`);
    const joined = specWith({
      join: [
        { pfs: { repo: 'a', glob: '/A(*).txt', join_on: '$1' } },
        { pfs: { repo: 'b', glob: '/B(*).txt', join_on: '$1' } },
      ],
    });
    const grouped = specWith({
      group: [
        { pfs: { repo: 'a', glob: '/A(*).txt', group_by: '$1' } },
        { pfs: { repo: 'b', glob: '/B(*).txt', group_by: '$1' } },
      ],
    });
    const start = performance.now();
    assert.equal(plan(joined, a, b).length, 10_000);
    assert.equal(plan(grouped, a, b).length, 10_000);
    const ms = performance.now() - start;
    assert.ok(ms < 2000, `took ${ms.toFixed(0)} ms`);
  });
});
