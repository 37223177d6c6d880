// A progress bar on stderr, drawn only when stderr is a terminal, so piped
// and --json output stays clean. Redraws at most every 100 ms.

export interface Progress {
  update(done: number, detail?: string): void;
  done(): void;
}

const silent: Progress = { update() {}, done() {} };

export function progressBar(label: string, total: number, unit: 'bytes' | 'items' = 'bytes'): Progress {
  const out = process.stderr;
  if (!out.isTTY || process.env.STRATA_NO_PROGRESS) return silent;
  const started = Date.now();
  let last = 0;
  let current = 0;
  const draw = (final = false) => {
    const width = 30;
    const frac = total > 0 ? Math.min(1, current / total) : 1;
    const filled = Math.round(frac * width);
    const secs = Math.max(0.001, (Date.now() - started) / 1000);
    const rate = unit === 'bytes' ? `${formatBytes(current / secs)}/s` : `${Math.round(current / secs)}/s`;
    const amount = unit === 'bytes' ? `${formatBytes(current)}/${formatBytes(total)}` : `${current}/${total}`;
    out.write(`\r${label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(frac * 100).toFixed(0).padStart(3)}% ${amount} ${rate}\x1b[K`);
    if (final) out.write('\n');
  };
  return {
    update(done) {
      current = done;
      const now = Date.now();
      if (now - last >= 100) {
        last = now;
        draw();
      }
    },
    done() {
      current = total;
      draw(true);
    },
  };
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}
