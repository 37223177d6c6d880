import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { deflateSync } from 'node:zlib';
import { stringify } from 'yaml';
import { strata, type RunResult } from '../cli/run.js';

// Pachyderm's own example pipelines, end to end through the real `strata`
// command: YAML specs written to files, `pipeline create -f`, data committed
// with `put --wait`, and the results read back with `ls`, `cat`, `get`,
// `job list`, `logs` and `lineage`, as a user following the examples would.
//   opencv     edges (python3 /edges.py, OpenCV) and montage (ImageMagick), a cross
//   wordcount  map, then reduce with glob /* over the merged per-word files
//   group      the lab-results example: group by patient and by hospital, then reduce
//   joins      readings and parameters joined on a captured file name, inner and outer
// Each example runs in an instance of its own. The specs are Pachyderm's,
// unmodified, except where Pachyderm's step is a program baked into a
// container image (the wordcount map, the join's /joins.py): there the same
// logic is a shell script, since the local executor runs on the host.

const root = mkdtempSync(join(tmpdir(), 'strata-examples-'));
after(() => rmSync(root, { recursive: true, force: true }));

interface Instance {
  dir: string;
  run(args: string[], opts?: { input?: string }): RunResult;
  /** Runs and asserts exit code 0. */
  ok(args: string[]): string;
  json<T = any>(args: string[]): T;
  /** Writes a spec as a YAML file and creates the pipeline from it. */
  pipeline(spec: Record<string, unknown>): void;
  /** Writes files under a fresh local directory: { 'a/b.txt': 'text' }. */
  files(name: string, files: Record<string, string | Buffer>): string;
}

function instance(name: string, env: NodeJS.ProcessEnv = {}): Instance {
  const dir = join(root, name);
  mkdirSync(dir);
  const fullEnv = { ...env, STRATA_HOME: join(dir, '.strata') };
  const run = (args: string[], opts: { input?: string } = {}) => strata(args, { env: fullEnv, cwd: dir, input: opts.input });
  const ok = (args: string[]) => {
    const r = run(args);
    assert.equal(r.code, 0, `strata ${args.join(' ')} exited ${r.code}:\n${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  ok(['init']);
  return {
    dir,
    run,
    ok,
    json: (args) => JSON.parse(ok([...args, '--json'])),
    pipeline(spec) {
      const file = join(dir, `${(spec.pipeline as { name: string }).name}.yaml`);
      writeFileSync(file, stringify(spec));
      ok(['pipeline', 'create', '-f', file]);
    },
    files(sub, files) {
      const base = join(dir, sub);
      for (const [path, content] of Object.entries(files)) {
        mkdirSync(dirname(join(base, path)), { recursive: true });
        writeFileSync(join(base, path), content);
      }
      return base;
    },
  };
}

interface Job {
  id: string;
  pipeline: string;
  state: string;
  reason: string;
  commit_set: string;
  output_commit: string | null;
  datums: { total: number; processed: number; skipped: number; failed: number };
}

interface Lineage {
  nodes: { id: string; kind: string; pipeline?: string }[];
  edges: { from: string; to: string }[];
}

/** `put REF DIR/ --wait --json`: asserts exit 0 and every job it waited on succeeded; returns the newest of each pipeline. */
function putAndWait(s: Instance, ref: string, dir: string): { commit: string; jobs: Map<string, Job> } {
  const r = s.run(['put', ref, `${dir}/`, '--wait', '--json']);
  assert.equal(r.code, 0, `put --wait exited ${r.code}:\n${r.stderr}${r.stdout}`);
  const out = JSON.parse(r.stdout) as { commit: string; jobs: Job[] };
  for (const j of out.jobs) assert.equal(j.state, 'success', `${j.pipeline}: ${j.reason}`);
  const jobs = new Map<string, Job>();
  for (const j of out.jobs) if (!jobs.has(j.pipeline)) jobs.set(j.pipeline, j); // newest first
  return { commit: out.commit, jobs };
}

function paths(s: Instance, ref: string): string[] {
  return s.json<{ path: string }[]>(['ls', ref, '-r']).map((f) => f.path);
}

/** Asserts the upstream lineage of REF reaches every commit and job named. */
function assertUpstream(s: Instance, ref: string, commits: string[], pipelines: string[]) {
  const g = s.json<Lineage>(['lineage', ref, '--upstream']);
  const ids = new Set(g.nodes.map((n) => n.id));
  for (const c of commits) assert.ok(ids.has(c), `lineage of ${ref} lacks ${c}: ${[...ids].join(', ')}`);
  const jobs = new Set(g.nodes.filter((n) => n.kind === 'job').map((n) => n.pipeline));
  for (const p of pipelines) assert.ok(jobs.has(p), `lineage of ${ref} lacks a ${p} job`);
  for (const e of g.edges) assert.ok(ids.has(e.from) && ids.has(e.to), `dangling edge ${e.from} -> ${e.to}`);
}

// ---------------------------------------------------------------- opencv

// The tools the opencv example's images ship: python3 with OpenCV and
// matplotlib (Pachyderm's edges.py saves with plt.imsave), and ImageMagick.
// A step's PATH is the host's, so `python3` in the spec is the first python3
// on PATH. Where that one lacks OpenCV but another on PATH has it (a pyenv
// shim in front of Debian's /usr/bin/python3, as on this project's machines),
// the instance runs with that python3's directory first: the "image" is the
// host as its user would set it up.
function findPython(): { dir: string } | undefined {
  for (const d of (process.env.PATH ?? '').split(':')) {
    if (!d.startsWith('/')) continue;
    const candidate = join(d, 'python3');
    try {
      accessSync(candidate, constants.X_OK);
    } catch {
      continue;
    }
    if (spawnSync(candidate, ['-c', 'import cv2, matplotlib'], { stdio: 'ignore', timeout: 60_000 }).status === 0) return { dir: d };
  }
  return undefined;
}

const python = findPython();
const hasMontage = spawnSync('montage', ['-version'], { stdio: 'ignore' }).status === 0;
const opencvSkip =
  python && hasMontage
    ? false
    : `SKIPPED: python3-opencv / python3-matplotlib / imagemagick not installed (${[!python && 'no python3 on PATH imports cv2 and matplotlib', !hasMontage && 'montage -version failed'].filter(Boolean).join('; ')})`;
if (opencvSkip) console.log(opencvSkip);

// Pachyderm's examples/opencv/edges.py: Canny edges of every image under
// /pfs/images, saved as a grayscale PNG of the same name in /pfs/out.
const EDGES_PY = `import os

import cv2
import numpy as np
from matplotlib import pyplot as plt


def make_edges(image):
    img = cv2.imread(os.path.join("/pfs/images", image))
    edges = cv2.Canny(img, 100, 200)
    plt.imsave(os.path.join("/pfs/out", os.path.splitext(image)[0] + ".png"), edges, cmap="gray")


for subdir, dirs, files in os.walk("/pfs/images"):
    for file in files:
        make_edges(file)
`;

/** An 8-bit RGB PNG, written by hand so making test images needs no tool. */
function png(width: number, height: number, pixel: (x: number, y: number) => [number, number, number]): Buffer {
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1);
    for (let x = 0; x < width; x++) raw.set(pixel(x, y), row + 1 + x * 3);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // bit depth 8, RGB, deflate, no filter, no interlace
  return Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', ihdr), pngChunk('IDAT', deflateSync(raw)), pngChunk('IEND', Buffer.alloc(0))]);
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function pngChunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'ascii');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Width and height from a PNG's header; fails unless the bytes start like a PNG. */
function pngSize(bytes: Buffer): { width: number; height: number } {
  assert.ok(bytes.subarray(0, 8).equals(PNG_SIGNATURE), 'not a PNG: bad signature');
  assert.equal(bytes.subarray(12, 16).toString('ascii'), 'IHDR', 'not a PNG: no IHDR first');
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
}

describe('Pachyderm opencv example: edges + montage', { skip: opencvSkip }, () => {
  let s: Instance;
  // The spec says `python3 /edges.py`, and a step sees the host's root
  // read-only as its image, so the script goes to /edges.py on the host:
  // written only if absent, and removed afterwards. Where /edges.py holds
  // something else (or / is not writable), the script goes to a host
  // directory the sandbox also shows at its own path (/var/tmp: /tmp is
  // private to each step) and the spec names that path instead.
  let edgesPy = '/edges.py';
  let cleanup: (() => void) | undefined;
  let montageJobsOfSecondPut: Job[] = [];
  const images = {
    'square.png': png(64, 64, (x, y) => (x >= 16 && x < 48 && y >= 16 && y < 48 ? [220, 30, 30] : [20, 20, 160])),
    'disc.png': png(64, 64, (x, y) => ((x - 32) ** 2 + (y - 32) ** 2 < 400 ? [30, 200, 30] : [250, 250, 250])),
    'stripes.png': png(48, 64, (x) => (Math.floor(x / 8) % 2 ? [0, 0, 0] : [255, 255, 0])),
  };

  before(() => {
    const existing = existsSync(edgesPy) ? readFileSync(edgesPy, 'utf8') : undefined;
    if (existing === undefined) {
      try {
        writeFileSync(edgesPy, EDGES_PY);
        cleanup = () => rmSync('/edges.py', { force: true });
      } catch {
        edgesPy = '';
      }
    } else if (existing !== EDGES_PY) edgesPy = '';
    if (!edgesPy) {
      const dir = mkdtempSync('/var/tmp/strata-edges-');
      edgesPy = join(dir, 'edges.py');
      writeFileSync(edgesPy, EDGES_PY);
      cleanup = () => rmSync(dir, { recursive: true, force: true });
    }
    const rest = (process.env.PATH ?? '').split(':').filter((d) => d !== python!.dir);
    s = instance('opencv', { PATH: [python!.dir, ...rest].join(':') });
  });
  after(() => cleanup?.());

  it('detects edges per image, montages images and edges, and reprocesses only a new image', () => {
    s.ok(['repo', 'create', 'images']);
    // examples/opencv/edges.json and montage.json, as YAML.
    s.pipeline({
      pipeline: { project: { name: 'default' }, name: 'edges' },
      description: 'A pipeline that performs image edge detection by using the OpenCV library.',
      input: { pfs: { glob: '/*', project: 'default', repo: 'images' } },
      transform: { cmd: ['python3', edgesPy], image: 'pachyderm/opencv:1.0' },
    });
    s.pipeline({
      pipeline: { project: { name: 'default' }, name: 'montage' },
      description: 'A pipeline that combines images from the `images` and `edges` repositories into a montage.',
      input: {
        cross: [{ pfs: { glob: '/', project: 'default', repo: 'images' } }, { pfs: { glob: '/', project: 'default', repo: 'edges' } }],
      },
      transform: {
        cmd: ['sh'],
        image: 'dpokidov/imagemagick:7.1.0-23',
        stdin: ['montage -shadow -background SkyBlue -geometry 300x300+2+2 $(find /pfs -type f | sort) /pfs/out/montage.png'],
      },
    });

    const first = putAndWait(s, 'images@master', s.files('images-1', images));
    assert.deepEqual([...first.jobs.keys()].sort(), ['edges', 'montage'], 'one commit set: edges, then montage off its output');
    assert.deepEqual(first.jobs.get('edges')!.datums, { total: 3, processed: 3, skipped: 0, failed: 0, recovered: 0 });
    assert.deepEqual(first.jobs.get('montage')!.datums, { total: 1, processed: 1, skipped: 0, failed: 0, recovered: 0 });
    assert.deepEqual(paths(s, 'edges@master'), ['/disc.png', '/square.png', '/stripes.png']);
    assert.deepEqual(paths(s, 'montage@master'), ['/montage.png']);

    const out = join(s.dir, 'got');
    s.ok(['get', 'edges@master', '-o', join(out, 'edges')]);
    s.ok(['get', 'montage@master', '-o', join(out, 'montage')]);
    for (const name of Object.keys(images)) {
      const file = join(out, 'edges', name);
      assert.deepEqual(pngSize(readFileSync(file)), pngSize(images[name as keyof typeof images]), `${name}: edges keep the image's size`);
      // Decoded by OpenCV itself: some edge pixels, mostly background.
      const py = spawnSync(join(python!.dir, 'python3'), ['-c', 'import cv2, sys; m = cv2.imread(sys.argv[1], 0); print(int((m > 127).sum()), m.size)', file], { encoding: 'utf8' });
      assert.equal(py.status, 0, py.stderr);
      const [edgePixels, size] = py.stdout.trim().split(' ').map(Number) as [number, number];
      assert.ok(edgePixels > 0 && edgePixels < size / 2, `${name}: ${edgePixels} edge pixels of ${size}`);
    }
    const montage = pngSize(readFileSync(join(out, 'montage', 'montage.png')));
    assert.ok(montage.width >= 600 && montage.height >= 300, `montage of 6 tiles is ${montage.width}x${montage.height}`);

    const jobs = s.json<Job[]>(['job', 'list']);
    assert.deepEqual(jobs.map((j) => [j.pipeline, j.state]).sort(), [['edges', 'success'], ['montage', 'success']]);
    assert.ok(jobs.every((j) => j.commit_set === first.commit), 'both jobs belong to the commit set of the put');
    assertUpstream(s, 'montage@master', [`images@${first.commit}`, `edges@${first.jobs.get('edges')!.output_commit}`], ['edges', 'montage']);

    // One more image: only its datum runs in edges; montage's one datum sees new inputs.
    const second = putAndWait(s, 'images@master', s.files('images-2', { 'square2.png': png(32, 32, (x, y) => (x > 8 && y > 8 ? [0, 0, 0] : [255, 255, 255])) }));
    assert.deepEqual(second.jobs.get('edges')!.datums, { total: 4, processed: 1, skipped: 3, failed: 0, recovered: 0 });
    assert.equal(second.jobs.get('montage')!.datums.processed, 1);
    assert.deepEqual(paths(s, 'edges@master'), ['/disc.png', '/square.png', '/square2.png', '/stripes.png']);
    montageJobsOfSecondPut = s.json<Job[]>(['job', 'list', '--pipeline', 'montage']).filter((j) => j.commit_set === second.commit);
  });

  // In Pachyderm a commit set (global id) makes montage wait for edges'
  // output commit of the same set: one montage job per commit to images.
  // Strata's scheduler also starts a montage job over the new images and the
  // previous edges at once, which runs (and briefly publishes a montage of
  // mismatched inputs) before the intended one.
  it('runs montage once per commit to images, after edges (Pachyderm commit sets)', () => {
    assert.deepEqual(
      montageJobsOfSecondPut.map((j) => j.state),
      ['success'],
      `montage jobs of the second commit set: ${montageJobsOfSecondPut.map((j) => `${j.id.slice(0, 12)} ${j.state}`).join(', ')}`,
    );
  });
});

// ---------------------------------------------------------------- word count

describe('Pachyderm word count example: map, then reduce', () => {
  let s: Instance;
  before(() => {
    s = instance('wordcount');
  });

  it('counts words across pages, and on a new page reruns only what changed', () => {
    s.ok(['repo', 'create', 'scraper']);
    // Pachyderm's map is a Go program in an image (examples/word_count): each
    // datum counts the words of its pages and writes every count to a file
    // named after the word. Datums writing the same path are merged by
    // concatenation, so /pfs/out/apple holds one count per page.
    s.pipeline({
      pipeline: { name: 'map' },
      description: 'A pipeline that tokenizes scraped pages and appends counts of words to corresponding files.',
      transform: {
        image: 'pachyderm/example-wordcount:2.0.3',
        cmd: ['sh'],
        stdin: [
          "find /pfs/scraper -type f -exec cat {} + | tr -cs 'A-Za-z' '\\n' | tr 'A-Z' 'a-z' | sed '/^$/d' | sort | uniq -c |",
          '  while read count word; do echo "$count" > "/pfs/out/$word"; done',
        ],
      },
      input: { pfs: { repo: 'scraper', glob: '/*/*' } },
    });
    // examples/word_count/reduce.json, unmodified: one datum per word file.
    // (`find /pfs/map/` lists the mount point itself too, so like the
    // original it also writes an empty-sum file /map.)
    s.pipeline({
      pipeline: { name: 'reduce' },
      transform: {
        cmd: ['sh'],
        stdin: [
          "find /pfs/map/ -name '*' | while read count; do cat $count | awk '{ sum+=$1} END {print sum}' >/tmp/count; mv /tmp/count /pfs/out/`basename $count`; echo `basename $count`; done",
        ],
      },
      input: { pfs: { repo: 'map', glob: '/*' } },
    });

    const pages = {
      'wiki/fruit.txt': 'Apple pear. Apple fig!\n',
      'wiki/trees.txt': 'A pear tree, an apple-tree.\n',
      'news/today.txt': 'Fig and apple\n',
    };
    const first = putAndWait(s, 'scraper@master', s.files('pages-1', pages));
    assert.deepEqual(first.jobs.get('map')!.datums, { total: 3, processed: 3, skipped: 0, failed: 0, recovered: 0 });
    const counts = () => {
      const words = paths(s, 'reduce@master').filter((p) => p !== '/map');
      return Object.fromEntries(words.map((p) => [p.slice(1), Number(s.ok(['cat', `reduce@master:${p}`]).trim())]));
    };
    assert.deepEqual(counts(), { a: 1, an: 1, and: 1, apple: 4, fig: 2, pear: 2, tree: 2 });
    assert.equal(first.jobs.get('reduce')!.datums.total, 7, 'one reduce datum per word');
    assert.equal(s.ok(['cat', 'map@master:/apple']).trim().split('\n').length, 3, 'map output merged from the three pages');

    // A new page: one map datum; only the words whose merged file changed are reduced again.
    const second = putAndWait(s, 'scraper@master', s.files('pages-2', { 'news/tomorrow.txt': 'apple, apple, kiwi\n' }));
    assert.deepEqual(second.jobs.get('map')!.datums, { total: 4, processed: 1, skipped: 3, failed: 0, recovered: 0 });
    assert.deepEqual(second.jobs.get('reduce')!.datums, { total: 8, processed: 2, skipped: 6, failed: 0, recovered: 0 });
    assert.deepEqual(counts(), { a: 1, an: 1, and: 1, apple: 6, fig: 2, kiwi: 1, pear: 2, tree: 2 });

    const jobs = s.json<Job[]>(['job', 'list', '--pipeline', 'reduce']);
    assert.equal(jobs.length, 2);
    assert.equal(jobs[0]!.id, second.jobs.get('reduce')!.id, 'newest first');
    const logs = s.ok(['logs', jobs[0]!.id]);
    assert.match(logs, /^apple$/m, 'the step echoes each word it reduced');
    assert.match(logs, /^kiwi$/m);
    assertUpstream(s, 'reduce@master', [`scraper@${second.commit}`, `map@${second.jobs.get('map')!.output_commit}`], ['map', 'reduce']);
  });

  it('put --wait exits 1 when a job it triggered fails, and the failure is inspectable', () => {
    s.ok(['repo', 'create', 'inbox']);
    s.pipeline({
      pipeline: { name: 'validate' },
      input: { pfs: { repo: 'inbox', glob: '/*' } },
      transform: { cmd: ['sh'], stdin: ['for f in /pfs/inbox/*; do grep -q "^ok" "$f" || { echo "invalid record in $f" >&2; exit 3; }; cp "$f" /pfs/out/; done'] },
      datum_tries: 1,
    });
    putAndWait(s, 'inbox@master', s.files('inbox-1', { 'good.txt': 'ok\n' }));
    const bad = s.run(['put', 'inbox@master', `${s.files('inbox-2', { 'bad.txt': 'nope\n' })}/`, '--wait', '--json']);
    assert.equal(bad.code, 1, bad.stderr);
    const job = (JSON.parse(bad.stdout) as { jobs: Job[] }).jobs.find((j) => j.pipeline === 'validate')!;
    assert.equal(job.state, 'failure');
    assert.match(job.reason, /1 of 2 datum\(s\) failed/);
    const inspect = s.json<{ failed_datum: { error: string; log_tail: string } }>(['job', 'inspect', job.id]);
    assert.match(inspect.failed_datum.error, /exit code 3/);
    assert.match(inspect.failed_datum.log_tail, /invalid record in \/pfs\/inbox\/bad\.txt/);
    assert.match(s.ok(['logs', job.id]), /invalid record/);
    assert.deepEqual(paths(s, 'validate@master'), ['/good.txt'], 'the failed job committed nothing');
  });
});

// ---------------------------------------------------------------- group

describe('Pachyderm group example: lab results by patient and by hospital', () => {
  it('groups files by a captured id, then reduces each group to one file', () => {
    const s = instance('group');
    s.ok(['repo', 'create', 'labresults']);
    // examples/group/pipelines/lab/*.json, as YAML.
    for (const [by, glob] of [
      ['patient', '/*-PATID(*)-*.txt'],
      ['hospital', '/*-CLIA(*).txt'],
    ] as const) {
      s.pipeline({
        pipeline: { name: `group_by_${by}` },
        description: `A pipeline that groups lab test results files by ${by} using the files naming pattern.`,
        input: { group: [{ pfs: { repo: 'labresults', branch: 'master', glob, group_by: '$1' } }] },
        transform: {
          cmd: ['bash'],
          stdin: ['mkdir -p /pfs/out/${PACH_DATUM_labresults_GROUP_BY}/', 'cp /pfs/labresults/* /pfs/out/${PACH_DATUM_labresults_GROUP_BY}/'],
        },
      });
      s.pipeline({
        pipeline: { name: `reduce_group_by_${by}` },
        description: `A pipeline that consolidates all lab results by ${by} in one file.`,
        input: { pfs: { repo: `group_by_${by}`, branch: 'master', glob: '/*' } },
        transform: {
          cmd: ['bash'],
          stdin: ['set -x', `FILES=/pfs/group_by_${by}/*/*`, 'for f in $FILES', 'do', 'directory=`dirname $f`', 'out=`basename $directory`', 'cat $f >> /pfs/out/${out}.txt', 'done'],
        },
      });
    }
    // The example's files: T<time>-<test>-PATID<patient>-CLIA<lab>.txt
    const results = {
      'T1606707557-LIPID-PATID1-CLIA24D9871327.txt': 'patient 1, lab 27: LDL 120\n',
      'T1606331395-LIPID-PATID2-CLIA24D9871327.txt': 'patient 2, lab 27: LDL 95\n',
      'T1606707613-LIPID-PATID1-CLIA24D9871328.txt': 'patient 1, lab 28: LDL 118\n',
      'T1606707579-LIPID-PATID3-CLIA24D9871327.txt': 'patient 3, lab 27: LDL 160\n',
      'T1606707635-LIPID-PATID3-CLIA24D9871328.txt': 'patient 3, lab 28: LDL 150\n',
      'T1606707597-LIPID-PATID4-CLIA24D9871327.txt': 'patient 4, lab 27: LDL 101\n',
    };
    const put = putAndWait(s, 'labresults@master', s.files('labresults', results));
    assert.deepEqual([...put.jobs.keys()].sort(), ['group_by_hospital', 'group_by_patient', 'reduce_group_by_hospital', 'reduce_group_by_patient']);
    assert.equal(put.jobs.get('group_by_patient')!.datums.total, 4, 'one datum per patient');
    assert.equal(put.jobs.get('group_by_hospital')!.datums.total, 2, 'one datum per lab');

    assert.deepEqual(paths(s, 'group_by_patient@master:/1'), ['/1/T1606707557-LIPID-PATID1-CLIA24D9871327.txt', '/1/T1606707613-LIPID-PATID1-CLIA24D9871328.txt']);
    assert.deepEqual(paths(s, 'reduce_group_by_patient@master'), ['/1.txt', '/2.txt', '/3.txt', '/4.txt']);
    assert.equal(s.ok(['cat', 'reduce_group_by_patient@master:/1.txt']), 'patient 1, lab 27: LDL 120\npatient 1, lab 28: LDL 118\n');
    assert.equal(s.ok(['cat', 'reduce_group_by_patient@master:/4.txt']), 'patient 4, lab 27: LDL 101\n');
    assert.deepEqual(paths(s, 'reduce_group_by_hospital@master'), ['/24D9871327.txt', '/24D9871328.txt']);
    assert.equal(s.ok(['cat', 'reduce_group_by_hospital@master:/24D9871328.txt']), 'patient 1, lab 28: LDL 118\npatient 3, lab 28: LDL 150\n');
    assert.equal(s.ok(['cat', 'reduce_group_by_hospital@master:/24D9871327.txt']).split('\n').filter(Boolean).length, 4);

    const jobs = s.json<Job[]>(['job', 'list']);
    assert.equal(jobs.length, 4);
    assert.ok(jobs.every((j) => j.state === 'success' && j.commit_set === put.commit));
    const reduce = put.jobs.get('reduce_group_by_patient')!;
    assert.match(s.ok(['logs', reduce.id]), /\+ cat \/pfs\/group_by_patient\/3\/T1606707579-LIPID-PATID3-CLIA24D9871327\.txt/, 'set -x traces reach the logs');
    assertUpstream(s, 'reduce_group_by_patient@master', [`labresults@${put.commit}`], ['group_by_patient', 'reduce_group_by_patient']);
  });
});

// ---------------------------------------------------------------- joins

describe('Pachyderm join example: readings and parameters, inner and outer', () => {
  it('pairs files on a captured name; the outer join keeps unmatched parameters', () => {
    const s = instance('joins');
    s.ok(['repo', 'create', 'readings']);
    s.ok(['repo', 'create', 'parameters']);
    // The join spec of Pachyderm's docs (readings /ID/fileN.txt, parameters
    // /fileN.txt, join_on the file name); its /joins.py is not published
    // with it, so the step here pairs the two files in shell.
    const step = [
      'key="${PACH_DATUM_readings_JOIN_ON:-$PACH_DATUM_parameters_JOIN_ON}"',
      'reading=$(cat /pfs/readings/*/*.txt 2>/dev/null)',
      'parameter=$(cat /pfs/parameters/*.txt 2>/dev/null)',
      'echo "reading=${reading:-none} parameter=${parameter:-none}" > "/pfs/out/$key.txt"',
    ];
    for (const outer of [false, true]) {
      s.pipeline({
        pipeline: { name: outer ? 'outer_join' : 'inner_join' },
        input: {
          join: [
            { pfs: { repo: 'readings', branch: 'master', glob: '/*/(*).txt', join_on: '$1' } },
            { pfs: { repo: 'parameters', branch: 'master', glob: '/(*).txt', join_on: '$1', ...(outer ? { outer_join: true } : {}) } },
          ],
        },
        transform: { cmd: ['sh'], stdin: step, image: 'joins-example' },
      });
    }
    const readings: Record<string, string> = {};
    for (const n of [1, 2, 3, 4, 5, 9]) readings[`ID1234/file${n}.txt`] = `r${n}`;
    const parameters: Record<string, string> = {};
    for (let n = 1; n <= 8; n++) parameters[`file${n}.txt`] = `p${n}`;
    // No job until every input has a commit (as in Pachyderm).
    const r = putAndWait(s, 'readings@master', s.files('readings', readings));
    assert.equal(r.jobs.size, 0, 'parameters has no commit yet');
    const p = putAndWait(s, 'parameters@master', s.files('parameters', parameters));

    assert.equal(p.jobs.get('inner_join')!.datums.total, 5, 'file1..5 are in both');
    assert.deepEqual(paths(s, 'inner_join@master'), [1, 2, 3, 4, 5].map((n) => `/file${n}.txt`));
    assert.equal(s.ok(['cat', 'inner_join@master:/file3.txt']), 'reading=r3 parameter=p3\n');

    assert.equal(p.jobs.get('outer_join')!.datums.total, 8, 'file1..5 paired, file6..8 alone; file9 has no parameter and parameters is the outer side');
    assert.deepEqual(paths(s, 'outer_join@master'), [1, 2, 3, 4, 5, 6, 7, 8].map((n) => `/file${n}.txt`));
    assert.equal(s.ok(['cat', 'outer_join@master:/file7.txt']), 'reading=none parameter=p7\n');
    assert.equal(s.ok(['cat', 'outer_join@master:/file2.txt']), 'reading=r2 parameter=p2\n');

    const datums = s.json<{ state: string; inputs: { name: string; path: string }[] }[]>(['datum', 'list', p.jobs.get('outer_join')!.id]);
    const lonely = datums.filter((d) => d.inputs.length === 1).map((d) => d.inputs[0]!.path).sort();
    assert.deepEqual(lonely, ['/file6.txt', '/file7.txt', '/file8.txt']);

    // file9's parameter arrives: one new pair in each join, the others reused.
    const more = putAndWait(s, 'parameters@master', s.files('parameters-2', { 'file9.txt': 'p9' }));
    assert.deepEqual(more.jobs.get('inner_join')!.datums, { total: 6, processed: 1, skipped: 5, failed: 0, recovered: 0 });
    assert.deepEqual(more.jobs.get('outer_join')!.datums, { total: 9, processed: 1, skipped: 8, failed: 0, recovered: 0 });
    assert.equal(s.ok(['cat', 'inner_join@master:/file9.txt']), 'reading=r9 parameter=p9\n');

    const jobs = s.json<Job[]>(['job', 'list', '--pipeline', 'inner_join']);
    assert.deepEqual(jobs.map((j) => j.state), ['success', 'success']);
    assertUpstream(s, 'inner_join@master', [`parameters@${more.commit}`, `readings@${r.commit}`], ['inner_join']);
    assert.ok(readdirSync(s.dir).includes('inner_join.yaml'), 'the specs were YAML files');
  });
});
