// Go-style durations ("30s", "1m30s", "1.5h", "300ms"), because Pachyderm
// pipeline specs write `datum_timeout` and `job_timeout` with Go's
// time.ParseDuration syntax and existing specs must keep working unmodified.
// Units: ns, us (µs, μs), ms, s, m, h; each component is a decimal number with
// an optional fraction. A bare "0" is allowed, as in Go.

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  'µs': 1e-3, // U+00B5 micro sign
  'μs': 1e-3, // U+03BC greek mu
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

const COMPONENT = /([0-9]*(?:\.[0-9]*)?)([a-z\u00b5\u03bc]+)/y;

/**
 * Parses a Go duration into milliseconds (fractional for sub-millisecond
 * units). Returns `undefined` when the text is not a duration, so callers can
 * report the problem against their own field path.
 */
export function parseDuration(text: string): number | undefined {
  let s = text.trim();
  let sign = 1;
  if (s.startsWith('-') || s.startsWith('+')) {
    if (s[0] === '-') sign = -1;
    s = s.slice(1);
  }
  if (s === '0') return 0;
  if (s === '') return undefined;
  let total = 0;
  COMPONENT.lastIndex = 0;
  while (COMPONENT.lastIndex < s.length) {
    const m = COMPONENT.exec(s);
    if (!m) return undefined;
    const [, number, unit] = m;
    // Go requires at least one digit on either side of the point.
    if (number === '' || number === '.' || !(unit in UNIT_MS)) return undefined;
    total += Number(number) * UNIT_MS[unit]!;
  }
  return sign * total;
}
