import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDuration } from '../../src/pipelines/duration.js';
import {
  detectCycle,
  InvalidSpecError,
  inputRepos,
  parseSpec,
  parseSpecs,
  specHash,
  transformHash,
  validateSpec,
  type PipelineSpec,
} from '../../src/pipelines/spec.js';
import { InvalidArgumentError } from '../../src/errors.js';

// Pachyderm's own example specs, verbatim from github.com/pachyderm/pachyderm
// (examples/opencv, examples/group, examples/joins, examples/word_count), must
// parse unmodified; everything else a spec author can get wrong must be
// reported by path, all at once.

const OPENCV_EDGES = `{
  "pipeline": {
      "project": {"name": "default"},
      "name": "edges"
  },
  "description": "A pipeline that performs image edge detection by using the OpenCV library.",
  "input": {
    "pfs": {
      "glob": "/*",
      "project": "default",
      "repo": "images"
    }
  },
  "transform": {
    "cmd": [ "python3", "/edges.py" ],
    "image": "pachyderm/opencv:1.0"
  }
}
`;

// The 2.x edges.pipeline.json variant, with autoscaling.
const OPENCV_EDGES_AUTOSCALING = `{
  "pipeline": {
    "name": "edges"
  },
  "description": "A pipeline that performs image edge detection by using the OpenCV library.",
  "input": {
    "pfs": {
      "glob": "/*",
      "repo": "images"
    }
  },
  "autoscaling": true,
  "transform": {
    "cmd": ["python3", "/edges.py"],
    "image": "pachyderm/opencv:1.0"
  }
}
`;

const OPENCV_MONTAGE = `{
  "pipeline": {
    "project": {"name": "default"},
    "name": "montage"
  },
  "description": "A pipeline that combines images from the \`images\` and \`edges\` repositories into a montage.",
  "input": {
    "cross": [ {
      "pfs": {
        "glob": "/",
        "project": "default",
        "repo": "images"
      }
    },
    {
      "pfs": {
        "glob": "/",
        "project": "default",
        "repo": "edges"
      }
    } ]
  },
  "transform": {
    "cmd": [ "sh" ],
    "image": "dpokidov/imagemagick:7.1.0-23",
    "stdin": [ "montage -shadow -background SkyBlue -geometry 300x300+2+2 $(find /pfs -type f | sort) /pfs/out/montage.png" ]
  }
}

`;

const GROUP_BY_PATIENT = `{
  "pipeline": {
    "name": "group_by_patient"
  },
  "description": "A pipeline that groups lab test results files by patient using the files naming pattern.",
  "input": {
    "group": [
      {
        "pfs": {
          "repo": "labresults",
          "branch": "master",
          "glob": "/*-PATID(*)-*.txt",
          "group_by": "$1"
        }
      }
    ]
  },
  "transform": {
    "cmd": ["bash"],
    "stdin": [
      "mkdir -p /pfs/out/\${PACH_DATUM_labresults_GROUP_BY}/",
      "cp /pfs/labresults/* /pfs/out/\${PACH_DATUM_labresults_GROUP_BY}/"
    ]
  }
}
`;

const GROUP_BY_HOSPITAL = `{
  "pipeline": {
    "name": "group_by_hospital"
  },
  "description": "A pipeline that groups lab test results files by hospital using the files naming pattern.",
  "input": {
    "group": [
      {
        "pfs": {
          "repo": "labresults",
          "branch": "master",
          "glob": "/*-CLIA(*).txt",
          "group_by": "$1"
        }
      }
    ]
  },
  "transform": {
    "cmd": ["bash"],
    "stdin": [
      "mkdir -p /pfs/out/\${PACH_DATUM_labresults_GROUP_BY}/",
      "cp /pfs/labresults/* /pfs/out/\${PACH_DATUM_labresults_GROUP_BY}/"
    ]
  }
}
`;

const RETAIL_GROUP = `{
  "pipeline": {
    "name": "group_store_revenue"
  },
  "description": "A pipeline that groups purchases and returns by storeId to calculate the gross_revenue minus returns of each store.",
  "input": {
    "group": [
      {
        "pfs": {
          "repo": "stores",
          "branch": "master",
          "glob": "/STOREID(*).txt",
          "group_by": "$1"
        }
      },
      {
        "pfs": {
          "repo": "purchases",
          "branch": "master",
          "glob": "/*_STOREID(*).txt",
          "group_by": "$1"
        }
      },
      {
        "pfs": {
          "repo": "returns",
          "branch": "master",
          "glob": "/*_STOREID(*).txt",
          "group_by": "$1"
        }
      }
    ]
  },
  "transform": {
    "cmd": ["python", "main.py"],
    "image": "pachyderm/example-group:2.1.0"
  }
}
`;

const INNER_JOIN = `{
  "pipeline": {
    "name": "inner_join"
  },
  "description": "A pipeline that lists all purchases by zipcode joining stores and purchases information.",
  "input": {
    "join": [
      {
        "pfs": {
          "repo": "stores",
          "branch": "master",
          "glob": "/STOREID(*).txt",
          "join_on": "$1"
        }
      },
      {
        "pfs": {
          "repo": "purchases",
          "branch": "master",
          "glob": "/*_STOREID(*).txt",
          "join_on": "$1"
        }
      }
    ]
  },
  "transform": {
    "cmd": ["python", "inner/main.py"],
    "image": "pachyderm/example-joins-inner-outer:2.1.0"
  }
}
`;

const OUTER_JOIN = `{
  "pipeline": {
    "name": "outer_join"
  },
  "description": "A pipeline that lists all returns by zipcode joining stores and returns information.",
  "input": {
    "join": [
      {
        "pfs": {
          "repo": "stores",
          "branch": "master",
          "glob": "/STOREID(*).txt",
          "join_on": "$1",
          "outer_join": true
        }
      },
      {
        "pfs": {
          "repo": "returns",
          "branch": "master",
          "glob": "/*_STOREID(*).txt",
          "join_on": "$1",
          "outer_join": true
        }
      }
    ]
  },
  "transform": {
    "cmd": ["python", "outer/main.py"],
    "image": "pachyderm/example-joins-inner-outer:2.1.0"
  }
}
`;

const WORD_COUNT_MAP = `{
  "pipeline": {
    "name": "map"
  },
  "description": "A pipeline that tokenizes scraped pages and appends counts of words to corresponding files.",
  "transform": {
    "image": "pachyderm/example-wordcount:2.0.3",
    "cmd": [
      "app",
      "/pfs/scraper/",
      "/pfs/out"
    ]
  },
  "input": {
    "pfs": {
      "repo": "scraper",
      "glob": "/*/*"
    }
  }
}
`;

const WORD_COUNT_REDUCE = `{
  "pipeline": {
    "name": "reduce"
  },
  "description": "A pipeline that aggregates the total counts for each word.",
  "transform": {
    "cmd": ["sh"],
    "stdin": [
      "mkdir /tmp/out",
      "set -x",
      "FILES=/pfs/map/*/*",
      "for f in $FILES",
      "do",
      "out=\`basename $f\`",
      "cat $f >> /tmp/out/\${out}",
      "done",
      "find /tmp/out/ -name '*' | while read count; do cat $count | awk '{ sum+=$1} END {print sum}' >/tmp/count; mv /tmp/count /pfs/out/\`basename $count\`; echo \`basename $count\`; done"
    ]
  },
  "input": {
    "pfs": {
      "repo": "map",
      "glob": "/"
    }
  }
}
`;

/** Asserts that `fn` throws an InvalidSpecError whose problems include every `expected` line. */
function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof InvalidSpecError, `expected InvalidSpecError, got ${err}`);
    assert.ok(err instanceof InvalidArgumentError);
    assert.equal(err.code, 'INVALID_ARGUMENT');
    for (const p of err.problems) assert.ok(err.message.includes(p), 'the message lists every problem');
    return err.problems;
  }
  assert.fail('expected the spec to be rejected');
}

const minimal = (extra: Record<string, unknown> = {}) => ({
  pipeline: { name: 'p' },
  input: { pfs: { repo: 'r', glob: '/*' } },
  transform: { cmd: ['true'] },
  ...extra,
});

describe("Pachyderm's example specs parse unmodified", () => {
  it('opencv edges (2.5+ form, with projects)', () => {
    const spec = parseSpec(OPENCV_EDGES);
    assert.deepEqual(spec.pipeline, { name: 'edges', project: 'default' });
    assert.deepEqual(spec.input, {
      pfs: { name: 'images', repo: 'images', branch: 'master', glob: '/*', outerJoin: false, lazy: false, emptyFiles: false, project: 'default' },
    });
    assert.deepEqual(spec.transform, { cmd: ['python3', '/edges.py'], env: {}, image: 'pachyderm/opencv:1.0', acceptReturnCode: [] });
    assert.equal(spec.parallelismSpec.constant, 1);
    assert.equal(spec.datumTries, 3);
    assert.equal(spec.reprocessSpec, 'until_success');
    assert.deepEqual(spec.sandbox, { network: false });
  });

  it('opencv edges with autoscaling (kept, without effect)', () => {
    const spec = parseSpec(OPENCV_EDGES_AUTOSCALING);
    assert.deepEqual(spec.pachyderm, { autoscaling: true });
  });

  it('opencv montage: a cross of two whole repos', () => {
    const spec = parseSpec(OPENCV_MONTAGE);
    assert.ok('cross' in spec.input);
    assert.deepEqual(
      inputRepos(spec).map((i) => [i.name, i.repo, i.branch, i.kind]),
      [
        ['images', 'images', 'master', 'pfs'],
        ['edges', 'edges', 'master', 'pfs'],
      ],
    );
    assert.deepEqual(spec.transform.stdin, ['montage -shadow -background SkyBlue -geometry 300x300+2+2 $(find /pfs -type f | sort) /pfs/out/montage.png']);
  });

  it('lab results grouped by patient and by hospital', () => {
    for (const [text, glob] of [
      [GROUP_BY_PATIENT, '/*-PATID(*)-*.txt'],
      [GROUP_BY_HOSPITAL, '/*-CLIA(*).txt'],
    ] as const) {
      const spec = parseSpec(text);
      assert.ok('group' in spec.input);
      const [child] = spec.input.group;
      assert.ok(child && 'pfs' in child);
      assert.equal(child.pfs.glob, glob);
      assert.equal(child.pfs.groupBy, '$1');
    }
  });

  it('retail group across three repos', () => {
    const spec = parseSpec(RETAIL_GROUP);
    assert.deepEqual(inputRepos(spec).map((i) => i.name), ['stores', 'purchases', 'returns']);
  });

  it('inner and outer joins', () => {
    const inner = parseSpec(INNER_JOIN);
    const outer = parseSpec(OUTER_JOIN);
    assert.ok('join' in inner.input && 'join' in outer.input);
    assert.deepEqual(
      inner.input.join.map((i) => 'pfs' in i && [i.pfs.joinOn, i.pfs.outerJoin]),
      [
        ['$1', false],
        ['$1', false],
      ],
    );
    assert.deepEqual(
      outer.input.join.map((i) => 'pfs' in i && i.pfs.outerJoin),
      [true, true],
    );
  });

  it("word count's map and reduce, which form a DAG", () => {
    const map = parseSpec(WORD_COUNT_MAP);
    const reduce = parseSpec(WORD_COUNT_REDUCE);
    assert.equal(reduce.transform.stdin?.length, 9);
    assert.deepEqual(inputRepos(reduce), [{ name: 'map', repo: 'map', branch: 'master', kind: 'pfs' }]);
    assert.equal(detectCycle([map, reduce]), null);
  });

  it('several specs in one file (YAML documents or a JSON array)', () => {
    const yaml = `
pipeline: {name: a}
input: {pfs: {repo: r, glob: /}}
transform: {cmd: [cat]}
---
pipeline: {name: b}
input: {pfs: {repo: a, glob: /*}}
transform: {cmd: [cat]}
`;
    assert.deepEqual(parseSpecs(yaml).map((s) => s.pipeline.name), ['a', 'b']);
    assert.deepEqual(parseSpecs(`[${WORD_COUNT_MAP}, ${WORD_COUNT_REDUCE}]`).map((s) => s.pipeline.name), ['map', 'reduce']);
    assert.throws(() => parseSpec(yaml), /expected one pipeline spec, found 2/);
    assert.throws(() => parseSpec('# nothing here\n'), /the pipeline spec is empty/);
  });
});

describe('spec format', () => {
  it('accepts snake_case and camelCase keys and normalizes to camelCase', () => {
    const snake = parseSpec(`
pipeline:
  name: features
input:
  join:
    - pfs: {repo: a, glob: "/(*).csv", join_on: "$1", outer_join: true, empty_files: true}
    - pfs: {repo: b, glob: "/(*).csv", join_on: "$1"}
transform:
  cmd: [python3, /f.py]
  working_dir: /work
  accept_return_code: [1, 2]
  err_cmd: [echo, failed]
  env: {LEVEL: debug, PORT: 8080}
parallelism_spec: {constant: 4}
datum_tries: 5
datum_timeout: 1m30s
job_timeout: 2h
resource_requests: {cpu: 0.5, memory: 1G, gpu: {type: nvidia.com/gpu, number: 1}, disk: 10G}
resource_limits: {cpu: "2", memory: 4G}
reprocess_spec: every_job
salt: abc
sandbox: {network: true}
tracking: {experiment: emails}
model: {name: spam, path: /model.onnx}
declassifies: [email]
`);
    const camel = validateSpec({
      pipeline: { name: 'features' },
      input: {
        join: [
          { pfs: { repo: 'a', glob: '/(*).csv', joinOn: '$1', outerJoin: true, emptyFiles: true } },
          { pfs: { repo: 'b', glob: '/(*).csv', joinOn: '$1' } },
        ],
      },
      transform: { cmd: ['python3', '/f.py'], workingDir: '/work', acceptReturnCode: [1, 2], errCmd: ['echo', 'failed'], env: { LEVEL: 'debug', PORT: '8080' } },
      parallelismSpec: { constant: 4 },
      datumTries: 5,
      datumTimeout: '1m30s',
      jobTimeout: '2h',
      resourceRequests: { cpu: 0.5, memory: '1G', gpu: { type: 'nvidia.com/gpu', number: 1 }, disk: '10G' },
      resourceLimits: { cpu: '2', memory: '4G' },
      reprocessSpec: 'every_job',
      salt: 'abc',
      sandbox: { network: true },
      tracking: { experiment: 'emails' },
      model: { name: 'spam', path: '/model.onnx' },
      declassifies: ['email'],
    });
    assert.deepEqual(snake, camel);
    assert.equal(specHash(snake), specHash(camel));
    assert.equal(snake.datumTimeoutMs, 90_000);
    assert.equal(snake.jobTimeoutMs, 7_200_000);
    assert.equal(snake.parallelismSpec.constant, 4);
    assert.deepEqual(snake.transform.env, { LEVEL: 'debug', PORT: '8080' });
    assert.deepEqual(snake.transform.acceptReturnCode, [1, 2]);
    assert.deepEqual(snake.resourceRequests, { cpu: 0.5, memory: '1G', gpu: { type: 'nvidia.com/gpu', number: 1 }, disk: '10G' });
    assert.equal(snake.reprocessSpec, 'every_job');
    assert.deepEqual(snake.sandbox, { network: true });
    assert.deepEqual(snake.tracking, { experiment: 'emails' });
    assert.deepEqual(snake.declassifies, ['email']);
  });

  it('sniffs JSON and YAML, and honours an explicit format', () => {
    const json = JSON.stringify(minimal());
    assert.equal(parseSpec(json).pipeline.name, 'p');
    assert.equal(parseSpec(json, 'yaml').pipeline.name, 'p'); // JSON is YAML
    assert.equal(parseSpec('pipeline: {name: p}\ninput: {pfs: {repo: r, glob: /}}\ntransform: {cmd: [x]}\n').pipeline.name, 'p');
  });

  it('reports syntax errors with a line number', () => {
    assert.throws(() => parseSpec('{\n  "pipeline": {"name": "p"},\n  "input": }\n'), (err: unknown) => {
      assert.ok(err instanceof InvalidArgumentError);
      assert.match(err.message, /not valid JSON/);
      assert.match(err.message, /line 3/);
      return true;
    });
    assert.throws(() => parseSpec('pipeline:\n  name: p\n name: q\n'), /not valid YAML.*line/s);
  });

  it('cron and git inputs read a repo named <pipeline>_<input>', () => {
    const spec = validateSpec({
      pipeline: { name: 'nightly' },
      input: {
        cross: [
          { cron: { name: 'tick', spec: '@every 1h', overwrite: true } },
          { git: { url: 'https://github.com/acme/train-code.git' } },
          { cron: { name: 'tz', spec: 'TZ=Europe/Paris 0 3 * * 1-5', repo: 'ticks', start: '2024-01-01T00:00:00Z' } },
        ],
      },
      transform: { cmd: ['make', 'train'] },
    });
    assert.deepEqual(inputRepos(spec), [
      { name: 'tick', repo: 'nightly_tick', branch: 'master', kind: 'cron' },
      { name: 'train-code', repo: 'nightly_train-code', branch: 'master', kind: 'git' },
      { name: 'tz', repo: 'ticks', branch: 'master', kind: 'cron' },
    ]);
    assert.ok('cross' in spec.input);
    assert.deepEqual(spec.input.cross[1], {
      git: { name: 'train-code', url: 'https://github.com/acme/train-code.git', branch: 'master', repo: 'nightly_train-code' },
    });
  });

  it('keeps transform secrets and Pachyderm-only settings as given', () => {
    const spec = validateSpec(
      minimal({
        transform: { cmd: ['x'], secrets: [{ name: 's', env_var: 'TOKEN', key: 'token' }], image_pull_secrets: ['regcred'] },
        pod_patch: '[]',
        scheduling_spec: { node_selector: { disk: 'ssd' } },
        output_branch: 'master',
      }),
    );
    assert.deepEqual(spec.transform.secrets, [{ name: 's', env_var: 'TOKEN', key: 'token' }]);
    assert.deepEqual(spec.transform.imagePullSecrets, ['regcred']);
    assert.deepEqual(spec.pachyderm, { podPatch: '[]', schedulingSpec: { node_selector: { disk: 'ssd' } }, outputBranch: 'master' });
  });

  it('treats null as "not set", as Pachyderm JSON does', () => {
    const spec = validateSpec(minimal({ description: null, salt: null }));
    assert.equal(spec.description, undefined);
    assert.equal(spec.salt, undefined);
  });

  it('normalizes globs ("*" is "/*")', () => {
    const spec = validateSpec(minimal({ input: { pfs: { repo: 'r', glob: '*' } } }));
    assert.ok('pfs' in spec.input);
    assert.equal(spec.input.pfs.glob, '/*');
  });
});

describe('spec validation', () => {
  it('names a missing field by its path', () => {
    const problems = problemsOf(() =>
      validateSpec({
        pipeline: { name: 'p' },
        input: { cross: [{ pfs: { repo: 'a', glob: '/' } }, { pfs: { repo: 'b' } }] },
        transform: { cmd: ['x'] },
      }),
    );
    assert.deepEqual(problems, ['input.cross[1].pfs.glob: required']);
  });

  it('reports every problem at once, one per line', () => {
    let message = '';
    const problems = problemsOf(() => {
      try {
        return validateSpec({ input: { pfs: { glob: '/' } }, transform: {}, datum_tries: 0 });
      } catch (err) {
        message = (err as Error).message;
        throw err;
      }
    });
    assert.deepEqual(problems.sort(), ['datum_tries: must be at least 1, got 0', 'input.pfs.repo: required', 'pipeline.name: required', 'transform.cmd: required'].sort());
    assert.equal(message.split('\n').length, 5);
    assert.match(message, /^4 problems in pipeline spec:/);
  });

  it('rejects unknown fields with a did-you-mean, in either case style', () => {
    assert.deepEqual(problemsOf(() => validateSpec(minimal({ transform: { comand: ['x'], cmd: ['x'] } }))), ['transform.comand: unknown field; did you mean "cmd"?']);
    assert.deepEqual(
      problemsOf(() => validateSpec({ pipeline: { name: 'p' }, input: { pfs: { repo: 'r', glob: '/' } }, transform: { comand: ['x'] } })),
      ['transform.comand: unknown field; did you mean "cmd"?'],
      'no "transform.cmd: required" repeating the did-you-mean',
    );
    assert.deepEqual(problemsOf(() => validateSpec({ pipelin: { name: 'p' }, input: { pfs: { repo: 'r', glob: '/' } }, transform: { cmd: ['x'] } })), [
      'pipelin: unknown field; did you mean "pipeline"?',
    ]);
    assert.deepEqual(problemsOf(() => validateSpec(minimal({ transform: { cmd: ['x'], workingDri: '/' } }))), ['transform.workingDri: unknown field; did you mean "workingDir"?']);
    assert.deepEqual(problemsOf(() => validateSpec(minimal({ transform: { cmd: ['x'], working_dri: '/' } }))), ['transform.working_dri: unknown field; did you mean "working_dir"?']);
    assert.deepEqual(problemsOf(() => validateSpec(minimal({ parallelism: { constant: 2 } }))), ['parallelism: unknown field; did you mean "parallelism_spec"?']);
    assert.deepEqual(problemsOf(() => validateSpec(minimal({ input: { pfs: { repo: 'r', glob: '/', joinon: '$1' } } }))), ['input.pfs.joinon: unknown field; did you mean "join_on"?']);
    const [far] = problemsOf(() => validateSpec(minimal({ zzzzzzzzzzzz: 1 })));
    assert.match(far!, /^zzzzzzzzzzzz: unknown field; expected one of pipeline, description, input, /);
  });

  it('rejects a field given in both case styles', () => {
    assert.deepEqual(problemsOf(() => validateSpec(minimal({ datum_tries: 2, datumTries: 3 }))), ['datumTries: given twice, as "datum_tries" and "datumTries"']);
  });

  it('rejects values of the wrong type', () => {
    const problems = problemsOf(() =>
      validateSpec({
        pipeline: { name: 'p' },
        input: { pfs: { repo: 'r', glob: 5, lazy: 'yes' } },
        transform: { cmd: 'python3 /edges.py', env: { A: ['x'] }, accept_return_code: ['1'] },
        parallelism_spec: { constant: 1.5 },
        sandbox: { network: 'no' },
        tracking: [],
      }),
    );
    assert.deepEqual(problems.sort(), [
      'input.pfs.glob: expected a string, got number 5',
      'input.pfs.lazy: expected true or false, got the string "yes"',
      'parallelism_spec.constant: expected an integer, got number 1.5',
      'sandbox.network: expected true or false, got the string "no"',
      'tracking: expected an object, got an array',
      'transform.accept_return_code[0]: expected an integer exit code, got the string "1"',
      'transform.cmd: expected an array of strings, got the string "python3 /edges.py" (write ["python3", ...], one element per argument)',
      'transform.env: A: expected a string, got an array',
    ].sort());
  });

  it('rejects a spec that is not an object', () => {
    assert.deepEqual(problemsOf(() => validateSpec([])), ['spec: expected an object, got an array']);
    assert.deepEqual(problemsOf(() => parseSpec('just text')), ['spec: expected an object, got the string "just text"']);
  });

  it('rejects bad names', () => {
    const problems = problemsOf(() => validateSpec({ ...minimal(), pipeline: { name: '-bad' }, input: { pfs: { repo: 'a b', glob: '/' } } }));
    assert.equal(problems.length, 2);
    assert.match(problems[0]!, /^pipeline\.name: "-bad" is not a valid name/);
    assert.match(problems[1]!, /^input\.pfs\.repo: "a b" is not a valid name/);
  });

  it('requires exactly one input kind', () => {
    assert.deepEqual(problemsOf(() => validateSpec(minimal({ input: {} }))), ['input: expected one of pfs, cross, union, join, group, cron, git']);
    assert.deepEqual(
      problemsOf(() => validateSpec(minimal({ input: { pfs: { repo: 'a', glob: '/' }, cross: [] } }))),
      ['input: only one of pfs, cross, union, join, group, cron, git may be set, found pfs and cross'],
    );
    assert.deepEqual(problemsOf(() => validateSpec(minimal({ input: { union: [] } }))), ['input.union: expected at least one input']);
    assert.deepEqual(problemsOf(() => validateSpec({ pipeline: { name: 'p' }, transform: { cmd: ['x'] } })), ['input: required']);
  });

  it('rejects duplicate input names, naming both inputs', () => {
    const [problem] = problemsOf(() =>
      validateSpec(minimal({ input: { cross: [{ pfs: { repo: 'images', glob: '/' } }, { pfs: { repo: 'images', glob: '/*' } }] } })),
    );
    assert.match(problem!, /^input\.cross\[1\]\.pfs\.repo: input name "images" \(the repo name, as name is not set\) is already used by input\.cross\[0\]\.pfs/);
    const [named] = problemsOf(() =>
      validateSpec(
        minimal({
          input: { join: [{ pfs: { repo: 'a', name: 'x', glob: '/(*)', join_on: '$1' } }, { cross: [{ pfs: { repo: 'b', name: 'x', glob: '/(*)' } }] }] },
        }),
      ),
    );
    assert.match(named!, /^input\.join\[1\]\.cross\[0\]\.pfs\.name: input name "x" is already used by input\.join\[0\]\.pfs/);
  });

  it('lets the branches of a union share a name (Pachyderm does), but not what the union is crossed with', () => {
    const ok = validateSpec(
      minimal({ input: { union: [{ pfs: { repo: 'a', name: 'in', glob: '/*' } }, { pfs: { repo: 'b', name: 'in', glob: '/*' } }] } }),
    );
    assert.deepEqual(inputRepos(ok).map((i) => `${i.name}:${i.repo}`), ['in:a', 'in:b']);
    const [problem] = problemsOf(() =>
      validateSpec(
        minimal({
          input: {
            cross: [
              { union: [{ pfs: { repo: 'a', name: 'in', glob: '/*' } }, { pfs: { repo: 'b', name: 'other', glob: '/*' } }] },
              { pfs: { repo: 'c', name: 'other', glob: '/' } },
            ],
          },
        }),
      ),
    );
    assert.match(problem!, /^input\.cross\[1\]\.pfs\.name: input name "other" is already used by input\.cross\[0\]\.union\[1\]\.pfs/);
  });

  it('checks join_on / group_by against the glob capture groups', () => {
    assert.deepEqual(
      problemsOf(() => validateSpec(minimal({ input: { join: [{ pfs: { repo: 'a', glob: '/(*).txt', join_on: '$2' } }, { pfs: { repo: 'b', glob: '/*' } }] } }))),
      [
        'input.join[0].pfs.join_on: "$2" refers to capture group 2 but glob "/(*).txt" has 1 (put parentheses around the part to capture, e.g. "/(*).txt")',
        'input.join[1].pfs.join_on: required in a join input (e.g. "$1", naming a capture group of the glob)',
      ],
    );
    assert.deepEqual(problemsOf(() => validateSpec(minimal({ input: { group: [{ pfs: { repo: 'a', glob: '/*' } }] } }))), [
      'input.group[0].pfs.group_by: required in a group input (e.g. "$1", naming a capture group of the glob)',
    ]);
    assert.deepEqual(problemsOf(() => validateSpec(minimal({ input: { pfs: { repo: 'a', glob: '/[a' } } }))), ['input.pfs.glob: invalid glob: a "[" is never closed']);
  });

  it('rejects what Strata cannot run, and reserved names', () => {
    assert.deepEqual(problemsOf(() => validateSpec(minimal({ spout: {} }))), ['spout: not supported by Strata (a Pachyderm feature with no local equivalent)']);
    assert.deepEqual(problemsOf(() => validateSpec(minimal({ input: { pfs: { repo: 'r', glob: '/', s3: true } } }))), ['input.pfs.s3: not supported by Strata (S3 gateway inputs)']);
    assert.deepEqual(problemsOf(() => validateSpec(minimal({ input: { pfs: { repo: 'out', glob: '/' } } }))), [
      'input.pfs.name: required for a repo named "out" (/pfs/out is where the pipeline writes its output)',
    ]);
    assert.deepEqual(problemsOf(() => validateSpec(minimal({ output_branch: 'dev' }))), ['output_branch: Strata pipelines always write to the "master" branch of their output repo']);
  });

  it('rejects a pipeline reading its own output', () => {
    assert.deepEqual(problemsOf(() => validateSpec(minimal({ input: { pfs: { repo: 'p', glob: '/' } } }))), [
      `input.pfs.repo: "p" is this pipeline's own output repo; a pipeline cannot read its own output`,
    ]);
  });

  it('validates cron schedules and starts', () => {
    const problems = problemsOf(() =>
      validateSpec(
        minimal({
          input: {
            cross: [
              { cron: { name: 'a', spec: 'every hour' } },
              { cron: { name: 'b', spec: '@every soon' } },
              { cron: { name: 'c', spec: '@sometimes' } },
              { cron: { name: 'd', spec: '@daily', start: 'yesterday' } },
              { cron: { spec: '@daily' } },
            ],
          },
        }),
      ),
    );
    assert.deepEqual(problems.map((p) => p.split(': ')[0]), [
      'input.cross[0].cron.spec',
      'input.cross[1].cron.spec',
      'input.cross[2].cron.spec',
      'input.cross[3].cron.start',
      'input.cross[4].cron.name',
    ]);
  });

  it('validates durations', () => {
    assert.deepEqual(problemsOf(() => validateSpec(minimal({ datum_timeout: '10 minutes', job_timeout: 30 }))), [
      'datum_timeout: "10 minutes" is not a duration: use Go syntax like "30s", "1m30s" or "2h"',
      'job_timeout: expected a duration like "30s", "1m30s" or "2h", got number 30',
    ]);
    assert.deepEqual(problemsOf(() => validateSpec(minimal({ datum_timeout: '0s' }))), ['datum_timeout: must be greater than 0, got "0s"']);
    assert.deepEqual(problemsOf(() => validateSpec(minimal({ reprocess_spec: 'always' }))), ['reprocess_spec: expected "until_success" or "every_job", got "always"']);
  });
});

describe('Go durations', () => {
  const table: Array<[string, number | undefined]> = [
    ['30s', 30_000],
    ['1m30s', 90_000],
    ['2h', 7_200_000],
    ['1.5h', 5_400_000],
    ['300ms', 300],
    ['2h45m10.5s', 9_910_500],
    ['1500us', 1.5],
    ['1500µs', 1.5],
    ['250ns', 0.00025],
    ['0', 0],
    ['-1m', -60_000],
    ['.5s', 500],
    ['30', undefined],
    ['s', undefined],
    ['1d', undefined],
    ['', undefined],
    ['1h 30m', undefined],
    ['.s', undefined],
  ];
  for (const [text, ms] of table) {
    it(`"${text}" is ${ms === undefined ? 'not a duration' : `${ms} ms`}`, () => {
      const got = parseDuration(text);
      if (ms === undefined || got === undefined) assert.equal(got, ms);
      else assert.ok(Math.abs(got - ms) < 1e-9, `${got} != ${ms}`);
    });
  }
});

describe('spec hashes', () => {
  const base = validateSpec(minimal({ description: 'one', salt: 's1' }));

  it('specHash changes with any change to the spec, not with key style or order', () => {
    assert.equal(specHash(base), specHash(validateSpec({ salt: 's1', description: 'one', ...minimal() })));
    assert.notEqual(specHash(base), specHash(validateSpec(minimal({ description: 'two', salt: 's1' }))));
    assert.match(specHash(base), /^[0-9a-f]{64}$/);
  });

  it('transformHash covers the transform and salt, not the description or parallelism', () => {
    const same = validateSpec(minimal({ description: 'other', salt: 's1', parallelism_spec: { constant: 8 }, datum_timeout: '1m' }));
    assert.equal(transformHash(base), transformHash(same));
    assert.notEqual(transformHash(base), transformHash(validateSpec(minimal({ salt: 's2' }))));
    assert.notEqual(transformHash(base), transformHash(validateSpec(minimal({ salt: 's1', transform: { cmd: ['false'] } }))));
    assert.notEqual(transformHash(base), transformHash(validateSpec(minimal({ salt: 's1', transform: { cmd: ['true'], env: { A: '1' } } }))));
    assert.notEqual(
      transformHash(base),
      transformHash(validateSpec(minimal({ salt: 's1', input: { pfs: { repo: 'r', glob: '/*', empty_files: true } } }))),
      'empty_files changes what the step sees',
    );
  });
});

describe('pipeline graph', () => {
  const pipe = (name: string, ...repos: string[]): PipelineSpec =>
    validateSpec({
      pipeline: { name },
      input: repos.length === 1 ? { pfs: { repo: repos[0], glob: '/' } } : { cross: repos.map((repo) => ({ pfs: { repo, glob: '/' } })) },
      transform: { cmd: ['true'] },
    });

  it('finds no cycle in a DAG', () => {
    assert.equal(detectCycle([pipe('edges', 'images'), pipe('montage', 'images', 'edges'), pipe('report', 'montage', 'edges')]), null);
    assert.equal(detectCycle([]), null);
  });

  it('returns the cycle path', () => {
    assert.deepEqual(detectCycle([pipe('a', 'raw', 'c'), pipe('b', 'a'), pipe('c', 'b')]), ['a', 'b', 'c', 'a']);
    assert.deepEqual(detectCycle([pipe('x', 'y'), pipe('y', 'x'), pipe('z', 'raw')]), ['x', 'y', 'x']);
  });
});
