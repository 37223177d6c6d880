import type { CountryCode } from 'libphonenumber-js/max';
import { scanCustom, type CompiledCustomDetector } from './custom.js';
import { scanBuiltins, type Counts } from './detectors.js';

// Scanning one file's content as it streams, in bounded memory and time:
//  - binary content (a NUL byte, or mostly invalid UTF-8, in the first 8 KiB)
//    is skipped and recorded as 'binary';
//  - text is cut into segments of about 1 MiB at a line end, so nothing the
//    detectors look for (none spans a line) is split between segments, counted
//    twice or lost; a line longer than a segment is cut at a separator
//    (space, quote, <, >, comma ...) near the segment's end, else anywhere;
//  - after `maxBytes` bytes the scan stops and the file is 'truncated'.

export type ScanStatus = 'scanned' | 'binary' | 'truncated';

export interface ContentScan {
  status: ScanStatus;
  bytes_scanned: number;
  /** PII type -> occurrences. Counts only, never values. */
  findings: Counts;
  /** Custom detectors that ran out of time on this content (their counts are missing). */
  timed_out: string[];
}

export interface ScanOptions {
  /** Bytes scanned per file at most (default 64 MiB). */
  maxBytes?: number;
  defaultCountry?: CountryCode;
  custom?: CompiledCustomDetector[];
  /** Segment size in characters (tests use small ones to exercise the boundaries). */
  segmentSize?: number;
}

export const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;
const SNIFF_BYTES = 8192;
const DEFAULT_SEGMENT = 1024 * 1024;
const SEPARATOR_WINDOW = 4096;

/** True for content that is not text: a NUL byte, or more than 10% invalid UTF-8, in its first 8 KiB. */
export function looksBinary(head: Uint8Array): boolean {
  const sniff = head.subarray(0, SNIFF_BYTES);
  if (sniff.includes(0)) return true;
  let invalid = 0;
  let i = 0;
  // The last 3 bytes may be a sequence cut by the sniff window: not counted.
  const end = sniff.length === SNIFF_BYTES ? sniff.length - 3 : sniff.length;
  while (i < end) {
    const b = sniff[i]!;
    const need = b < 0x80 ? 0 : b >= 0xc2 && b <= 0xdf ? 1 : b >= 0xe0 && b <= 0xef ? 2 : b >= 0xf0 && b <= 0xf4 ? 3 : -1;
    if (need < 0) {
      invalid++;
      i++;
      continue;
    }
    let ok = true;
    for (let k = 1; k <= need; k++) if (((sniff[i + k] ?? 0) & 0xc0) !== 0x80) ok = false;
    if (ok) i += need + 1;
    else {
      invalid++;
      i++;
    }
  }
  return invalid * 10 > end;
}

/** Push content in pieces; `push` returns false once the scan wants no more. */
export class ContentScanner {
  private readonly maxBytes: number;
  private readonly segment: number;
  private head: Buffer[] = [];
  private headBytes = 0;
  private decided = false;
  private done = false;
  private status: ScanStatus = 'scanned';
  private bytes = 0;
  private pending = '';
  private readonly counts: Counts = {};
  private readonly timedOut = new Set<string>();

  constructor(private readonly opts: ScanOptions = {}) {
    this.maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
    this.segment = opts.segmentSize ?? DEFAULT_SEGMENT;
  }

  push(piece: Uint8Array): boolean {
    if (this.done) return false;
    if (!this.decided) {
      // Hold the first 8 KiB until we know whether this is text.
      this.head.push(Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength));
      this.headBytes += piece.byteLength;
      if (this.headBytes < SNIFF_BYTES) return true;
      return this.decide();
    }
    return this.take(piece);
  }

  end(): ContentScan {
    if (!this.decided) this.decide();
    if (this.status !== 'binary' && this.pending !== '') this.scan(this.pending);
    this.pending = '';
    this.done = true;
    return { status: this.status, bytes_scanned: this.bytes, findings: this.counts, timed_out: [...this.timedOut].sort() };
  }

  private decide(): boolean {
    this.decided = true;
    const head = Buffer.concat(this.head);
    this.head = [];
    if (looksBinary(head)) {
      this.status = 'binary';
      this.done = true;
      return false;
    }
    return this.take(head);
  }

  private take(piece: Uint8Array): boolean {
    let off = 0;
    while (off < piece.byteLength) {
      const room = this.maxBytes - this.bytes;
      if (room <= 0) {
        // More content than the cap allows: stop here. (A file of exactly the cap is complete.)
        this.status = 'truncated';
        this.done = true;
        return false;
      }
      const length = Math.min(this.segment, room, piece.byteLength - off);
      this.pending += Buffer.from(piece.buffer, piece.byteOffset + off, length).toString('latin1');
      this.bytes += length;
      off += length;
      while (this.pending.length >= this.segment) this.cutSegment();
    }
    return true;
  }

  private cutSegment(): void {
    const text = this.pending;
    let cut = text.lastIndexOf('\n') + 1;
    if (cut === 0) {
      cut = text.length;
      for (let i = text.length - 1; i >= Math.max(0, text.length - SEPARATOR_WINDOW); i--) {
        const c = text.charCodeAt(i);
        // space, tab, CR, " ' , ; < >
        if (c === 32 || c === 9 || c === 13 || c === 34 || c === 39 || c === 44 || c === 59 || c === 60 || c === 62) {
          cut = i + 1;
          break;
        }
      }
    }
    this.scan(text.slice(0, cut));
    this.pending = text.slice(cut);
  }

  private scan(text: string): void {
    scanBuiltins(text, this.counts, { defaultCountry: this.opts.defaultCountry });
    if (this.opts.custom?.length) scanCustom(text, this.opts.custom, this.counts, this.timedOut);
  }
}

/** Scans a stream of content; stops reading once the scan is decided (binary, or the cap reached). */
export async function scanContent(content: AsyncIterable<Uint8Array>, opts: ScanOptions = {}): Promise<ContentScan> {
  const scanner = new ContentScanner(opts);
  for await (const piece of content) if (!scanner.push(piece)) break;
  return scanner.end();
}

/** Scans content held in memory (the benchmark, small files). */
export function scanBytes(content: Uint8Array, opts: ScanOptions = {}): ContentScan {
  const scanner = new ContentScanner(opts);
  scanner.push(content);
  return scanner.end();
}
