import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startServer, type RunningServer } from '../../src/api/server.js';
import { StrataError } from '../../src/errors.js';
import { Instance } from '../../src/instance.js';
import { HttpClient } from '../../src/sdk/http-client.js';
import { tempDir } from '../fixtures.js';

// A real server on a loopback port over a real instance in a temp dir.

export interface Served {
  instance: Instance;
  server: RunningServer;
  client: HttpClient;
  url: string;
  home: string;
  close(): Promise<void>;
}

export async function serve(): Promise<Served> {
  const dir = tempDir('strata-api-');
  const instance = await Instance.init(join(dir.path, '.strata'));
  const server = await startServer({ instance, port: 0 });
  return {
    instance,
    server,
    client: new HttpClient(server.url),
    url: server.url,
    home: instance.home,
    async close() {
      await server.close();
      await instance.close();
      dir.cleanup();
    },
  };
}

export async function rejectsWith(p: Promise<unknown>, code: string, match?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof StrataError, `expected a StrataError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (match) assert.match(err.message, match);
    return true;
  });
}

export async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of stream) parts.push(b);
  return Buffer.concat(parts);
}

export async function all<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}
