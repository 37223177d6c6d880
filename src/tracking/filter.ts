import { InvalidArgumentError } from '../errors.js';

// MLflow's run search syntax, parsed into conditions the TrackingService
// turns into SQL:
//   metrics.accuracy > 0.9 and params.lr = '0.01' and tags.`team name` = "ml"
//   attributes.status = 'FINISHED' and run_name LIKE 'train%'
// Conjunctions only (MLflow has no OR). Keys may be backquoted or
// double-quoted when they contain spaces or dots.

export type Entity = 'metric' | 'param' | 'tag' | 'attribute';
export type Op = '=' | '!=' | '<' | '<=' | '>' | '>=' | 'LIKE' | 'ILIKE' | 'IN' | 'NOT IN';

export interface Condition {
  entity: Entity;
  key: string;
  op: Op;
  value: string | number | (string | number)[];
}

/** Attributes that can be searched and sorted on, by their MLflow names. */
export const ATTRIBUTES: Record<string, 'name' | 'status' | 'start_time' | 'end_time' | 'user_id' | 'id' | 'pipeline' | 'experiment_id'> = {
  run_name: 'name',
  status: 'status',
  start_time: 'start_time',
  end_time: 'end_time',
  user_id: 'user_id',
  run_id: 'id',
  pipeline: 'pipeline',
  experiment_id: 'experiment_id',
};

const PREFIXES: Record<string, Entity> = {
  metric: 'metric',
  metrics: 'metric',
  param: 'param',
  params: 'param',
  parameter: 'param',
  parameters: 'param',
  tag: 'tag',
  tags: 'tag',
  attribute: 'attribute',
  attributes: 'attribute',
  attr: 'attribute',
  run: 'attribute',
};

type Token = { kind: 'ident' | 'string' | 'number' | 'op' | 'lparen' | 'rparen' | 'comma'; text: string };

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  const re = /\s*(?:(`[^`]*`|"[^"]*")|('(?:[^'\\]|\\.)*')|(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)(?![\w.])|(!=|<=|>=|<>|=|<|>)|(\()|(\))|(,)|([A-Za-z_][\w.]*))/y;
  let pos = 0;
  while (pos < text.length) {
    if (/^\s*$/.test(text.slice(pos))) break;
    re.lastIndex = pos;
    const m = re.exec(text);
    if (!m) throw new InvalidArgumentError(`filter: cannot read "${text.slice(pos).trim().slice(0, 30)}" (at character ${pos + 1})`);
    pos = re.lastIndex;
    if (m[1]) tokens.push({ kind: 'ident', text: m[1].slice(1, -1) });
    else if (m[2]) tokens.push({ kind: 'string', text: m[2].slice(1, -1).replace(/\\(.)/g, '$1') });
    else if (m[3]) tokens.push({ kind: 'number', text: m[3] });
    else if (m[4]) tokens.push({ kind: 'op', text: m[4] === '<>' ? '!=' : m[4] });
    else if (m[5]) tokens.push({ kind: 'lparen', text: '(' });
    else if (m[6]) tokens.push({ kind: 'rparen', text: ')' });
    else if (m[7]) tokens.push({ kind: 'comma', text: ',' });
    else tokens.push({ kind: 'ident', text: m[8]! });
  }
  return tokens;
}

/** Splits `metrics.accuracy` / `accuracy` (with a default entity) into entity and key. */
export function parseKey(text: string, quotedKey?: string): { entity: Entity; key: string } {
  if (quotedKey !== undefined) {
    const entity = PREFIXES[text.toLowerCase()];
    if (!entity) throw new InvalidArgumentError(`filter: unknown prefix "${text}" (use metrics., params., tags. or attributes.)`);
    return { entity, key: quotedKey };
  }
  const dot = text.indexOf('.');
  if (dot < 0) {
    if (text in ATTRIBUTES) return { entity: 'attribute', key: text };
    throw new InvalidArgumentError(`filter: "${text}" needs a prefix: metrics.${text}, params.${text}, tags.${text} or attributes.${text}`);
  }
  const entity = PREFIXES[text.slice(0, dot).toLowerCase()];
  if (!entity) throw new InvalidArgumentError(`filter: unknown prefix "${text.slice(0, dot)}" (use metrics., params., tags. or attributes.)`);
  const key = text.slice(dot + 1);
  if (entity === 'attribute' && !(key in ATTRIBUTES)) {
    throw new InvalidArgumentError(`filter: unknown attribute "${key}" (known: ${Object.keys(ATTRIBUTES).join(', ')})`);
  }
  return { entity, key };
}

export function parseFilter(text: string | undefined): Condition[] {
  if (!text || !text.trim()) return [];
  const tokens = tokenize(text);
  const out: Condition[] = [];
  let i = 0;
  const next = () => tokens[i++];
  for (;;) {
    const ident = next();
    if (!ident || ident.kind !== 'ident') throw new InvalidArgumentError(`filter: expected a key like metrics.accuracy, got "${ident?.text ?? 'end of filter'}"`);
    // `tags.`x y`` arrives as ident "tags." + quoted ident.
    let target: { entity: Entity; key: string };
    if (ident.text.endsWith('.') && tokens[i]?.kind === 'ident') target = parseKey(ident.text.slice(0, -1), next()!.text);
    else target = parseKey(ident.text);
    let opTok = next();
    if (!opTok) throw new InvalidArgumentError(`filter: missing comparison after "${ident.text}"`);
    let op: Op;
    if (opTok.kind === 'op') op = opTok.text as Op;
    else if (opTok.kind === 'ident' && /^(like|ilike|in)$/i.test(opTok.text)) op = opTok.text.toUpperCase() as Op;
    else if (opTok.kind === 'ident' && /^not$/i.test(opTok.text) && /^in$/i.test(tokens[i]?.text ?? '')) {
      next();
      op = 'NOT IN';
    } else throw new InvalidArgumentError(`filter: "${opTok.text}" is not a comparison (use = != < <= > >= LIKE ILIKE IN)`);
    let value: Condition['value'];
    if (op === 'IN' || op === 'NOT IN') {
      if (next()?.kind !== 'lparen') throw new InvalidArgumentError(`filter: ${op} needs a list: ('a', 'b')`);
      const list: (string | number)[] = [];
      for (;;) {
        const v = next();
        if (!v || (v.kind !== 'string' && v.kind !== 'number')) throw new InvalidArgumentError(`filter: expected a value in the ${op} list`);
        list.push(v.kind === 'number' ? Number(v.text) : v.text);
        const sep = next();
        if (sep?.kind === 'rparen') break;
        if (sep?.kind !== 'comma') throw new InvalidArgumentError(`filter: expected , or ) in the ${op} list`);
      }
      value = list;
    } else {
      const v = next();
      if (!v || (v.kind !== 'string' && v.kind !== 'number')) {
        throw new InvalidArgumentError(`filter: expected a value after ${ident.text} ${op} (quote strings: '0.01')`);
      }
      value = v.kind === 'number' ? Number(v.text) : v.text;
    }
    if (target.entity === 'metric' && typeof value !== 'number' && !Array.isArray(value)) {
      throw new InvalidArgumentError(`filter: metrics.${target.key} compares with a number, not '${value}'`);
    }
    if ((target.entity === 'param' || target.entity === 'tag') && typeof value === 'number') {
      value = String(tokens[i - 1]!.text); // params and tags are strings; accept an unquoted number
    }
    out.push({ ...target, op, value });
    const joiner = next();
    if (!joiner) return out;
    if (joiner.kind !== 'ident' || !/^and$/i.test(joiner.text)) {
      throw new InvalidArgumentError(`filter: expected AND between conditions, got "${joiner.text}" (OR is not supported, as in MLflow)`);
    }
  }
}

export interface OrderTerm {
  entity: Entity;
  key: string;
  desc: boolean;
}

/** `metrics.accuracy DESC`, `-metrics.accuracy`, `start_time ASC`. */
export function parseOrderBy(terms: string[] | undefined): OrderTerm[] {
  return (terms ?? []).map((raw) => {
    let text = raw.trim();
    let desc = false;
    if (text.startsWith('-')) {
      desc = true;
      text = text.slice(1);
    }
    const m = /^(.*?)(?:\s+(ASC|DESC))?$/i.exec(text)!;
    if (m[2]) desc = m[2].toUpperCase() === 'DESC';
    const keyText = m[1]!.trim();
    const quoted = /^(\w+)\.[`"](.*)[`"]$/.exec(keyText);
    const { entity, key } = quoted ? parseKey(quoted[1]!, quoted[2]!) : parseKey(keyText);
    return { entity, key, desc };
  });
}
