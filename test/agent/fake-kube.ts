/**
 * An in-memory stand-in for the few API-server paths the agent's sync uses, for unit tests.
 * It is not a Kubernetes API server: no validation, no admission, no RBAC beyond the `forbid`
 * list. Behaviour through the real API server is the end-to-end test's job.
 *
 * Objects live under their item path (`/api/v1/namespaces/ns/secrets/name`); every call is
 * recorded in `calls`, so tests can count writes.
 */
import { KubeApiError } from '../../agent/errors.ts';
import type { KubeApi } from '../../agent/types.ts';

export interface Call {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH';
  path: string;
  body?: unknown;
}

type Obj = {
  metadata?: { name?: string; generateName?: string; resourceVersion?: string; uid?: string };
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

export class FakeKube implements KubeApi {
  readonly objects = new Map<string, Obj>();
  readonly calls: Call[] = [];
  /** Path prefixes that answer 403. */
  readonly forbid: string[] = [];
  /** Versions of external-secrets.io served. */
  servedVersions = ['v1', 'v1beta1'];
  #rv = 1;
  #uid = 1;

  /** Stores `obj` under `path` (an item path), giving it a uid and resourceVersion. */
  put<T extends object>(path: string, obj: T): T {
    const o = structuredClone(obj) as Obj;
    o.metadata = { uid: `uid-${this.#uid++}`, ...o.metadata, resourceVersion: String(this.#rv++) };
    this.objects.set(path, o);
    return o as unknown as T;
  }

  object<T>(path: string): T | undefined {
    const o = this.objects.get(path);
    return o === undefined ? undefined : (structuredClone(o) as T);
  }

  /** Calls that changed something (POST, PUT, PATCH). */
  writes(): Call[] {
    return this.calls.filter((c) => c.method !== 'GET');
  }

  events(): Obj[] {
    return [...this.objects.entries()].filter(([p]) => p.includes('/events/')).map(([, o]) => o);
  }

  #check(method: Call['method'], path: string, body?: unknown): void {
    this.calls.push(
      body === undefined ? { method, path } : { method, path, body: structuredClone(body) },
    );
    if (this.forbid.some((p) => path.startsWith(p))) {
      throw new KubeApiError(
        403,
        'Forbidden',
        `${method} ${path}: 403 Forbidden: fake: not allowed`,
      );
    }
  }

  #notFound(method: string, path: string): KubeApiError {
    return new KubeApiError(404, 'NotFound', `${method} ${path}: 404 NotFound: fake: not found`);
  }

  async get<T>(path: string): Promise<T> {
    this.#check('GET', path);
    if (path === '/apis/external-secrets.io') {
      return { versions: this.servedVersions.map((version) => ({ version })) } as T;
    }
    const o = this.object<T>(path);
    if (o === undefined) throw this.#notFound('GET', path);
    return o;
  }

  async create<T>(path: string, body: unknown): Promise<T> {
    this.#check('POST', path, body);
    const o = body as Obj;
    if (path.endsWith('/token')) {
      return { status: { token: `token-for-${path.split('/').at(-2)}` } } as T;
    }
    const name = o.metadata?.name ?? `${o.metadata?.generateName ?? 'obj-'}${this.#uid}`;
    const itemPath = `${path}/${name}`;
    if (this.objects.has(itemPath))
      throw new KubeApiError(409, 'AlreadyExists', `POST ${path}: 409 AlreadyExists`);
    return this.put(itemPath, { ...o, metadata: { ...o.metadata, name } }) as T;
  }

  async replace<T>(path: string, body: unknown): Promise<T> {
    this.#check('PUT', path, body);
    const live = this.objects.get(path);
    if (!live) throw this.#notFound('PUT', path);
    const o = body as Obj;
    if (o.metadata?.resourceVersion !== live.metadata?.resourceVersion) {
      throw new KubeApiError(
        409,
        'Conflict',
        `PUT ${path}: 409 Conflict: the object has been modified`,
      );
    }
    return this.put(path, o) as T;
  }

  async patch<T>(path: string, body: unknown): Promise<T> {
    this.#check('PATCH', path, body);
    const itemPath = path.replace(/\/status$/, '');
    const live = this.objects.get(itemPath);
    if (!live) throw this.#notFound('PATCH', path);
    return this.put(itemPath, mergePatch(live, body) as Obj) as T;
  }
}
