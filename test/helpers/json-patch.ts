/**
 * A small RFC 6902 applier for tests: `add`, `replace` and `remove` only, strict in the way the
 * API server is. A missing parent, an index past the end or an unknown member is an error rather
 * than something created on the fly, so a patch that works here also applies there.
 */

export type PatchOp =
  | { op: 'add'; path: string; value: unknown }
  | { op: 'replace'; path: string; value: unknown }
  | { op: 'remove'; path: string };

/** Returns a patched deep copy of `doc`; `doc` itself is not changed. */
export function applyPatch<T>(doc: T, ops: readonly PatchOp[]): T {
  let root: unknown = structuredClone(doc);
  for (const op of ops) root = applyOne(root, op);
  return root as T;
}

function applyOne(root: unknown, op: PatchOp): unknown {
  const segments = parsePointer(op.path);
  const value = op.op === 'remove' ? undefined : structuredClone(op.value);
  if (segments.length === 0) {
    if (op.op === 'remove') throw new Error('cannot remove the whole document');
    return value;
  }
  const last = segments.pop()!;
  const parent = resolve(root, segments, op.path);

  if (Array.isArray(parent)) {
    const index = last === '-' && op.op === 'add' ? parent.length : arrayIndex(last, op.path);
    const max = op.op === 'add' ? parent.length : parent.length - 1;
    if (index > max) throw new Error(`${op.op} ${op.path}: index ${index} is out of range`);
    if (op.op === 'add') parent.splice(index, 0, value);
    else if (op.op === 'replace') parent[index] = value;
    else parent.splice(index, 1);
    return root;
  }
  if (parent === null || typeof parent !== 'object') {
    throw new Error(`${op.op} ${op.path}: parent is not an object or array`);
  }
  const object = parent as Record<string, unknown>;
  if (op.op !== 'add' && !Object.hasOwn(object, last)) {
    throw new Error(`${op.op} ${op.path}: no member "${last}"`);
  }
  if (op.op === 'remove') delete object[last];
  else object[last] = value;
  return root;
}

/** Splits a JSON Pointer (RFC 6901) into unescaped segments. */
export function parsePointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw new Error(`JSON Pointer must start with "/": ${path}`);
  return path
    .slice(1)
    .split('/')
    .map((s) => {
      if (/~[^01]|~$/.test(s)) throw new Error(`bad escape in JSON Pointer ${path}`);
      return s.replaceAll('~1', '/').replaceAll('~0', '~');
    });
}

function resolve(root: unknown, segments: string[], path: string): unknown {
  let node = root;
  for (const s of segments) {
    if (Array.isArray(node)) node = node[arrayIndex(s, path)];
    else if (node !== null && typeof node === 'object' && Object.hasOwn(node, s)) {
      node = (node as Record<string, unknown>)[s];
    } else node = undefined;
    if (node === undefined) throw new Error(`${path}: "${s}" does not exist`);
  }
  return node;
}

function arrayIndex(segment: string, path: string): number {
  if (!/^(0|[1-9]\d*)$/.test(segment))
    throw new Error(`${path}: "${segment}" is not an array index`);
  return Number(segment);
}
