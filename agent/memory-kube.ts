/**
 * An in-memory stand-in for the few API-server paths the agent's sync uses. `render` runs the
 * agent's pipeline against it, and the unit tests use it as their fake API server.
 *
 * It is not a Kubernetes API server: no admission, no RBAC beyond the `forbid` list, no
 * watches, no defaulting. It does check what the API server checks on Secrets and what users
 * run into (secret-rules below): key names, the keys and JSON a Secret type requires, the
 * immutability of `type` and of an immutable Secret's data, with the API server's words, so
 * that `render` fails where the real sync would.
 *
 * Objects live under their item path (`/api/v1/namespaces/ns/secrets/name`); every call is
 * recorded in `calls`, so callers can count writes.
 */
import { KubeApiError } from './errors.ts';
import { goJsonObjectError } from './go-json.ts';
import type { KubeApi, Secret } from './types.ts';

export interface Call {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  body?: unknown;
}

export type StoredObject = {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    generateName?: string;
    resourceVersion?: string;
    uid?: string;
  };
} & Record<string, unknown>;

function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    target && typeof target === 'object' && !Array.isArray(target) ? { ...(target as object) } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

const isSecretPath = (path: string) => /^\/api\/v1\/namespaces\/[^/]+\/secrets(\/|$)/.test(path);

export class MemoryKube implements KubeApi {
  readonly objects = new Map<string, StoredObject>();
  readonly calls: Call[] = [];
  /** Path prefixes that answer 403. */
  readonly forbid: string[] = [];
  /** Versions of external-secrets.io served. */
  servedVersions = ['v1', 'v1beta1'];
  #rv = 1;
  #uid = 1;

  /** Stores `obj` under `path` (an item path), giving it a uid and a new resourceVersion. */
  put<T extends object>(path: string, obj: T): T {
    const o = structuredClone(obj) as StoredObject;
    o.metadata = { uid: `uid-${this.#uid++}`, ...o.metadata, resourceVersion: String(this.#rv++) };
    this.objects.set(path, o);
    return o as unknown as T;
  }

  /** A copy of the object at `path`, or undefined. */
  object<T>(path: string): T | undefined {
    const o = this.objects.get(path);
    return o === undefined ? undefined : (structuredClone(o) as T);
  }

  /** Calls that changed something (POST, PUT, PATCH, DELETE). */
  writes(): Call[] {
    return this.calls.filter((c) => c.method !== 'GET');
  }

  events(): StoredObject[] {
    return [...this.objects.entries()].filter(([p]) => p.includes('/events/')).map(([, o]) => o);
  }

  protected check(method: Call['method'], path: string, body?: unknown): void {
    this.calls.push(
      body === undefined ? { method, path } : { method, path, body: structuredClone(body) },
    );
    if (this.forbid.some((p) => path.startsWith(p))) {
      throw new KubeApiError(403, 'Forbidden', `${method} ${path}: 403 Forbidden: not allowed`);
    }
  }

  #notFound(method: string, path: string): KubeApiError {
    const name = path.split('/').at(-1);
    return new KubeApiError(
      404,
      'NotFound',
      `${method} ${path}: 404 NotFound: "${name}" not found`,
    );
  }

  async get<T>(path: string): Promise<T> {
    this.check('GET', path);
    if (path === '/apis/external-secrets.io') {
      return { versions: this.servedVersions.map((version) => ({ version })) } as T;
    }
    const o = this.object<T>(path);
    if (o === undefined) throw this.#notFound('GET', path);
    return o;
  }

  async create<T>(path: string, body: unknown): Promise<T> {
    this.check('POST', path, body);
    const o = body as StoredObject;
    const name = o.metadata?.name ?? `${o.metadata?.generateName ?? 'obj-'}${this.#uid}`;
    const itemPath = `${path}/${name}`;
    if (this.objects.has(itemPath)) {
      throw new KubeApiError(
        409,
        'AlreadyExists',
        `POST ${path}: 409 AlreadyExists: "${name}" already exists`,
      );
    }
    const obj = { ...o, metadata: { ...o.metadata, name } };
    if (isSecretPath(path)) invalid('POST', path, name, validateSecret(obj as unknown as Secret));
    return this.put(itemPath, obj) as T;
  }

  async replace<T>(path: string, body: unknown): Promise<T> {
    this.check('PUT', path, body);
    const live = this.objects.get(path);
    if (!live) throw this.#notFound('PUT', path);
    const o = body as StoredObject;
    if (o.metadata?.resourceVersion !== live.metadata?.resourceVersion) {
      throw new KubeApiError(
        409,
        'Conflict',
        `PUT ${path}: 409 Conflict: the object has been modified; please apply your changes to the latest version and try again`,
      );
    }
    if (isSecretPath(path)) {
      const next = o as unknown as Secret;
      invalid('PUT', path, path.split('/').at(-1) ?? '', [
        ...validateSecret(next),
        ...validateSecretUpdate(next, live as unknown as Secret),
      ]);
    }
    return this.put(path, { ...o, metadata: { ...o.metadata, uid: live.metadata?.uid } }) as T;
  }

  async patch<T>(path: string, body: unknown): Promise<T> {
    this.check('PATCH', path, body);
    const itemPath = path.replace(/\/status$/, '');
    const live = this.objects.get(itemPath);
    if (!live) throw this.#notFound('PATCH', path);
    return this.put(itemPath, mergePatch(live, body) as StoredObject) as T;
  }

  async delete<T>(path: string): Promise<T> {
    this.check('DELETE', path);
    const live = this.objects.get(path);
    if (!live) throw this.#notFound('DELETE', path);
    this.objects.delete(path);
    return { kind: 'Status', status: 'Success' } as T;
  }
}

// --- secret-rules: what the API server refuses in a Secret (pkg/apis/core/validation) ---

/** Throws the API server's 422 Invalid for `problems`, if any. */
function invalid(method: string, path: string, name: string, problems: string[]): void {
  if (problems.length === 0) return;
  const list = problems.length === 1 ? problems[0] : `[${problems.join(', ')}]`;
  throw new KubeApiError(
    422,
    'Invalid',
    `${method} ${path}: 422 Invalid: Secret "${name}" is invalid: ${list}`,
  );
}

const KEY_PATTERN = /^[-._a-zA-Z0-9]+$/;
/** The API server's limit on a Secret's data, 1 MiB. */
const MAX_SECRET_BYTES = 1024 * 1024;

/** The API server's checks of one Secret, as "field: problem" lines. */
export function validateSecret(secret: Secret): string[] {
  const problems: string[] = validateMetadata(secret.metadata);
  const data = secret.data ?? {};
  let total = 0;
  for (const [key, value] of Object.entries(data)) {
    // apimachinery's IsConfigMapKey: one error per broken rule, the key quoted whole
    const at = `data[${key}]: Invalid value: ${JSON.stringify(key)}`;
    if (key.length > 253) problems.push(`${at}: must be no more than 253 characters`);
    if (!KEY_PATTERN.test(key))
      problems.push(
        `${at}: a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')`,
      );
    if (key === '.') problems.push(`${at}: must not be '.'`);
    else if (key === '..') problems.push(`${at}: must not be '..'`);
    else if (key.startsWith('..')) problems.push(`${at}: must not start with '..'`);
    total += Buffer.from(value, 'base64').length;
  }
  if (total > MAX_SECRET_BYTES)
    problems.push(`data: Too long: must have at most ${MAX_SECRET_BYTES} bytes`);

  const bytes = (key: string) =>
    key in data ? Buffer.from(data[key] as string, 'base64') : undefined;
  const required = (key: string) => `data[${key}]: Required value`;
  switch (secret.type ?? 'Opaque') {
    case 'kubernetes.io/dockerconfigjson':
    case 'kubernetes.io/dockercfg': {
      const key = secret.type === 'kubernetes.io/dockercfg' ? '.dockercfg' : '.dockerconfigjson';
      const value = bytes(key);
      if (value === undefined) {
        problems.push(required(key));
        break;
      }
      const error = goJsonObjectError(value);
      if (error)
        problems.push(`data[${key}]: Invalid value: "<secret contents redacted>": ${error}`);
      break;
    }
    case 'kubernetes.io/basic-auth':
      if (!('username' in data) && !('password' in data))
        problems.push(required('username'), required('password'));
      break;
    case 'kubernetes.io/ssh-auth':
      if (!bytes('ssh-privatekey')?.length) problems.push(required('ssh-privatekey'));
      break;
    case 'kubernetes.io/tls':
      if (!('tls.crt' in data)) problems.push(required('tls.crt'));
      if (!('tls.key' in data)) problems.push(required('tls.key'));
      break;
    case 'kubernetes.io/service-account-token':
      if (!secret.metadata.annotations?.['kubernetes.io/service-account.name'])
        problems.push('metadata.annotations[kubernetes.io/service-account.name]: Required value');
      break;
  }
  return problems;
}

// --- metadata-rules: ValidateObjectMeta (apimachinery pkg/api/validation, validate/content) ---

const DNS1123_SUBDOMAIN = '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*';
const LABEL_KEY_NAME = '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]';
const LABEL_VALUE = `(${LABEL_KEY_NAME})?`;
const dns1123Subdomain = new RegExp(`^${DNS1123_SUBDOMAIN}$`);
const labelKeyName = new RegExp(`^${LABEL_KEY_NAME}$`);
const labelValue = new RegExp(`^${LABEL_VALUE}$`);
/** The API server's limit on the annotations of one object: keys plus values, 256 KiB. */
const MAX_ANNOTATION_BYTES = 256 * 1024;

const utf8Length = (s: string) => Buffer.byteLength(s, 'utf8');
const regexError = (msg: string, re: string, ...examples: string[]) =>
  `${msg} (e.g. ${examples.map((e) => `'${e}', `).join(' or ')}regex used for validation is '${re}')`;
const LABEL_KEY_MSG =
  "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const SUBDOMAIN_MSG =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";

/**
 * IsDNS1123Subdomain. The name check (util/validation) says "characters", the label-key prefix
 * check (validate/content) says "bytes"; both count bytes.
 */
function subdomainProblems(value: string, unit: 'bytes' | 'characters'): string[] {
  const out: string[] = [];
  if (utf8Length(value) > 253) out.push(`must be no more than 253 ${unit}`);
  if (!dns1123Subdomain.test(value))
    out.push(regexError(SUBDOMAIN_MSG, DNS1123_SUBDOMAIN, 'example.com'));
  return out;
}

/** IsLabelKey, a "qualified name" (validate/content/kube.go). */
function labelKeyProblems(key: string): string[] {
  const parts = key.split('/');
  if (parts.length > 2)
    return [
      `a valid label key ${regexError(LABEL_KEY_MSG, LABEL_KEY_NAME, 'MyName', 'my.name', '123-abc')} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')`,
    ];
  const out: string[] = [];
  const name = parts.at(-1) as string;
  if (parts.length === 2) {
    const prefix = parts[0] as string;
    if (prefix === '') out.push('prefix part must be non-empty');
    else out.push(...subdomainProblems(prefix, 'bytes').map((m) => `prefix part ${m}`));
  }
  if (name === '') out.push('name part must be non-empty');
  else if (utf8Length(name) > 63) out.push('name part must be no more than 63 bytes');
  if (!labelKeyName.test(name))
    out.push(
      `name part ${regexError(LABEL_KEY_MSG, LABEL_KEY_NAME, 'MyName', 'my.name', '123-abc')}`,
    );
  return out;
}

/** IsLabelValue (validate/content/kube.go). */
function labelValueProblems(value: string): string[] {
  const out: string[] = [];
  if (utf8Length(value) > 63) out.push('must be no more than 63 bytes');
  if (!labelValue.test(value))
    out.push(
      regexError(
        "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
        LABEL_VALUE,
        'MyValue',
        'my_value',
        '12345',
      ),
    );
  return out;
}

/** Go's %q of a string, as field.Invalid prints a bad value. */
export function goQuote(s: string): string {
  const named: Record<string, string> = {
    '\x07': '\\a',
    '\b': '\\b',
    '\f': '\\f',
    '\n': '\\n',
    '\r': '\\r',
    '\t': '\\t',
    '\v': '\\v',
    '"': '\\"',
    '\\': '\\\\',
  };
  let out = '"';
  for (const c of s) {
    const cp = c.codePointAt(0) as number;
    if (named[c]) out += named[c];
    else if (cp < 0x20 || cp === 0x7f) out += `\\x${cp.toString(16).padStart(2, '0')}`;
    else if (cp >= 0x80 && cp < 0xa0) out += `\\u${cp.toString(16).padStart(4, '0')}`;
    else out += c;
  }
  return `${out}"`;
}

/**
 * The API server's checks of a Secret's metadata, in its order: name (a DNS-1123 subdomain),
 * labels (each key, then its value), annotations (each key, then the total size).
 *
 * NOTE: the API server quotes a bad label value or annotation key in its message, as here.
 * Label values may be rendered from templates; the agent's own errors from this come only
 * from the API server's words, which users compare with kubectl's.
 */
export function validateMetadata(meta: Secret['metadata']): string[] {
  const problems: string[] = [];
  const invalid = (field: string, value: string, msg: string) =>
    problems.push(`${field}: Invalid value: ${goQuote(value)}: ${msg}`);
  const name = meta.name ?? '';
  if (name === '') problems.push('metadata.name: Required value: name or generateName is required');
  else for (const msg of subdomainProblems(name, 'characters')) invalid('metadata.name', name, msg);
  for (const [key, value] of Object.entries(meta.labels ?? {})) {
    for (const msg of labelKeyProblems(key)) invalid('metadata.labels', key, msg);
    for (const msg of labelValueProblems(value)) invalid('metadata.labels', value, msg);
  }
  let size = 0;
  for (const [key, value] of Object.entries(meta.annotations ?? {})) {
    for (const msg of labelKeyProblems(key.toLowerCase())) invalid('metadata.annotations', key, msg);
    size += utf8Length(key) + utf8Length(value);
  }
  if (size > MAX_ANNOTATION_BYTES)
    problems.push(`metadata.annotations: Too long: may not be more than ${MAX_ANNOTATION_BYTES} bytes`);
  return problems;
}

/** The API server's checks of a Secret update: `type` never changes; immutable data stays. */
export function validateSecretUpdate(next: Secret, live: Secret): string[] {
  const problems: string[] = [];
  const nextType = next.type ?? 'Opaque';
  if (nextType !== (live.type ?? 'Opaque'))
    problems.push(`type: Invalid value: ${JSON.stringify(nextType)}: field is immutable`);
  if (live.immutable) {
    const a = live.data ?? {};
    const b = next.data ?? {};
    const same =
      Object.keys(a).length === Object.keys(b).length &&
      Object.entries(a).every(([k, v]) => b[k] === v);
    if (!same) problems.push('data: Forbidden: field is immutable when `immutable` is set');
    if (!next.immutable)
      problems.push('immutable: Forbidden: field is immutable when `immutable` is set');
  }
  return problems;
}
