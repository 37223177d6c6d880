// JSON schemas of the API's shapes (data/types.ts). They validate requests and
// feed the OpenAPI document; responses are serialized with plain
// JSON.stringify (server.ts), so these response schemas document, never strip.

const str = { type: 'string' } as const;
const int = { type: 'integer', minimum: 0 } as const;
const strArray = { type: 'array', items: str } as const;
const labels = { type: 'object', additionalProperties: str } as const;

/** Shared schemas, added with app.addSchema and referenced as `{ $ref: 'Name#' }`. */
export const sharedSchemas = [
  {
    $id: 'Error',
    type: 'object',
    required: ['error'],
    properties: {
      error: {
        type: 'object',
        required: ['code', 'message'],
        properties: {
          code: {
            type: 'string',
            description: 'stable error code: INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, CONFLICT, DATA_CORRUPTION, INTERNAL, ...',
          },
          message: str,
        },
      },
    },
  },
  {
    $id: 'RepoInfo',
    type: 'object',
    properties: {
      name: str,
      description: str,
      owner: str,
      labels,
      created: { type: 'string', format: 'date-time' },
      branches: strArray,
      head: { type: ['string', 'null'], description: 'head commit of the default branch' },
      size: { ...int, description: "bytes of the files in the default branch's head commit" },
    },
  },
  {
    $id: 'BranchInfo',
    type: 'object',
    properties: { repo: str, name: str, head: { type: ['string', 'null'] } },
  },
  {
    $id: 'Provenance',
    type: 'object',
    properties: { repo: str, commit: str },
  },
  {
    $id: 'CommitInfo',
    type: 'object',
    properties: {
      id: str,
      repo: str,
      parents: strArray,
      message: str,
      author: str,
      time: { type: 'string', format: 'date-time' },
      provenance: { type: 'array', items: { $ref: 'Provenance#' } },
      tree: str,
      size: int,
    },
  },
  {
    $id: 'FileInfo',
    type: 'object',
    properties: {
      path: str,
      type: { type: 'string', enum: ['file', 'dir'] },
      size: int,
      hash: { type: 'string', description: 'SHA-256 (hex) of the content (of the tree, for a directory)' },
    },
  },
  {
    $id: 'PutResult',
    type: 'object',
    properties: {
      commit: str,
      repo: str,
      branch: str,
      files: int,
      deleted: int,
      bytes: int,
      new_bytes: { ...int, description: 'bytes not already stored (after deduplication)' },
    },
  },
  {
    $id: 'DiffResult',
    type: 'object',
    properties: { added: strArray, modified: strArray, deleted: strArray },
  },
  {
    $id: 'FsckResult',
    type: 'object',
    properties: {
      ok: { type: 'boolean' },
      checked: {
        type: 'object',
        properties: { chunks: int, files: int, trees: int, commits: int, branches: int },
      },
      problems: {
        type: 'array',
        items: {
          type: 'object',
          properties: {
            kind: { type: 'string', enum: ['chunk', 'pack', 'file', 'tree', 'commit', 'branch'] },
            id: str,
            message: str,
          },
        },
      },
    },
  },
];

export const ref = (name: string) => ({ $ref: `${name}#` });
export const listOf = (name: string) => ({ type: 'array', items: ref(name) });

/** Error responses every route may give, for the document. */
export const errorResponses = {
  '4xx': { description: 'bad request, unknown object, conflict', ...ref('Error') },
  '5xx': { description: 'internal error or data corruption', ...ref('Error') },
};

export const noContent = { 204: { type: 'null', description: 'done' } };

export const repoParams = {
  type: 'object',
  required: ['repo'],
  properties: { repo: { type: 'string', description: 'repo name' } },
} as const;

export const branchParams = {
  type: 'object',
  required: ['repo', 'branch'],
  properties: { repo: { type: 'string', description: 'repo name' }, branch: { type: 'string', description: 'branch name' } },
} as const;

export const refQuery = {
  type: 'string',
  minLength: 1,
  description: 'reference: repo, repo@branch, repo@<commit prefix>, repo@branch~N, optionally followed by :/path',
} as const;
