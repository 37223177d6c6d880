// Shared pieces of the executor tests: real directories, real processes, and
// a look at /proc to prove nothing a step started is still running.

import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { DatumRun } from '../../src/exec/executor.js';

/** A Writable that keeps what it is given. */
export class Captured extends Writable {
  private chunks: Buffer[] = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void) {
    this.chunks.push(chunk);
    callback();
  }
  get text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

export interface Workspace {
  /** Under os.tmpdir(): a host path the sandbox only sees through binds. */
  root: string;
  input: string;
  output: string;
  /** Under /var/tmp: a host path the sandbox sees as part of the read-only host filesystem. */
  visible: string;
  cleanup(): void;
}

export function workspace(): Workspace {
  const root = mkdtempSync(join(tmpdir(), 'strata-exec-test-'));
  const visible = mkdtempSync(join('/var/tmp', 'strata-exec-test-'));
  const input = join(root, 'in');
  const output = join(root, 'out');
  mkdirSync(input);
  mkdirSync(output);
  return {
    root,
    input,
    output,
    visible,
    cleanup() {
      rmSync(root, { recursive: true, force: true });
      rmSync(visible, { recursive: true, force: true });
    },
  };
}

export interface TestRun extends DatumRun {
  stdout: Captured;
  stderr: Captured;
}

/** A run over the workspace's one input (named "in") and its output dir. */
export function datum(ws: Workspace, cmd: string[], extra: Partial<DatumRun> = {}): TestRun {
  return {
    jobId: 'job1',
    datumId: 'datum1',
    cmd,
    env: {},
    inputs: [{ name: 'in', hostPath: ws.input }],
    outputDir: ws.output,
    network: false,
    hide: [],
    ...extra,
    stdout: new Captured(),
    stderr: new Captured(),
  };
}

/** A string no other process on the machine has in its command line. */
export function marker(): string {
  return `strata-marker-${randomBytes(6).toString('hex')}`;
}

/** A unique duration for `sleep`, so the sleep itself can be found by its command line. */
export function markedSleep(): string {
  return `1000.${Date.now() % 100_000}${Math.floor(Math.random() * 1000)}`;
}

/** Pids of processes whose command line contains text (what `pgrep -f` does, without needing procps). */
export function processesMatching(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (cmdline.includes(text)) pids.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return pids;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until no process matches text, or gives up after a second (a SIGKILLed tree takes a moment to be reaped). */
export async function noProcessesLeft(text: string): Promise<number[]> {
  for (let i = 0; i < 20; i++) {
    const left = processesMatching(text);
    if (left.length === 0) return left;
    await sleep(50);
  }
  return processesMatching(text);
}
