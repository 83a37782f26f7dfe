/**
 * Go's `encoding/json` syntax check, with Go's error text ("invalid character '\n' in string
 * literal", "unexpected end of JSON input").
 *
 * The API server validates `kubernetes.io/dockerconfigjson` and `dockercfg` Secrets with Go's
 * decoder, and users search for its exact words (ESO issue 503). The in-memory API
 * (memory-kube.ts) uses this so that `render` reports what the real server would. The messages
 * name at most one character of the input, as the API server's do.
 */

/** Go's quoteChar: the offending byte as Go prints it, in single quotes. */
function quoteChar(c: number): string {
  if (c === 0x27) return "'\\''";
  if (c === 0x22) return `'"'`;
  const named: Record<number, string> = {
    7: '\\a',
    8: '\\b',
    9: '\\t',
    10: '\\n',
    11: '\\v',
    12: '\\f',
    13: '\\r',
    0x5c: '\\\\',
  };
  const hex = (n: number, w: number) => n.toString(16).padStart(w, '0');
  if (named[c]) return `'${named[c]}'`;
  if (c < 0x20 || c === 0x7f) return `'\\x${hex(c, 2)}'`;
  if (c >= 0x80 && c <= 0xa0) return `'\\u${hex(c, 4)}'`;
  if (c === 0xad) return "'\\u00ad'";
  return `'${String.fromCharCode(c)}'`;
}

class SyntaxError_ extends Error {}

const fail = (c: number, context: string) =>
  new SyntaxError_(`invalid character ${quoteChar(c)} ${context}`);
const eof = () => new SyntaxError_('unexpected end of JSON input');

const isSpace = (c: number) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
const isHex = (c: number) => isDigit(c) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);

/**
 * Checks `bytes` as Go's json.Unmarshal into a map would. Returns Go's error text, or undefined
 * when the input is one JSON object.
 */
export function goJsonObjectError(bytes: Buffer): string | undefined {
  const s = bytes;
  let i = 0;
  const peek = () => (i < s.length ? (s[i] as number) : -1);
  const skip = () => {
    while (i < s.length && isSpace(s[i] as number)) i++;
  };

  const value = (): void => {
    skip();
    const c = peek();
    if (c < 0) throw eof();
    if (c === 0x7b) return object();
    if (c === 0x5b) return array();
    if (c === 0x22) return string();
    if (c === 0x2d || isDigit(c)) return number();
    if (c === 0x74) return literal('true');
    if (c === 0x66) return literal('false');
    if (c === 0x6e) return literal('null');
    throw fail(c, 'looking for beginning of value');
  };

  const literal = (word: string): void => {
    for (let k = 1; k < word.length; k++) {
      i++;
      const c = peek();
      if (c < 0) throw eof();
      if (c !== word.charCodeAt(k)) throw fail(c, `in literal ${word} (expecting '${word[k]}')`);
    }
    i++;
  };

  const string = (): void => {
    i++; // opening quote
    for (;;) {
      const c = peek();
      if (c < 0) throw eof();
      i++;
      if (c === 0x22) return;
      if (c === 0x5c) {
        const e = peek();
        if (e < 0) throw eof();
        i++;
        if (e === 0x75) {
          for (let k = 0; k < 4; k++) {
            const h = peek();
            if (h < 0) throw eof();
            if (!isHex(h)) throw fail(h, 'in \\u hexadecimal character escape');
            i++;
          }
        } else if (!'"\\/bfnrt'.includes(String.fromCharCode(e))) {
          throw fail(e, 'in string escape code');
        }
        continue;
      }
      if (c < 0x20) throw fail(c, 'in string literal');
    }
  };

  const digits = (context: string): void => {
    const c = peek();
    if (c < 0) throw eof();
    if (!isDigit(c)) throw fail(c, context);
    while (isDigit(peek())) i++;
  };

  const number = (): void => {
    if (peek() === 0x2d) i++;
    const c = peek();
    if (c < 0) throw eof();
    if (c === 0x30) i++;
    else digits('in numeric literal');
    if (peek() === 0x2e) {
      i++;
      digits('after decimal point in numeric literal');
    }
    if (peek() === 0x65 || peek() === 0x45) {
      i++;
      if (peek() === 0x2b || peek() === 0x2d) i++;
      digits('in exponent of numeric literal');
    }
  };

  const object = (): void => {
    i++;
    skip();
    if (peek() === 0x7d) {
      i++;
      return;
    }
    for (;;) {
      skip();
      const c = peek();
      if (c < 0) throw eof();
      if (c !== 0x22) throw fail(c, 'looking for beginning of object key string');
      string();
      skip();
      const colon = peek();
      if (colon < 0) throw eof();
      if (colon !== 0x3a) throw fail(colon, 'after object key');
      i++;
      value();
      skip();
      const next = peek();
      if (next < 0) throw eof();
      i++;
      if (next === 0x7d) return;
      if (next !== 0x2c) throw fail(next, 'after object key:value pair');
    }
  };

  const array = (): void => {
    i++;
    skip();
    if (peek() === 0x5d) {
      i++;
      return;
    }
    for (;;) {
      value();
      skip();
      const next = peek();
      if (next < 0) throw eof();
      i++;
      if (next === 0x5d) return;
      if (next !== 0x2c) throw fail(next, 'after array element');
    }
  };

  try {
    skip();
    const first = peek();
    value();
    skip();
    if (peek() >= 0) throw fail(peek(), 'after top-level value');
    if (first !== 0x7b) {
      const kind =
        first === 0x5b
          ? 'array'
          : first === 0x22
            ? 'string'
            : first === 0x74 || first === 0x66
              ? 'bool'
              : first === 0x6e
                ? undefined
                : 'number';
      // null unmarshals into a map without error, as in Go
      return kind
        ? `json: cannot unmarshal ${kind} into Go value of type map[string]interface {}`
        : undefined;
    }
    return undefined;
  } catch (err) {
    if (err instanceof SyntaxError_) return err.message;
    throw err;
  }
}
