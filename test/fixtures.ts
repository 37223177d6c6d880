import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import pg from 'pg';
import { StrataError } from '../src/errors.js';
import { Instance } from '../src/instance.js';

// Shared test fixtures: temporary instances on each metadata backend.
// PostgreSQL is used where reachable (STRATA_TEST_PG, default
// postgres://postgres@127.0.0.1:5432/postgres); each instance gets a fresh
// database that is dropped afterwards.

export function tempDir(prefix = 'strata-test-'): { path: string; cleanup(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

const PG_ADMIN = process.env.STRATA_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/postgres';

let pgAvailable: Promise<string | null> | undefined;

/** null when PostgreSQL is reachable, else the reason it is not. */
export function postgresUnavailable(): Promise<string | null> {
  pgAvailable ??= (async () => {
    const client = new pg.Client({ connectionString: PG_ADMIN, connectionTimeoutMillis: 2000 });
    try {
      await client.connect();
      await client.query('select 1');
      return null;
    } catch (err) {
      return `PostgreSQL not reachable at ${PG_ADMIN}: ${(err as Error).message}`;
    } finally {
      await client.end().catch(() => {});
    }
  })();
  return pgAvailable;
}

async function adminQuery(text: string) {
  const client = new pg.Client({ connectionString: PG_ADMIN });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

export interface Backend {
  name: 'sqlite' | 'postgres';
  /** Why this backend is skipped here, or undefined to run. */
  skip?: string;
  /** A fresh instance in a temp dir; call dispose() when done. */
  instance(): Promise<{ instance: Instance; home: string; dispose(): Promise<void> }>;
}

export async function backends(): Promise<Backend[]> {
  const pgReason = await postgresUnavailable();
  const sqlite: Backend = {
    name: 'sqlite',
    async instance() {
      const dir = tempDir();
      const instance = await Instance.init(join(dir.path, '.strata'), { database: 'strata.db' });
      return { instance, home: instance.home, dispose: async () => (await instance.close(), dir.cleanup()) };
    },
  };
  const postgres: Backend = {
    name: 'postgres',
    skip: pgReason ?? undefined,
    async instance() {
      const dir = tempDir();
      const dbName = `strata_test_${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
      await adminQuery(`create database ${dbName}`);
      const url = PG_ADMIN.replace(/\/[^/]*$/, `/${dbName}`);
      const instance = await Instance.init(join(dir.path, '.strata'), { database: url });
      return {
        instance,
        home: instance.home,
        dispose: async () => {
          await instance.close();
          await adminQuery(`drop database if exists ${dbName} with (force)`);
          dir.cleanup();
        },
      };
    },
  };
  if (pgReason) console.log(`SKIPPED: postgres backend tests: ${pgReason}`);
  return [sqlite, postgres];
}

/** A file's content at a ref, as text. */
export async function readText(instance: Instance, ref: string): Promise<string> {
  const { stream } = await instance.data.read(ref);
  const parts: Buffer[] = [];
  for await (const b of stream) parts.push(b);
  return Buffer.concat(parts).toString();
}

/** Asserts that `p` rejects with a StrataError of this code (and message). */
export async function rejectsWith(p: Promise<unknown>, code: string, match?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof StrataError, `expected StrataError, got ${err}`);
    assert.equal(err.code, code, err.message);
    if (match) assert.match(err.message, match);
    return true;
  });
}

/** Polls `probe` every 50 ms until it returns something other than undefined; fails naming `what` after `ms`. */
export async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
