// Checks shared by the local executors before a datum starts.

import { existsSync } from 'node:fs';
import { posix } from 'node:path';
import { InvalidArgumentError } from '../errors.js';
import type { DatumOutcome, DatumRun } from './executor.js';

/** Programming errors in a run (the spec layer validates user input before it gets here). */
export function checkRun(run: DatumRun): void {
  if (run.cmd.length === 0) throw new InvalidArgumentError(`datum ${run.datumId}: cmd is empty`);
  const seen = new Set<string>();
  for (const { name } of run.inputs) {
    if (!name || name === 'out' || name === '.' || name === '..' || name.includes('/') || name.includes('\0'))
      throw new InvalidArgumentError(`datum ${run.datumId}: input name "${name}" cannot be mounted at /pfs/${name}`);
    if (seen.has(name)) throw new InvalidArgumentError(`datum ${run.datumId}: two inputs are named "${name}"`);
    seen.add(name);
  }
  if (run.workingDir !== undefined && !posix.isAbsolute(run.workingDir))
    throw new InvalidArgumentError(`datum ${run.datumId}: working_dir "${run.workingDir}" must be an absolute path`);
}

export function notStarted(reason: string): DatumOutcome {
  return { exitCode: null, signal: null, timedOut: false, outputTooLarge: false, spawnError: reason, durationMs: 0 };
}

/** The first input whose host path is missing, as a message. */
export function missingInput(run: DatumRun): string | undefined {
  for (const input of run.inputs) {
    if (!existsSync(input.hostPath)) return `input "${input.name}": ${input.hostPath} does not exist`;
  }
  return undefined;
}
