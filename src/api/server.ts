import swagger from '@fastify/swagger';
import Fastify, { type FastifyInstance } from 'fastify';
import { InvalidArgumentError } from '../errors.js';
import type { Instance } from '../instance.js';
import { errorBody, type ErrorContext } from './errors.js';
import { catalogRoutes } from './routes/catalog.js';
import { auditRoutes } from './routes/audit.js';
import { classifyRoutes } from './routes/classify.js';
import { commitRoutes } from './routes/commits.js';
import { fileRoutes } from './routes/files.js';
import { mlflowRoutes } from './routes/mlflow.js';
import { modelRoutes } from './routes/models.js';
import { pipelineRoutes } from './routes/pipelines.js';
import { runRoutes } from './routes/runs.js';
import { servingRoutes } from './routes/serving.js';
import { repoRoutes } from './routes/repos.js';
import { systemRoutes } from './routes/system.js';
import { sharedSchemas } from './schemas.js';
import { VERSION } from './version.js';
import { jsonBodyParser } from './json-body.js';
import { authenticatedUser, installAuth, type AuthOptions } from './auth.js';
import { readableBy } from '../governance/authorize.js';
import { accessRoutes } from './routes/access.js';

// The HTTP API: one Fastify server whose routes are thin adapters over the
// instance's services (DESIGN.md: no business logic in api/). Route schemas
// validate requests and make up the OpenAPI document at /openapi.json.

export interface ServerOptions {
  /** Largest JSON body accepted, in bytes (uploads are streamed and not limited by it). */
  bodyLimit?: number;
  logger?: boolean;
  /** Token checks (api/auth.ts): mode and the bound host. */
  auth?: AuthOptions;
}

const DEFAULT_BODY_LIMIT = 1024 * 1024;

export function buildServer(instance: Instance, opts: ServerOptions = {}): FastifyInstance {
  const bodyLimit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const app = Fastify({
    logger: opts.logger ?? false,
    bodyLimit,
    // Unknown fields are an error naming the field, not silently dropped.
    ajv: { customOptions: { removeAdditional: false } },
    // Uploads of many GiB take as long as they take.
    requestTimeout: 0,
  });
  // Before any route is registered: every route is collected and classified, every request authorized and audited.
  installAuth(app, instance, opts.auth);
  const errors: ErrorContext = {
    bodyLimit,
    logInternal: opts.logger ? (err, req) => (req ?? app).log.error({ err }, 'internal error') : undefined,
  };

  // Responses are plain JSON.stringify: response schemas document, they never strip fields.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));

  const parseJson = jsonBodyParser(app);
  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => parseJson(body as string, done));

  app.setErrorHandler((err, req, reply) => {
    const { status, body } = errorBody(err, { ...errors, req });
    return reply.code(status).type('application/json').send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0];
    return reply.code(404).send({
      error: { code: 'NOT_FOUND', message: `no such endpoint: ${req.method} ${path} (GET /openapi.json lists the API)` },
    });
  });

  for (const schema of sharedSchemas) app.addSchema(schema);
  app.register(swagger, {
    openapi: {
      info: {
        title: 'Strata',
        version: VERSION,
        description: 'Versioned data, pipelines, experiment tracking, model registry and serving. Errors are {"error":{"code","message"}}.',
      },
    },
    // Components are named by their $id (RepoInfo, CommitInfo, ...), not def-0, def-1.
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
  });

  const data = instance.data;
  app.register(systemRoutes, { data });
  app.register(repoRoutes, { data });
  app.register(commitRoutes, { data, access: instance.access });
  app.register(fileRoutes, { data, errors });
  app.register(pipelineRoutes, { instance });
  app.register(modelRoutes, { registry: instance.registry });
  app.register(runRoutes, { tracking: instance.tracking });
  app.register(mlflowRoutes, {
    tracking: instance.tracking,
    registry: instance.registry,
    errors,
    canReadModel: async (req, model) => (await readableBy(instance.access, authenticatedUser(req))?.('model', model)) ?? true,
  });
  app.register(servingRoutes, { serving: instance.serving, errors });
  app.register(accessRoutes, { access: instance.access });
  app.register(classifyRoutes, { classification: instance.classification });
  app.register(catalogRoutes, { catalog: instance.catalog, access: instance.access });
  app.register(auditRoutes, { audit: instance.audit });
  return app;
}

export interface RunningServer {
  /** Base URL, e.g. http://127.0.0.1:7070 */
  url: string;
  app: FastifyInstance;
  close(): Promise<void>;
}

/** Builds the server and listens. The caller still owns (and closes) the instance. */
export async function startServer(args: {
  instance: Instance;
  host?: string;
  port?: number;
  bodyLimit?: number;
  logger?: boolean;
  /** Run pipeline jobs in this server (default true). */
  scheduler?: boolean;
  /** required: every request needs a token; auto (default): unless bound to a loopback address. */
  auth?: 'required' | 'auto';
}): Promise<RunningServer> {
  const host = args.host ?? '127.0.0.1';
  const port = args.port ?? 7070;
  const app = buildServer(args.instance, { bodyLimit: args.bodyLimit, logger: args.logger, auth: { mode: args.auth, host } });
  try {
    await app.listen({ host, port });
  } catch (err) {
    await app.close();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new InvalidArgumentError(`cannot listen on ${host}:${port}: the port is in use (pick another with --port)`, { cause: err });
    if (code === 'EADDRNOTAVAIL') throw new InvalidArgumentError(`cannot listen on ${host}: no such local address (check --host)`, { cause: err });
    if (code === 'EACCES') throw new InvalidArgumentError(`cannot listen on ${host}:${port}: permission denied (use a port above 1023)`, { cause: err });
    throw err;
  }
  const address = app.server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  const shown = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  if (args.scheduler !== false) {
    args.instance.scheduler.start();
    args.instance.triggers.start();
  }
  // Every deployment is loaded before the server reports its URL; they follow alias moves from here on.
  await args.instance.serving.start();
  return {
    url: `http://${shown}:${bound}`,
    app,
    close: async () => {
      if (args.scheduler !== false) {
        args.instance.triggers.stop();
        await args.instance.scheduler.stop();
      }
      await app.close();
      await args.instance.serving.stop();
    },
  };
}
