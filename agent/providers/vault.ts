/**
 * HashiCorp Vault and OpenBao, KV secrets engine version 1 or 2 (`spec.provider.vault`).
 *
 * Reads: `remoteRef.key` is a path under the store's mount (`path`); KV v2 reads
 * `<mount>/data/<key>` (`?version=N` with `remoteRef.version`), KV v1 `<mount>/<key>`. A key that
 * already starts with the mount (or `<mount>/data/`) is not prefixed twice, and without a mount
 * KV v2 puts `data` after the key's first segment, as ESO does. The value handed to the sync is
 * the JSON text of the secret's data map, exactly as the server sent it, so `property` and
 * `dataFrom.extract` work through agent/properties.ts like for every provider. A deleted or
 * destroyed version, and a missing secret, are NotFoundError. `metadataPolicy: Fetch` (KV v2)
 * reads `<mount>/metadata/<key>` instead: `custom_metadata` plus `created_time`,
 * `current_version` and `delete_version_after`, as ESO returns them (the sync passes
 * `metadataPolicy` in the ref).
 *
 * Authentication, the first method the store names:
 * - `tokenSecretRef`: a Vault token kept in a Kubernetes Secret (no login, no renewal).
 * - `kubernetes` (mount `mountPath`, default "kubernetes"; `role`): the JWT is a token requested
 *   for `serviceAccountRef` (audience "vault" unless it lists audiences), or the `secretRef`
 *   key (default key "token"), or else the pod's projected token file: ESA_PROVIDER_TOKEN_FILE
 *   (audience from the pod's `token-audience` annotation), else the agent's API token file.
 * - `jwt` (mount `path`, default "jwt"; `role`): a token requested through
 *   `kubernetesServiceAccountToken` (audiences default "vault", expirationSeconds default 600),
 *   or the `secretRef` key, or else the same token files as above.
 * - `appRole` (mount `path`, default "approle"): role id from `roleId` or `roleRef`, secret id
 *   from `secretRef`.
 * Tokens are requested only for the pod's own service account, bound to the pod. Token files
 * are read again before every login, because the kubelet rotates them in place.
 *
 * The Vault token lives in this process's memory only. It is kept across sync passes (one login
 * per store, not one per refresh), renewed with `auth/token/renew-self` once two thirds of its
 * TTL have passed, and replaced by a new login when it cannot be renewed, is close to its max
 * TTL, or is refused (403) after having worked. It never appears in a log line or an error.
 * NOTE: renewal is lazy, done by the read that finds the token due; no timer runs between
 * passes. When the refresh interval is longer than the token TTL the token has expired by the
 * next pass, and that pass logs in again: one login per pass, never more.
 *
 * Connection: `caBundle` (base64 PEM) or `caProvider` (a Secret or ConfigMap key) replaces the
 * system roots; `tls.certSecretRef`/`keySecretRef` add a client certificate. `namespace` is
 * sent as X-Vault-Namespace, `headers` with every request, `forwardInconsistent` as
 * X-Vault-Inconsistent: forward-active-node, and `readYourWrites` sends back the last
 * X-Vault-Index the server returned.
 *
 * NOTE: this provider speaks HTTP through node:http/https rather than the `node-vault` package.
 * node-vault 0.12 hands back neither response headers (readYourWrites needs X-Vault-Index) nor
 * an abort hook (a pass's AbortSignal could not stop a hung request), logs request bodies
 * (login JWTs, AppRole secret ids) under DEBUG=node-vault, and with axios added about 12 MiB to
 * a process that had made one request (72 MiB against 60 MiB with node:http, measured here).
 * The calls used are few: one GET per read, one POST per login or renewal.
 *
 * `dataFrom.find` lists `<mount>/metadata/<path>/` (KV v1: `<mount>/<path>/`) recursively,
 * keeps the names that match `name.regexp` (Go syntax, unanchored, on the name relative to the
 * mount) and whose metadata carries every `tags` entry (KV v2 only), and reads each: the result
 * maps each name to its data map's JSON text. A match whose current version is deleted is left
 * out. Needs `list` on the metadata path in the Vault policy, and the store's `path`.
 *
 * Not implemented yet, each refused with UnsupportedError naming it: the `cert`, `ldap`,
 * `userPass` and `iam` auth methods.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { ConfigError, NotFoundError, ProviderError, UnsupportedError } from '../errors.ts';
import { compileGoRegexp, matchesGo } from '../go-regexp.ts';
import { parseJsonText, type JsonNode } from '../json-text.ts';
import type { CAProvider, SecretKeySelector, ServiceAccountSelector } from '../types.ts';
import type { FindRef, Provider, ProviderContext, SecretRef, SecretValue } from './provider.ts';
import { storeLabel } from './provider.ts';
import {
  readPodTokenFile,
  readStoreKey,
  requestServiceAccountToken,
  TOKEN_REQUEST_MIN_SECONDS,
} from './store-credentials.ts';

/** The fields of `spec.provider.vault` this agent reads. */
export interface VaultProviderSpec {
  server?: string;
  path?: string;
  version?: 'v1' | 'v2';
  namespace?: string;
  /** Base64 of a PEM bundle. */
  caBundle?: string;
  caProvider?: CAProvider;
  readYourWrites?: boolean;
  forwardInconsistent?: boolean;
  headers?: Record<string, string>;
  tls?: { certSecretRef?: SecretKeySelector; keySecretRef?: SecretKeySelector };
  auth?: VaultAuthSpec;
}

export interface VaultAuthSpec {
  tokenSecretRef?: SecretKeySelector;
  kubernetes?: {
    mountPath?: string;
    role?: string;
    serviceAccountRef?: ServiceAccountSelector;
    secretRef?: SecretKeySelector;
  };
  jwt?: {
    path?: string;
    role?: string;
    secretRef?: SecretKeySelector;
    kubernetesServiceAccountToken?: {
      serviceAccountRef?: ServiceAccountSelector;
      audiences?: string[];
      expirationSeconds?: number;
    };
  };
  appRole?: {
    path?: string;
    roleId?: string;
    roleRef?: SecretKeySelector;
    secretRef?: SecretKeySelector;
  };
  cert?: unknown;
  ldap?: unknown;
  userPass?: unknown;
  iam?: unknown;
}

/** A remote reference as the Vault provider reads it: the sync's, plus the metadata policy. */
export interface VaultSecretRef extends SecretRef {
  metadataPolicy?: 'None' | 'Fetch';
}

/** One HTTP request to the Vault API. */
export interface VaultHttpRequest {
  method: 'GET' | 'POST';
  /** The API path after `/v1/`, segments already escaped. */
  path: string;
  query?: Record<string, string>;
  headers: Record<string, string>;
  body?: unknown;
  signal: AbortSignal;
}

export interface VaultHttpResponse {
  status: number;
  /** Lower-case header names. */
  headers: Record<string, string | undefined>;
  text: string;
}

/**
 * The one call the provider makes, as a narrow type tests can fake. It resolves with any HTTP
 * status and rejects only when no answer came (refused, reset, timed out, aborted).
 */
export interface VaultHttp {
  send(request: VaultHttpRequest): Promise<VaultHttpResponse>;
  close?(): void;
}

export const DEFAULT_VAULT_AUDIENCE = 'vault';
const REQUEST_TIMEOUT_MS = 30_000;

// ---------------------------------------------------------------------------------------------
// Paths

/** Escapes each segment of a Vault path, keeping the slashes. */
function escapePath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/');
}

function trimSlashes(s: string): string {
  return s.replace(/^\/+|\/+$/g, '');
}

/**
 * The key relative to `mount`: without a leading `<mount>/`, and for KV v2 without the
 * `data/` (or `metadata/`) that may follow it.
 */
function relativeKey(mount: string, version: 'v1' | 'v2', key: string): string {
  let rest = key;
  if (rest.startsWith(`${mount}/`)) {
    rest = rest.slice(mount.length + 1);
    if (version === 'v2') rest = rest.replace(/^(?:data|metadata)\//, '');
  }
  return rest;
}

/**
 * The API path (unescaped) that holds the data of `key`, following ESO's rules: with a mount,
 * `<mount>/data/<key>` (v2) or `<mount>/<key>` (v1); without one, the key as written, with
 * `data` put after its first segment for v2 unless it holds `/data/` already.
 */
export function kvDataPath(mount: string | undefined, version: 'v1' | 'v2', key: string): string {
  const k = trimSlashes(key);
  if (mount) {
    const m = trimSlashes(mount);
    return [m, ...(version === 'v2' ? ['data'] : []), relativeKey(m, version, k)].join('/');
  }
  if (version === 'v2' && !k.includes('/data/')) {
    const [first, ...rest] = k.split('/');
    return [first, 'data', ...rest].join('/');
  }
  return k;
}

/** The KV v2 metadata path of `key`: the data path with `metadata` in place of `data`. */
export function kvMetadataPath(mount: string | undefined, key: string): string {
  const k = trimSlashes(key);
  if (mount) {
    const m = trimSlashes(mount);
    return `${m}/metadata/${relativeKey(m, 'v2', k)}`;
  }
  if (k.includes('/data/')) return k.replace('/data/', '/metadata/');
  const [first, ...rest] = k.split('/');
  return [first, 'metadata', ...rest].join('/');
}

// ---------------------------------------------------------------------------------------------
// Errors

/**
 * Vault's own error text on one line, with anything shaped like a token or a JWT cut out, and
 * Go's multierror wrapping ("1 error occurred: * permission denied") reduced to its items.
 */
export function cleanVaultMessage(text: string): string {
  return text
    .replace(/\b\d+ errors? occurred:\s*\*\s*/g, '')
    .replace(/\n\s*\*\s+/g, '; ')
    .replace(/\b(?:hv[sbr]|[sbr])\.[A-Za-z0-9_-]{16,}/g, '<token>')
    .replace(/\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.?[A-Za-z0-9_-]*/g, '<jwt>')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 300);
}

/** "permission denied (HTTP 403)": the `errors` list of an answer, cleaned, and its status. */
function answerProblem(res: VaultHttpResponse): string {
  let errors: string[] = [];
  try {
    const parsed = JSON.parse(res.text) as { errors?: unknown };
    if (Array.isArray(parsed.errors)) errors = parsed.errors.map(String);
  } catch {
    // Not JSON (a proxy's page): its text is not quoted, only the status.
  }
  const text = cleanVaultMessage(errors.join('; '));
  return text ? `${text} (HTTP ${res.status})` : `HTTP ${res.status}`;
}

/** A request that got no answer; `reason` is safe to show (no headers, no body). */
class NoAnswerError extends Error {}

function noAnswer(err: unknown, label: string, what: string): ProviderError {
  const reason = err instanceof Error ? err.message : String(err);
  return new ProviderError(`${label}: ${what}: no answer from Vault: ${cleanVaultMessage(reason)}`);
}

// ---------------------------------------------------------------------------------------------
// HTTP

export interface VaultHttpOptions {
  server: string;
  /** PEM bundle that replaces the system roots. */
  caPem?: string;
  /** Client certificate and key (PEM) for mutual TLS. */
  certPem?: string;
  keyPem?: string;
  timeoutMs?: number;
}

/** The real VaultHttp: node:http or node:https, no keep-alive (a pass makes few calls). */
export function createVaultHttp(options: VaultHttpOptions): VaultHttp {
  const base = new URL(options.server);
  const isHttps = base.protocol === 'https:';
  const agent = isHttps
    ? new https.Agent({
        ...(options.caPem ? { ca: options.caPem } : {}),
        ...(options.certPem && options.keyPem
          ? { cert: options.certPem, key: options.keyPem }
          : {}),
      })
    : undefined;
  const prefix = base.pathname.replace(/\/+$/, '');
  const timeoutMs = options.timeoutMs ?? REQUEST_TIMEOUT_MS;

  return {
    send(request: VaultHttpRequest): Promise<VaultHttpResponse> {
      const url = new URL(`${base.origin}${prefix}/v1/${request.path}`);
      for (const [k, v] of Object.entries(request.query ?? {})) url.searchParams.set(k, v);
      const payload = request.body === undefined ? undefined : JSON.stringify(request.body);
      const headers: Record<string, string> = { accept: 'application/json', ...request.headers };
      if (payload !== undefined) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = String(Buffer.byteLength(payload));
      }
      const send = isHttps ? https.request : http.request;
      return new Promise((resolve, reject) => {
        const req = send(
          url,
          { method: request.method, headers, agent, timeout: timeoutMs, signal: request.signal },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('error', (err) => reject(new NoAnswerError(err.message)));
            res.on('end', () => {
              const out: Record<string, string | undefined> = {};
              for (const [k, v] of Object.entries(res.headers)) {
                out[k] = Array.isArray(v) ? v.join(', ') : v;
              }
              resolve({
                status: res.statusCode ?? 0,
                headers: out,
                text: Buffer.concat(chunks).toString('utf8'),
              });
            });
          },
        );
        req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
        req.on('error', (err) =>
          reject(new NoAnswerError(`${base.origin}: ${(err as Error).message}`)),
        );
        if (payload !== undefined) req.write(payload);
        req.end();
      });
    },
    close: () => agent?.destroy(),
  };
}

/** Store-wide request settings: namespace, consistency headers, extra headers. */
export interface VaultClientOptions {
  namespace?: string;
  readYourWrites?: boolean;
  forwardInconsistent?: boolean;
  headers?: Record<string, string>;
}

/** VaultHttp plus the headers every request of a store carries. */
export class VaultClient {
  readonly #http: VaultHttp;
  readonly #options: VaultClientOptions;
  /** Last X-Vault-Index seen, sent back when readYourWrites is on. */
  #index: string | undefined;

  constructor(vaultHttp: VaultHttp, options: VaultClientOptions = {}) {
    this.#http = vaultHttp;
    this.#options = options;
  }

  async call(
    method: 'GET' | 'POST',
    path: string,
    options: {
      token?: string;
      body?: unknown;
      query?: Record<string, string>;
      signal: AbortSignal;
    },
  ): Promise<VaultHttpResponse> {
    const o = this.#options;
    const headers: Record<string, string> = { ...o.headers };
    if (o.namespace) headers['x-vault-namespace'] = o.namespace;
    if (o.forwardInconsistent) headers['x-vault-inconsistent'] = 'forward-active-node';
    if (o.readYourWrites && this.#index) headers['x-vault-index'] = this.#index;
    if (options.token) headers['x-vault-token'] = options.token;

    const res = await this.#http.send({
      method,
      path,
      headers,
      signal: options.signal,
      ...(options.query ? { query: options.query } : {}),
      ...(options.body !== undefined ? { body: options.body } : {}),
    });
    if (o.readYourWrites && res.headers['x-vault-index'])
      this.#index = res.headers['x-vault-index'];
    return res;
  }

  close(): void {
    this.#http.close?.();
  }
}

// ---------------------------------------------------------------------------------------------
// Tokens

/** What a login yields. `ttlMs` 0 means the token does not expire. */
export interface VaultLogin {
  token: string;
  ttlMs: number;
  renewable: boolean;
}

export type LoginFn = (client: VaultClient, signal: AbortSignal) => Promise<VaultLogin>;

interface Held extends VaultLogin {
  expiresAt: number;
}

/**
 * One store's Vault token: logs in on first use, renews past two thirds of the TTL, logs in
 * again when renewal fails or the granted TTL has shrunk below a third of the original (the
 * max TTL is near). Concurrent callers share one login.
 */
export class VaultSession {
  readonly client: VaultClient;
  readonly #login: LoginFn;
  readonly #label: string;
  readonly #now: () => number;
  #held: Held | undefined;
  #pending: Promise<Held> | undefined;

  constructor(client: VaultClient, login: LoginFn, label: string, now: () => number = Date.now) {
    this.client = client;
    this.#login = login;
    this.#label = label;
    this.#now = now;
  }

  /**
   * A usable token. `fresh` says it was logged in or renewed for this call, so a refusal of it
   * is final; a held token that is refused may have been revoked and is worth one new login.
   */
  async token(signal: AbortSignal): Promise<{ token: string; fresh: boolean }> {
    const held = this.#held;
    if (held && !this.#isDue(held)) return { token: held.token, fresh: false };
    this.#pending ??= this.#refresh(held, signal).finally(() => (this.#pending = undefined));
    return { token: (await this.#pending).token, fresh: true };
  }

  /** Forgets `token` (refused by the server) so the next call logs in again. */
  invalidate(token: string): void {
    if (this.#held?.token === token) this.#held = undefined;
  }

  #isDue(held: Held): boolean {
    if (held.ttlMs === 0) return false;
    return this.#now() >= held.expiresAt - held.ttlMs / 3;
  }

  async #refresh(held: Held | undefined, signal: AbortSignal): Promise<Held> {
    if (held?.renewable && this.#now() < held.expiresAt) {
      const renewed = await this.#renew(held, signal);
      if (renewed) return (this.#held = renewed);
    }
    const login = await this.#login(this.client, signal);
    return (this.#held = { ...login, expiresAt: this.#now() + login.ttlMs });
  }

  /** renew-self; undefined when the server refuses or grants too little, so we log in again. */
  async #renew(held: Held, signal: AbortSignal): Promise<Held | undefined> {
    let res: VaultHttpResponse;
    try {
      res = await this.client.call('POST', 'auth/token/renew-self', {
        token: held.token,
        body: {},
        signal,
      });
    } catch {
      return undefined; // the login below reports the outage with its own context
    }
    if (res.status !== 200) return undefined;
    const auth = parseAuth(res.text);
    if (!auth || auth.ttlMs < held.ttlMs / 3) return undefined;
    const now = this.#now();
    return { ...held, ttlMs: auth.ttlMs, renewable: auth.renewable, expiresAt: now + auth.ttlMs };
  }

  get label(): string {
    return this.#label;
  }
}

/** The `auth` block of a login or renewal answer; undefined when it has no token. */
function parseAuth(text: string): VaultLogin | undefined {
  try {
    const auth = (
      JSON.parse(text) as {
        auth?: { client_token?: string; lease_duration?: number; renewable?: boolean };
      }
    ).auth;
    if (!auth?.client_token) return undefined;
    return {
      token: auth.client_token,
      ttlMs: Math.max(0, Number(auth.lease_duration ?? 0)) * 1000,
      renewable: auth.renewable === true,
    };
  } catch {
    return undefined;
  }
}

/** POSTs a login and returns its token; errors say `what` failed and Vault's reason. */
export async function login(
  client: VaultClient,
  path: string,
  body: Record<string, string>,
  signal: AbortSignal,
  what: string,
): Promise<VaultLogin> {
  let res: VaultHttpResponse;
  try {
    res = await client.call('POST', path, { body, signal });
  } catch (err) {
    throw new ProviderError(
      `${what}: no answer from Vault: ${cleanVaultMessage(String((err as Error).message ?? err))}`,
    );
  }
  if (res.status !== 200) throw new ProviderError(`${what}: ${answerProblem(res)}`);
  const auth = parseAuth(res.text);
  if (!auth) throw new ProviderError(`${what}: the answer holds no token`);
  return auth;
}

// ---------------------------------------------------------------------------------------------
// Reads

export interface KvSettings {
  /** The store's `path`; undefined means keys carry their mount. */
  mount?: string;
  version: 'v1' | 'v2';
}

function child(node: JsonNode | undefined, key: string): JsonNode | undefined {
  return node?.kind === 'object' ? node.entries.get(key) : undefined;
}

/**
 * A Provider over one VaultSession. A 403 with a token that worked before (revoked, or expired
 * early) is retried once after a new login; a 403 with a fresh token is final.
 */
export function vaultProvider(session: VaultSession, kv: KvSettings): Provider {
  const label = session.label;

  async function authed(
    path: string,
    query: Record<string, string> | undefined,
    signal: AbortSignal,
    what: string,
  ): Promise<VaultHttpResponse> {
    for (let attempt = 1; ; attempt++) {
      const { token, fresh } = await session.token(signal);
      let res: VaultHttpResponse;
      try {
        res = await session.client.call('GET', path, {
          token,
          signal,
          ...(query ? { query } : {}),
        });
      } catch (err) {
        throw noAnswer(err, label, what);
      }
      if (res.status === 403 && attempt === 1 && !fresh) {
        session.invalidate(token);
        continue;
      }
      return res;
    }
  }

  async function readData(ref: VaultSecretRef, signal: AbortSignal): Promise<SecretValue> {
    if (ref.version !== undefined && kv.version === 'v1') {
      throw new UnsupportedError(
        `${label}: secret ${ref.key}: KV v1 has no versions (remoteRef.version ${ref.version})`,
      );
    }
    if (ref.version !== undefined && !/^\d+$/.test(ref.version)) {
      throw new ConfigError(
        `${label}: secret ${ref.key}: remoteRef.version must be a KV v2 version number, got "${ref.version}"`,
      );
    }
    const path = kvDataPath(kv.mount, kv.version, ref.key);
    const version = ref.version ? ` version ${ref.version}` : '';
    const what = `cannot read secret ${ref.key}${version} (path ${path})`;
    const res = await authed(
      escapePath(path),
      ref.version ? { version: ref.version } : undefined,
      signal,
      what,
    );

    if (res.status === 404)
      throw new NotFoundError(`${label}: secret ${ref.key}${version} ${goneReason(res.text)}`);
    if (res.status !== 200) throw new ProviderError(`${label}: ${what}: ${answerProblem(res)}`);

    const doc = parseAnswer(res.text, label, what);
    const data = kv.version === 'v2' ? child(child(doc, 'data'), 'data') : child(doc, 'data');
    if (!data || data.kind === 'null')
      throw new NotFoundError(`${label}: secret ${ref.key}${version} has no data`);
    if (data.kind !== 'object')
      throw new ProviderError(`${label}: ${what}: the data is not a JSON object`);
    const v =
      kv.version === 'v2' ? child(child(child(doc, 'data'), 'metadata'), 'version') : undefined;
    return v?.kind === 'number' ? { value: data.raw, version: v.raw } : { value: data.raw };
  }

  async function readMetadata(ref: VaultSecretRef, signal: AbortSignal): Promise<SecretValue> {
    if (kv.version !== 'v2') {
      throw new UnsupportedError(
        `${label}: secret ${ref.key}: metadataPolicy Fetch needs KV v2 (the store says v1)`,
      );
    }
    const path = kvMetadataPath(kv.mount, ref.key);
    const what = `cannot read the metadata of secret ${ref.key} (path ${path})`;
    const res = await authed(escapePath(path), undefined, signal, what);
    if (res.status === 404) throw new NotFoundError(`${label}: secret ${ref.key} does not exist`);
    if (res.status !== 200) throw new ProviderError(`${label}: ${what}: ${answerProblem(res)}`);

    const data = child(parseAnswer(res.text, label, what), 'data');
    const out: Record<string, string> = {};
    for (const key of ['created_time', 'current_version', 'delete_version_after']) {
      const node = child(data, key);
      if (node && node.kind !== 'null') out[key] = node.kind === 'string' ? node.value : node.raw;
    }
    const custom = child(data, 'custom_metadata');
    if (custom?.kind === 'object') {
      for (const [k, node] of custom.entries)
        out[k] = node.kind === 'string' ? node.value : node.raw;
    }
    return { value: JSON.stringify(out) };
  }

  /** Every secret name under `prefix` (relative to the mount, ending in "/" or empty). */
  async function list(prefix: string, signal: AbortSignal): Promise<string[]> {
    const mount = trimSlashes(kv.mount ?? '');
    const path = kv.version === 'v2' ? `${mount}/metadata/${prefix}` : `${mount}/${prefix}`;
    const what = `cannot list secrets (path ${path})`;
    const res = await authed(escapePath(path.replace(/\/+$/, '')), { list: 'true' }, signal, what);
    if (res.status === 404) return [];
    if (res.status !== 200) throw new ProviderError(`${label}: ${what}: ${answerProblem(res)}`);
    const keys = child(child(parseAnswer(res.text, label, what), 'data'), 'keys');
    const out: string[] = [];
    for (const node of keys?.kind === 'array' ? keys.items : []) {
      if (node.kind !== 'string') continue;
      const name = `${prefix}${node.value}`;
      if (name.endsWith('/')) out.push(...(await list(name, signal)));
      else out.push(name);
    }
    return out;
  }

  /** custom_metadata (and the system keys) of one KV v2 secret, as a plain object. */
  async function tagsOf(key: string, signal: AbortSignal): Promise<Record<string, string>> {
    const { value } = await readMetadata({ key }, signal);
    return JSON.parse(value as string) as Record<string, string>;
  }

  async function getAllSecrets(
    find: FindRef,
    signal: AbortSignal,
  ): Promise<Map<string, Buffer | string>> {
    if (!kv.mount)
      throw new UnsupportedError(`${label}: find needs the store's path (the KV mount)`);
    if (find.tags && kv.version === 'v1') {
      throw new UnsupportedError(
        `${label}: find by tags needs KV v2 (custom_metadata); the store says v1`,
      );
    }
    const re =
      find.name?.regexp !== undefined
        ? compileGoRegexp(find.name.regexp, `${label}: find.name.regexp`)
        : undefined;
    const prefix = find.path ? `${trimSlashes(find.path)}/` : '';
    const out = new Map<string, Buffer | string>();
    for (const name of await list(prefix, signal)) {
      if (re && !matchesGo(re, name)) continue;
      if (find.tags) {
        const tags = await tagsOf(name, signal);
        if (!Object.entries(find.tags).every(([k, v]) => tags[k] === v)) continue;
      }
      try {
        out.set(name, (await readData({ key: name }, signal)).value);
      } catch (err) {
        if (err instanceof NotFoundError) continue; // current version deleted: not a match
        throw err;
      }
    }
    return out;
  }

  return {
    name: 'vault',
    supportsMetadata: true,
    getSecret(ref: VaultSecretRef, signal: AbortSignal): Promise<SecretValue> {
      return ref.metadataPolicy === 'Fetch' ? readMetadata(ref, signal) : readData(ref, signal);
    },
    getAllSecrets,
  };
}

function parseAnswer(text: string, label: string, what: string): JsonNode {
  try {
    return parseJsonText(text);
  } catch {
    throw new ProviderError(`${label}: ${what}: the answer is not JSON`);
  }
}

/** Why a KV read answered 404: the version was deleted or destroyed, or nothing is there. */
function goneReason(text: string): string {
  try {
    const meta = (
      JSON.parse(text) as {
        data?: { metadata?: { deletion_time?: string; destroyed?: boolean; version?: number } };
      }
    ).data?.metadata;
    if (meta?.destroyed) return `was destroyed (version ${meta.version})`;
    if (meta?.deletion_time)
      return `was deleted (version ${meta.version}, at ${meta.deletion_time})`;
  } catch {
    // fall through
  }
  return 'does not exist';
}

// ---------------------------------------------------------------------------------------------
// Auth methods

const unsupportedMethods = ['cert', 'ldap', 'userPass', 'iam'] as const;

/** The pod's projected token file: ESA_PROVIDER_TOKEN_FILE, else the agent's API token file. */
function podTokenFile(ctx: ProviderContext): string {
  return ctx.config.providerTokenFile || ctx.config.kubeTokenFile;
}

/** The login for the store's auth method; throws ConfigError/UnsupportedError for a bad one. */
export function loginFor(spec: VaultProviderSpec, ctx: ProviderContext, label: string): LoginFn {
  const auth = spec.auth ?? {};
  if (auth.tokenSecretRef) {
    const ref = auth.tokenSecretRef;
    return async () => ({
      token: await readStoreKey(ctx, 'Secret', ref, `${label}: auth.tokenSecretRef`),
      ttlMs: 0,
      renewable: false,
    });
  }
  if (auth.kubernetes) return kubernetesLogin(auth.kubernetes, ctx, label);
  if (auth.jwt) return jwtLogin(auth.jwt, ctx, label);
  if (auth.appRole) return appRoleLogin(auth.appRole, ctx, label);
  for (const method of unsupportedMethods) {
    if (auth[method])
      throw new UnsupportedError(
        `${label}: auth.${method} is not supported yet (use kubernetes, jwt, appRole or tokenSecretRef)`,
      );
  }
  throw new ConfigError(
    `${label}: spec.provider.vault.auth names no method (kubernetes, jwt, appRole or tokenSecretRef)`,
  );
}

function kubernetesLogin(
  k: NonNullable<VaultAuthSpec['kubernetes']>,
  ctx: ProviderContext,
  label: string,
): LoginFn {
  const mount = trimSlashes(k.mountPath || 'kubernetes');
  if (!k.role) throw new ConfigError(`${label}: auth.kubernetes.role is not set`);
  const role = k.role;
  const what = `${label}: Kubernetes auth login (mount ${mount}, role ${role})`;
  const jwt = async (): Promise<string> => {
    if (k.serviceAccountRef) {
      const audiences = k.serviceAccountRef.audiences?.length
        ? k.serviceAccountRef.audiences
        : [DEFAULT_VAULT_AUDIENCE];
      return requestServiceAccountToken(ctx, k.serviceAccountRef, {
        audiences,
        field: `${label}: auth.kubernetes: serviceAccountRef`,
        context: `${label}: auth.kubernetes`,
      });
    }
    if (k.secretRef)
      return readStoreKey(
        ctx,
        'Secret',
        { ...k.secretRef, key: k.secretRef.key || 'token' },
        `${label}: auth.kubernetes.secretRef`,
      );
    return readPodTokenFile(podTokenFile(ctx), `${label}: auth.kubernetes`);
  };
  return async (client, signal) =>
    login(client, `auth/${escapePath(mount)}/login`, { role, jwt: await jwt() }, signal, what);
}

function jwtLogin(
  j: NonNullable<VaultAuthSpec['jwt']>,
  ctx: ProviderContext,
  label: string,
): LoginFn {
  const mount = trimSlashes(j.path || 'jwt');
  const what = `${label}: JWT auth login (mount ${mount}${j.role ? `, role ${j.role}` : ''})`;
  const jwt = async (): Promise<string> => {
    const sat = j.kubernetesServiceAccountToken;
    if (sat) {
      const audiences = sat.audiences?.length
        ? sat.audiences
        : sat.serviceAccountRef?.audiences?.length
          ? sat.serviceAccountRef.audiences
          : [DEFAULT_VAULT_AUDIENCE];
      const seconds = Math.max(
        sat.expirationSeconds ?? TOKEN_REQUEST_MIN_SECONDS,
        TOKEN_REQUEST_MIN_SECONDS,
      );
      const where = `${label}: auth.jwt.kubernetesServiceAccountToken`;
      return requestServiceAccountToken(ctx, sat.serviceAccountRef, {
        audiences,
        expirationSeconds: seconds,
        field: `${where}: serviceAccountRef`,
        context: where,
      });
    }
    if (j.secretRef)
      return readStoreKey(ctx, 'Secret', j.secretRef, `${label}: auth.jwt.secretRef`);
    return readPodTokenFile(podTokenFile(ctx), `${label}: auth.jwt`);
  };
  return async (client, signal) =>
    login(
      client,
      `auth/${escapePath(mount)}/login`,
      { ...(j.role ? { role: j.role } : {}), jwt: await jwt() },
      signal,
      what,
    );
}

function appRoleLogin(
  a: NonNullable<VaultAuthSpec['appRole']>,
  ctx: ProviderContext,
  label: string,
): LoginFn {
  const mount = trimSlashes(a.path || 'approle');
  if (!a.secretRef) throw new ConfigError(`${label}: auth.appRole.secretRef is not set`);
  if (!a.roleId && !a.roleRef)
    throw new ConfigError(`${label}: auth.appRole needs roleId or roleRef`);
  const secretRef = a.secretRef;
  const what = `${label}: AppRole login (mount ${mount})`;
  return async (client, signal) => {
    const read = (sel: Partial<SecretKeySelector>, field: string) =>
      readStoreKey(ctx, 'Secret', sel, `${label}: auth.appRole.${field}`);
    const roleId = a.roleId || (await read(a.roleRef ?? {}, 'roleRef'));
    const secretId = await read(secretRef, 'secretRef');
    return login(
      client,
      `auth/${escapePath(mount)}/login`,
      { role_id: roleId, secret_id: secretId },
      signal,
      what,
    );
  };
}

// ---------------------------------------------------------------------------------------------
// The store

/** The TLS material of a store: CA from caBundle or caProvider, client cert from tls. */
async function tlsMaterial(
  spec: VaultProviderSpec,
  ctx: ProviderContext,
  label: string,
): Promise<{ caPem?: string; certPem?: string; keyPem?: string }> {
  const out: { caPem?: string; certPem?: string; keyPem?: string } = {};
  if (spec.caBundle) {
    out.caPem = Buffer.from(spec.caBundle, 'base64').toString('utf8');
    if (!out.caPem.includes('-----BEGIN CERTIFICATE-----')) {
      throw new ConfigError(`${label}: caBundle is not a base64-encoded PEM certificate bundle`);
    }
  } else if (spec.caProvider) {
    const p = spec.caProvider;
    if (p.type !== 'Secret' && p.type !== 'ConfigMap') {
      throw new ConfigError(
        `${label}: caProvider.type must be Secret or ConfigMap, got "${p.type}"`,
      );
    }
    out.caPem = await readStoreKey(ctx, p.type, p, `${label}: caProvider`, {
      trim: false,
    });
  }
  const { certSecretRef, keySecretRef } = spec.tls ?? {};
  if (certSecretRef || keySecretRef) {
    if (!certSecretRef || !keySecretRef)
      throw new ConfigError(`${label}: tls needs both certSecretRef and keySecretRef`);
    const readPem = (sel: SecretKeySelector, field: string) =>
      readStoreKey(ctx, 'Secret', sel, `${label}: tls.${field}`, { trim: false });
    out.certPem = await readPem(certSecretRef, 'certSecretRef');
    out.keyPem = await readPem(keySecretRef, 'keySecretRef');
  }
  return out;
}

/**
 * Sessions kept across sync passes, by store. An entry is reused while the store's uid, its
 * Vault settings and the TLS material (and for tokenSecretRef the token) are unchanged, so a
 * changed store or a rotated CA starts a new session; the old one is dropped.
 */
const sessions = new Map<string, { fingerprint: string; session: VaultSession }>();

/** Forgets every cached session (tests). */
export function resetVaultSessions(): void {
  for (const { session } of sessions.values()) session.client.close();
  sessions.clear();
}

function fingerprint(parts: unknown): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}

/** Options the tests may override: the HTTP layer and the clock. */
export interface VaultProviderOptions {
  createHttp?: (options: VaultHttpOptions) => VaultHttp;
  now?: () => number;
}

/**
 * Builds the provider for one store. Reads the CA and client certificate (if the store names
 * them) on every pass; logs in lazily, on the first read, and only when no session is cached.
 * Throws ConfigError (server, version or auth incomplete), UnsupportedError (an auth method not
 * implemented, a foreign service account) or NotFoundError (a referenced Secret or key missing).
 */
export async function createVaultProvider(
  spec: unknown,
  ctx: ProviderContext,
  options: VaultProviderOptions = {},
): Promise<Provider> {
  const vault = (spec ?? {}) as VaultProviderSpec;
  const label = `${storeLabel(ctx.store)} (vault)`;
  if (!vault.server) throw new ConfigError(`${label}: spec.provider.vault.server is not set`);
  let url: URL;
  try {
    url = new URL(vault.server);
  } catch {
    throw new ConfigError(`${label}: server "${vault.server}" is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new ConfigError(
      `${label}: server must be an http:// or https:// URL, got "${url.protocol}"`,
    );
  }
  const version = vault.version ?? 'v2';
  if (version !== 'v1' && version !== 'v2') {
    throw new ConfigError(`${label}: version must be v1 or v2, got "${String(version)}"`);
  }
  const loginFn = loginFor(vault, ctx, label);
  const tls = await tlsMaterial(vault, ctx, label);
  const kv: KvSettings = { version, ...(vault.path ? { mount: vault.path } : {}) };

  // A token from a Secret is part of the identity: a rotated Secret means a new session.
  const staticToken = vault.auth?.tokenSecretRef
    ? fingerprint(
        await readStoreKey(
          ctx,
          'Secret',
          vault.auth.tokenSecretRef,
          `${label}: auth.tokenSecretRef`,
        ),
      )
    : undefined;
  const identity = `${ctx.store.kind}/${ctx.store.metadata.namespace ?? ''}/${ctx.store.metadata.name}`;
  const print = fingerprint([ctx.store.metadata.uid, ctx.namespace, vault, tls, staticToken]);
  const cached = sessions.get(identity);
  if (cached?.fingerprint === print) return vaultProvider(cached.session, kv);

  cached?.session.client.close();
  const vaultHttp = (options.createHttp ?? createVaultHttp)({ server: vault.server, ...tls });
  const client = new VaultClient(vaultHttp, {
    ...(vault.namespace ? { namespace: vault.namespace } : {}),
    ...(vault.readYourWrites ? { readYourWrites: true } : {}),
    ...(vault.forwardInconsistent ? { forwardInconsistent: true } : {}),
    ...(vault.headers ? { headers: vault.headers } : {}),
  });
  const session = new VaultSession(client, loginFn, label, options.now);
  sessions.set(identity, { fingerprint: print, session });
  return vaultProvider(session, kv);
}
