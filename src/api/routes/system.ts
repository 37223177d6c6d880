import type { FastifyPluginAsync } from 'fastify';
import type { DataService } from '../../data/service.js';
import { errorResponses, ref } from '../schemas.js';
import { VERSION } from '../version.js';

// Health, integrity check and the OpenAPI document.

export const systemRoutes: FastifyPluginAsync<{ data: DataService }> = async (app, { data }) => {
  app.get(
    '/api/v1/health',
    {
      schema: {
        summary: 'Liveness and version',
        tags: ['system'],
        response: { 200: { type: 'object', properties: { ok: { type: 'boolean' }, version: { type: 'string' } } } },
      },
    },
    async () => ({ ok: true, version: VERSION }),
  );

  app.post(
    '/api/v1/fsck',
    {
      schema: {
        summary: 'Verify every stored chunk and every reference; 200 even when problems are found (ok:false)',
        tags: ['system'],
        response: { 200: ref('FsckResult'), ...errorResponses },
      },
    },
    async () => data.fsck(),
  );

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
};
