import type { FastifyPluginAsync } from 'fastify';
import { defaultAuthor } from '../../data/service.js';
import type { Classifier, LabelKind } from '../../governance/classifier.js';
import { errorResponses, noContent, refQuery } from '../schemas.js';

// PII classification: per-file findings of a reference, labels of repos,
// pipelines and models, and the instance's custom detectors. Thin adapters
// over Classifier; findings are counts, never values.

const tags = ['classification'];
const str = { type: 'string' } as const;
const counts = { type: 'object', additionalProperties: { type: 'integer' }, description: 'PII type -> occurrences' } as const;

const fileClassification = {
  type: 'object',
  properties: {
    path: str,
    hash: str,
    size: { type: 'integer' },
    status: { type: 'string', enum: ['scanned', 'binary', 'truncated'] },
    bytes_scanned: { type: 'integer' },
    findings: counts,
    timed_out: { type: 'array', items: str, description: 'custom detectors that ran out of time on this file' },
  },
} as const;

const commitClassification = {
  type: 'object',
  properties: {
    repo: str,
    commit: str,
    path: str,
    files: { type: 'array', items: fileClassification },
    totals: counts,
    labels: { type: 'array', items: str },
  },
} as const;

const labelSet = {
  type: 'object',
  properties: {
    kind: str,
    name: str,
    labels: { type: 'array', items: str },
    direct: { type: 'array', items: str },
    inherited: { type: 'array', items: { type: 'object', properties: { label: str, from: str } } },
    declassified: { type: 'array', items: { type: 'object', properties: { label: str, by: str } } },
  },
} as const;

const detector = { type: 'object', properties: { name: str, pattern: str, flags: str, creator: str, created: str } } as const;

export const classifyRoutes: FastifyPluginAsync<{ classification: Classifier }> = async (app, { classification }) => {
  app.get<{ Querystring: { ref: string } }>(
    '/api/v1/classification',
    {
      schema: {
        summary: "PII findings per file of a reference (scans what has not been scanned yet); counts only, never values",
        tags,
        querystring: { type: 'object', required: ['ref'], properties: { ref: refQuery } },
        response: { 200: commitClassification, ...errorResponses },
      },
    },
    async (req) => classification.classify(req.query.ref),
  );

  app.get<{ Params: { kind: LabelKind; name: string } }>(
    '/api/v1/classification/labels/:kind/:name',
    {
      schema: {
        summary: 'PII labels of a repo, pipeline or model (NAME, NAME@VERSION, NAME@ALIAS): direct, inherited through lineage, declassified',
        tags,
        params: { type: 'object', required: ['kind', 'name'], properties: { kind: { type: 'string', enum: ['repo', 'pipeline', 'model'] }, name: str } },
        response: { 200: labelSet, ...errorResponses },
      },
    },
    async (req) => classification.labels(req.params.kind, req.params.name),
  );

  app.get(
    '/api/v1/classification/detectors',
    { schema: { summary: 'Custom PII detectors', tags, response: { 200: { type: 'array', items: detector }, ...errorResponses } } },
    async () => classification.listDetectors(),
  );

  app.post<{ Body: { name: string; pattern: string; flags?: string; creator?: string } }>(
    '/api/v1/classification/detectors',
    {
      schema: {
        summary: 'Add a custom PII detector: a named regex (refused if it does not compile or backtracks catastrophically)',
        tags,
        body: {
          type: 'object',
          required: ['name', 'pattern'],
          additionalProperties: false,
          properties: { name: str, pattern: str, flags: { type: 'string', description: 'any of i, m, s, u' }, creator: str },
        },
        response: { 201: detector, ...errorResponses },
      },
    },
    async (req, reply) => {
      const { name, pattern, flags, creator } = req.body;
      return reply.code(201).send(await classification.addDetector({ name, pattern, flags, creator: creator ?? defaultAuthor() }));
    },
  );

  app.delete<{ Params: { name: string } }>(
    '/api/v1/classification/detectors/:name',
    {
      schema: {
        summary: 'Remove a custom PII detector',
        tags,
        params: { type: 'object', required: ['name'], properties: { name: str } },
        response: { ...noContent, ...errorResponses },
      },
    },
    async (req, reply) => {
      await classification.removeDetector(req.params.name);
      return reply.code(204).send();
    },
  );
};
