import type { StrataClient } from '../sdk/client.js';
import type { Instance } from '../instance.js';
import { defaultAuthor } from '../data/service.js';
import { oipResponse, predictResponse } from '../serving/manager.js';
import { isOipRequest, parseInferRequest, parseSimpleRequest } from '../serving/protocol.js';

/**
 * The StrataClient over an instance opened in this process: the CLI's path when no --server is given.
 * `user` creates pipelines and deployments (cli/authorized-client.ts checks what they may do).
 */
export function localClient(instance: Instance, user = defaultAuthor()): StrataClient {
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
    createPipeline: (spec, opts) => instance.pipelines.create(spec, { ...opts, creator: user }),
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
    listExperiments: () => instance.tracking.listExperiments(),
    createExperiment: (name, tags) => instance.tracking.createExperiment(name, { tags }),
    createRun: (input) => instance.tracking.createRun({ user_id: defaultAuthor(), ...input }),
    getRun: (id) => instance.tracking.getRun(id),
    updateRun: (id, changes) => instance.tracking.updateRun(id, changes),
    logBatch: (id, batch) => instance.tracking.logBatch(id, batch),
    searchRuns: (input) => instance.tracking.searchRuns(input),
    compareRuns: (ids) => instance.tracking.compareRuns(ids),
    metricHistory: (id, key) => instance.tracking.metricHistory(id, key),
    listArtifacts: (id, path) => instance.tracking.listArtifacts(id, path),
    createModel: (input) => instance.registry.createModel(input.name, input),
    listModels: (opts) => instance.registry.listModels(opts),
    inspectModel: (name) => instance.registry.getModel(name),
    deleteModel: (name) => instance.registry.deleteModel(name),
    registerModelVersion: (name, input) => instance.registry.registerVersion(name, { user: defaultAuthor(), ...input }),
    inspectModelVersion: (name, version) => instance.registry.getVersion(name, version),
    inspectModelAlias: (name, alias) => instance.registry.getVersionByAlias(name, alias),
    listModelVersions: (name) => instance.registry.listVersions(name),
    deleteModelVersion: (name, version) => instance.registry.deleteVersion(name, version),
    setModelAlias: (name, alias, version, opts) =>
      instance.registry.setAlias(name, alias, version, { actor: opts?.actor ?? defaultAuthor(), reason: opts?.reason }),
    deleteModelAlias: (name, alias, opts) => instance.registry.deleteAlias(name, alias, { actor: opts?.actor ?? defaultAuthor(), reason: opts?.reason }),
    aliasHistory: (name, opts) => instance.registry.aliasHistory(name, opts?.alias),
    aliasAt: (name, alias, time) => instance.registry.aliasAt(name, alias, time),
    setGates: (name, alias, rules) => instance.registry.setGates(name, alias, rules),
    getGates: (name, alias) => instance.registry.getGates(name, alias),
    createDeployment: (input) => instance.serving.deployments.create({ ...input, creator: user }),
    listDeployments: () => instance.serving.deployments.list(),
    inspectDeployment: (name) => instance.serving.deployments.inspect(name),
    updateDeployment: (name, changes) => instance.serving.deployments.update(name, changes),
    deleteDeployment: (name) => instance.serving.deployments.delete(name),
    async predict(name, request) {
      // No server here: the manager loads the deployment's model in this process for this one request.
      if (isOipRequest(request)) return oipResponse(name, await instance.serving.infer(name, undefined, (sig) => parseInferRequest(request, sig)));
      return predictResponse(await instance.serving.infer(name, undefined, (sig) => parseSimpleRequest(request, sig)));
    },
    classify: (ref) => instance.classification.classify(ref),
    classificationLabels: (kind, name) => instance.classification.labels(kind, name),
    addPiiDetector: (input) => instance.classification.addDetector({ ...input, creator: user }),
    listPiiDetectors: () => instance.classification.listDetectors(),
    removePiiDetector: (name) => instance.classification.removeDetector(name),
    searchCatalog: (query, opts) => instance.catalog.search(query, opts),
    inspectCatalog: (kind, name) => instance.catalog.inspect(kind, name),
    annotateCatalog: (kind, name, changes) => instance.catalog.annotate(kind, name, changes),
    auditLog: (filter) => instance.audit.list(filter),
    auditCheckpoint: () => instance.audit.checkpoint(),
    auditVerify: (opts) => instance.audit.verify(opts),
    close: () => instance.close(),
  };
}
