import type { StrataClient } from '../sdk/client.js';
import type { Instance } from '../instance.js';
import { defaultAuthor } from '../data/service.js';

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
    createPipeline: (spec, opts) => instance.pipelines.create(spec, { ...opts, creator: defaultAuthor() }),
    listPipelines: () => instance.pipelines.list(),
    inspectPipeline: (name) => instance.pipelines.inspect(name),
    deletePipeline: (name) => instance.pipelines.delete(name),
    listJobs: (opts) => instance.pipelines.listJobs(opts),
    inspectJob: (id) => instance.pipelines.inspectJob(id),
    stopJob: (id) => instance.pipelines.stopJob(id),
    listDatums: (job) => instance.pipelines.listDatums(job),
    logs: (job, datum) => instance.pipelines.logs(job, datum),
    async wait(ref) {
      // No server here: drive the scheduler in this process until the DAG is idle.
      const since = new Date().toISOString();
      // Look at git inputs once: a pushed branch is a new input commit.
      await instance.triggers.syncGit().catch((err) => process.stderr.write(`strata: warning: ${(err as Error).message}\n`));
      await instance.scheduler.drain();
      if (!ref) return (await instance.pipelines.listJobs({})).filter((j) => (j.finished ?? '') >= since);
      const commit = await data.inspectCommit(ref);
      return instance.pipelines.listJobs({ commitSet: commit.commit_set });
    },
    lineage: (ref, opts) => instance.lineage.graph(ref, opts?.direction),
    close: () => instance.close(),
  };
}
