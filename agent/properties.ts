/**
 * One resolver for `remoteRef.property` and `dataFrom.extract`, the same for every provider.
 *
 * A property names the literal top-level key first (dots and all, so `foo.bar` finds the key
 * "foo.bar"), then a nested path: dot-separated object keys and array indexes (`list.1`), with
 * `\.` for a dot inside one segment. Strings give their decoded text, null gives an empty value,
 * and numbers, booleans, objects and arrays give their original JSON text (`1.50` stays `1.50`).
 *
 * Errors name the remote key and the property, never the value.
 */
import { InvalidDataError, NotFoundError } from './errors.ts';
import { nodeText, parseJsonText, type JsonNode } from './json-text.ts';

function asText(value: Buffer | string): string {
  return typeof value === 'string' ? value : value.toString('utf8');
}

/** Splits a property path on dots that are not escaped with a backslash. */
export function splitPath(property: string): string[] {
  const segments: string[] = [];
  let current = '';
  for (let i = 0; i < property.length; i++) {
    const c = property[i];
    if (c === '\\' && property[i + 1] === '.') {
      current += '.';
      i++;
    } else if (c === '.') {
      segments.push(current);
      current = '';
    } else {
      current += c;
    }
  }
  segments.push(current);
  return segments;
}

function findNode(doc: JsonNode, property: string): JsonNode | undefined {
  if (doc.kind === 'object' && doc.entries.has(property)) return doc.entries.get(property);

  let node: JsonNode | undefined = doc;
  for (const segment of splitPath(property)) {
    if (node?.kind === 'object') node = node.entries.get(segment);
    else if (node?.kind === 'array' && /^\d+$/.test(segment)) node = node.items[Number(segment)];
    else return undefined;
  }
  return node;
}

/**
 * The text of `property` inside the JSON secret `value`. Throws NotFoundError when the property
 * does not exist, InvalidDataError when the value is not JSON.
 */
export function selectProperty(
  value: Buffer | string,
  property: string,
  remoteKey: string,
): string {
  let doc: JsonNode;
  try {
    doc = parseJsonText(asText(value));
  } catch (err) {
    throw new InvalidDataError(
      `secret ${remoteKey}: cannot read property ${property}: ${(err as Error).message}`,
    );
  }
  const node = findNode(doc, property);
  if (node === undefined) {
    throw new NotFoundError(`key ${property} does not exist in secret ${remoteKey}`);
  }
  return nodeText(node);
}

/**
 * The top-level entries of a JSON object secret, in their order, each as Secret text. Anything
 * but a JSON object is an InvalidDataError, as in ESO ("unable to unmarshal secret from JSON").
 */
export function extractEntries(value: Buffer | string, remoteKey: string): [string, string][] {
  let doc: JsonNode;
  try {
    doc = parseJsonText(asText(value));
  } catch (err) {
    throw new InvalidDataError(
      `secret ${remoteKey}: unable to unmarshal secret from JSON: ${(err as Error).message}`,
    );
  }
  if (doc.kind !== 'object') {
    const got = doc.kind === 'array' ? 'an array' : `a ${doc.kind}`;
    throw new InvalidDataError(
      `secret ${remoteKey}: unable to unmarshal secret from JSON: expected a JSON object, got ${got}`,
    );
  }
  return [...doc.entries].map(([k, node]) => [k, nodeText(node)]);
}
