import type { FastifyRequest } from 'fastify';
import { statusOf, StrataError, type ErrorCode } from '../errors.js';

// Every error leaves the API as {"error":{"code","message"}} with the status
// of its code (errors.ts), so HttpClient can rebuild the same StrataError the
// local client would have thrown. Fastify's own errors (routing, body
// parsing, schema validation) are translated here into Strata codes with
// messages that say what was wrong.

export interface ErrorBody {
  error: { code: ErrorCode; message: string };
}

interface AjvError {
  instancePath?: string;
  keyword?: string;
  message?: string;
  params?: Record<string, unknown>;
}

interface FastifyishError {
  code?: string;
  statusCode?: number;
  message?: string;
  validation?: AjvError[];
  validationContext?: string;
}

export interface ErrorContext {
  req?: FastifyRequest;
  bodyLimit?: number;
  /** Where internal (non-StrataError) failures are logged; stderr if absent. */
  logInternal?: (err: unknown, req?: FastifyRequest) => void;
}

export function errorBody(err: unknown, ctx: ErrorContext = {}): { status: number; body: ErrorBody } {
  const [code, message] = translate(err, ctx);
  return { status: statusOf(code), body: { error: { code, message } } };
}

function translate(err: unknown, ctx: ErrorContext): [ErrorCode, string] {
  if (err instanceof StrataError) {
    if (err.code === 'INTERNAL') logInternal(err, ctx);
    return [err.code, err.message];
  }
  const e = (err ?? {}) as FastifyishError;
  if (Array.isArray(e.validation)) return ['INVALID_ARGUMENT', validationMessage(e.validation, e.validationContext ?? 'request')];
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return ['INVALID_ARGUMENT', `request body is too large: this server accepts at most ${ctx.bodyLimit ?? 'its limit of'} bytes of JSON`];
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE': {
      const type = ctx.req?.headers['content-type'];
      return ['INVALID_ARGUMENT', `unsupported content-type ${type ? `"${type}"` : '(none)'}: this endpoint takes application/json`];
    }
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return ['INVALID_ARGUMENT', 'request body is empty but its content-type says application/json'];
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return ['INVALID_ARGUMENT', 'request body size did not match its content-length header'];
  }
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    const code: ErrorCode = e.statusCode === 404 ? 'NOT_FOUND' : e.statusCode === 401 ? 'UNAUTHENTICATED' : e.statusCode === 403 ? 'FORBIDDEN' : 'INVALID_ARGUMENT';
    return [code, e.message ?? `request failed with HTTP ${e.statusCode}`];
  }
  logInternal(err, ctx);
  const id = ctx.req?.id;
  return ['INTERNAL', `internal server error${id ? ` (request ${id})` : ''}; the server log has the details`];
}

/** Ajv's errors as one sentence naming the field: `body is missing required field "name"`. */
function validationMessage(errors: AjvError[], context: string): string {
  return (
    'invalid request: ' +
    errors
      .map((v) => {
        const where = context + (v.instancePath ? v.instancePath.replaceAll('/', '.') : '');
        if (v.keyword === 'required') return `${where} is missing required field "${String(v.params?.missingProperty)}"`;
        if (v.keyword === 'additionalProperties') return `${where} has unknown field "${String(v.params?.additionalProperty)}"`;
        return `${where} ${v.message ?? 'is invalid'}`;
      })
      .join('; ')
  );
}

function logInternal(err: unknown, ctx: ErrorContext): void {
  if (ctx.logInternal) ctx.logInternal(err, ctx.req);
  else console.error(`strata server: internal error${ctx.req ? ` on ${ctx.req.method} ${ctx.req.url}` : ''}:`, err);
}
