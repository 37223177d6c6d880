import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { defaultAuthor } from '../../data/service.js';
import { InvalidArgumentError, NotFoundError } from '../../errors.js';
import type { RuntimeChanges } from '../../serving/deployments.js';
import { lineageOf, oipResponse, predictResponse, type InferResult, type ServingManager } from '../../serving/manager.js';
import { BINARY_HEADER, binaryResponse, modelMetadata, parseInferRequest, parseSimpleRequest } from '../../serving/protocol.js';
import { errorBody, type ErrorContext } from '../errors.js';
import { jsonBodyParser } from '../json-body.js';
import { errorResponses, noContent } from '../schemas.js';
import { VERSION } from '../version.js';

// Serving over HTTP: the Open Inference Protocol v2 REST endpoints under /v2
// (their errors are the protocol's {"error": "..."}, so that plugin has its
// own error handler), and Strata's /api/v1/deployments (CRUD and a plain JSON
// predict) with Strata's usual errors. Thin adapters over ServingManager.

const obj = { type: 'object', additionalProperties: true } as const;

/** The process runtime's settings, on create and update. */
const runtimeProperties = {
  command: { type: 'string', description: 'process runtime: the command (run by the shell) that serves the Open Inference Protocol on $PORT' },
  ready_timeout_s: { type: 'number', description: 'process runtime: seconds to wait for GET /v2/health/ready (default 60)' },
} as const;
const nameParams = { type: 'object', required: ['name'], properties: { name: { type: 'string' } } } as const;

/** An inference request body: its JSON, and the tensor bytes after it (binary tensor data extension). */
interface OipBody {
  json: unknown;
  binary?: Buffer;
}

interface ModelParams {
  name: string;
  version?: string;
}

export const servingRoutes: FastifyPluginAsync<{ serving: ServingManager; errors: ErrorContext }> = async (app, { serving, errors }) => {
  app.register(oipRoutes, { serving, errors });
  app.register(deploymentRoutes, { serving });
  app.register(metricsRoutes, { serving });
};

/** Prometheus metrics of serving, from the manager's own registry (registered once per server, with this plugin). */
const metricsRoutes: FastifyPluginAsync<{ serving: ServingManager }> = async (app, { serving }) => {
  app.get('/metrics', { schema: { summary: 'Prometheus metrics: serving requests, failures and latency by deployment and version', tags: ['metrics'] } }, async (_req, reply) =>
    reply.type(serving.metrics.contentType).send(await serving.metrics.text()),
  );
};

/** The request id that makes canary routing sticky: the OIP body's `id`, else an x-request-id header. */
function requestKey(req: FastifyRequest, body?: unknown): string | undefined {
  const id = body && typeof body === 'object' ? (body as { id?: unknown }).id : undefined;
  if (typeof id === 'string' && id !== '') return id;
  const header = req.headers['x-request-id'];
  return typeof header === 'string' && header !== '' ? header : undefined;
}

function versionOf(params: ModelParams): number | undefined {
  if (params.version === undefined) return undefined;
  if (!/^\d+$/.test(params.version) || Number(params.version) < 1) {
    throw new NotFoundError(`model "${params.name}" has no version "${params.version}" (versions are whole numbers from 1)`);
  }
  return Number(params.version);
}

function withLineage(reply: FastifyReply, result: InferResult): InferResult {
  for (const [k, v] of Object.entries(lineageOf(result.version))) reply.header(k, v);
  reply.header('strata-lane', result.lane);
  return result;
}

const oipRoutes: FastifyPluginAsync<{ serving: ServingManager; errors: ErrorContext }> = async (app, { serving, errors }) => {
  app.setErrorHandler((err, req, reply) => {
    // An oversized request is the protocol's 413, with the limit and how to raise it.
    if ((err as { code?: string }).code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      const message = `request body is too large: this server accepts at most ${errors.bodyLimit ?? 'its limit of'} bytes of JSON (strata server --body-limit raises it)`;
      return reply.code(413).type('application/json').send({ error: message });
    }
    const { status, body } = errorBody(err, { ...errors, req });
    return reply.code(status).type('application/json').send({ error: body.error.message });
  });
  // Bodies are JSON, or the binary tensor data extension: a JSON header of Inference-Header-Content-Length
  // bytes, then raw tensors (any content type; clients send application/octet-stream or none).
  const parseJson = jsonBodyParser(app);
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (req, body, done) => {
    const bytes = body as Buffer;
    const header = req.headers[BINARY_HEADER];
    if (header === undefined) return parseJson(bytes.toString('utf8'), (err, json) => done(err, err ? undefined : ({ json } satisfies OipBody)));
    const length = Number(header);
    if (!/^\d+$/.test(String(header)) || length > bytes.length) {
      return done(new InvalidArgumentError(`Inference-Header-Content-Length "${String(header)}" must be the byte length of the JSON header, at most the body's ${bytes.length} bytes`));
    }
    parseJson(bytes.toString('utf8', 0, length), (err, json) => done(err, err ? undefined : ({ json, binary: bytes.subarray(length) } satisfies OipBody)));
  });
  const tags = ['inference (Open Inference Protocol v2)'];

  app.get('/v2/health/live', { schema: { summary: 'Liveness', tags } }, async () => ({ live: true }));
  app.get('/v2/health/ready', { schema: { summary: 'Readiness: every deployment has a model loaded', tags } }, async (_req, reply) => {
    const ready = serving.ready();
    return reply.code(ready ? 200 : 503).send({ ready });
  });
  app.get('/v2', { schema: { summary: 'Server metadata', tags } }, async () => ({ name: 'strata', version: VERSION, extensions: ['binary_tensor_data'] }));

  const metadata = async (params: ModelParams) =>
    serving.use(params.name, versionOf(params), async (served) =>
      modelMetadata(params.name, served.version.version, served.signature, served.model.inner.runtimeStatus ? 'process' : 'onnxruntime'),
    );
  app.get<{ Params: ModelParams }>('/v2/models/:name', { schema: { summary: 'Model metadata, from its signature', tags } }, async (req) => metadata(req.params));
  app.get<{ Params: ModelParams }>('/v2/models/:name/versions/:version', { schema: { summary: 'Model version metadata', tags } }, async (req) => metadata(req.params));

  const ready = async (params: ModelParams, reply: FastifyReply) => {
    const version = versionOf(params);
    await serving.deployments.inspect(params.name);
    const status = serving.status(params.name);
    const canaryReady = version !== undefined && status.canary?.state === 'ready' && status.canary.version === version;
    const isReady = status.state === 'ready' && (version === undefined || version === status.version || canaryReady);
    if (version !== undefined && status.state === 'ready' && !isReady) {
      const canary = status.canary?.version ? ` (and version ${status.canary.version} as its canary)` : '';
      throw new NotFoundError(`deployment "${params.name}" serves version ${status.version}${canary}, not version ${version}`);
    }
    return reply.code(isReady ? 200 : 503).send({ name: params.name, ready: isReady });
  };
  app.get<{ Params: ModelParams }>('/v2/models/:name/ready', { schema: { summary: 'Model readiness', tags } }, async (req, reply) => ready(req.params, reply));
  app.get<{ Params: ModelParams }>('/v2/models/:name/versions/:version/ready', { schema: { summary: 'Model version readiness', tags } }, async (req, reply) =>
    ready(req.params, reply),
  );

  const infer = async (req: FastifyRequest<{ Params: ModelParams }>, reply: FastifyReply) => {
    const start = performance.now();
    const { params } = req;
    const { json, binary } = (req.body ?? { json: undefined }) as OipBody;
    const result = await serving.infer(params.name, versionOf(params), (signature) => parseInferRequest(json, signature, binary), { key: requestKey(req, json), start });
    const response = oipResponse(params.name, withLineage(reply, result));
    const binaryOut = result.request.binaryOutputs && binaryResponse(response, result.outputs, result.request.binaryOutputs);
    if (!binaryOut) return response;
    return reply.header('inference-header-content-length', binaryOut.headerLength).type('application/octet-stream').send(binaryOut.body);
  };
  const inferSchema = { summary: 'Inference: {"inputs": [{"name", "shape", "datatype", "data"}], "outputs"?, "parameters"?, "id"?}', tags };
  app.post<{ Params: ModelParams }>('/v2/models/:name/infer', { schema: inferSchema }, async (req, reply) => infer(req, reply));
  app.post<{ Params: ModelParams }>('/v2/models/:name/versions/:version/infer', { schema: inferSchema }, async (req, reply) => infer(req, reply));
};

const deploymentRoutes: FastifyPluginAsync<{ serving: ServingManager }> = async (app, { serving }) => {
  const deployments = serving.deployments;
  const tags = ['deployments'];

  app.post<{
    Body: { name: string; model: string; canary?: string; shadow?: string; log_predictions?: number; max_batch_size?: number; max_batch_delay_us?: number; creator?: string } & RuntimeChanges;
  }>(
    '/api/v1/deployments',
    {
      schema: {
        summary: 'Create a deployment of MODEL@ALIAS (follows the alias) or MODEL@VERSION, optionally with a canary (MODEL@VERSION=PERCENT) and a shadow (MODEL@VERSION)',
        tags,
        body: {
          type: 'object',
          required: ['name', 'model'],
          additionalProperties: false,
          properties: {
            name: { type: 'string' },
            model: { type: 'string' },
            canary: { type: 'string' },
            shadow: { type: 'string' },
            log_predictions: { type: 'number', description: 'fraction of requests (0 to 1) committed to the repo <name>-predictions; 0 or absent: none' },
            max_batch_size: { type: 'integer', description: 'adaptive batching: most requests (rows) per model run; with max_batch_delay_us' },
            max_batch_delay_us: { type: 'integer', description: 'adaptive batching: longest a request waits for others, in microseconds' },
            ...runtimeProperties,
            runtime: { type: 'string', enum: ['onnx', 'process'], description: 'onnx (default): ONNX Runtime in the server; process: `command` serves the Open Inference Protocol on $PORT' },
            creator: { type: 'string' },
          },
        },
        response: { 201: obj, ...errorResponses },
      },
    },
    async (req, reply) => {
      const { name, model, canary, shadow, log_predictions, max_batch_size, max_batch_delay_us, runtime, command, ready_timeout_s } = req.body;
      const info = await deployments.create({
        name,
        model,
        canary,
        shadow,
        log_predictions,
        max_batch_size,
        max_batch_delay_us,
        runtime,
        command,
        ready_timeout_s,
        creator: req.body.creator ?? defaultAuthor(),
      });
      await serving.changed(info.name);
      return reply.code(201).send(serving.withStatus(info));
    },
  );

  app.get('/api/v1/deployments', { schema: { summary: 'List deployments', tags, response: { 200: { type: 'array', items: obj }, ...errorResponses } } }, async () =>
    (await deployments.list()).map((d) => serving.withStatus(d)),
  );

  app.get<{ Params: { name: string } }>(
    '/api/v1/deployments/:name',
    { schema: { summary: 'Inspect a deployment, with the version it serves', tags, params: nameParams, response: { 200: obj, ...errorResponses } } },
    async (req) => serving.withStatus(await deployments.inspect(req.params.name)),
  );

  app.patch<{
    Params: { name: string };
    Body: { model?: string; canary?: string | null; shadow?: string | null; log_predictions?: number; max_batch_size?: number; max_batch_delay_us?: number } & Omit<RuntimeChanges, 'runtime'>;
  }>(
    '/api/v1/deployments/:name',
    {
      schema: {
        summary: 'Point a deployment at another MODEL@ALIAS or MODEL@VERSION and/or set its canary (MODEL@VERSION=PERCENT) or shadow (MODEL@VERSION); null removes them',
        tags,
        params: nameParams,
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            model: { type: 'string' },
            canary: { type: ['string', 'null'] },
            shadow: { type: ['string', 'null'] },
            log_predictions: { type: 'number', description: 'fraction of requests (0 to 1) to log; 0 turns logging off' },
            max_batch_size: { type: 'integer', description: 'adaptive batching: most requests (rows) per model run; 1 turns batching off' },
            max_batch_delay_us: { type: 'integer', description: 'adaptive batching: longest a request waits for others, in microseconds' },
            ...runtimeProperties,
          },
        },
        response: { 200: obj, ...errorResponses },
      },
    },
    async (req) => {
      const { model, canary, shadow, log_predictions, max_batch_size, max_batch_delay_us, command, ready_timeout_s } = req.body;
      const info = await deployments.update(req.params.name, { model, canary, shadow, log_predictions, max_batch_size, max_batch_delay_us, command, ready_timeout_s });
      await serving.changed(info.name);
      return serving.withStatus(info);
    },
  );

  app.delete<{ Params: { name: string } }>(
    '/api/v1/deployments/:name',
    { schema: { summary: 'Delete a deployment (in-flight requests finish)', tags, params: nameParams, response: { ...noContent, ...errorResponses } } },
    async (req, reply) => {
      await deployments.delete(req.params.name);
      await serving.changed(req.params.name);
      return reply.code(204).send();
    },
  );

  app.post<{ Params: { name: string } }>(
    '/api/v1/deployments/:name/predict',
    {
      schema: {
        summary: 'Plain JSON prediction: {"inputs": {"<input>": nested array}} -> {"outputs": {"<output>": nested array}, "model", "version"}',
        tags,
        params: nameParams,
        response: { 200: obj, ...errorResponses },
      },
    },
    async (req, reply) => {
      const start = performance.now();
      const result = await serving.infer(req.params.name, undefined, (signature) => parseSimpleRequest(req.body, signature), { key: requestKey(req), start });
      return predictResponse(withLineage(reply, result));
    },
  );
};
