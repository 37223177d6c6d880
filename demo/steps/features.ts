import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

// Pipeline step of the demo's `features` pipeline: one datum per corpus
// folder (/pfs/emails/<folder>), one CSV row of simple spam signals per email.
// Reads inputs from $STRATA_PFS (or /pfs), so it runs sandboxed or not.

const pfs = process.env.STRATA_PFS ?? '/pfs';
const header = 'path,label,bytes,lines,links,exclamations,caps_ratio,money_words';
for (const folder of readdirSync(join(pfs, 'emails'))) {
  const label = folder.startsWith('spam') ? 'spam' : 'ham';
  const emails = readdirSync(join(pfs, 'emails', folder)).filter((n) => n.endsWith('.txt')).sort();
  const rows = [header];
  for (const name of emails) {
    const text = readFileSync(join(pfs, 'emails', folder, name), 'latin1');
    const body = text.slice(text.indexOf('\n\n') + 2);
    const letters = body.replace(/[^A-Za-z]/g, '');
    const caps = letters.replace(/[^A-Z]/g, '').length;
    rows.push(
      [
        `/${folder}/${name}`,
        label,
        text.length,
        text.split('\n').length,
        (body.match(/https?:\/\//g) ?? []).length,
        (body.match(/!/g) ?? []).length,
        letters.length ? (caps / letters.length).toFixed(3) : '0',
        (body.match(/\b(free|money|cash|prize|won|offer|credit)\b/gi) ?? []).length,
      ].join(','),
    );
  }
  writeFileSync(join(pfs, 'out', `${folder}.csv`), rows.join('\n') + '\n');
  console.log(`${folder}: features of ${emails.length} emails`);
}
