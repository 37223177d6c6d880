import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateCustomDetector, CompiledCustomDetector } from '../../src/governance/pii/custom.js';
import { builtinDetectors, scanBuiltins, type Counts } from '../../src/governance/pii/detectors.js';
import { ibanValid } from '../../src/governance/pii/iban.js';
import { isCardNumber, luhnValid } from '../../src/governance/pii/luhn.js';
import { ContentScanner, looksBinary, scanBytes, scanContent } from '../../src/governance/pii/scan.js';
import { StrataError } from '../../src/errors.js';

// The PII detectors one by one (true and false positives), and the streaming
// scanner: binary content, chunk boundaries, the size cap and its memory.

const scan = (text: string, country?: 'US' | 'GB'): Counts => {
  const counts: Counts = {};
  scanBuiltins(text, counts, { defaultCountry: country });
  return counts;
};
const detector = (type: string) => builtinDetectors().find((d) => d.type === type)!;

describe('PII detectors', () => {
  it('finds emails, not things with an @ that are not addresses', () => {
    const email = detector('email');
    assert.equal(email.find('write to ana.silva+news@mail.example.co.uk or to bob@example.org.'), 2);
    assert.equal(email.find('Message-Id: <20020822.1234@list.example.com>'), 1);
    assert.equal(email.find('@handle, user@localhost, a@b.c, x@1.2.3.4, me@ex..com, @@, npm i @scope/pkg'), 0);
  });

  it('counts US and international phone numbers validated by libphonenumber', () => {
    const phone = detector('phone');
    assert.equal(phone.find('Call (415) 555-2671, +44 20 7946 0958 or 212.555.0187 today'), 3);
    assert.equal(phone.find('order 1234567, date 2002-08-22, id 123-4567, zip 94103-1234'), 0);
    // A UK national number is valid only with GB as the default country.
    assert.equal(scan('ring 020 7946 0958').phone, undefined);
    assert.equal(scan('ring 020 7946 0958', 'GB').phone, 1);
  });

  it('counts card numbers only with a valid Luhn digit and a known prefix', () => {
    assert.ok(luhnValid('4111111111111111'));
    assert.ok(!luhnValid('4111111111111112'));
    assert.ok(isCardNumber('378282246310005'));
    assert.ok(!isCardNumber('1234567812345670'), 'Luhn-valid but no network starts with 12');
    const card = detector('credit_card');
    assert.equal(card.find('visa 4111 1111 1111 1111, mc 5555-5555-5555-4444, amex 378282246310005'), 3);
    assert.equal(card.find('bad 4111 1111 1111 1112 and 1234567812345670 and 41111111111111111111111'), 0);
    assert.deepEqual(scan('card 4111111111111111'), { credit_card: 1 }, 'a card is not also a phone number');
  });

  it('checks IBANs by country length and mod-97', () => {
    assert.ok(ibanValid('DE89370400440532013000'));
    assert.ok(!ibanValid('DE88370400440532013000'), 'wrong check digits');
    assert.ok(!ibanValid('DE8937040044053201300'), 'too short for DE');
    const iban = detector('iban');
    assert.equal(iban.find('pay DE89 3704 0044 0532 0130 00 or GB29NWBK60161331926819 NOW'), 2);
    assert.equal(iban.find('DE88 3704 0044 0532 0130 00, XX89370400440532013000'), 0);
  });

  it('finds IPv4 with octets up to 255, not versions or OIDs', () => {
    const ipv4 = detector('ipv4');
    assert.equal(ipv4.find('from 192.168.1.20 ([10.0.0.1]) via (172.16.254.1)'), 3);
    assert.equal(ipv4.find('999.1.1.1, 256.0.0.1, v1.2.3.4, version 1.2.3.4.5, OID 1.3.6.1.4.1'), 0);
  });

  it('finds IPv6 addresses, not clock times, MACs or C++ scopes', () => {
    const ipv6 = detector('ipv6');
    assert.equal(ipv6.find('hosts 2001:db8::ff00:42:8329 and fe80::1 and 2001:0db8:85a3:0000:0000:8a2e:0370:7334.'), 3);
    assert.equal(ipv6.find('at 12:30:45, mac 00:1a:2b:3c:4d:5e, std::vector, Foo::Bar, Subject: hi, =A0::=A0, ::5'), 0);
    assert.equal(ipv6.find('Received: from greece ([::ffff:192.168.1.31])'), 1);
  });

  it('finds US SSNs outside the invalid ranges', () => {
    const ssn = detector('ssn');
    assert.equal(ssn.find('ssn 123-45-6789 and 078-05-1121'), 2);
    assert.equal(ssn.find('000-12-3456 666-12-3456 900-12-3456 123-00-4567 123-45-0000 123456789'), 0);
    assert.deepEqual(scan('SSN 123-45-6789'), { ssn: 1 }, 'an SSN is not also a phone number');
  });

  it('separates several things in one run of digits', () => {
    assert.deepEqual(scan('4111 1111 1111 1111 123-45-6789 415 555 2671'), { credit_card: 1, ssn: 1, phone: 1 });
  });
});

describe('custom detectors', () => {
  it('count matches of a named regex with flags', () => {
    const d = validateCustomDetector({ name: 'employee_id', pattern: 'EMP-\\d{5}', flags: 'i' });
    assert.equal(d.find('EMP-12345 emp-54321 EMP-1'), 2);
  });

  it('refuse bad regexes, empty matches, bad names and catastrophic patterns, naming them', () => {
    const refused = (spec: { name: string; pattern: string; flags?: string }, match: RegExp) =>
      assert.throws(
        () => validateCustomDetector({ flags: '', ...spec }),
        (err: unknown) => err instanceof StrataError && err.code === 'INVALID_ARGUMENT' && match.test(err.message),
      );
    refused({ name: 'broken', pattern: 'a(b' }, /"broken".*bad regex/);
    refused({ name: 'empty', pattern: 'x*' }, /matches the empty string/);
    refused({ name: 'Bad Name', pattern: 'x' }, /custom detector name "Bad Name"/);
    refused({ name: 'email', pattern: 'x' }, /built-in/);
    refused({ name: 'flags', pattern: 'x', flags: 'y' }, /flags "y"/);
    refused({ name: 'slow', pattern: '(a+)+$' }, /"slow".*too long/);
  });

  it('give up on a segment after the time budget instead of hanging', () => {
    const d = new CompiledCustomDetector({ name: 'slow', pattern: '(x+x+)+y', flags: '' });
    const started = Date.now();
    assert.equal(d.find('x'.repeat(40), 50), null);
    assert.ok(Date.now() - started < 2000);
  });
});

describe('content scanner', () => {
  const text = (s: string) => new TextEncoder().encode(s);

  it('skips binary content and records it as binary', () => {
    const bytes = Buffer.concat([text('ana@example.com '), Buffer.from([0, 1, 2, 3]), text(' bob@example.com')]);
    assert.ok(looksBinary(bytes));
    assert.deepEqual(scanBytes(bytes), { status: 'binary', bytes_scanned: 0, findings: {}, timed_out: [] });
    const invalidUtf8 = Buffer.alloc(4000, 0xff);
    assert.equal(scanBytes(invalidUtf8).status, 'binary');
    assert.equal(scanBytes(text('café ana@example.com Grüße')).status, 'scanned', 'valid UTF-8 is text');
  });

  it('counts a match split across pushed pieces and segment boundaries exactly once', () => {
    const line = 'contact ana.silva@example.com or 415-555-2671\n';
    const whole = text(line.repeat(300));
    for (const piece of [1, 7, 100, 4096]) {
      const scanner = new ContentScanner({ segmentSize: 1000 });
      for (let off = 0; off < whole.length; off += piece) scanner.push(whole.subarray(off, off + piece));
      const result = scanner.end();
      assert.deepEqual(result.findings, { email: 300, phone: 300 }, `pieces of ${piece}`);
      assert.equal(result.bytes_scanned, whole.length);
    }
    // One very long line: cut at separators, still exact.
    const long = text('x ana@example.com '.repeat(2000));
    const scanner = new ContentScanner({ segmentSize: 1000 });
    for (let off = 0; off < long.length; off += 333) scanner.push(long.subarray(off, off + 333));
    assert.deepEqual(scanner.end().findings, { email: 2000 });
  });

  it('stops at the cap, records truncated, and holds no more than a segment in memory', async () => {
    const piece = Buffer.from('someone@example.com said hi\n'.repeat(1 << 15)); // ~900 KiB
    let yielded = 0;
    let peakHeap = 0;
    const base = process.memoryUsage().heapUsed;
    async function* huge() {
      for (let i = 0; i < 400; i++) {
        yielded++;
        peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed - base);
        yield piece; // 400 x 900 KiB = 350 MiB if all were read
      }
    }
    const cap = 16 * 1024 * 1024;
    const result = await scanContent(huge(), { maxBytes: cap });
    assert.equal(result.status, 'truncated');
    assert.equal(result.bytes_scanned, cap);
    assert.ok(yielded <= Math.ceil(cap / piece.length) + 1, `read ${yielded} pieces after the cap`);
    assert.ok(result.findings.email! > 500_000);
    assert.ok(peakHeap < 64 * 1024 * 1024, `heap grew by ${(peakHeap / 1e6).toFixed(0)} MB`);
    // Exactly the cap is complete, not truncated.
    assert.equal(scanBytes(text('a'.repeat(100)), { maxBytes: 100 }).status, 'scanned');
    assert.equal(scanBytes(text('a'.repeat(101)), { maxBytes: 100 }).status, 'truncated');
  });

  it('runs custom detectors and reports the ones that time out', () => {
    const id = validateCustomDetector({ name: 'employee_id', pattern: 'EMP-\\d{5}', flags: '' });
    const slow = new CompiledCustomDetector({ name: 'slow', pattern: '(x+x+)+y', flags: '' });
    const result = scanBytes(text(`EMP-12345 ${'x'.repeat(40)}\nEMP-00001`), { custom: [id, slow] });
    assert.equal(result.findings.employee_id, 2);
    assert.deepEqual(result.timed_out, ['slow']);
  });
});
