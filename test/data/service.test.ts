import assert from 'node:assert/strict';
import { describe, it, before, after } from 'node:test';
import { sql } from 'kysely';
import { backends, readText, rejectsWith } from '../fixtures.js';
import type { Instance } from '../../src/instance.js';
import type { Change } from '../../src/data/types.js';

// The data layer's behaviour, run once per metadata backend (SQLite always,
// PostgreSQL where reachable).

const text = (s: string) => new TextEncoder().encode(s);
const put = (path: string, content: string): Change => ({ op: 'put', path, content: text(content) });



for (const backend of await backends()) {
  describe(`data layer on ${backend.name}`, { skip: backend.skip }, () => {
    let instance: Instance;
    let dispose: () => Promise<void>;
    before(async () => ({ instance, dispose } = await backend.instance()));
    after(async () => dispose?.());

    it('creates, lists, inspects and deletes repos with metadata', async () => {
      const info = await instance.data.createRepo({ name: 'r1', description: 'first', owner: 'ana', labels: { team: 'ml' } });
      assert.equal(info.name, 'r1');
      assert.deepEqual(info.branches, ['master']);
      assert.equal(info.head, null);
      await rejectsWith(instance.data.createRepo({ name: 'r1' }), 'ALREADY_EXISTS');
      await rejectsWith(instance.data.createRepo({ name: 'bad/name' }), 'INVALID_ARGUMENT', /repo name/);
      await rejectsWith(instance.data.createRepo({ name: '../x' }), 'INVALID_ARGUMENT');
      const list = await instance.data.listRepos();
      assert.ok(list.some((r) => r.name === 'r1' && r.owner === 'ana' && r.labels.team === 'ml'));
      await instance.data.deleteRepo('r1');
      await rejectsWith(instance.data.inspectRepo('r1'), 'NOT_FOUND', /r1/);
    });

    it('commits files and reads them back through ls, read and log', async () => {
      await instance.data.createRepo({ name: 'files' });
      const r = await instance.data.commit('files', 'master', [put('/a.txt', 'alpha'), put('/dir/b.txt', 'beta'), put('dir/sub/c.txt', 'gamma')], {
        message: 'first',
        author: 'test',
      });
      assert.equal(r.files, 3);
      assert.equal(r.bytes, 14);
      assert.equal(await readText(instance, 'files@master:/dir/sub/c.txt'), 'gamma');
      const top = await instance.data.ls('files');
      assert.deepEqual(
        top.map((f) => [f.path, f.type, f.size]),
        [
          ['/a.txt', 'file', 5],
          ['/dir', 'dir', 9],
        ],
      );
      const all = await instance.data.ls('files@master:/', { recursive: true });
      assert.deepEqual(all.map((f) => f.path), ['/a.txt', '/dir/b.txt', '/dir/sub/c.txt']);
      const log = await instance.data.log('files@master');
      assert.equal(log.length, 1);
      assert.equal(log[0]!.id, r.commit);
      assert.equal(log[0]!.message, 'first');
      assert.match(r.commit, /^[0-9a-f]{64}$/);
    });

    it('resolves ^, ~N and commit prefixes, and rejects ambiguous prefixes', async () => {
      await instance.data.createRepo({ name: 'hist' });
      const ids: string[] = [];
      for (let i = 0; i < 24; i++) ids.push((await instance.data.commit('hist', 'master', [put('/n.txt', String(i))])).commit);
      assert.equal((await instance.data.inspectCommit('hist@master^')).id, ids[22]);
      assert.equal((await instance.data.inspectCommit('hist@master~3')).id, ids[20]);
      assert.equal((await instance.data.inspectCommit('hist@master^^')).id, ids[21]);
      assert.equal((await instance.data.inspectCommit(`hist@${ids[5]!.slice(0, 12)}`)).id, ids[5]);
      assert.equal(await readText(instance, `hist@${ids[7]!.slice(0, 10)}:/n.txt`), '7');
      // 24 ids over 16 hex digits: some first digit repeats.
      const seen = new Map<string, number>();
      for (const id of ids) seen.set(id[0]!, (seen.get(id[0]!) ?? 0) + 1);
      const shared = [...seen].find(([, n]) => n > 1)![0];
      await rejectsWith(instance.data.inspectCommit(`hist@${shared}`), 'INVALID_ARGUMENT', /ambiguous/);
      await rejectsWith(instance.data.inspectCommit('hist@master~99'), 'NOT_FOUND');
      await rejectsWith(instance.data.inspectCommit('hist@nosuchbranch'), 'NOT_FOUND', /nosuchbranch/);
      await rejectsWith(instance.data.inspectCommit('nosuchrepo@master'), 'NOT_FOUND', /nosuchrepo/);
    });

    it('diffs commits and deletes files and directories', async () => {
      await instance.data.createRepo({ name: 'd' });
      await instance.data.commit('d', 'master', [put('/keep', 'k'), put('/mod', 'm1'), put('/gone/x', 'x'), put('/gone/y', 'y')]);
      await instance.data.commit('d', 'master', [put('/mod', 'm2'), put('/new/z', 'z'), { op: 'delete', path: '/gone' }]);
      const diff = await instance.data.diff('d@master^', 'd@master');
      assert.deepEqual(diff, { added: ['/new/z'], modified: ['/mod'], deleted: ['/gone/x', '/gone/y'] });
      const head = (await instance.data.inspectRepo('d')).head;
      await rejectsWith(instance.data.commit('d', 'master', [{ op: 'delete', path: '/nope' }]), 'NOT_FOUND', /\/nope/);
      assert.equal((await instance.data.inspectRepo('d')).head, head, 'a failed commit changes nothing');
    });

    it('rejects bad input without changing anything', async () => {
      await instance.data.createRepo({ name: 'bad' });
      await instance.data.commit('bad', 'master', [put('/ok', 'ok')]);
      const head = (await instance.data.inspectRepo('bad')).head;
      await rejectsWith(instance.data.commit('bad', 'master', [put('/../escape', 'x')]), 'INVALID_ARGUMENT', /\.\./);
      await rejectsWith(instance.data.commit('bad', 'master', []), 'INVALID_ARGUMENT', /nothing to commit/);
      await rejectsWith(instance.data.commit('bad', 'master', [put('/ok/under', 'x')]), 'INVALID_ARGUMENT', /is a file/);
      await rejectsWith(instance.data.commit('bad', 'bad branch', [put('/x', 'x')]), 'INVALID_ARGUMENT', /branch name/);
      assert.equal((await instance.data.inspectRepo('bad')).head, head);
    });

    it('stores identical content once across repos', async () => {
      await instance.data.createRepo({ name: 'dup1' });
      await instance.data.createRepo({ name: 'dup2' });
      const payload = Buffer.alloc(3 << 20, 7);
      const first = await instance.data.commit('dup1', 'master', [{ op: 'put', path: '/big', content: payload }]);
      assert.ok(first.new_bytes > 0);
      const second = await instance.data.commit('dup2', 'master', [{ op: 'put', path: '/copy', content: payload }]);
      assert.equal(second.new_bytes, 0);
    });

    it('links a stored directory tree: placed whole where nothing is, merged file by file into a directory that exists', async () => {
      await instance.data.createRepo({ name: 'dirlinks' });
      const src = await instance.data.commit('dirlinks', 'master', [put('/src/a.txt', 'a'), put('/src/sub/b.txt', 'bb'), put('/src/sub/deeper/c.txt', 'ccc')]);
      const [tree] = (await instance.data.ls('dirlinks:/', {})).filter((e) => e.path === '/src');
      assert.equal(tree!.type, 'dir');

      const placed = await instance.data.commit('dirlinks', 'master', [{ op: 'link', type: 'dir', path: '/copy', hash: tree!.hash }]);
      assert.deepEqual([placed.files, placed.bytes, placed.new_bytes], [3, 6, 0]);
      const [copy] = (await instance.data.ls('dirlinks:/')).filter((e) => e.path === '/copy');
      assert.equal(copy!.hash, tree!.hash, 'placed whole: the same tree');
      assert.equal(await readText(instance, 'dirlinks:/copy/sub/deeper/c.txt'), 'ccc');

      // Into a directory with other files: theirs stay, same paths are replaced, and a change beneath applies on top.
      await instance.data.commit('dirlinks', 'master', [put('/mixed/own.txt', 'mine'), put('/mixed/a.txt', 'old a'), put('/mixed/sub/x.txt', 'x')]);
      const merged = await instance.data.commit('dirlinks', 'master', [
        { op: 'link', type: 'dir', path: '/mixed', hash: tree!.hash },
        put('/mixed/sub/deeper/c.txt', 'changed after the link'),
      ]);
      assert.equal(merged.files, 4);
      const files = await instance.data.ls('dirlinks:/mixed', { recursive: true });
      assert.deepEqual(files.map((f) => f.path), ['/mixed/a.txt', '/mixed/own.txt', '/mixed/sub/b.txt', '/mixed/sub/deeper/c.txt', '/mixed/sub/x.txt']);
      assert.equal(await readText(instance, 'dirlinks:/mixed/a.txt'), 'a');
      assert.equal(await readText(instance, 'dirlinks:/mixed/sub/deeper/c.txt'), 'changed after the link');
      const [mixed] = (await instance.data.ls('dirlinks:/')).filter((e) => e.path === '/mixed');
      assert.equal(mixed!.size, 1 + 4 + 2 + 22 + 1);
      const withDirs = await instance.data.ls('dirlinks:/mixed', { recursive: true, dirs: true });
      assert.deepEqual(withDirs.filter((f) => f.type === 'dir').map((f) => f.path), ['/mixed/sub', '/mixed/sub/deeper']);

      // Conflicts and unknown trees change nothing.
      const head = (await instance.data.log('dirlinks@master'))[0]!.id;
      await instance.data.commit('dirlinks', 'master', [put('/clash/sub', 'a file where the tree has a directory')]);
      await rejectsWith(instance.data.commit('dirlinks', 'master', [{ op: 'link', type: 'dir', path: '/clash', hash: tree!.hash }]), 'INVALID_ARGUMENT', /\/clash\/sub is a file/);
      await rejectsWith(instance.data.commit('dirlinks', 'master', [{ op: 'link', type: 'dir', path: '/copy/a.txt', hash: tree!.hash }]), 'INVALID_ARGUMENT', /\/copy\/a.txt is a file/);
      await rejectsWith(instance.data.commit('dirlinks', 'master', [{ op: 'link', type: 'dir', path: '/x', hash: 'e'.repeat(64) }]), 'NOT_FOUND', /directory tree e{64} .*not stored/);
      assert.notEqual((await instance.data.log('dirlinks@master'))[0]!.id, head, 'the clash commit itself landed');
      assert.equal((await instance.data.log('dirlinks@master'))[0]!.message, '');
      assert.equal(src.files, 3);
    });

    it('rewrites only the changed path: O(depth) tree records per commit', async () => {
      await instance.data.createRepo({ name: 'wide' });
      const changes: Change[] = [];
      for (let d = 0; d < 5; d++) for (let f = 0; f < 100; f++) changes.push(put(`/d${d}/sub/f${f}`, `${d}-${f}`));
      await instance.data.commit('wide', 'master', changes);
      const count = async () => Number((await instance.meta.db.selectFrom('trees').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
      const before = await count();
      await instance.data.commit('wide', 'master', [put('/d3/sub/f50', 'changed')]);
      assert.equal((await count()) - before, 3, 'root, /d3 and /d3/sub');
      assert.deepEqual(await instance.data.diff('wide@master^', 'wide@master'), { added: [], modified: ['/d3/sub/f50'], deleted: [] });
    });

    it('records the files beneath every tree, so placing a stored tree reads only its top level; fsck checks the counts', async () => {
      await instance.data.createRepo({ name: 'counted' });
      const changes: Change[] = [];
      for (let d = 0; d < 3; d++) for (let f = 0; f < 40; f++) changes.push(put(`/top/d${d}/sub/f${f}`, `${d}-${f}`));
      changes.push(put('/top/readme', 'r'));
      await instance.data.commit('counted', 'master', changes);
      const rows = async () => new Map((await instance.meta.db.selectFrom('trees').select(['id', 'files']).execute()).map((r) => [r.id, r.files === null ? null : Number(r.files)]));
      const [top] = (await instance.data.ls('counted:/')).filter((e) => e.path === '/top');
      const [d1] = (await instance.data.ls('counted:/top')).filter((e) => e.path === '/top/d1');
      assert.equal((await rows()).get(top!.hash), 121);
      assert.equal((await rows()).get(d1!.hash), 40);
      // A change below keeps the counts of the subtrees it does not touch, and counts the new path.
      await instance.data.commit('counted', 'master', [put('/top/d1/sub/extra', 'e')]);
      const [top2] = (await instance.data.ls('counted:/')).filter((e) => e.path === '/top');
      assert.equal((await rows()).get(top2!.hash), 122);

      // Placing the tree: the count comes from its row, not from walking 120 files (the reader reads the top level only).
      const reads: string[] = [];
      const get = instance.data.trees.get.bind(instance.data.trees);
      instance.data.trees.get = async (id: string) => (reads.push(id), get(id));
      try {
        const placed = await instance.data.commit('counted', 'copy', [{ op: 'link', type: 'dir', path: '/again', hash: top2!.hash }]);
        assert.equal(placed.files, 122);
        assert.ok(!reads.includes(d1!.hash), 'the subtrees of the placed tree were not read');
      } finally {
        instance.data.trees.get = get;
      }
      // A tree stored before counts were kept (null) is walked, and a commit over it records counts again.
      await sql`update trees set files = null where id = ${top2!.hash}`.execute(instance.meta.db);
      assert.equal((await instance.data.commit('counted', 'legacy', [{ op: 'link', type: 'dir', path: '/old', hash: top2!.hash }])).files, 122);
      const [legacyRoot] = (await instance.data.log('counted@legacy')).map((c) => c.tree);
      assert.equal((await rows()).get(legacyRoot!), 122);
      assert.ok((await instance.data.fsck()).ok);

      await sql`update trees set files = 7 where id = ${d1!.hash}`.execute(instance.meta.db);
      const damaged = await instance.data.fsck();
      assert.equal(damaged.ok, false);
      assert.ok(damaged.problems.some((p) => p.kind === 'tree' && p.id === d1!.hash && /records 7 file\(s\) beneath, holds 40/.test(p.message)), JSON.stringify(damaged.problems));
      await sql`update trees set files = 40 where id = ${d1!.hash}`.execute(instance.meta.db);
    });

    it('lands every one of several concurrent commits to one branch', async () => {
      await instance.data.createRepo({ name: 'race' });
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) => instance.data.commit('race', 'master', [put(`/w${i}`, `writer ${i}`)])),
      );
      const log = await instance.data.log('race');
      assert.equal(log.length, 8);
      assert.deepEqual(new Set(log.map((c) => c.id)), new Set(results.map((r) => r.commit)));
      assert.equal((await instance.data.ls('race')).length, 8);
    });

    it('branches from a ref and keeps branches independent', async () => {
      await instance.data.createRepo({ name: 'br' });
      await instance.data.commit('br', 'master', [put('/a', '1')]);
      await instance.data.createBranch('br', 'dev', 'master');
      await instance.data.commit('br', 'dev', [put('/b', '2')]);
      assert.equal((await instance.data.ls('br@master')).length, 1);
      assert.equal((await instance.data.ls('br@dev')).length, 2);
      assert.deepEqual((await instance.data.listBranches('br')).map((b) => b.name), ['dev', 'master']);
      await rejectsWith(instance.data.createBranch('br', 'dev'), 'ALREADY_EXISTS');
      await instance.data.deleteBranch('br', 'dev');
      await rejectsWith(instance.data.ls('br@dev'), 'NOT_FOUND');
    });

    it('fsck is clean, then names a tampered commit', async () => {
      const clean = await instance.data.fsck();
      assert.deepEqual(clean.problems, []);
      assert.ok(clean.ok);
      await instance.data.createRepo({ name: 'tamper' });
      const { commit } = await instance.data.commit('tamper', 'master', [put('/f', 'x')], { message: 'honest' });
      await sql`update commits set message = 'forged' where id = ${commit}`.execute(instance.meta.db);
      const result = await instance.data.fsck();
      assert.equal(result.ok, false);
      assert.ok(result.problems.some((p) => p.kind === 'commit' && p.id === commit), JSON.stringify(result.problems));
      await sql`update commits set message = 'honest' where id = ${commit}`.execute(instance.meta.db);
      assert.ok((await instance.data.fsck()).ok);
    });
  });
}
