/**
 * JSON that keeps the original text of every value. JSON.parse turns `1.50` into 1.5 and
 * `12345678901234567890` into 12345678901234567000; a secret copied through the agent must come
 * out byte for byte as the provider holds it, so numbers, booleans and sub-objects are kept as
 * the exact slice of the input they came from.
 *
 * NOTE: errors here never quote the input. V8's own JSON.parse message embeds a slice of the
 * text it failed on, and that text is a secret value.
 */

export type JsonNode =
  | { kind: 'object'; raw: string; entries: Map<string, JsonNode> }
  | { kind: 'array'; raw: string; items: JsonNode[] }
  | { kind: 'string'; raw: string; value: string }
  | { kind: 'number' | 'boolean' | 'null'; raw: string };

/** A number as the provider wrote it; prints as its original text. */
export class JsonNumber {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
  toString(): string {
    return this.text;
  }
}

/** Plain values for templates: objects, arrays, strings, booleans, null and JsonNumber. */
export type JsonValue =
  string | boolean | null | JsonNumber | JsonValue[] | { [key: string]: JsonValue };

/**
 * Parses `text` into nodes that remember their source text. Throws an Error whose message says
 * only that (and where) the text is not JSON.
 */
export function parseJsonText(text: string): JsonNode {
  try {
    JSON.parse(text);
  } catch {
    throw new Error('the value is not valid JSON');
  }
  const [node] = parseValue(text, skipSpace(text, 0));
  return node;
}

const whitespace = new Set([' ', '\t', '\n', '\r']);

function skipSpace(s: string, i: number): number {
  while (i < s.length && whitespace.has(s[i] as string)) i++;
  return i;
}

// The input has passed JSON.parse, so the scanner below only finds where each value ends.
function parseValue(s: string, start: number): [JsonNode, number] {
  const c = s[start];
  if (c === '{') return parseObject(s, start);
  if (c === '[') return parseArray(s, start);
  if (c === '"') {
    const end = stringEnd(s, start);
    const raw = s.slice(start, end);
    return [{ kind: 'string', raw, value: JSON.parse(raw) as string }, end];
  }
  let end = start;
  while (end < s.length && !/[\s,\]}]/.test(s[end] as string)) end++;
  const raw = s.slice(start, end);
  const kind = raw === 'null' ? 'null' : raw === 'true' || raw === 'false' ? 'boolean' : 'number';
  return [{ kind, raw }, end];
}

function stringEnd(s: string, start: number): number {
  let i = start + 1;
  while (s[i] !== '"') i += s[i] === '\\' ? 2 : 1;
  return i + 1;
}

function parseObject(s: string, start: number): [JsonNode, number] {
  const entries = new Map<string, JsonNode>();
  let i = skipSpace(s, start + 1);
  while (s[i] !== '}') {
    const keyEnd = stringEnd(s, i);
    const key = JSON.parse(s.slice(i, keyEnd)) as string;
    i = skipSpace(s, skipSpace(s, keyEnd) + 1); // past the ':'
    const [value, end] = parseValue(s, i);
    entries.delete(key); // a repeated key wins and moves to its last position, as in JSON.parse
    entries.set(key, value);
    i = skipSpace(s, end);
    if (s[i] === ',') i = skipSpace(s, i + 1);
  }
  return [{ kind: 'object', raw: s.slice(start, i + 1), entries }, i + 1];
}

function parseArray(s: string, start: number): [JsonNode, number] {
  const items: JsonNode[] = [];
  let i = skipSpace(s, start + 1);
  while (s[i] !== ']') {
    const [value, end] = parseValue(s, i);
    items.push(value);
    i = skipSpace(s, end);
    if (s[i] === ',') i = skipSpace(s, i + 1);
  }
  return [{ kind: 'array', raw: s.slice(start, i + 1), items }, i + 1];
}

/**
 * The text a Secret gets for a node: a string's decoded value, an empty string for null, and
 * the original JSON text for numbers, booleans, objects and arrays.
 */
export function nodeText(node: JsonNode): string {
  if (node.kind === 'string') return node.value;
  if (node.kind === 'null') return '';
  return node.raw;
}

/** Converts a node into plain values for templates; numbers become JsonNumber. */
export function toJsonValue(node: JsonNode): JsonValue {
  switch (node.kind) {
    case 'object': {
      const out: { [key: string]: JsonValue } = Object.create(null);
      for (const [k, v] of node.entries) out[k] = toJsonValue(v);
      return out;
    }
    case 'array':
      return node.items.map(toJsonValue);
    case 'string':
      return node.value;
    case 'number':
      return new JsonNumber(node.raw);
    case 'boolean':
      return node.raw === 'true';
    case 'null':
      return null;
  }
}

/**
 * JSON text for a value, with numbers written as their original text and nothing escaped that
 * JSON does not require (`<`, `>` and `&` stay as they are).
 */
export function stringifyJson(value: unknown): string {
  if (value instanceof JsonNumber) return value.text;
  if (Array.isArray(value)) return `[${value.map(stringifyJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const parts = Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}:${stringifyJson(v)}`);
    return `{${parts.join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}
