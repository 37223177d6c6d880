import { isIPv6 } from 'node:net';
import type { CountryCode } from 'libphonenumber-js/max';
import { lazyRequire } from '../../lazy.js';

let phoneLib: typeof import('libphonenumber-js/max') | undefined;
/** libphonenumber with its full metadata, loaded at the first digit run that needs it. */
const phones = () => (phoneLib ??= lazyRequire('libphonenumber-js/max') as typeof import('libphonenumber-js/max'));
import { ibanLength, ibanValid } from './iban.js';
import { isCardNumber } from './luhn.js';

// The built-in PII detectors. Each counts occurrences in a piece of text and
// never returns the values. Text is latin1-decoded bytes (every detector looks
// for ASCII only, so multi-byte UTF-8 can never match and decoding cannot fail).
//
// Speed matters (bench/pii.ts compares the whole scan with one plain regex
// pass): emails and IPv6 addresses are found from their '@' and ':' anchors
// with indexOf and expanded by hand; the digit-based types (phone, card, SSN,
// IPv4) share one pass over runs of digits and separators, and each run is
// given at most one type, so a card number is never also counted as a phone.
// libphonenumber only sees runs that survived the cheap checks.

export type BuiltinType = 'email' | 'phone' | 'credit_card' | 'iban' | 'ipv4' | 'ipv6' | 'ssn';
export const BUILTIN_TYPES: readonly BuiltinType[] = ['email', 'phone', 'credit_card', 'iban', 'ipv4', 'ipv6', 'ssn'];

/** Counts per PII type; types not found are absent. */
export type Counts = Record<string, number>;

export interface Detector {
  type: string;
  /** How many occurrences of this type the text holds. */
  find(text: string): number;
}

export interface DetectorOptions {
  /** Country assumed for phone numbers written without +CC (default US). */
  defaultCountry?: CountryCode;
}

const add = (counts: Counts, type: string, n = 1) => {
  if (n > 0) counts[type] = (counts[type] ?? 0) + n;
};

// ---------------------------------------------------------------- character classes

const WORD = new Uint8Array(256); // [A-Za-z0-9_]
const LOCAL = new Uint8Array(256); // email local part: [A-Za-z0-9._%+-]
const DOMAIN = new Uint8Array(256); // [A-Za-z0-9.-]
const HEX = new Uint8Array(256);
for (let c = 0; c < 256; c++) {
  const ch = String.fromCharCode(c);
  const alnum = /[A-Za-z0-9]/.test(ch);
  WORD[c] = alnum || ch === '_' ? 1 : 0;
  LOCAL[c] = alnum || '._%+-'.includes(ch) ? 1 : 0;
  DOMAIN[c] = alnum || '.-'.includes(ch) ? 1 : 0;
  HEX[c] = /[0-9A-Fa-f]/.test(ch) ? 1 : 0;
}
const is = (table: Uint8Array, text: string, i: number) => {
  const c = text.charCodeAt(i); // NaN outside the text
  return c < 256 && table[c] === 1;
};

// ---------------------------------------------------------------- email

export function countEmails(text: string): number {
  let n = 0;
  let from = 0;
  for (;;) {
    const at = text.indexOf('@', from);
    if (at < 0) return n;
    let start = at;
    while (is(LOCAL, text, start - 1)) start--;
    while (start < at && text.charCodeAt(start) === 46 /* . */) start++;
    let end = at + 1;
    while (is(DOMAIN, text, end)) end++;
    while (end > at + 1 && (text.charCodeAt(end - 1) === 46 || text.charCodeAt(end - 1) === 45)) end--;
    from = Math.max(end, at + 1);
    if (start === at || end === at + 1) continue;
    if (validDomain(text.slice(at + 1, end))) n++;
  }
}

function validDomain(domain: string): boolean {
  const labels = domain.split('.');
  if (labels.length < 2 || labels.some((l) => l === '' || l.startsWith('-'))) return false;
  const tld = labels[labels.length - 1]!;
  return tld.length >= 2 && /^[A-Za-z]+$/.test(tld);
}

// ---------------------------------------------------------------- IPv6

export function countIPv6(text: string): number {
  let n = 0;
  let from = 0;
  for (;;) {
    const colon = text.indexOf(':', from);
    if (colon < 0) return n;
    from = colon + 1;
    // Most colons ("Subject: x") have no hex digit or colon on either side.
    if (!is(HEX, text, colon - 1) && text.charCodeAt(colon + 1) !== 58 && !is(HEX, text, colon + 1)) continue;
    let start = colon;
    while (is(HEX, text, start - 1) || text.charCodeAt(start - 1) === 58) start--;
    let end = colon + 1;
    while (is(HEX, text, end) || text.charCodeAt(end) === 58 || (text.charCodeAt(end) === 46 && end > colon)) end++;
    while (end > colon + 1 && text.charCodeAt(end - 1) === 46) end--;
    from = end;
    // Part of a longer word ("std::vector", "a1:b2c3x") is not an address.
    if (is(WORD, text, start - 1) || is(WORD, text, end) || end - start < 3) continue;
    const candidate = text.slice(start, end);
    // One group around "::" ("A0::", "::5") is more often encoded text than an address; loopback ::1 is no PII anyway.
    if (!candidate.includes('.') && candidate.split(':').filter((g) => g !== '').length < 2) continue;
    if (isIPv6(candidate)) n++;
  }
}

// ---------------------------------------------------------------- IBAN

const IBAN_CANDIDATE = /\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,32}/g;

export function countIbans(text: string): number {
  let n = 0;
  for (const m of text.matchAll(IBAN_CANDIDATE)) {
    const compact = m[0].replace(/ /g, '');
    const length = ibanLength(compact.slice(0, 2));
    // The candidate may run on into the next word; the country fixes the length.
    if (length !== undefined && compact.length >= length && ibanValid(compact.slice(0, length))) n++;
  }
  return n;
}

// ---------------------------------------------------------------- digits: phone, card, SSN, IPv4

// A run: an optional + or (, then digits with - . ( ) between them, and single
// spaces only where a digit or ( follows.
const DIGIT_RUN = /[+(]?\d(?:[\d().-]|[ \t](?=[\d(]))*/g;
const SSN = /^(\d{3})-(\d{2})-(\d{4})$/;
const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const CARD_SHAPE = /^\d(?:[ -]?\d){12,18}$/;
// Sticky: a card of exactly 19, 18, ... 13 digits starting at lastIndex.
const CARD_AT = Array.from({ length: 7 }, (_, k) => new RegExp(`\\d(?:[ -]?\\d){${18 - k}}(?!\\d)`, 'y'));
const SSN_IN_RUN = /(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])/g;

export function ssnValid(area: string, group: string, serial: string): boolean {
  const a = Number(area);
  return a !== 0 && a !== 666 && a < 900 && group !== '00' && serial !== '0000';
}

/** Counts phone numbers, card numbers, SSNs and IPv4 addresses into `counts`. */
export function countDigitTypes(text: string, counts: Counts, country: CountryCode = 'US'): void {
  for (const m of text.matchAll(DIGIT_RUN)) {
    let run = m[0];
    const start = m.index;
    // Inside an identifier (hex hash, message id, "v1.2.3.4"): not PII.
    if (is(WORD, text, start - 1) || text.charCodeAt(start - 1) === 46 || text.charCodeAt(start - 1) === 45) continue;
    run = run.replace(/[ \t.(-]+$/, '');
    if (is(WORD, text, start + run.length)) continue;
    const digits = run.replace(/\D/g, '');
    if (digits.length < 4) continue;
    classifyRun(run, digits, counts, country);
  }
}

function classifyRun(run: string, digits: string, counts: Counts, country: CountryCode): void {
  const core = run.replace(/^[(+]+|\)+$/g, '');
  const ssn = SSN.exec(core);
  if (ssn) {
    if (ssnValid(ssn[1]!, ssn[2]!, ssn[3]!)) add(counts, 'ssn');
    return;
  }
  const ip = IPV4.exec(core);
  if (ip) {
    if (ip.slice(1, 5).every((o) => Number(o) <= 255)) add(counts, 'ipv4');
    return;
  }
  // Dotted numbers with five or more parts are versions or OIDs ("1.3.6.1.4"), never phones.
  if (/^\d+(?:\.\d+){4,}$/.test(core)) return;
  if (digits.length >= 13 && digits.length <= 19 && CARD_SHAPE.test(core)) {
    if (isCardNumber(digits)) return add(counts, 'credit_card');
  }
  if (digits.length < 7) return;
  if (digits.length <= 15) {
    if (isPhone(run, country)) add(counts, 'phone');
    return;
  }
  // A long run holds several things ("4111 1111 1111 1111 415 555 2671"): cards and SSNs first, then phones in the rest.
  let rest = run.replace(SSN_IN_RUN, (s) => {
    const [a, g, n] = s.split('-') as [string, string, string];
    if (!ssnValid(a, g, n)) return s;
    add(counts, 'ssn');
    return ' | ';
  });
  rest = takeCards(rest, counts);
  if (rest.replace(/\D/g, '').length >= 7) add(counts, 'phone', phones().findPhoneNumbersInText(rest, country).length);
}

/** Counts the card numbers in a run (trying each digit group as a start, longest card first) and blanks them out. */
function takeCards(run: string, counts: Counts): string {
  let out = '';
  let i = 0;
  const digit = (k: number) => k >= 0 && run.charCodeAt(k) >= 48 && run.charCodeAt(k) <= 57;
  next: while (i < run.length) {
    if (digit(i) && !digit(i - 1)) {
      for (const re of CARD_AT) {
        re.lastIndex = i;
        const m = re.exec(run);
        if (m && isCardNumber(m[0].replace(/\D/g, ''))) {
          add(counts, 'credit_card');
          out += ' | ';
          i += m[0].length;
          continue next;
        }
      }
    }
    out += run[i];
    i++;
  }
  return out;
}

const NANP = new Set<string>(['US', 'CA', 'AG', 'AI', 'AS', 'BB', 'BM', 'BS', 'DM', 'DO', 'GD', 'GU', 'JM', 'KN', 'KY', 'LC', 'MP', 'MS', 'PR', 'SX', 'TC', 'TT', 'VC', 'VG', 'VI']);

function isPhone(run: string, country: CountryCode): boolean {
  // A decimal number ("1029945287.4797") is not a phone number.
  if (/^\d+\.\d+$/.test(run)) return false;
  // North American numbers written nationally are NXX-NXX-XXXX (optionally 1 first): the same rule
  // libphonenumber applies, checked here first because most digit runs in text fail it.
  if (NANP.has(country) && run.charCodeAt(0) !== 43 /* + */) {
    const d = run.replace(/\D/g, '');
    const national = d.length === 11 && d[0] === '1' ? d.slice(1) : d;
    if (national.length !== 10 || national[0]! < '2' || national[3]! < '2') return false;
  }
  try {
    return phones().parsePhoneNumberFromString(run, country)?.isValid() ?? false;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- all built-ins

/** Counts every built-in type in `text`, adding into `counts`. */
export function scanBuiltins(text: string, counts: Counts, opts: DetectorOptions = {}): void {
  add(counts, 'email', countEmails(text));
  add(counts, 'ipv6', countIPv6(text));
  add(counts, 'iban', countIbans(text));
  countDigitTypes(text, counts, opts.defaultCountry ?? 'US');
}

/** The built-in detectors one by one (tests and tools; the scanner uses scanBuiltins, one pass for the digit types). */
export function builtinDetectors(opts: DetectorOptions = {}): Detector[] {
  const country = opts.defaultCountry ?? 'US';
  const digitType = (type: BuiltinType): Detector => ({
    type,
    find(text) {
      const counts: Counts = {};
      countDigitTypes(text, counts, country);
      return counts[type] ?? 0;
    },
  });
  return [
    { type: 'email', find: countEmails },
    digitType('phone'),
    digitType('credit_card'),
    { type: 'iban', find: countIbans },
    digitType('ipv4'),
    { type: 'ipv6', find: countIPv6 },
    digitType('ssn'),
  ];
}
