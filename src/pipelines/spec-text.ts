import { lazyRequire } from '../lazy.js';
import { InvalidArgumentError } from '../errors.js';

/**
 * Parses spec text (JSON or YAML; YAML is a superset of JSON) into a plain
 * object. Validation is separate (spec.ts), so the CLI can parse locally
 * and send the object to a server that validates it.
 */
export function parseSpecText(text: string, source = 'spec'): unknown {
  try {
    return (lazyRequire('yaml') as typeof import('yaml')).parse(text, { prettyErrors: true });
  } catch (err) {
    throw new InvalidArgumentError(`${source}: not valid YAML or JSON: ${(err as Error).message}`);
  }
}
