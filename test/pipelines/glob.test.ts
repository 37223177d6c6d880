import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileGlob, expandTemplate, matchGlob, normalizeGlob, templateRefs } from '../../src/pipelines/glob.js';
import { StrataError } from '../../src/errors.js';

// Pachyderm's glob semantics over a commit's file list: which paths match,
// which files each match covers, and what the capture groups hold.

const files = (...paths: string[]) => paths.map((path) => ({ path }));
const tree = files('/a.txt', '/b.txt', '/dir/x.csv', '/dir/sub/y.csv', '/dir/sub/z.txt', '/other/w.txt');

function matches(glob: string, list = tree) {
  return matchGlob(glob, list).map((m) => ({ path: m.path, files: m.files.map((f) => f.path) }));
}

describe('glob matching', () => {
  it('"/" is the whole commit as one match', () => {
    assert.deepEqual(matches('/'), [{ path: '/', files: tree.map((f) => f.path).sort() }]);
  });

  it('"/*" matches each top-level file and directory; a directory covers every file under it', () => {
    assert.deepEqual(matches('/*'), [
      { path: '/a.txt', files: ['/a.txt'] },
      { path: '/b.txt', files: ['/b.txt'] },
      { path: '/dir', files: ['/dir/sub/y.csv', '/dir/sub/z.txt', '/dir/x.csv'] },
      { path: '/other', files: ['/other/w.txt'] },
    ]);
  });

  it('"/*/*" matches each entry one level down', () => {
    assert.deepEqual(matches('/*/*'), [
      { path: '/dir/sub', files: ['/dir/sub/y.csv', '/dir/sub/z.txt'] },
      { path: '/dir/x.csv', files: ['/dir/x.csv'] },
      { path: '/other/w.txt', files: ['/other/w.txt'] },
    ]);
  });

  it('"/**" matches every file and directory at any depth, but not the root', () => {
    assert.deepEqual(
      matchGlob('/**', tree).map((m) => `${m.path}${m.isDir ? '/' : ''}`),
      ['/a.txt', '/b.txt', '/dir/', '/dir/sub/', '/dir/sub/y.csv', '/dir/sub/z.txt', '/dir/x.csv', '/other/', '/other/w.txt'],
    );
  });

  const table: Array<[glob: string, expected: string[]]> = [
    ['/*.txt', ['/a.txt', '/b.txt']],
    ['/?.txt', ['/a.txt', '/b.txt']],
    ['/[a].txt', ['/a.txt']],
    ['/[!a].txt', ['/b.txt']],
    ['/[a-b].txt', ['/a.txt', '/b.txt']],
    ['/{a,dir}*', ['/a.txt', '/dir']],
    ['/dir/**.csv', ['/dir/sub/y.csv', '/dir/x.csv']],
    ['/**/*.txt', ['/dir/sub/z.txt', '/other/w.txt']],
    ['/dir', ['/dir']],
    ['/dir/sub/y.csv', ['/dir/sub/y.csv']],
    ['*', ['/a.txt', '/b.txt', '/dir', '/other']], // Pachyderm cleans "*" to "/*"
    ['/*/', ['/a.txt', '/b.txt', '/dir', '/other']],
    ['/nothing/*', []],
    ['/(*).txt', ['/a.txt', '/b.txt']],
    ['/+(a|b).txt', ['/a.txt', '/b.txt']],
    ['/@(a).txt', ['/a.txt']],
    ['/\\*', []],
  ];
  for (const [glob, expected] of table) {
    it(`"${glob}" matches ${expected.length ? expected.join(', ') : 'nothing'}`, () => {
      assert.deepEqual(
        matchGlob(glob, tree).map((m) => m.path),
        expected,
      );
    });
  }

  it('a glob matching nothing, or an empty commit, yields no matches rather than an error', () => {
    assert.deepEqual(matchGlob('/*.parquet', tree), []);
    assert.deepEqual(matchGlob('/', []), []);
    assert.deepEqual(matchGlob('/*', []), []);
  });

  it('orders directories as Pachyderm does ("dir/" after "dir-x")', () => {
    assert.deepEqual(
      matchGlob('/*', files('/a/1', '/a-b', '/a.c')).map((m) => m.path),
      ['/a-b', '/a.c', '/a'],
    );
  });

  it('sorts an unsorted file list before matching', () => {
    const m = matchGlob('/*', files('/z/2', '/b', '/z/1'));
    assert.deepEqual(m.map((x) => [x.path, x.files.map((f) => f.path)]), [['/b', ['/b']], ['/z', ['/z/1', '/z/2']]]);
  });

  it('matches characters, not just ASCII, and never lets * or ? cross a "/"', () => {
    const list = files('/été/ça.txt', '/a/b/c');
    assert.deepEqual(matchGlob('/?té/*', list).map((m) => m.path), ['/été/ça.txt']);
    assert.deepEqual(matchGlob('/a*c', list), []);
    assert.deepEqual(matchGlob('/a?b/c', list), []);
  });
});

describe('glob capture groups', () => {
  it('numbers groups by their opening parenthesis, like the Pachyderm join docs', () => {
    // Table from Pachyderm's input-join docs, for the path /foo/bar-123/ABC.txt.
    const path = '/foo/bar-123/ABC.txt';
    assert.deepEqual(compileGlob('/(*)/*/*').match(path)?.slice(1), ['foo']);
    assert.deepEqual(compileGlob('/*/bar-(*)/*').match(path)?.slice(1), ['123']);
    assert.deepEqual(compileGlob('/(*)/*/(??)*.txt').match(path)?.slice(1), ['foo', 'AB']);
    assert.deepEqual(compileGlob('/*/(bar-(123))/*').match(path)?.slice(1), ['bar-123', '123']);
  });

  it('captures from the Pachyderm join and group examples', () => {
    assert.deepEqual(compileGlob('/STOREID(*).txt').match('/STOREID4.txt')?.slice(1), ['4']);
    assert.deepEqual(compileGlob('/*_STOREID(*).txt').match('/ORDERW080520_STOREID1.txt')?.slice(1), ['1']);
    assert.deepEqual(compileGlob('/*-PATID(*)-*.txt').match('/T1606707557-LIPID-PATID1-CLIA24D9871327.txt')?.slice(1), ['1']);
    assert.deepEqual(compileGlob('/*-CLIA(*).txt').match('/T1606707557-LIPID-PATID1-CLIA24D9871327.txt')?.slice(1), ['24D9871327']);
  });

  it('extglob captures: *( ) zero or more, ?( ) optional, +( ) one or more', () => {
    assert.deepEqual(compileGlob('/a*(a|b).go').match('/aaba.go')?.slice(1), ['aba']);
    assert.deepEqual(compileGlob('/a?(a|b).go').match('/a.go')?.slice(1), ['']);
    assert.deepEqual(compileGlob('/+(a|b).go').match('/ab.go')?.slice(1), ['ab']);
    assert.equal(compileGlob('/+(a|b).go').match('/.go'), null);
  });

  it('counts groups so join_on references can be checked', () => {
    assert.equal(compileGlob('/').groups, 0);
    assert.equal(compileGlob('/(*)_(*).txt').groups, 2);
    assert.equal(compileGlob('/*/(bar-(123))/*').groups, 2);
    assert.equal(compileGlob('/{a,b}/[(]x').groups, 0);
  });

  it('captures of directory matches come from the directory path', () => {
    const m = matchGlob('/(*)', files('/2024/a.csv', '/2024/b.csv'));
    assert.deepEqual(m.map((x) => [x.path, x.captures[1], x.files.length]), [['/2024', '2024', 2]]);
  });

  it('expands join_on / group_by templates with Go regexp rules', () => {
    const captures = ['/x_1.txt', 'x', '1'];
    assert.equal(expandTemplate('$1', captures), 'x');
    assert.equal(expandTemplate('$1$2', captures), 'x1');
    assert.equal(expandTemplate('${1}-${2}', captures), 'x-1');
    assert.equal(expandTemplate('$2_$1', captures), 'x'); // "$2_" is the (absent) group named "2_", as in Go
    assert.equal(expandTemplate('key:$1', captures), 'key:x');
    assert.equal(expandTemplate('$$1', captures), '$1');
    assert.equal(expandTemplate('$9', captures), '');
    assert.equal(expandTemplate('$0', captures), '/x_1.txt');
    assert.equal(expandTemplate('cost $', captures), 'cost $');
    assert.deepEqual(templateRefs('$1${2}$x'), { numbers: [1, 2], names: ['x'] });
  });
});

describe('glob syntax', () => {
  it('normalizes like a path: leading "/", no trailing "/", no "//"', () => {
    assert.equal(normalizeGlob('*'), '/*');
    assert.equal(normalizeGlob('/a//b/'), '/a/b');
    assert.equal(normalizeGlob('/'), '/');
    assert.equal(normalizeGlob(''), '/');
  });

  for (const [glob, problem] of [
    ['/[a', /never closed/],
    ['/(a', /never closed/],
    ['/{a,b', /never closed/],
    ['/a\\', /lone/],
    ['/[z-a]', /out of order/],
    ['/!(a)', /not supported/],
  ] as const) {
    it(`rejects "${glob}" with an error naming the glob`, () => {
      assert.throws(
        () => compileGlob(glob),
        (err: unknown) => err instanceof StrataError && err.code === 'INVALID_ARGUMENT' && problem.test(err.message) && err.message.includes(glob),
      );
    });
  }

  it('treats regexp metacharacters in a glob as literal text', () => {
    assert.deepEqual(matchGlob('/a.b+c$', files('/a.b+c$', '/aXb+c$')).map((m) => m.path), ['/a.b+c$']);
    assert.deepEqual(matchGlob('/x)|y', files('/x)|y')).map((m) => m.path), ['/x)|y']);
  });

  it('matches 20,000 paths quickly', () => {
    const many = Array.from({ length: 10_000 }, (_, i) => ({ path: `/d${String(i % 100).padStart(3, '0')}/f${String(i).padStart(5, '0')}.txt` }));
    many.sort((a, b) => (a.path < b.path ? -1 : 1));
    const start = performance.now();
    assert.equal(matchGlob('/*/*', many).length, 10_000);
    assert.equal(matchGlob('/*', many).length, 100);
    assert.equal(matchGlob('/**', many).length, 10_100);
    assert.ok(performance.now() - start < 500, `took ${performance.now() - start} ms`);
  });
});
