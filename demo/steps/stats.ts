import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

// Pipeline step of the demo's `stats` pipeline: the whole `features` output
// as one datum, aggregated per label into summary.json.

const pfs = process.env.STRATA_PFS ?? '/pfs';
const totals = new Map<string, { emails: number; links: number; exclamations: number; caps: number; money: number }>();
for (const file of readdirSync(join(pfs, 'features')).sort()) {
  const [, ...rows] = readFileSync(join(pfs, 'features', file), 'utf8').trim().split('\n');
  for (const row of rows) {
    const [, label, , , links, excl, caps, money] = row.split(',');
    const t = totals.get(label!) ?? { emails: 0, links: 0, exclamations: 0, caps: 0, money: 0 };
    t.emails++;
    t.links += Number(links);
    t.exclamations += Number(excl);
    t.caps += Number(caps);
    t.money += Number(money);
    totals.set(label!, t);
  }
}
const summary: Record<string, unknown> = {};
for (const [label, t] of [...totals].sort()) {
  summary[label] = {
    emails: t.emails,
    mean_links: +(t.links / t.emails).toFixed(2),
    mean_exclamations: +(t.exclamations / t.emails).toFixed(2),
    mean_caps_ratio: +(t.caps / t.emails).toFixed(3),
    mean_money_words: +(t.money / t.emails).toFixed(2),
  };
}
writeFileSync(join(pfs, 'out', 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
console.log(JSON.stringify(summary));
