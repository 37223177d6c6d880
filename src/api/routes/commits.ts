import type { FastifyPluginAsync } from 'fastify';
import type { DataService } from '../../data/service.js';
import type { AccessControl } from '../../governance/access.js';
import { linksCheckedFor } from '../../governance/authorize.js';
import { authenticatedUser } from '../auth.js';
import type { Change, CommitOptions, Provenance } from '../../data/types.js';
import { InvalidArgumentError } from '../../errors.js';
import { boundaryOf, readMultipart, readText, type Part } from '../multipart.js';
import { branchParams, errorResponses, listOf, ref, refQuery } from '../schemas.js';

// Commits: the streamed upload, and reading history.
//
// Upload convention (multipart/form-data, parts in order):
//   a part named  put:<encodeURIComponent(repo path)>   whose body is the file's content;
//   a part named  link:<encodeURIComponent(repo path)>  whose (text) value is the SHA-256 of
//                 content this instance already stores, placed at the path without resending it
//                 (admins only: see linksCheckedFor);
//   a part named  link-dir:<encodeURIComponent(repo path)>  whose value is the id of a stored
//                 directory tree: its files are placed beneath the path (merged, as if linked one by one);
//   a part named  delete  whose (text) value is a repo path to delete.
// The parts become the stream of changes DataService.commit consumes, one at
// a time as they arrive, so nothing is held whole in memory.

const PUT = 'put:';
const LINK = 'link:';
const LINK_DIR = 'link-dir:';
const DELETE = 'delete';
const MAX_PATH_BYTES = 64 * 1024;
const MAX_HASH_BYTES = 1024;

interface CommitQuery {
  message?: string;
  author?: string;
  provenance?: string[];
}

export const commitRoutes: FastifyPluginAsync<{ data: DataService; access: AccessControl }> = async (app, { data, access }) => {
  // Leave multipart bodies unread here: the commit handler streams them itself.
  // (Scoped to this plugin, so no other route accepts multipart.)
  app.addContentTypeParser('multipart/form-data', (_req, _payload, done) => done(null));

  app.post<{ Params: { repo: string; branch: string }; Querystring: CommitQuery }>(
    '/api/v1/repos/:repo/branches/:branch/commits',
    {
      schema: {
        summary: 'Commit files (streamed multipart upload); the branch is created if absent',
        description:
          'multipart/form-data body. Each file is a part named `put:` + encodeURIComponent(repo path) whose body is the content; ' +
          'a text part named `link:` + encodeURIComponent(repo path) whose value is the SHA-256 of content already stored places it without resending (admins only; others get 403 and send the bytes); ' +
          'a text part named `link-dir:` + encodeURIComponent(repo path) whose value is a stored directory tree id places its files beneath the path; ' +
          'a text part named `delete` whose value is a repo path deletes that path. Parts are applied in order, in one atomic commit.',
        tags: ['commits'],
        params: branchParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            message: { type: 'string' },
            author: { type: 'string' },
            provenance: {
              type: 'array',
              items: { type: 'string', pattern: '^[^@]+@[^@]+$' },
              description: 'repo@commit this commit was derived from (repeatable)',
            },
          },
        },
        response: { 201: ref('PutResult'), ...errorResponses },
      },
      config: {
        // Documentation only: the body is parsed by the handler, not validated by Fastify.
        swaggerTransform: ({ schema, url }) => ({
          url,
          schema: {
            ...schema,
            consumes: ['multipart/form-data'],
            body: {
              type: 'object',
              properties: {
                'put:%2Fpath%2Fto%2Ffile': { type: 'string', format: 'binary', description: 'file content (one part per file)' },
                'link:%2Fpath%2Fto%2Ffile': { type: 'string', description: 'SHA-256 (hex) of content already stored (one part per file)' },
                'link-dir:%2Fpath%2Fto%2Fdir': { type: 'string', description: 'id of a stored directory tree whose files go beneath the path' },
                delete: { type: 'string', description: 'repo path to delete (repeatable)' },
              },
            },
          },
        }),
      },
    },
    async (req, reply) => {
      const boundary = boundaryOf(req.headers['content-type']);
      const opts: CommitOptions = { message: req.query.message, author: req.query.author, provenance: provenanceOf(req.query.provenance) };
      const source = req.raw[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
      try {
        const changes = changesOf(readMultipart({ [Symbol.asyncIterator]: () => source }, boundary));
        const result = await data.commit(req.params.repo, req.params.branch, await linksCheckedFor(access, authenticatedUser(req), changes), opts);
        return reply.code(201).send(result);
      } catch (err) {
        discardRest(source);
        throw err;
      }
    },
  );

  app.get<{ Querystring: { ref: string } }>(
    '/api/v1/commit',
    {
      schema: {
        summary: 'Inspect the commit a reference names',
        tags: ['commits'],
        querystring: { type: 'object', additionalProperties: false, required: ['ref'], properties: { ref: refQuery } },
        response: { 200: ref('CommitInfo'), ...errorResponses },
      },
    },
    async (req) => data.inspectCommit(req.query.ref),
  );

  app.get<{ Querystring: { ref: string; limit?: number } }>(
    '/api/v1/log',
    {
      schema: {
        summary: 'History of a reference, newest first (first parents)',
        tags: ['commits'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          required: ['ref'],
          properties: { ref: refQuery, limit: { type: 'integer', minimum: 1, description: 'at most this many commits' } },
        },
        response: { 200: listOf('CommitInfo'), ...errorResponses },
      },
    },
    async (req) => data.log(req.query.ref, { limit: req.query.limit }),
  );

  app.get<{ Querystring: { from: string; to: string } }>(
    '/api/v1/diff',
    {
      schema: {
        summary: 'Files added, modified and deleted between two references',
        tags: ['commits'],
        querystring: { type: 'object', additionalProperties: false, required: ['from', 'to'], properties: { from: refQuery, to: refQuery } },
        response: { 200: ref('DiffResult'), ...errorResponses },
      },
    },
    async (req) => data.diff(req.query.from, req.query.to),
  );
};

/** The upload's parts as the changes of a commit, in order. */
async function* changesOf(parts: AsyncIterable<Part>): AsyncGenerator<Change> {
  for await (const part of parts) {
    if (part.name.startsWith(PUT)) {
      yield { op: 'put', path: pathIn(part.name, PUT), content: part.arrived() ?? part.body };
    } else if (part.name.startsWith(LINK)) {
      yield { op: 'link', path: pathIn(part.name, LINK), hash: (await readText(part, MAX_HASH_BYTES)).trim() };
    } else if (part.name.startsWith(LINK_DIR)) {
      yield { op: 'link', type: 'dir', path: pathIn(part.name, LINK_DIR), hash: (await readText(part, MAX_HASH_BYTES)).trim() };
    } else if (part.name === DELETE) {
      yield { op: 'delete', path: await readText(part, MAX_PATH_BYTES) };
    } else {
      throw new InvalidArgumentError(
        `unexpected multipart part "${part.name.slice(0, 200)}": name each file part "put:" (or "link:", or "link-dir:" for a directory tree) + the URI-encoded repo path, ` +
          'or send a "delete" field holding a path',
      );
    }
  }
}

function pathIn(name: string, prefix: string): string {
  try {
    return decodeURIComponent(name.slice(prefix.length));
  } catch (err) {
    throw new InvalidArgumentError(`multipart part name "${name.slice(0, 200)}" is not a valid URI-encoded path`, { cause: err });
  }
}

function provenanceOf(items: string[] | undefined): Provenance[] | undefined {
  return items?.map((item) => {
    const at = item.indexOf('@');
    return { repo: item.slice(0, at), commit: item.slice(at + 1) };
  });
}

/**
 * After a failed commit the client may still be sending: read the rest and
 * drop it, so the error response reaches the client and the connection stays
 * usable. (A client that stops sending on the error, as HttpClient does,
 * closes the connection and ends this.)
 */
function discardRest(source: AsyncIterator<Buffer>): void {
  void (async () => {
    try {
      while (!(await source.next()).done);
    } catch {
      // the client went away: nothing left to discard
    }
  })();
}
