import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { boundaryOf, readMultipart, readText } from '../../src/api/multipart.js';
import { StrataError } from '../../src/errors.js';

// The streaming multipart reader behind the commit endpoint, fed the way a
// network delivers bytes: in arbitrary pieces.

async function* pieces(bytes: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function parse(body: Buffer, boundary: string, pieceSize: number) {
  const out: { name: string; filename?: string; body: string }[] = [];
  for await (const part of readMultipart(pieces(body, pieceSize), boundary)) {
    const bufs: Buffer[] = [];
    for await (const b of part.body) bufs.push(b);
    out.push({ name: part.name, filename: part.filename, body: Buffer.concat(bufs).toString('latin1') });
  }
  return out;
}

const BODY = Buffer.from(
  'preamble to ignore\r\n' +
    '--XyZ\r\n' +
    'Content-Disposition: form-data; name="put:%2Fa.txt"; filename="a.txt"\r\n' +
    'Content-Type: application/octet-stream\r\n' +
    '\r\n' +
    'line one\r\n--XyNot a boundary\r\n--Xy\r\n-\r\n' + // prefixes of the delimiter are content
    '--XyZ  \r\n' + // transport padding after a delimiter is allowed
    'content-disposition: form-data; name="delete"\r\n' +
    '\r\n' +
    '/gone\r\n' +
    '--XyZ\r\n' +
    'Content-Disposition: form-data; name="put:%2Fempty"; filename="quoted \\"name\\""\r\n' +
    '\r\n' +
    '\r\n' +
    '--XyZ--\r\n' +
    'epilogue to ignore',
  'latin1',
);

const EXPECTED = [
  { name: 'put:%2Fa.txt', filename: 'a.txt', body: 'line one\r\n--XyNot a boundary\r\n--Xy\r\n-' },
  { name: 'delete', filename: undefined, body: '/gone' },
  { name: 'put:%2Fempty', filename: 'quoted "name"', body: '' },
];

function isInvalid(match: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof StrataError);
    assert.equal(err.code, 'INVALID_ARGUMENT');
    assert.match(err.message, match);
    return true;
  };
}

describe('multipart reader', () => {
  it('reads the same parts however the bytes are split', async () => {
    for (const size of [1, 2, 3, 5, 7, 16, 64, 1000, BODY.length]) {
      assert.deepEqual(await parse(BODY, 'XyZ', size), EXPECTED, `pieces of ${size} bytes`);
    }
  });

  it('skips a part body the consumer leaves unread', async () => {
    const names: string[] = [];
    for await (const part of readMultipart(pieces(BODY, 4), 'XyZ')) {
      names.push(part.name);
      if (part.name === 'delete') assert.equal(await readText(part, 100), '/gone');
    }
    assert.deepEqual(names, ['put:%2Fa.txt', 'delete', 'put:%2Fempty']);
  });

  it('hands over a small part that has already arrived whole', async () => {
    const seen: string[] = [];
    for await (const part of readMultipart(pieces(BODY, BODY.length), 'XyZ')) seen.push(part.arrived()?.toString('latin1') ?? '(stream)');
    assert.deepEqual(
      seen,
      EXPECTED.map((p) => p.body),
    );
  });

  it('streams a large part in pieces, never more than what has arrived', async () => {
    const content = Buffer.alloc(3 * 1024 * 1024, 'x');
    const body = Buffer.concat([
      Buffer.from('--b\r\nContent-Disposition: form-data; name="put:%2Fbig"\r\n\r\n'),
      content,
      Buffer.from('\r\n--b--\r\n'),
    ]);
    let total = 0;
    let largest = 0;
    for await (const part of readMultipart(pieces(body, 64 * 1024), 'b')) {
      for await (const b of part.body) {
        total += b.length;
        largest = Math.max(largest, b.length);
      }
    }
    assert.equal(total, content.length);
    assert.ok(largest <= 64 * 1024 + 8, `pieces of at most one network chunk (largest ${largest})`);
  });

  it('reads 100 000 parts', async () => {
    const boundary = 'many';
    async function* body() {
      for (let i = 0; i < 100_000; i++) {
        yield Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="put:%2Ff${i}"\r\n\r\nfile ${i}\r\n`);
      }
      yield Buffer.from(`--${boundary}--\r\n`);
    }
    let n = 0;
    for await (const part of readMultipart(body(), boundary)) {
      const text = part.arrived()?.toString() ?? (await readText(part, 100));
      assert.equal(text, `file ${n}`);
      n++;
    }
    assert.equal(n, 100_000);
  });

  it('refuses truncated and malformed bodies with INVALID_ARGUMENT', async () => {
    const truncated = Buffer.from('--b\r\nContent-Disposition: form-data; name="put:%2Fx"\r\n\r\npart of the cont');
    await assert.rejects(parse(truncated, 'b', 3), isInvalid(/ended in the middle of part "put:%2Fx"/));
    await assert.rejects(parse(Buffer.from('--b\r\nContent-Disposition: form-data; name="x"\r\n\r\nvalue\r\n--b'), 'b', 3), isInvalid(/truncated/));
    await assert.rejects(parse(Buffer.from('no boundary anywhere'), 'b', 3), isInvalid(/boundary not found/));
    await assert.rejects(parse(Buffer.from('--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--'), 'b', 3), isInvalid(/Content-Disposition/));
    await assert.rejects(parse(Buffer.from('--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--'), 'b', 3), isInvalid(/no name/));
    const hugeHeader = Buffer.from(`--b\r\nContent-Disposition: form-data; name="${'n'.repeat(100_000)}"\r\n\r\nx\r\n--b--`);
    await assert.rejects(parse(hugeHeader, 'b', 4096), isInvalid(/header block is longer than/));
  });

  it('finds the boundary in the content-type, or says what is wrong with it', () => {
    assert.equal(boundaryOf('multipart/form-data; boundary=abc'), 'abc');
    assert.equal(boundaryOf('Multipart/Form-Data; charset=utf-8; boundary="a b:c"'), 'a b:c');
    assert.throws(() => boundaryOf('application/json'), isInvalid(/takes a multipart\/form-data body \(got "application\/json"\)/));
    assert.throws(() => boundaryOf(undefined), isInvalid(/no content-type/));
    assert.throws(() => boundaryOf('multipart/form-data'), isInvalid(/boundary/));
  });
});
