import { InvalidArgumentError } from '../errors.js';

// A pull-based multipart/form-data reader (RFC 7578). It reads the request
// only as fast as the consumer takes bytes: the next network chunk is not
// pulled until the current one has been handed on, so neither a 1 GiB part
// nor 100 000 tiny parts ever pile up in memory. (Busboy-based parsers keep
// parsing ahead while small parts wait in a queue, which is why this endpoint
// does not use @fastify/multipart.)
//
// A part's body must be read to its end before the next part is asked for;
// a body left unread is skipped when the next part is requested.

export interface Part {
  /** The `name` parameter of the part's Content-Disposition. */
  name: string;
  filename?: string;
  contentType: string;
  body: AsyncIterable<Buffer>;
  /**
   * The whole body, if it has already arrived (a small part inside the
   * network chunk at hand); then `body` yields nothing more. Lets small files
   * skip the streaming path without holding anything extra in memory.
   */
  arrived(): Buffer | undefined;
}

export interface MultipartLimits {
  /** Bytes of one part's header block. */
  headerSize: number;
}

const DEFAULT_LIMITS: MultipartLimits = { headerSize: 64 * 1024 };
const CRLF = Buffer.from('\r\n');
const HEADER_END = Buffer.from('\r\n\r\n');

/** The boundary of a multipart/form-data Content-Type; INVALID_ARGUMENT when it is not one. */
export function boundaryOf(contentType: string | undefined): string {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'multipart/form-data') {
    throw new InvalidArgumentError(
      `this endpoint takes a multipart/form-data body (got ${contentType ? `"${contentType}"` : 'no content-type'})`,
    );
  }
  const boundary = params(contentType!).get('boundary');
  if (!boundary || boundary.length > 200) throw new InvalidArgumentError('multipart/form-data content-type has no (valid) boundary parameter');
  return boundary;
}

/** Reads the parts of a multipart body one at a time, in order. */
export async function* readMultipart(
  source: AsyncIterable<Buffer>,
  boundary: string,
  limits: MultipartLimits = DEFAULT_LIMITS,
): AsyncGenerator<Part> {
  const input = new Input(source[Symbol.asyncIterator]());
  // Every delimiter is CRLF "--" boundary; the very first one is at the start
  // of the body with no CRLF before it, so one is supplied.
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  input.buf = CRLF;

  // Preamble: everything up to the first delimiter is ignored.
  for (;;) {
    const at = input.buf.indexOf(delimiter);
    if (at >= 0) {
      input.buf = input.buf.subarray(at + delimiter.length);
      break;
    }
    input.buf = input.buf.subarray(Math.max(0, input.buf.length - delimiter.length + 1));
    if (!(await input.more())) throw new InvalidArgumentError('multipart body has no part (boundary not found)');
  }

  for (;;) {
    // After a delimiter: "--" closes the body; otherwise optional padding and CRLF start a part.
    await input.need(2, 'a multipart delimiter');
    if (input.buf[0] === 0x2d && input.buf[1] === 0x2d) {
      await input.drain(); // the epilogue, if any, is ignored
      return;
    }
    const eol = await input.find(CRLF, 1024, 'a multipart delimiter line');
    if (!/^[ \t]*$/.test(input.buf.toString('latin1', 0, eol))) throw new InvalidArgumentError('malformed multipart delimiter line');
    input.buf = input.buf.subarray(eol + 2);

    const headers = await readHeaders(input, limits.headerSize);
    const disposition = headers.get('content-disposition');
    if (!disposition || !/^form-data\b/i.test(disposition)) {
      throw new InvalidArgumentError('a multipart part has no "Content-Disposition: form-data" header');
    }
    const p = params(disposition);
    const name = p.get('name');
    if (name === undefined) throw new InvalidArgumentError('a multipart part has no name in its Content-Disposition header');

    const body = new PartBody(input, delimiter, name);
    yield {
      name,
      filename: p.get('filename'),
      contentType: headers.get('content-type') ?? 'text/plain',
      body,
      arrived: () => body.arrived(),
    };
    while ((await body.read()) !== null); // skip what the consumer left unread
  }
}

/** Reads a (small) part body whole, refusing more than `limit` bytes. */
export async function readText(part: Part, limit: number): Promise<string> {
  const bufs: Buffer[] = [];
  let size = 0;
  for await (const buf of part.body) {
    size += buf.length;
    if (size > limit) throw new InvalidArgumentError(`multipart field "${part.name}" is longer than ${limit} bytes`);
    bufs.push(buf);
  }
  return Buffer.concat(bufs).toString('utf8');
}

/** The request bytes not yet handed on, and the source they come from. */
class Input {
  buf: Buffer = Buffer.alloc(0);
  private ended = false;

  constructor(private source: AsyncIterator<Buffer>) {}

  /** Appends the next chunk of the source; false at its end. */
  async more(): Promise<boolean> {
    if (this.ended) return false;
    let next: IteratorResult<Buffer>;
    try {
      next = await this.source.next();
    } catch (err) {
      throw new InvalidArgumentError('the upload was interrupted before the multipart body ended', { cause: err });
    }
    if (next.done) {
      this.ended = true;
      return false;
    }
    const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    return true;
  }

  async need(n: number, what: string): Promise<void> {
    while (this.buf.length < n) if (!(await this.more())) throw truncated(what);
  }

  /** Index of `needle` in the buffer, reading on until it shows up within `max` bytes. */
  async find(needle: Buffer, max: number, what: string): Promise<number> {
    for (;;) {
      const at = this.buf.indexOf(needle);
      if (at >= 0 && at <= max) return at;
      if (this.buf.length > max + needle.length) throw new InvalidArgumentError(`${what} is longer than ${max} bytes`);
      if (!(await this.more())) throw truncated(what);
    }
  }

  async drain(): Promise<void> {
    this.buf = Buffer.alloc(0);
    while (await this.more()) this.buf = Buffer.alloc(0);
  }
}

/** One part's body: the bytes up to the next delimiter, handed on as they arrive. */
class PartBody implements AsyncIterable<Buffer> {
  private done = false;
  private started = false;

  constructor(
    private input: Input,
    private delimiter: Buffer,
    private name: string,
  ) {}

  arrived(): Buffer | undefined {
    if (this.started) return undefined;
    const at = this.input.buf.indexOf(this.delimiter);
    if (at < 0) return undefined;
    const out = this.input.buf.subarray(0, at);
    this.input.buf = this.input.buf.subarray(at + this.delimiter.length);
    this.started = this.done = true;
    return out;
  }

  async read(): Promise<Buffer | null> {
    if (this.done) return null;
    this.started = true;
    const input = this.input;
    for (;;) {
      const at = input.buf.indexOf(this.delimiter);
      if (at >= 0) {
        const out = input.buf.subarray(0, at);
        input.buf = input.buf.subarray(at + this.delimiter.length);
        this.done = true;
        if (out.length > 0) return out;
        return null;
      }
      // Hand on all but a tail that could be the start of the delimiter.
      const safe = input.buf.length - (this.delimiter.length - 1);
      if (safe > 0) {
        const out = input.buf.subarray(0, safe);
        input.buf = input.buf.subarray(safe);
        return out;
      }
      if (!(await input.more())) throw truncated(`part "${this.name}"`);
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    // No return(): a consumer that stops early leaves the rest to be skipped.
    return {
      next: async () => {
        const value = await this.read();
        return value === null ? { done: true, value: undefined } : { done: false, value };
      },
    };
  }
}

async function readHeaders(input: Input, limit: number): Promise<Map<string, string>> {
  const headers = new Map<string, string>();
  await input.need(2, 'multipart part headers');
  if (input.buf[0] === 0x0d && input.buf[1] === 0x0a) {
    input.buf = input.buf.subarray(2); // no headers at all
    return headers;
  }
  const end = await input.find(HEADER_END, limit, 'a multipart part header block');
  const text = input.buf.toString('utf8', 0, end);
  input.buf = input.buf.subarray(end + HEADER_END.length);
  for (const line of text.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new InvalidArgumentError(`malformed multipart header line "${line.slice(0, 100)}"`);
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return headers;
}

/** Parameters of a header value such as `form-data; name="a"; filename="b"`, keys lower-cased. */
function params(value: string): Map<string, string> {
  const out = new Map<string, string>();
  const re = /;\s*([^=;\s]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))/g;
  for (let m = re.exec(value); m; m = re.exec(value)) {
    const key = m[1]!.toLowerCase();
    if (!out.has(key)) out.set(key, m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]!.trim());
  }
  return out;
}

function truncated(what: string): InvalidArgumentError {
  return new InvalidArgumentError(`the multipart body ended in the middle of ${what} (truncated upload)`);
}
