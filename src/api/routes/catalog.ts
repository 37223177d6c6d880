import type { FastifyPluginAsync } from 'fastify';
import { CATALOG_KINDS, type Catalog, type CatalogAnnotation } from '../../governance/catalog.js';
import { errorResponses } from '../schemas.js';
import type { AccessControl } from '../../governance/access.js';
import { readableBy } from '../../governance/authorize.js';
import { authenticatedUser } from '../auth.js';

// Catalog and discovery: search, inspect and annotate. Thin adapters over
// governance/catalog.ts, which validates kinds, label filters and annotations.

const str = { type: 'string' } as const;
const strArray = { type: 'array', items: str } as const;
const labels = { type: 'object', additionalProperties: str } as const;
const entity = { type: 'object', properties: { kind: { type: 'string', enum: [...CATALOG_KINDS] }, name: str } } as const;

const hit = {
  type: 'object',
  properties: {
    kind: str,
    name: str,
    score: { type: 'number', description: 'relevance, higher is better' },
    description: str,
    owners: strArray,
    labels,
    matched: { ...strArray, description: 'fields a query word was found in: name, labels, columns, description, owners, readme' },
  },
} as const;

const details = {
  type: 'object',
  properties: {
    kind: str,
    name: str,
    description: str,
    owners: strArray,
    labels,
    readme: { type: ['string', 'null'], description: 'repos: README.md at the root of the default branch' },
    schemas: { type: 'object', additionalProperties: true, description: 'repos: path -> {format, columns: [{name, type, nullable}], rows, truncated, error?}' },
    lineage: { type: 'object', properties: { upstream: { type: 'array', items: entity }, downstream: { type: 'array', items: entity } } },
    annotations: { type: 'object', additionalProperties: true, description: 'what catalog annotations changed' },
    classification: { description: 'from the PII classifier, when the instance has one' },
    updated: { type: 'string', format: 'date-time' },
  },
} as const;

const entityParams = { type: 'object', required: ['kind', 'name'], properties: { kind: str, name: str } } as const;

export const catalogRoutes: FastifyPluginAsync<{ catalog: Catalog; access: AccessControl }> = async (app, { catalog, access }) => {
  app.get<{ Querystring: { q?: string; kind?: string; label?: string[]; limit?: number } }>(
    '/api/v1/catalog/search',
    {
      schema: {
        summary: 'Search the catalog: repos, pipelines, models and deployments ranked by relevance',
        tags: ['catalog'],
        querystring: {
          type: 'object',
          properties: {
            q: { type: 'string', description: 'words to find in names, labels, column names, descriptions, owners and READMEs; the last may be a prefix' },
            kind: { type: 'string', description: CATALOG_KINDS.join(' | ') },
            label: { ...strArray, description: 'key=value or key (repeatable; all must hold)' },
            limit: { type: 'integer', minimum: 1, maximum: 1000 },
          },
        },
        response: { 200: { type: 'array', items: hit }, ...errorResponses },
      },
    },
    async (req) =>
      catalog.search(req.query.q ?? '', { kind: req.query.kind, labels: req.query.label, limit: req.query.limit, visible: readableBy(access, authenticatedUser(req)) }),
  );

  app.get<{ Params: { kind: string; name: string } }>(
    '/api/v1/catalog/entities/:kind/:name',
    {
      schema: {
        summary: 'One catalog entry with README, schemas, lineage neighbours and classification',
        tags: ['catalog'],
        params: entityParams,
        response: { 200: details, ...errorResponses },
      },
    },
    async (req) => catalog.inspect(req.params.kind, req.params.name),
  );

  app.patch<{ Params: { kind: string; name: string }; Body: CatalogAnnotation }>(
    '/api/v1/catalog/entities/:kind/:name',
    {
      schema: {
        summary: 'Annotate an entity: description and owners replace its own, labels are added, unlabel removes keys',
        tags: ['catalog'],
        params: entityParams,
        body: {
          type: 'object',
          additionalProperties: false,
          properties: { description: str, owners: strArray, labels, unlabel: strArray },
        },
        response: { 200: details, ...errorResponses },
      },
    },
    async (req) => catalog.annotate(req.params.kind, req.params.name, req.body),
  );
};
