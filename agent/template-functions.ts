/**
 * The Go-template functions (text/template built-ins and the sprig functions ESO templates use)
 * available to ESO-style templates, with Go's argument order: a piped value is the last
 * argument, so `{{ .x | default "y" }}` calls default("y", x).
 *
 * Strings here are byte strings, as in Go: one JS char per byte (latin1), so binary values
 * survive `b64dec` and are written back byte for byte. Functions that read text (upper, toJson,
 * fromJson, ...) decode UTF-8 first and encode the result again.
 *
 * A failing function throws TemplateError with a message that names the function and never the
 * argument: the argument is a secret value.
 */
import { createHash } from 'node:crypto';
import { TemplateError } from './errors.ts';
import {
  JsonNumber,
  parseJsonText,
  stringifyJson,
  toJsonValue,
  type JsonValue,
} from './json-text.ts';

/** Any value a template expression can produce. */
export type TplValue = JsonValue | number | undefined | TplValue[] | { [key: string]: TplValue };

/** UTF-8 text → byte string. */
export const bytesOf = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');
/** Byte string → UTF-8 text (invalid sequences become U+FFFD). */
export const textOf = (bytes: string): string => Buffer.from(bytes, 'latin1').toString('utf8');

export function isMap(v: unknown): v is { [key: string]: TplValue } {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof JsonNumber);
}

function mapStrings(v: TplValue, f: (s: string) => string): TplValue {
  if (typeof v === 'string') return f(v);
  if (Array.isArray(v)) return v.map((x) => mapStrings(x, f));
  if (isMap(v)) {
    const out: { [key: string]: TplValue } = Object.create(null);
    for (const [k, x] of Object.entries(v)) out[f(k)] = mapStrings(x, f);
    return out;
  }
  return v;
}

/** Go's notion of an empty value: false, 0, nil, "" and empty collections. */
export function isEmpty(v: TplValue): boolean {
  if (v === undefined || v === null || v === false || v === '' || v === 0) return true;
  if (v instanceof JsonNumber) return Number(v.text) === 0;
  if (Array.isArray(v)) return v.length === 0;
  if (isMap(v)) return Object.keys(v).length === 0;
  return false;
}

/**
 * The byte string a value prints as, as Go's fmt `%v` prints what ESO's templates hold: a
 * list as `[a b]`, a map as `map[k:v]` in key order, nil inside them as `<nil>`; numbers keep
 * their original text. Nothing prints as "<no value>": nil on its own prints as "".
 */
export function printValue(v: TplValue): string {
  return v === undefined || v === null ? '' : formatGo(v);
}

function formatGo(v: TplValue): string {
  if (typeof v === 'string') return v;
  if (v === undefined || v === null) return '<nil>';
  if (Array.isArray(v)) return `[${v.map(formatGo).join(' ')}]`;
  if (isMap(v))
    return `map[${Object.keys(v)
      .sort()
      .map((k) => `${k}:${formatGo(v[k])}`)
      .join(' ')}]`;
  return String(v);
}

function str(fn: string, v: TplValue): string {
  if (typeof v === 'string') return v;
  if (v === undefined || v === null || isMap(v) || Array.isArray(v)) {
    throw new TemplateError(`${fn}: expected a string argument, got ${describeType(v)}`);
  }
  return String(v);
}

export function describeType(v: TplValue): string {
  if (v === undefined || v === null) return 'nil';
  if (Array.isArray(v)) return 'a list';
  if (isMap(v)) return 'a map';
  if (v instanceof JsonNumber || typeof v === 'number') return 'a number';
  return `a ${typeof v}`;
}

const base64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function equal(a: TplValue, b: TplValue): boolean {
  const norm = (v: TplValue) => (v instanceof JsonNumber ? Number(v.text) : v);
  return norm(a) === norm(b);
}

function index(coll: TplValue, ...keys: TplValue[]): TplValue {
  let cur = coll;
  for (const key of keys) {
    if (isMap(cur)) {
      const k = str('index', key);
      // NOTE: a missing key gives "" (Go's zero value), not an error: `index . "opt"` is how
      // ESO users read optional keys, and `default` then fills in.
      cur = Object.hasOwn(cur, k) ? cur[k] : '';
    } else if (Array.isArray(cur)) {
      const i = Number(key instanceof JsonNumber ? key.text : key);
      // NOTE: the index is not quoted: it may come from a secret value.
      if (!Number.isInteger(i) || i < 0 || i >= cur.length)
        throw new TemplateError(`index: index out of range (the list has ${cur.length} items)`);
      cur = cur[i];
    } else {
      throw new TemplateError(`index: cannot index into ${describeType(cur)}`);
    }
  }
  return cur;
}

const isNumber = (v: TplValue): v is number | JsonNumber =>
  typeof v === 'number' || v instanceof JsonNumber;

/** Decimal integer text of a number, or undefined when it has a fraction or exponent. */
function integerText(v: number | JsonNumber): string | undefined {
  const text = String(v);
  return /^-?\d+$/.test(text) ? text : undefined;
}

/**
 * One argument under one verb, as Go's fmt prints it; a list or map applies the verb to each
 * element (`[1 2]`, `map[k:v]`). Returns undefined where Go would print `%!d(string=…)`: the
 * argument does not fit the verb.
 */
function formatVerb(verb: string, arg: TplValue, prec?: number): string | undefined {
  if (Array.isArray(arg)) {
    const items = arg.map((x) => formatVerb(verb, x, prec));
    return items.every((x) => x !== undefined) ? `[${items.join(' ')}]` : undefined;
  }
  if (isMap(arg)) {
    const keys = Object.keys(arg).sort();
    const items = keys.map((k) => [formatVerb(verb, k, prec), formatVerb(verb, arg[k], prec)]);
    if (items.some(([k, x]) => k === undefined || x === undefined)) return undefined;
    return `map[${items.map(([k, x]) => `${k}:${x}`).join(' ')}]`;
  }
  switch (verb) {
    case 'v':
      return formatGo(arg);
    case 's':
      return typeof arg === 'string' ? (prec === undefined ? arg : arg.slice(0, prec)) : undefined;
    case 'q':
      return typeof arg === 'string' ? bytesOf(JSON.stringify(textOf(arg))) : undefined;
    case 'd':
      return isNumber(arg) ? integerText(arg) : undefined;
    case 'f':
      return isNumber(arg) ? Number(String(arg)).toFixed(prec ?? 6) : undefined;
    case 't':
      return typeof arg === 'boolean' ? String(arg) : undefined;
    case 'x':
    case 'X': {
      let hex: string | undefined;
      if (typeof arg === 'string') hex = Buffer.from(arg, 'latin1').toString('hex');
      else if (isNumber(arg) && integerText(arg) !== undefined) {
        const n = BigInt(integerText(arg) as string);
        hex = n < 0n ? `-${(-n).toString(16)}` : n.toString(16);
      }
      return verb === 'X' ? hex?.toUpperCase() : hex;
    }
  }
  return undefined;
}

/**
 * Go fmt verbs the templates use: %s %v %d %q %x %X %t %f with flags, width and precision.
 *
 * NOTE: where Go writes `%!d(string=…)`, `%!d(MISSING)` or `%!(EXTRA …)` into its output, this
 * fails: that text would carry the argument, a secret value, into the Secret and into errors.
 * The message names the verb and the argument's position and type, never the argument.
 */
function printf(format: TplValue, ...args: TplValue[]): string {
  const fmt = str('printf', format);
  let n = 0;
  const out = fmt.replace(
    /%([-+# 0]*)(\d+)?(?:\.(\d+))?([a-zA-Z%])/g,
    (_m, flags: string, width?: string, prec?: string, verb?: string) => {
      if (verb === '%') return '%';
      if (!'svdfqxXt'.includes(verb as string))
        // the format may be a secret value, so an unknown verb is not quoted
        throw new TemplateError('printf: unsupported verb (supported: %s %v %d %f %q %x %X %t)');
      if (n >= args.length)
        throw new TemplateError(`printf: %${verb} has no argument (${args.length} given)`);
      const arg = args[n++] as TplValue;
      const text = formatVerb(verb as string, arg, prec === undefined ? undefined : Number(prec));
      if (text === undefined)
        throw new TemplateError(`printf: %${verb} does not fit argument ${n}, ${describeType(arg)}`);
      const w = Number(width ?? 0);
      if (text.length >= w) return text;
      if (flags.includes('-')) return text.padEnd(w);
      const zero = flags.includes('0') && 'dfxX'.includes(verb as string);
      if (zero && text.startsWith('-')) return `-${text.slice(1).padStart(w - 1, '0')}`;
      return text.padStart(w, zero ? '0' : ' ');
    },
  );
  if (n < args.length)
    throw new TemplateError(`printf: ${args.length - n} argument(s) more than the format uses`);
  return out;
}

function fromJson(v: TplValue): TplValue {
  try {
    return mapStrings(toJsonValue(parseJsonText(textOf(str('fromJson', v)))), bytesOf);
  } catch (err) {
    if (err instanceof TemplateError) throw err;
    throw new TemplateError('fromJson: the input is not valid JSON');
  }
}

const text1 = (fn: string, f: (t: string) => string) => (v: TplValue) =>
  bytesOf(f(textOf(str(fn, v))));

/** Go name → implementation. Names not here fail translation with `function "x" not defined`. */
export const functions: Record<string, (...args: TplValue[]) => TplValue> = {
  index,
  printf,
  print: (...args) => args.map(printValue).join(''),
  toString: (v: TplValue) => printValue(v),
  default: (dflt, v) => (isEmpty(v) ? dflt : v),
  empty: (v) => isEmpty(v),
  coalesce: (...args) => args.find((a) => !isEmpty(a)) ?? null,
  len: (v) =>
    isMap(v) ? Object.keys(v).length : Array.isArray(v) ? v.length : str('len', v).length,
  hasKey: (m, k) => isMap(m) && Object.hasOwn(m, str('hasKey', k)),
  eq: (a, ...bs) => bs.some((b) => equal(a, b)),
  ne: (a, b) => !equal(a, b),
  not: (v) => isEmpty(v),
  and: (...args) => args.find((a) => isEmpty(a)) ?? args[args.length - 1],
  or: (...args) => args.find((a) => !isEmpty(a)) ?? args[args.length - 1],
  upper: text1('upper', (t) => t.toUpperCase()),
  lower: text1('lower', (t) => t.toLowerCase()),
  trim: text1('trim', (t) => t.trim()),
  trimPrefix: (p, v) => {
    const s = str('trimPrefix', v);
    const prefix = str('trimPrefix', p);
    return s.startsWith(prefix) ? s.slice(prefix.length) : s;
  },
  trimSuffix: (p, v) => {
    const s = str('trimSuffix', v);
    const suffix = str('trimSuffix', p);
    return suffix && s.endsWith(suffix) ? s.slice(0, -suffix.length) : s;
  },
  replace: (from, to, v) => str('replace', v).split(str('replace', from)).join(str('replace', to)),
  contains: (sub, v) => str('contains', v).includes(str('contains', sub)),
  hasPrefix: (p, v) => str('hasPrefix', v).startsWith(str('hasPrefix', p)),
  hasSuffix: (p, v) => str('hasSuffix', v).endsWith(str('hasSuffix', p)),
  join: (sep, list) => {
    if (!Array.isArray(list))
      throw new TemplateError(`join: expected a list, got ${describeType(list)}`);
    // sprig's join leaves nil elements out
    return list
      .filter((x) => x !== null && x !== undefined)
      .map(printValue)
      .join(str('join', sep));
  },
  quote: (...args) =>
    args
      .filter((a) => a != null)
      .map((a) => bytesOf(JSON.stringify(textOf(printValue(a)))))
      .join(' '),
  squote: (...args) =>
    args
      .filter((a) => a != null)
      .map((a) => `'${printValue(a)}'`)
      .join(' '),
  b64enc: (v) => Buffer.from(str('b64enc', v), 'latin1').toString('base64'),
  b64dec: (v) => {
    const s = str('b64dec', v);
    if (!base64.test(s)) throw new TemplateError('b64dec: the input is not valid base64');
    return Buffer.from(s, 'base64').toString('latin1');
  },
  sha256sum: (v) =>
    createHash('sha256')
      .update(Buffer.from(str('sha256sum', v), 'latin1'))
      .digest('hex'),
  toJson: (v) => bytesOf(stringifyJson(mapStrings(v, textOf))),
  fromJson,
};
