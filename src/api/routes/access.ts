import type { FastifyPluginAsync } from 'fastify';
import { parseExpiry, type AccessControl } from '../../governance/access.js';
import { principalOf } from '../auth.js';
import { errorResponses } from '../schemas.js';

// Users, tokens and grants: thin adapters over AccessControl. Authorization
// (admin on the instance, except whoami) is the operations table's, applied
// by api/auth.ts before these handlers run.

const obj = { type: 'object', additionalProperties: true };
const tags = ['access'];
const grantBody = {
  type: 'object',
  required: ['role', 'user'],
  additionalProperties: false,
  properties: {
    role: { type: 'string', enum: ['admin', 'writer', 'reader'] },
    user: { type: 'string' },
    on: { type: 'string', description: 'repo:NAME, pipeline:NAME, model:NAME or deployment:NAME; absent: instance-wide' },
  },
};

export const accessRoutes: FastifyPluginAsync<{ access: AccessControl }> = async (app, { access }) => {
  app.post<{ Body: { name: string } }>(
    '/api/v1/users',
    {
      schema: {
        summary: 'Create a user (admin)',
        tags,
        body: { type: 'object', required: ['name'], additionalProperties: false, properties: { name: { type: 'string' } } },
        response: { 201: obj, ...errorResponses },
      },
    },
    async (req, reply) => reply.code(201).send(await access.createUser(req.body.name, principalOf(req).user)),
  );

  app.get('/api/v1/users', { schema: { summary: 'List users with their grants (admin)', tags, response: { 200: { type: 'array', items: obj }, ...errorResponses } } }, async () =>
    access.listUsers(),
  );

  app.delete<{ Params: { name: string } }>(
    '/api/v1/users/:name',
    { schema: { summary: 'Delete a user: grants removed, tokens revoked (admin)', tags, params: { type: 'object', properties: { name: { type: 'string' } } }, response: { 204: { type: 'null' }, ...errorResponses } } },
    async (req, reply) => {
      await access.deleteUser(req.params.name);
      return reply.code(204).send();
    },
  );

  app.post<{ Body: { user?: string; name?: string; expires?: string } }>(
    '/api/v1/tokens',
    {
      schema: {
        summary: 'Create an API token (admin); the secret is in this response only',
        tags,
        body: {
          type: 'object',
          additionalProperties: false,
          properties: { user: { type: 'string', description: 'default: the caller' }, name: { type: 'string' }, expires: { type: 'string', description: 'e.g. 30d, 12h' } },
        },
        response: { 201: obj, ...errorResponses },
      },
    },
    async (req, reply) => {
      const body = req.body ?? {};
      const token = await access.createToken(body.user ?? principalOf(req).user, {
        name: body.name,
        expiresInMs: body.expires === undefined ? undefined : parseExpiry(body.expires),
      });
      return reply.code(201).send(token);
    },
  );

  app.get<{ Querystring: { user?: string } }>(
    '/api/v1/tokens',
    {
      schema: {
        summary: 'List tokens (never their secrets) (admin)',
        tags,
        querystring: { type: 'object', additionalProperties: false, properties: { user: { type: 'string' } } },
        response: { 200: { type: 'array', items: obj }, ...errorResponses },
      },
    },
    async (req) => access.listTokens({ user: req.query.user }),
  );

  app.post<{ Params: { id: string } }>(
    '/api/v1/tokens/:id/revoke',
    { schema: { summary: 'Revoke a token (admin)', tags, params: { type: 'object', properties: { id: { type: 'string' } } }, response: { 200: obj, ...errorResponses } } },
    async (req) => access.revokeToken(req.params.id),
  );

  app.post<{ Body: { role: string; user: string; on?: string } }>(
    '/api/v1/grants',
    { schema: { summary: 'Grant a role, instance-wide or on one resource (admin)', tags, body: grantBody, response: { 201: obj, ...errorResponses } } },
    async (req, reply) => reply.code(201).send(await access.grant(req.body.role, req.body.user, req.body.on, principalOf(req).user)),
  );

  app.post<{ Body: { role: string; user: string; on?: string } }>(
    '/api/v1/grants/revoke',
    { schema: { summary: 'Revoke a grant (admin)', tags, body: grantBody, response: { 200: obj, ...errorResponses } } },
    async (req) => access.revoke(req.body.role, req.body.user, req.body.on),
  );

  app.get('/api/v1/whoami', { schema: { summary: 'The caller: user name and grants', tags, response: { 200: obj, ...errorResponses } } }, async (req) => {
    const p = principalOf(req);
    return { user: p.user, owner: p.owner === true, token: p.tokenId ?? null, grants: p.owner ? [] : await access.listGrants({ user: p.user }) };
  });
};
