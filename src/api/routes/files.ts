import { Readable } from 'node:stream';
import type { FastifyPluginAsync } from 'fastify';
import type { DataService } from '../../data/service.js';
import type { FileInfo } from '../../data/types.js';
import { errorBody, type ErrorContext } from '../errors.js';
import { errorResponses, listOf, refQuery } from '../schemas.js';

// Reading files. Content is streamed as DataService verifies it; if
// verification fails after the response has started, the connection is
// destroyed so the client sees a failed transfer, never a short or wrong body.

/** Response headers of GET /api/v1/file, besides content-length. */
export const FILE_HEADERS = { hash: 'strata-file-hash', size: 'strata-file-size', path: 'strata-file-path' } as const;

const NDJSON_BATCH = 32 * 1024;

export const fileRoutes: FastifyPluginAsync<{ data: DataService; errors: ErrorContext }> = async (app, { data, errors }) => {
  app.get<{ Querystring: { ref: string; recursive?: boolean; dirs?: boolean } }>(
    '/api/v1/ls',
    {
      schema: {
        summary: "List a directory (or describe a file) at a reference's path",
        tags: ['files'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          required: ['ref'],
          properties: {
            ref: refQuery,
            recursive: { type: 'boolean', description: 'list every file below, not just the entries' },
            dirs: { type: 'boolean', description: 'with recursive: list every directory below too (its hash is its tree id)' },
          },
        },
        response: { 200: listOf('FileInfo'), ...errorResponses },
      },
    },
    async (req) => data.ls(req.query.ref, { recursive: req.query.recursive, dirs: req.query.dirs }),
  );

  app.get<{ Querystring: { ref: string } }>(
    '/api/v1/walk',
    {
      schema: {
        summary: "Every file under a reference's path, as NDJSON (one FileInfo per line), streamed",
        description:
          'If the walk fails after the response has started, the last line is {"error":{"code","message"}} instead of a FileInfo.',
        tags: ['files'],
        produces: ['application/x-ndjson'],
        querystring: { type: 'object', additionalProperties: false, required: ['ref'], properties: { ref: refQuery } },
        response: {
          200: { description: 'one FileInfo per line', content: { 'application/x-ndjson': { schema: { $ref: 'FileInfo#' } } } },
          ...errorResponses,
        },
      },
    },
    async (req, reply) => {
      const files = data.walk(req.query.ref)[Symbol.asyncIterator]();
      const first = await files.next(); // errors before any output (unknown repo, bad path) get a normal error response
      return reply.type('application/x-ndjson').send(Readable.from(ndjson(first, files, { ...errors, req }), { objectMode: false }));
    },
  );

  app.get<{ Querystring: { ref: string } }>(
    '/api/v1/file',
    {
      schema: {
        summary: 'Raw content of the file a reference names, streamed',
        description:
          `Headers: ${FILE_HEADERS.hash} (SHA-256 hex of the content), ${FILE_HEADERS.size}, ${FILE_HEADERS.path} (URI-encoded). ` +
          'If stored data fails verification mid-transfer the connection is dropped: clients must check length and hash.',
        tags: ['files'],
        produces: ['application/octet-stream'],
        querystring: { type: 'object', additionalProperties: false, required: ['ref'], properties: { ref: refQuery } },
        response: {
          200: { description: 'the content', content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } },
          ...errorResponses,
        },
      },
    },
    async (req, reply) => {
      const { info, stream } = await data.read(req.query.ref);
      const chunks = stream[Symbol.asyncIterator]();
      // Read the first chunk before answering, so corruption found there is a proper error response.
      const first = await chunks.next();
      reply.headers({
        'content-type': 'application/octet-stream',
        'content-length': String(info.size),
        [FILE_HEADERS.hash]: info.hash,
        [FILE_HEADERS.size]: String(info.size),
        [FILE_HEADERS.path]: encodeURIComponent(info.path),
      });
      // A stream that errors after the headers are sent makes Fastify destroy the socket.
      return reply.send(Readable.from(rest(first, chunks), { objectMode: false }));
    },
  );
};

async function* rest<T>(first: IteratorResult<T>, it: AsyncIterator<T>): AsyncGenerator<T> {
  for (let r = first; !r.done; r = await it.next()) yield r.value;
}

/** FileInfo lines in batches; a failure mid-walk becomes a final error line. */
async function* ndjson(first: IteratorResult<FileInfo>, files: AsyncIterator<FileInfo>, errors: ErrorContext): AsyncGenerator<string> {
  let batch = '';
  try {
    for await (const f of rest(first, files)) {
      batch += JSON.stringify(f) + '\n';
      if (batch.length >= NDJSON_BATCH) {
        yield batch;
        batch = '';
      }
    }
  } catch (err) {
    yield batch + JSON.stringify(errorBody(err, errors).body) + '\n';
    return;
  }
  if (batch) yield batch;
}
