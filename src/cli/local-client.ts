import type { StrataClient } from '../sdk/client.js';
import type { Instance } from '../instance.js';

/** The StrataClient over an instance opened in this process: the CLI's path when no --server is given. */
export function localClient(instance: Instance): StrataClient {
  const data = instance.data;
  return {
    createRepo: (input) => data.createRepo(input),
    listRepos: () => data.listRepos(),
    inspectRepo: (name) => data.inspectRepo(name),
    deleteRepo: (name) => data.deleteRepo(name),
    createBranch: (repo, branch, from) => data.createBranch(repo, branch, from),
    listBranches: (repo) => data.listBranches(repo),
    deleteBranch: (repo, branch) => data.deleteBranch(repo, branch),
    commit: (repo, branch, changes, opts) => data.commit(repo, branch, changes, opts),
    inspectCommit: (ref) => data.inspectCommit(ref),
    log: (ref, opts) => data.log(ref, opts),
    diff: (from, to) => data.diff(from, to),
    ls: (ref, opts) => data.ls(ref, opts),
    walk: (ref) => data.walk(ref),
    read: (ref) => data.read(ref),
    fsck: () => data.fsck(),
    close: () => instance.close(),
  };
}
