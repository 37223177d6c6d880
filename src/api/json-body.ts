import type { FastifyError, FastifyInstance } from 'fastify';
import { InvalidArgumentError } from '../errors.js';

/**
 * JSON request bodies: Fastify's parser (which rejects __proto__ poisoning), with a syntax error spelled
 * out as INVALID_ARGUMENT. Shared by the server's application/json parser and the OIP routes' own.
 */
export function jsonBodyParser(app: FastifyInstance): (text: string, done: (err: Error | null, value?: unknown) => void) => void {
  const secureJson = app.getDefaultJsonParser('error', 'error');
  return (text, done) =>
    secureJson({} as never, text, (err, value) => {
      if (err && (err as FastifyError).code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
        let detail = ' (or it has a forbidden __proto__ or constructor.prototype key)';
        try {
          JSON.parse(text);
        } catch (parseError) {
          detail = `: ${(parseError as Error).message}`;
        }
        return done(new InvalidArgumentError(`request body is not valid JSON${detail}`));
      }
      done(err, value);
    });
}
