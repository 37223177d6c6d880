import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package version, from the package.json above this file (source or dist/ build alike). */
export const VERSION = readVersion();

function readVersion(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'strata' && pkg.version) return pkg.version;
    } catch {
      // no package.json here; keep looking upwards
    }
    if (dirname(dir) === dir) return '0.0.0';
  }
}
