import { InvalidArgumentError } from '../errors.js';

// Sizes as a user types them on the command line: bytes, or a number with a
// k, m or g suffix (powers of 1024; "b", "ib" and case are accepted: 8mb,
// 8M, 8MiB).

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** The size in bytes; `flag` names the option in the error, `max` is the largest accepted. */
export function parseByteSize(text: string, flag: string, max = 1024 ** 3): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?$/i.exec(text.trim());
  const bytes = m ? Math.floor(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!) : NaN;
  if (!(bytes >= 1 && bytes <= max)) {
    throw new InvalidArgumentError(`${flag} "${text}" must be a size from 1 byte to ${max} bytes: bytes, or a number with k, m or g (e.g. 512k, 8mb)`);
  }
  return bytes;
}
