import type { FastifyPluginAsync } from 'fastify';
import { checkSignedCheckpoint, type AuditLog, type SignedCheckpoint } from '../../governance/audit.js';
import { errorResponses } from '../schemas.js';

// The audit log over HTTP: entries (filtered), signed checkpoints, and verify.
// Thin adapters over AuditLog; verify answers 200 with ok=false when the log
// was tampered with (the report is the result, not an error).

const tags = ['audit'];
const str = { type: 'string' } as const;

const entry = {
  type: 'object',
  properties: {
    seq: { type: 'integer' },
    time: str,
    actor: str,
    action: str,
    target: str,
    outcome: { type: 'string', enum: ['ok', 'denied', 'error'] },
    client: str,
    detail: { type: 'object', additionalProperties: true },
    leaf: { type: 'string', description: 'RFC 6962 leaf hash (hex) of the canonical entry' },
  },
} as const;

const checkpoint = {
  type: 'object',
  required: ['size', 'root', 'time', 'public_key', 'signature'],
  additionalProperties: false,
  properties: {
    size: { type: 'integer', minimum: 0 },
    root: { type: 'string', description: 'Merkle tree hash (hex) of entries 1..size' },
    time: str,
    public_key: { type: 'string', description: 'the instance Ed25519 public key, raw 32 bytes in base64' },
    signature: { type: 'string', description: 'Ed25519 signature (base64) of the checkpoint text' },
  },
} as const;

const verifyResult = {
  type: 'object',
  properties: {
    ok: { type: 'boolean' },
    size: { type: 'integer' },
    root: str,
    checked_checkpoints: { type: 'integer' },
    problems: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          seq: { type: 'integer' },
          kind: { type: 'string', enum: ['missing', 'duplicate', 'modified', 'reordered', 'inserted', 'checkpoint'] },
          message: str,
        },
      },
    },
  },
} as const;

export const auditRoutes: FastifyPluginAsync<{ audit: AuditLog }> = async (app, { audit }) => {
  app.get<{ Querystring: { since?: string; actor?: string; target?: string; action?: string; limit?: number } }>(
    '/api/v1/audit',
    {
      schema: {
        summary: 'Audit entries, oldest first: the most recent `limit` (default 1000) matching the filters',
        tags,
        querystring: {
          type: 'object',
          properties: {
            since: { type: 'string', description: 'ISO-8601 time, epoch ms, or a duration back from now (1h, 30m, 7d)' },
            actor: str,
            target: { type: 'string', description: 'a target, or a prefix of targets ending before @, : or /' },
            action: str,
            limit: { type: 'integer', minimum: 1 },
          },
        },
        response: { 200: { type: 'array', items: entry }, ...errorResponses },
      },
    },
    async (req) => audit.list(req.query),
  );

  app.post(
    '/api/v1/audit/checkpoints',
    {
      schema: {
        summary: 'Signs and stores a checkpoint (size, root) of the whole log; keep the answer outside the instance',
        tags,
        response: { 200: checkpoint, ...errorResponses },
      },
    },
    async () => audit.checkpoint(),
  );

  app.post<{ Body: { checkpoint?: SignedCheckpoint } | null }>(
    '/api/v1/audit/verify',
    {
      schema: {
        summary: 'Recomputes the Merkle tree and checks every entry and checkpoint (and the given one); ok=false names the first bad entry',
        tags,
        body: { type: ['object', 'null'], additionalProperties: false, properties: { checkpoint } },
        response: { 200: verifyResult, ...errorResponses },
      },
    },
    async (req) => audit.verify({ checkpoint: req.body?.checkpoint ? checkSignedCheckpoint(req.body.checkpoint) : undefined }),
  );
};
