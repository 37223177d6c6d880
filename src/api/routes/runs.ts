import type { FastifyPluginAsync } from 'fastify';
import type { TrackingService, LogBatch } from '../../tracking/service.js';
import type { CreateRunInput, RunStatus, SearchRunsInput } from '../../tracking/types.js';
import { errorResponses } from '../schemas.js';

// Experiments and runs under /api/v1 (Strata's own shapes). The MLflow wire
// format lives in mlflow.ts, over the same TrackingService.

const obj = { type: 'object', additionalProperties: true } as const;
const list = { type: 'array', items: obj } as const;
const idParams = { type: 'object', required: ['id'], properties: { id: { type: 'string' } } } as const;

export const runRoutes: FastifyPluginAsync<{ tracking: TrackingService }> = async (app, { tracking }) => {
  app.get('/api/v1/experiments', { schema: { summary: 'List experiments', tags: ['tracking'], response: { 200: list, ...errorResponses } } }, async () =>
    tracking.listExperiments(),
  );
  app.post<{ Body: { name: string; tags?: Record<string, string> } }>(
    '/api/v1/experiments',
    {
      schema: {
        summary: 'Create an experiment',
        tags: ['tracking'],
        body: { type: 'object', required: ['name'], additionalProperties: false, properties: { name: { type: 'string' }, tags: obj } },
        response: { 201: obj, ...errorResponses },
      },
    },
    async (req, reply) => reply.code(201).send(await tracking.createExperiment(req.body.name, { tags: req.body.tags })),
  );

  app.post<{ Body: CreateRunInput }>(
    '/api/v1/runs',
    { schema: { summary: 'Create a run (for notebooks and scripts)', tags: ['tracking'], body: obj, response: { 201: obj, ...errorResponses } } },
    async (req, reply) => reply.code(201).send(await tracking.createRun(req.body)),
  );

  app.post<{ Body: SearchRunsInput }>(
    '/api/v1/runs/search',
    {
      schema: {
        summary: "Search runs: filter in MLflow syntax (metrics.accuracy > 0.9 and params.lr = '0.01'), order_by, paging",
        tags: ['tracking'],
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            experiment_ids: { type: 'array', items: { type: 'string' } },
            filter: { type: 'string' },
            order_by: { type: 'array', items: { type: 'string' } },
            pipeline: { type: 'string' },
            max_results: { type: 'integer', minimum: 1 },
            page_token: { type: 'string' },
            view: { type: 'string', enum: ['active', 'deleted', 'all'] },
          },
        },
        response: { 200: obj, ...errorResponses },
      },
    },
    async (req) => tracking.searchRuns(req.body ?? {}),
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/runs/:id',
    { schema: { summary: 'A run with its params, latest metrics and tags', tags: ['tracking'], params: idParams, response: { 200: obj, ...errorResponses } } },
    async (req) => tracking.getRun(req.params.id),
  );

  app.patch<{ Params: { id: string }; Body: { status?: RunStatus; end_time?: number; run_name?: string } }>(
    '/api/v1/runs/:id',
    {
      schema: {
        summary: 'Update a run (status, end time, name)',
        tags: ['tracking'],
        params: idParams,
        body: {
          type: 'object',
          additionalProperties: false,
          properties: { status: { type: 'string' }, end_time: { type: 'integer' }, run_name: { type: 'string' } },
        },
        response: { 200: obj, ...errorResponses },
      },
    },
    async (req) => tracking.updateRun(req.params.id, req.body),
  );

  app.post<{ Params: { id: string }; Body: LogBatch }>(
    '/api/v1/runs/:id/log',
    {
      schema: {
        summary: 'Log a batch of metrics, params and tags (one transaction; one bad entry rejects the batch)',
        tags: ['tracking'],
        params: idParams,
        body: { type: 'object', additionalProperties: false, properties: { metrics: list, params: list, tags: list } },
        response: { 204: { type: 'null' }, ...errorResponses },
      },
    },
    async (req, reply) => {
      await tracking.logBatch(req.params.id, req.body);
      return reply.code(204).send();
    },
  );

  app.get<{ Params: { id: string }; Querystring: { key: string } }>(
    '/api/v1/runs/:id/metrics',
    {
      schema: {
        summary: "A metric's full history",
        tags: ['tracking'],
        params: idParams,
        querystring: { type: 'object', required: ['key'], additionalProperties: false, properties: { key: { type: 'string' } } },
        response: { 200: list, ...errorResponses },
      },
    },
    async (req) => tracking.metricHistory(req.params.id, req.query.key),
  );

  app.post<{ Body: { run_ids: string[] } }>(
    '/api/v1/runs/compare',
    {
      schema: {
        summary: 'Params side by side, final metric values and deltas against the first run',
        tags: ['tracking'],
        body: { type: 'object', required: ['run_ids'], additionalProperties: false, properties: { run_ids: { type: 'array', items: { type: 'string' } } } },
        response: { 200: obj, ...errorResponses },
      },
    },
    async (req) => tracking.compareRuns(req.body.run_ids),
  );

  app.get<{ Params: { id: string }; Querystring: { path?: string } }>(
    '/api/v1/runs/:id/artifacts',
    {
      schema: {
        summary: "List a run's artifacts under a directory",
        tags: ['tracking'],
        params: idParams,
        querystring: { type: 'object', additionalProperties: false, properties: { path: { type: 'string' } } },
        response: { 200: list, ...errorResponses },
      },
    },
    async (req) => tracking.listArtifacts(req.params.id, req.query.path),
  );
};
