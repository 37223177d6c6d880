import { Script, createContext } from 'node:vm';
import { InvalidArgumentError } from '../../errors.js';
import { BUILTIN_TYPES, type Counts } from './detectors.js';

// Custom detectors: named regular expressions configured per instance. A
// user's pattern may backtrack catastrophically ((a+)+$), and a JavaScript
// regex cannot be interrupted from the same thread, so matching runs in a vm
// context with a timeout: V8 interrupts the regex and the scan goes on without
// that detector (the file's result names it in `timed_out`). Patterns are also
// tried against adversarial probes when added, so most slow ones are refused
// up front.

export interface CustomDetectorSpec {
  name: string;
  pattern: string;
  /** Regex flags besides g: any of i, m, s, u. */
  flags: string;
}

export const CUSTOM_NAME = /^[a-z][a-z0-9_-]{0,39}$/;
const ALLOWED_FLAGS = /^[imsu]*$/;
/** Budget for one detector over one segment of text (at most about 1 MiB). */
export const SEGMENT_BUDGET_MS = 500;
const PROBE_BUDGET_MS = 100;
const PROBES = ['a'.repeat(5000) + '!', '1'.repeat(5000) + 'x', ' '.repeat(5000) + '@', 'ab'.repeat(2500) + '\u0000', 'a1 '.repeat(1700) + '!'];

const script = new Script('n = 0; for (const _ of text.matchAll(re)) n++;');

export class CompiledCustomDetector {
  readonly type: string;
  private context: { re: RegExp; text: string; n: number };

  constructor(readonly spec: CustomDetectorSpec) {
    this.type = spec.name;
    this.context = createContext({ re: compile(spec), text: '', n: 0 }) as { re: RegExp; text: string; n: number };
  }

  /** Matches in `text`, or null when the time budget ran out. */
  find(text: string, budgetMs = SEGMENT_BUDGET_MS): number | null {
    this.context.text = text;
    this.context.re.lastIndex = 0;
    try {
      script.runInContext(this.context, { timeout: budgetMs });
      return this.context.n;
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') return null;
      throw err;
    } finally {
      this.context.text = '';
    }
  }
}

function compile(spec: CustomDetectorSpec): RegExp {
  if (!ALLOWED_FLAGS.test(spec.flags)) throw new InvalidArgumentError(`custom detector "${spec.name}": flags "${spec.flags}" not allowed (use any of i, m, s, u)`);
  try {
    return new RegExp(spec.pattern, `g${[...new Set(spec.flags)].join('')}`);
  } catch (err) {
    throw new InvalidArgumentError(`custom detector "${spec.name}": bad regex /${spec.pattern}/: ${(err as Error).message.replace(/^Invalid regular expression: \/.*\/[a-z]*: /, '')}`);
  }
}

/** Checks a new custom detector: its name, that the regex compiles, matches no empty string and is not catastrophically slow. */
export function validateCustomDetector(spec: CustomDetectorSpec): CompiledCustomDetector {
  if (!CUSTOM_NAME.test(spec.name)) {
    throw new InvalidArgumentError(`custom detector name "${spec.name}": use 1-40 lower-case letters, digits, _ or -, starting with a letter`);
  }
  if ((BUILTIN_TYPES as readonly string[]).includes(spec.name)) {
    throw new InvalidArgumentError(`custom detector name "${spec.name}" is a built-in detector; choose another name`);
  }
  if (spec.pattern === '') throw new InvalidArgumentError(`custom detector "${spec.name}": the regex is empty`);
  const detector = new CompiledCustomDetector(spec);
  // A pattern that matches the empty string would count every position.
  if (compile(spec).test('')) throw new InvalidArgumentError(`custom detector "${spec.name}": /${spec.pattern}/ matches the empty string; it must match at least one character`);
  for (const probe of PROBES) {
    if (detector.find(probe, PROBE_BUDGET_MS) === null) {
      throw new InvalidArgumentError(
        `custom detector "${spec.name}": /${spec.pattern}/ takes too long on adversarial input (catastrophic backtracking, e.g. nested quantifiers like (a+)+); simplify it`,
      );
    }
  }
  return detector;
}

/** Runs custom detectors over a segment; a detector that times out is added to `timedOut` and skipped from then on. */
export function scanCustom(text: string, detectors: CompiledCustomDetector[], counts: Counts, timedOut: Set<string>): void {
  for (const d of detectors) {
    if (timedOut.has(d.type)) continue;
    const n = d.find(text);
    if (n === null) timedOut.add(d.type);
    else if (n > 0) counts[d.type] = (counts[d.type] ?? 0) + n;
  }
}
