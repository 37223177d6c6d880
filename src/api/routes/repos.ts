import type { FastifyPluginAsync } from 'fastify';
import type { DataService } from '../../data/service.js';
import type { CreateRepoInput } from '../../data/types.js';
import { branchParams, errorResponses, listOf, noContent, ref, repoParams } from '../schemas.js';

// Repos and their branches: thin adapters over DataService.

export const repoRoutes: FastifyPluginAsync<{ data: DataService }> = async (app, { data }) => {
  app.post<{ Body: CreateRepoInput }>(
    '/api/v1/repos',
    {
      schema: {
        summary: 'Create a repo',
        tags: ['repos'],
        body: {
          type: 'object',
          required: ['name'],
          additionalProperties: false,
          properties: {
            name: { type: 'string', description: "letters, digits, '_', '-', '.'; starts with a letter or digit" },
            description: { type: 'string' },
            owner: { type: 'string' },
            labels: { type: 'object', additionalProperties: { type: 'string' } },
          },
        },
        response: { 201: ref('RepoInfo'), ...errorResponses },
      },
    },
    async (req, reply) => reply.code(201).send(await data.createRepo(req.body)),
  );

  app.get(
    '/api/v1/repos',
    { schema: { summary: 'List repos', tags: ['repos'], response: { 200: listOf('RepoInfo'), ...errorResponses } } },
    async () => data.listRepos(),
  );

  app.get<{ Params: { repo: string } }>(
    '/api/v1/repos/:repo',
    { schema: { summary: 'Inspect a repo', tags: ['repos'], params: repoParams, response: { 200: ref('RepoInfo'), ...errorResponses } } },
    async (req) => data.inspectRepo(req.params.repo),
  );

  app.delete<{ Params: { repo: string } }>(
    '/api/v1/repos/:repo',
    {
      schema: {
        summary: 'Delete a repo with its branches and commits',
        tags: ['repos'],
        params: repoParams,
        response: { ...noContent, ...errorResponses },
      },
    },
    async (req, reply) => {
      await data.deleteRepo(req.params.repo);
      return reply.code(204).send();
    },
  );

  app.post<{ Params: { repo: string }; Body: { name: string; from?: string } }>(
    '/api/v1/repos/:repo/branches',
    {
      schema: {
        summary: 'Create a branch',
        tags: ['branches'],
        params: repoParams,
        body: {
          type: 'object',
          required: ['name'],
          additionalProperties: false,
          properties: {
            name: { type: 'string' },
            from: { type: 'string', description: 'branch or commit (or full reference) the branch starts at; empty branch if absent' },
          },
        },
        response: { 201: ref('BranchInfo'), ...errorResponses },
      },
    },
    async (req, reply) => reply.code(201).send(await data.createBranch(req.params.repo, req.body.name, req.body.from)),
  );

  app.get<{ Params: { repo: string } }>(
    '/api/v1/repos/:repo/branches',
    { schema: { summary: 'List branches', tags: ['branches'], params: repoParams, response: { 200: listOf('BranchInfo'), ...errorResponses } } },
    async (req) => data.listBranches(req.params.repo),
  );

  app.delete<{ Params: { repo: string; branch: string } }>(
    '/api/v1/repos/:repo/branches/:branch',
    { schema: { summary: 'Delete a branch', tags: ['branches'], params: branchParams, response: { ...noContent, ...errorResponses } } },
    async (req, reply) => {
      await data.deleteBranch(req.params.repo, req.params.branch);
      return reply.code(204).send();
    },
  );
};
