import type { FastifyPluginAsync } from 'fastify';
import { defaultAuthor } from '../../data/service.js';
import type { Registry } from '../../tracking/registry.js';
import type { GateRule } from '../../tracking/types.js';
import { errorResponses, noContent } from '../schemas.js';

// The model registry: models, versions, aliases (with their history) and
// promotion gates. Thin adapters over Registry; names, versions and rules are
// validated there so the CLI and the API give the same messages.

const obj = { type: 'object', additionalProperties: true } as const;
const list = { type: 'array', items: obj } as const;
const tags = { type: 'object', additionalProperties: { type: 'string' } } as const;
const nameParams = { type: 'object', required: ['name'], properties: { name: { type: 'string', description: 'model name' } } } as const;
const versionParams = {
  type: 'object',
  required: ['name', 'version'],
  properties: { name: { type: 'string', description: 'model name' }, version: { type: 'integer', minimum: 1 } },
} as const;
const aliasParams = {
  type: 'object',
  required: ['name', 'alias'],
  properties: { name: { type: 'string', description: 'model name' }, alias: { type: 'string', description: 'alias name, e.g. production' } },
} as const;
const actorQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { actor: { type: 'string', minLength: 1 }, reason: { type: 'string' } },
} as const;
const rulesSchema = {
  type: 'array',
  description: 'rules: {metric, op, value} | {better_than_current, lower_is_better?, min_delta?} | {tag, value?} | {no_label}',
  items: obj,
} as const;

export const modelRoutes: FastifyPluginAsync<{ registry: Registry }> = async (app, { registry }) => {
  app.post<{ Body: { name: string; description?: string; tags?: Record<string, string> } }>(
    '/api/v1/models',
    {
      schema: {
        summary: 'Create a registered model (registering a version also creates it)',
        tags: ['models'],
        body: {
          type: 'object',
          required: ['name'],
          additionalProperties: false,
          properties: { name: { type: 'string' }, description: { type: 'string' }, tags },
        },
        response: { 201: obj, ...errorResponses },
      },
    },
    async (req, reply) => reply.code(201).send(await registry.createModel(req.body.name, req.body)),
  );

  app.get<{ Querystring: { filter?: string } }>(
    '/api/v1/models',
    {
      schema: {
        summary: 'List registered models',
        tags: ['models'],
        querystring: { type: 'object', additionalProperties: false, properties: { filter: { type: 'string', description: 'name contains this' } } },
        response: { 200: list, ...errorResponses },
      },
    },
    async (req) => registry.listModels({ filter: req.query.filter }),
  );

  app.get<{ Params: { name: string } }>(
    '/api/v1/models/:name',
    { schema: { summary: 'Inspect a model: latest version and aliases', tags: ['models'], params: nameParams, response: { 200: obj, ...errorResponses } } },
    async (req) => registry.getModel(req.params.name),
  );

  app.patch<{ Params: { name: string }; Body: { description?: string } }>(
    '/api/v1/models/:name',
    {
      schema: {
        summary: "Change a model's description",
        tags: ['models'],
        params: nameParams,
        body: { type: 'object', additionalProperties: false, properties: { description: { type: 'string' } } },
        response: { 200: obj, ...errorResponses },
      },
    },
    async (req) => registry.updateModel(req.params.name, req.body ?? {}),
  );

  app.delete<{ Params: { name: string } }>(
    '/api/v1/models/:name',
    {
      schema: {
        summary: 'Delete a model with its versions, aliases and gates (the alias history is kept)',
        tags: ['models'],
        params: nameParams,
        response: { ...noContent, ...errorResponses },
      },
    },
    async (req, reply) => {
      await registry.deleteModel(req.params.name);
      return reply.code(204).send();
    },
  );

  // ---- versions ----

  app.post<{ Params: { name: string }; Body: { from: string; run_id?: string; description?: string; tags?: Record<string, string>; user?: string } }>(
    '/api/v1/models/:name/versions',
    {
      schema: {
        summary: 'Register a file in a commit as the next version of a model (creates the model if needed)',
        tags: ['models'],
        params: nameParams,
        body: {
          type: 'object',
          required: ['from'],
          additionalProperties: false,
          properties: {
            from: { type: 'string', minLength: 1, description: 'the model file: REPO[@BRANCH|@COMMIT]:/path, e.g. train@master:/model.onnx' },
            run_id: { type: 'string', description: 'the run that made it (default: the run of the job that made the commit)' },
            description: { type: 'string' },
            tags,
            user: { type: 'string' },
          },
        },
        response: { 201: obj, ...errorResponses },
      },
    },
    async (req, reply) => reply.code(201).send(await registry.registerVersion(req.params.name, { user: defaultAuthor(), ...req.body })),
  );

  app.get<{ Params: { name: string } }>(
    '/api/v1/models/:name/versions',
    { schema: { summary: 'Versions of a model, oldest first', tags: ['models'], params: nameParams, response: { 200: list, ...errorResponses } } },
    async (req) => registry.listVersions(req.params.name),
  );

  app.get<{ Params: { name: string; version: number } }>(
    '/api/v1/models/:name/versions/:version',
    { schema: { summary: 'Inspect a model version', tags: ['models'], params: versionParams, response: { 200: obj, ...errorResponses } } },
    async (req) => registry.getVersion(req.params.name, req.params.version),
  );

  app.patch<{ Params: { name: string; version: number }; Body: { description?: string } }>(
    '/api/v1/models/:name/versions/:version',
    {
      schema: {
        summary: "Change a version's description",
        tags: ['models'],
        params: versionParams,
        body: { type: 'object', additionalProperties: false, properties: { description: { type: 'string' } } },
        response: { 200: obj, ...errorResponses },
      },
    },
    async (req) => registry.updateVersion(req.params.name, req.params.version, req.body ?? {}),
  );

  app.delete<{ Params: { name: string; version: number } }>(
    '/api/v1/models/:name/versions/:version',
    {
      schema: {
        summary: 'Delete a model version (refused while an alias points at it)',
        tags: ['models'],
        params: versionParams,
        response: { ...noContent, ...errorResponses },
      },
    },
    async (req, reply) => {
      await registry.deleteVersion(req.params.name, req.params.version);
      return reply.code(204).send();
    },
  );

  app.put<{ Params: { name: string; version: number; key: string }; Body: { value: string } }>(
    '/api/v1/models/:name/versions/:version/tags/:key',
    {
      schema: {
        summary: 'Set a tag of a model version',
        tags: ['models'],
        params: { ...versionParams, required: ['name', 'version', 'key'], properties: { ...versionParams.properties, key: { type: 'string' } } },
        body: { type: 'object', required: ['value'], additionalProperties: false, properties: { value: { type: 'string' } } },
        response: { 200: obj, ...errorResponses },
      },
    },
    async (req) => registry.setVersionTag(req.params.name, req.params.version, req.params.key, req.body.value),
  );

  // ---- aliases ----

  app.get<{ Params: { name: string; alias: string } }>(
    '/api/v1/models/:name/aliases/:alias',
    {
      schema: { summary: 'The version an alias points at ("latest": the highest version)', tags: ['models'], params: aliasParams, response: { 200: obj, ...errorResponses } },
    },
    async (req) => registry.getVersionByAlias(req.params.name, req.params.alias),
  );

  app.put<{ Params: { name: string; alias: string }; Body: { version: number; actor?: string; reason?: string } }>(
    '/api/v1/models/:name/aliases/:alias',
    {
      schema: {
        summary: "Point an alias at a version, if the alias's promotion gates pass (403 POLICY_VIOLATION otherwise); recorded in the alias history",
        tags: ['models'],
        params: aliasParams,
        body: {
          type: 'object',
          required: ['version'],
          additionalProperties: false,
          properties: { version: { type: 'integer', minimum: 1 }, actor: { type: 'string', minLength: 1 }, reason: { type: 'string' } },
        },
        response: { 200: obj, ...errorResponses },
      },
    },
    async (req) =>
      registry.setAlias(req.params.name, req.params.alias, req.body.version, { actor: req.body.actor ?? defaultAuthor(), reason: req.body.reason }),
  );

  app.delete<{ Params: { name: string; alias: string }; Querystring: { actor?: string; reason?: string } }>(
    '/api/v1/models/:name/aliases/:alias',
    {
      schema: {
        summary: 'Remove an alias; recorded in the alias history (to_version null)',
        tags: ['models'],
        params: aliasParams,
        querystring: actorQuery,
        response: { 200: obj, ...errorResponses },
      },
    },
    async (req) => registry.deleteAlias(req.params.name, req.params.alias, { actor: req.query.actor ?? defaultAuthor(), reason: req.query.reason }),
  );

  app.get<{ Params: { name: string; alias: string }; Querystring: { time: string } }>(
    '/api/v1/models/:name/aliases/:alias/at',
    {
      schema: {
        summary: 'The version that held an alias at an instant: {name, alias, time, version|null}',
        tags: ['models'],
        params: aliasParams,
        querystring: {
          type: 'object',
          required: ['time'],
          additionalProperties: false,
          properties: { time: { type: 'string', minLength: 1, description: 'ISO-8601 date/time or epoch milliseconds' } },
        },
        response: { 200: obj, ...errorResponses },
      },
    },
    async (req) => registry.aliasAt(req.params.name, req.params.alias, req.query.time),
  );

  app.get<{ Params: { name: string }; Querystring: { alias?: string } }>(
    '/api/v1/models/:name/alias-history',
    {
      schema: {
        summary: 'Alias moves (who moved which alias from which version to which, when), newest first',
        tags: ['models'],
        params: nameParams,
        querystring: { type: 'object', additionalProperties: false, properties: { alias: { type: 'string' } } },
        response: { 200: list, ...errorResponses },
      },
    },
    async (req) => registry.aliasHistory(req.params.name, req.query.alias),
  );

  // ---- gates ----

  app.get<{ Params: { name: string; alias: string } }>(
    '/api/v1/models/:name/gates/:alias',
    {
      schema: {
        summary: 'The promotion gate rules of an alias ([] when none)',
        tags: ['models'],
        params: aliasParams,
        response: { 200: rulesSchema, ...errorResponses },
      },
    },
    async (req) => registry.getGates(req.params.name, req.params.alias),
  );

  app.put<{ Params: { name: string; alias: string }; Body: { rules: GateRule[] } }>(
    '/api/v1/models/:name/gates/:alias',
    {
      schema: {
        summary: 'Replace the promotion gate rules of an alias (an empty list removes the gate)',
        tags: ['models'],
        params: aliasParams,
        body: { type: 'object', required: ['rules'], additionalProperties: false, properties: { rules: rulesSchema } },
        response: { 200: rulesSchema, ...errorResponses },
      },
    },
    async (req) => registry.setGates(req.params.name, req.params.alias, req.body.rules),
  );
};
