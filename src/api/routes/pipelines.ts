import type { FastifyPluginAsync } from 'fastify';
import type { Instance } from '../../instance.js';
import { defaultAuthor } from '../../data/service.js';
import { errorResponses, noContent, refQuery } from '../schemas.js';

// Pipelines, jobs, datums, waiting and lineage: thin adapters over
// PipelineService, Scheduler and Lineage.

const obj = { type: 'object', additionalProperties: true } as const;
const list = { type: 'array', items: obj } as const;
const nameParams = { type: 'object', required: ['name'], properties: { name: { type: 'string' } } } as const;
const idParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', description: 'job id or unique prefix' } } } as const;

export const pipelineRoutes: FastifyPluginAsync<{ instance: Instance }> = async (app, { instance }) => {
  const pipelines = instance.pipelines;

  app.post<{ Body: { spec: unknown; update?: boolean; reprocess?: boolean; creator?: string } }>(
    '/api/v1/pipelines',
    {
      schema: {
        summary: 'Create (or with update:true, update) a pipeline from a spec in Pachyderm format',
        tags: ['pipelines'],
        body: {
          type: 'object',
          required: ['spec'],
          additionalProperties: false,
          properties: {
            spec: { ...obj, description: 'the pipeline spec, as parsed from YAML or JSON' },
            update: { type: 'boolean' },
            reprocess: { type: 'boolean', description: 'with update: process every datum again' },
            creator: { type: 'string' },
          },
        },
        response: { 200: obj, 201: obj, ...errorResponses },
      },
    },
    async (req, reply) => {
      const { spec, update, reprocess, creator } = req.body;
      const info = await pipelines.create(spec, { update, reprocess, creator: creator ?? defaultAuthor() });
      return reply.code(update ? 200 : 201).send(info);
    },
  );

  app.get('/api/v1/pipelines', { schema: { summary: 'List pipelines', tags: ['pipelines'], response: { 200: list, ...errorResponses } } }, async () =>
    pipelines.list(),
  );

  app.get<{ Params: { name: string } }>(
    '/api/v1/pipelines/:name',
    { schema: { summary: 'Inspect a pipeline, with its spec', tags: ['pipelines'], params: nameParams, response: { 200: obj, ...errorResponses } } },
    async (req) => pipelines.inspect(req.params.name),
  );

  app.delete<{ Params: { name: string } }>(
    '/api/v1/pipelines/:name',
    {
      schema: { summary: 'Delete a pipeline, its jobs and its output repo', tags: ['pipelines'], params: nameParams, response: { ...noContent, ...errorResponses } },
    },
    async (req, reply) => {
      await pipelines.delete(req.params.name);
      return reply.code(204).send();
    },
  );

  app.get<{ Querystring: { pipeline?: string; commit_set?: string } }>(
    '/api/v1/jobs',
    {
      schema: {
        summary: 'List jobs, newest first',
        tags: ['jobs'],
        querystring: { type: 'object', additionalProperties: false, properties: { pipeline: { type: 'string' }, commit_set: { type: 'string' } } },
        response: { 200: list, ...errorResponses },
      },
    },
    async (req) => pipelines.listJobs({ pipeline: req.query.pipeline, commitSet: req.query.commit_set }),
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/jobs/:id',
    { schema: { summary: 'Inspect a job (a failed one names its failing datum)', tags: ['jobs'], params: idParams, response: { 200: obj, ...errorResponses } } },
    async (req) => pipelines.inspectJob(req.params.id),
  );

  app.post<{ Params: { id: string } }>(
    '/api/v1/jobs/:id/stop',
    { schema: { summary: 'Stop a job', tags: ['jobs'], params: idParams, response: { 200: obj, ...errorResponses } } },
    async (req) => pipelines.stopJob(req.params.id),
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/jobs/:id/datums',
    { schema: { summary: "A job's datums: state, time, retries", tags: ['jobs'], params: idParams, response: { 200: list, ...errorResponses } } },
    async (req) => pipelines.listDatums(req.params.id),
  );

  app.get<{ Params: { id: string }; Querystring: { datum?: string } }>(
    '/api/v1/jobs/:id/logs',
    {
      schema: {
        summary: "What a job's datums wrote to stdout and stderr (the last 64 KiB of each)",
        tags: ['jobs'],
        params: idParams,
        querystring: { type: 'object', additionalProperties: false, properties: { datum: { type: 'string' } } },
        response: { 200: list, ...errorResponses },
      },
    },
    async (req) => pipelines.logs(req.params.id, req.query.datum),
  );

  app.post<{ Body: { ref?: string } }>(
    '/api/v1/wait',
    {
      schema: {
        summary: "Wait until every job of a ref's commit set (or every job) has finished; returns those jobs",
        tags: ['jobs'],
        body: { type: 'object', additionalProperties: false, properties: { ref: { type: 'string' } } },
        response: { 200: list, ...errorResponses },
      },
    },
    async (req, reply) => {
      const since = new Date().toISOString();
      const commitSet = req.body?.ref ? (await instance.data.inspectCommit(req.body.ref)).commit_set : undefined;
      const closed = new AbortController();
      // The response's close, not the request's: a request 'close's as soon as its body is read.
      reply.raw.once('close', () => closed.abort());
      await instance.scheduler.waitIdle(commitSet, closed.signal);
      const jobs = await pipelines.listJobs({ commitSet });
      return commitSet ? jobs : jobs.filter((j) => (j.finished ?? '') >= since);
    },
  );

  app.post<{ Body: unknown }>(
    '/api/v1/webhooks/git',
    {
      schema: {
        summary: 'A git push event (GitHub format): pipelines whose git input watches that repository and branch fetch it at once',
        tags: ['pipelines'],
        body: { type: 'object', required: ['ref', 'repository'], properties: { ref: { type: 'string' }, repository: obj } },
        response: { 200: obj, ...errorResponses },
      },
    },
    async (req) => ({ triggered: await instance.triggers.onPush(req.body) }),
  );

  app.get<{ Querystring: { ref: string; direction?: 'upstream' | 'downstream' | 'both' } }>(
    '/api/v1/lineage',
    {
      schema: {
        summary: 'Commits and jobs upstream and/or downstream of a commit: {nodes:[{id,kind}], edges:[{from,to}]}',
        tags: ['lineage'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          required: ['ref'],
          properties: { ref: refQuery, direction: { type: 'string', enum: ['upstream', 'downstream', 'both'] } },
        },
        response: { 200: obj, ...errorResponses },
      },
    },
    async (req) => instance.lineage.graph(req.query.ref, req.query.direction),
  );
};
