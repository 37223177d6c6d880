import { lazyRequire } from '../lazy.js';
import type { Kysely } from 'kysely';
import type { Schema } from '../meta/schema.js';

// Column names and types of tabular files (CSV, TSV, JSON lines), for the
// catalog. Inference is bounded: it looks at the first MAX_BYTES bytes and
// MAX_ROWS rows, so a 50 GiB file costs the same as a 1 MiB one, and binary or
// malformed content yields a schema with an `error`, never an exception.
// Results are cached by content hash (catalog_schemas), so a file's bytes are
// read once however many repos, paths and commits hold them.

export type SchemaFormat = 'csv' | 'tsv' | 'jsonl';
export type ColumnType = 'integer' | 'number' | 'boolean' | 'string' | 'timestamp' | 'object' | 'array' | 'null' | 'mixed';

export interface ColumnInfo {
  name: string;
  type: ColumnType;
  /** Some sampled row had no value (empty CSV field, JSON null or a missing key). */
  nullable: boolean;
}

export interface FileSchema {
  format: SchemaFormat;
  columns: ColumnInfo[];
  /** Data rows looked at (the CSV header not counted). */
  rows: number;
  /** Only a prefix of the file was looked at. */
  truncated: boolean;
  /** Why no (or only a partial) schema could be inferred. */
  error?: string;
}

export const MAX_BYTES = 1024 * 1024;
export const MAX_ROWS = 1000;
const MAX_COLUMNS = 1000;

/** The format a path's extension names, or null for files the catalog does not infer. */
export function schemaFormat(path: string): SchemaFormat | null {
  const lower = path.toLowerCase();
  if (lower.endsWith('.csv')) return 'csv';
  if (lower.endsWith('.tsv')) return 'tsv';
  if (lower.endsWith('.jsonl') || lower.endsWith('.ndjson')) return 'jsonl';
  return null;
}

/** The first `limit` bytes of a stream; stops reading (and ends the stream) once it has them. */
export async function readPrefix(stream: AsyncIterable<Uint8Array>, limit = MAX_BYTES): Promise<{ bytes: Buffer; complete: boolean }> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    parts.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    size += chunk.byteLength;
    if (size > limit) return { bytes: Buffer.concat(parts).subarray(0, limit), complete: false };
  }
  return { bytes: Buffer.concat(parts), complete: true };
}

/** Infers the schema of a file's first bytes. `complete` says whether `bytes` is the whole file. */
export function inferSchema(bytes: Buffer, format: SchemaFormat, complete: boolean): FileSchema {
  const empty = (error: string): FileSchema => ({ format, columns: [], rows: 0, truncated: !complete, error });
  if (bytes.subarray(0, 8192).includes(0)) return empty('binary content (NUL bytes), not text');
  let text = bytes.toString('utf8');
  if (!complete) {
    // Drop the partial last line the byte limit cut through.
    const lastNewline = text.lastIndexOf('\n');
    text = lastNewline >= 0 ? text.slice(0, lastNewline + 1) : '';
    if (!text) return empty(`no complete line in the first ${bytes.length} bytes`);
  }
  return format === 'jsonl' ? inferJsonLines(text, complete) : inferDelimited(text, format, complete);
}

function inferDelimited(text: string, format: 'csv' | 'tsv', complete: boolean): FileSchema {
  let records: string[][];
  let error: string | undefined;
  const options = {
    delimiter: format === 'tsv' ? '\t' : ',',
    bom: true,
    relax_column_count: true,
    relax_quotes: true,
    skip_empty_lines: true,
    to: MAX_ROWS + 1,
  };
  const { parse } = lazyRequire('csv-parse/sync') as typeof import('csv-parse/sync');
  try {
    records = parse(text, options) as string[][];
  } catch (err) {
    // A quoted field the byte limit cut open, or a malformed line: keep what parsed before it.
    error = `not valid ${format.toUpperCase()}: ${(err as Error).message}`;
    const line = (err as { lines?: number }).lines;
    records = [];
    if (line && line > 1) {
      try {
        records = parse(text.split('\n').slice(0, line - 1).join('\n'), options) as string[][];
      } catch {
        records = [];
      }
    }
  }
  const header = records[0];
  if (!header) return { format, columns: [], rows: 0, truncated: !complete, error: error ?? 'no header line' };
  const names = uniqueNames(header.slice(0, MAX_COLUMNS).map((h, i) => h.trim() || `column_${i + 1}`));
  const observed = names.map(() => new TypeTally());
  const rows = records.slice(1, MAX_ROWS + 1);
  for (const record of rows) {
    for (let i = 0; i < names.length; i++) observed[i]!.add(csvValueType(record[i]));
  }
  const truncated = !complete || records.length > MAX_ROWS;
  const columns = names.map((name, i) => ({ name, ...observed[i]!.result() }));
  return { format, columns, rows: rows.length, truncated, ...(error ? { error } : {}) };
}

function inferJsonLines(text: string, complete: boolean): FileSchema {
  const order: string[] = [];
  const tallies = new Map<string, TypeTally>();
  let rows = 0;
  let bad = 0;
  let firstError: string | undefined;
  let more = false;
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    if (rows + bad >= MAX_ROWS) {
      more = true;
      break;
    }
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      bad++;
      firstError ??= `line ${rows + bad}: ${(err as Error).message}`;
      continue;
    }
    if (!value || typeof value !== 'object' || Array.isArray(value)) {
      bad++;
      firstError ??= `line ${rows + bad}: not a JSON object`;
      continue;
    }
    for (const [key, v] of Object.entries(value)) {
      let tally = tallies.get(key);
      if (!tally) {
        if (order.length >= MAX_COLUMNS) continue;
        // A key first seen after row 1 was missing (null) in every row before it.
        tally = new TypeTally(rows > 0);
        tallies.set(key, tally);
        order.push(key);
      }
      tally.add(jsonValueType(v));
    }
    for (const key of order) if (!(key in value)) tallies.get(key)!.add('null');
    rows++;
  }
  const columns = order.map((name) => ({ name, ...tallies.get(name)!.result() }));
  const schema: FileSchema = { format: 'jsonl', columns, rows, truncated: !complete || more };
  if (bad > 0) schema.error = rows === 0 ? `not JSON lines (${firstError})` : `${bad} line(s) skipped (${firstError})`;
  return schema;
}

type ValueType = Exclude<ColumnType, 'mixed'>;

/** The types seen in one column, merged: integer and number make number; more than one other kind makes mixed. */
class TypeTally {
  private types = new Set<ValueType>();

  constructor(private sawNull = false) {}

  add(type: ValueType): void {
    if (type === 'null') this.sawNull = true;
    else this.types.add(type);
  }

  result(): { type: ColumnType; nullable: boolean } {
    const types = new Set(this.types);
    if (types.has('integer') && types.has('number')) types.delete('integer');
    const type: ColumnType = types.size === 0 ? 'null' : types.size === 1 ? [...types][0]! : 'mixed';
    return { type, nullable: this.sawNull };
  }
}

const INTEGER = /^[+-]?\d+$/;
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

function csvValueType(raw: string | undefined): ValueType {
  const value = raw?.trim() ?? '';
  if (value === '') return 'null';
  if (INTEGER.test(value)) return 'integer';
  if (NUMBER.test(value)) return 'number';
  if (/^(true|false)$/i.test(value)) return 'boolean';
  if (isTimestamp(value)) return 'timestamp';
  return 'string';
}

function jsonValueType(value: unknown): ValueType {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  if (typeof value === 'boolean') return 'boolean';
  if (typeof value === 'string') return isTimestamp(value) ? 'timestamp' : 'string';
  return Array.isArray(value) ? 'array' : 'object';
}

function isTimestamp(value: string): boolean {
  return TIMESTAMP.test(value) && !Number.isNaN(Date.parse(value.replace(' ', 'T')));
}

function uniqueNames(names: string[]): string[] {
  const seen = new Map<string, number>();
  return names.map((name) => {
    const n = (seen.get(name) ?? 0) + 1;
    seen.set(name, n);
    return n === 1 ? name : `${name}_${n}`;
  });
}

/** Schemas by content hash, in the metadata database: each distinct file is inferred once. */
export class SchemaCache {
  constructor(private db: Kysely<Schema>) {}

  /** The schema of the content with this hash; `open` is called only when it is not cached yet. */
  async get(hash: string, format: SchemaFormat, open: () => AsyncIterable<Uint8Array>): Promise<FileSchema> {
    const key = `${format}:${hash}`;
    const row = await this.db.selectFrom('catalog_schemas').select('schema').where('key', '=', key).executeTakeFirst();
    if (row) return JSON.parse(row.schema) as FileSchema;
    let schema: FileSchema;
    try {
      const { bytes, complete } = await readPrefix(open());
      schema = inferSchema(bytes, format, complete);
    } catch (err) {
      // Unreadable content (e.g. missing chunks) is reported on the entry, not cached: fsck may repair it.
      return { format, columns: [], rows: 0, truncated: false, error: `cannot read the file: ${(err as Error).message}` };
    }
    await this.db
      .insertInto('catalog_schemas')
      .values({ key, schema: JSON.stringify(schema), created_at: Date.now() })
      .onConflict((oc) => oc.column('key').doNothing())
      .execute();
    return schema;
  }
}
