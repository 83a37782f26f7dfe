/**
 * Kubernetes Secrets of another namespace, or of another cluster (`spec.provider.kubernetes`).
 *
 * Store fields read:
 * - `remoteNamespace` (default "default"): where the Secrets are read.
 * - `server.url`: the API server. Absent, or `kubernetes.default` (the CRD's default) and its
 *   `.svc`/`.svc.cluster.local` forms, mean the pod's own cluster, reached at the agent's own
 *   in-cluster address. Any other URL is another cluster; without a scheme it is https, and
 *   plain http is refused (a bearer token would travel in clear).
 * - `server.caBundle` (base64 PEM) or `server.caProvider` (a Secret or ConfigMap key): the CA of
 *   that server. Without either: the agent's own cluster CA for the pod's own cluster, Node's
 *   built-in roots for another.
 * - `auth`, in ESO's order:
 *   - `token.bearerToken`: a token kept in a Kubernetes Secret.
 *   - `serviceAccount`: the pod's own service account (any other is refused). On the pod's own
 *     cluster without `audiences` the agent presents its own projected API token (re-read
 *     before each request): it is that service account's token. With `audiences`, or for
 *     another cluster, a TokenRequest: 600 s, bound to the pod, those audiences.
 *   - `cert.clientCert` + `cert.clientKey`: a client certificate and key kept in Secrets.
 *   - none: the pod's own identity on the pod's own cluster (ESO would send no credentials);
 *     no credentials at all for another cluster, so the pod's token never leaves its cluster
 *     unless the store asks for it.
 *   Secrets and ConfigMaps named by these refs are read in the pod's own cluster: a
 *   SecretStore's own namespace, or for a ClusterSecretStore the ref's namespace, else the
 *   pod's.
 * - `authRef` (a kubeconfig in a Secret) is refused with an UnsupportedError.
 *
 * Reads, as ESO does them: `remoteRef.key` names the Secret. The value handed to the sync is
 * the JSON object of its data, each value decoded to text (`{"password":"..."}`, keys sorted),
 * so `property` picks one data key (a literal key first, dots and all) and `dataFrom.extract`
 * takes them all, through agent/properties.ts. `remoteRef.version` is refused: Secrets have no
 * versions. A missing Secret (404) is a NotFoundError; a refusal (403) names the store, the
 * Secret and the permission the identity lacks.
 *
 * `dataFrom.find`: lists the Secrets of `remoteNamespace` (pages of 500), `tags` as a label
 * selector (`key=value,...`), and keeps the names that match `name.regexp` (Go syntax,
 * unanchored). Each match maps to its data's JSON text, like a read. `path` is refused. Needs
 * `list` on secrets in that namespace, which RBAC cannot narrow by name: a Role that grants it
 * lets the workload read every Secret there.
 *
 * NOTE: the agent's API client takes no AbortSignal, so a pass's deadline does not cut a read
 * short; each request is bounded by the client's own 30 s timeout instead.
 *
 * NOTE: values are decoded as UTF-8 text to build the JSON, as ESO's `string(value)` does, so a
 * binary value (a keystore) read through `property` is not byte-exact. ESO returns the raw
 * bytes for a `property`; that needs the sync to hand the property to the provider, which the
 * provider interface does not do yet. ESO also reads `property: a.b` as the JSON path `b`
 * inside data key `a`; here a nested path applies to the object of the data map only.
 */
import {
  AgentError,
  ConfigError,
  KubeApiError,
  NotFoundError,
  ProviderError,
  UnsupportedError,
} from '../errors.ts';
import { compileGoRegexp, matchesGo } from '../go-regexp.ts';
import { KubeClient, inClusterOptions, type RequestOptions } from '../kube-client.ts';
import type { CAProvider, Secret, SecretKeySelector, ServiceAccountSelector } from '../types.ts';
import type { FindRef, Provider, ProviderContext, SecretRef, SecretValue } from './provider.ts';
import { storeLabel } from './provider.ts';
import {
  checkOwnServiceAccount,
  readStoreKey,
  requestServiceAccountToken,
} from './store-credentials.ts';

/** The fields of `spec.provider.kubernetes` this agent reads. */
export interface KubernetesProviderSpec {
  remoteNamespace?: string;
  server?: { url?: string; caBundle?: string; caProvider?: CAProvider };
  auth?: {
    serviceAccount?: ServiceAccountSelector;
    token?: { bearerToken?: SecretKeySelector };
    cert?: { clientCert?: SecretKeySelector; clientKey?: SecretKeySelector };
  };
  authRef?: SecretKeySelector;
}

/** The one call the provider makes (GET of a Secret or of the Secret list), as a narrow type. */
export interface SecretReader {
  get<T>(path: string, options?: RequestOptions): Promise<T>;
}

/** How the provider reaches the Secrets, for tests; never holds a credential. */
export type KubernetesIdentity = 'pod' | 'serviceAccountToken' | 'token' | 'cert' | 'anonymous';

export interface KubernetesConnection {
  reader: SecretReader;
  identity: KubernetesIdentity;
  /** The API server's URL, or "the pod's cluster". */
  cluster: string;
  close?(): void;
}

const DEFAULT_NAMESPACE = 'default';
const LIST_PAGE = 500;
const MAX_PAGES = 100;
const OWN_CLUSTER =
  /^(?:https:\/\/)?kubernetes\.default(?:\.svc(?:\.cluster\.local)?)?(?::443)?\/?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/**
 * Builds the provider for one store: resolves the server, CA and credentials (reading the
 * Secrets they live in, or requesting a token) once per pass. Throws ConfigError (a bad URL, CA
 * or incomplete auth), UnsupportedError (authRef, a foreign service account), NotFoundError (a
 * credentials Secret or key missing) or ProviderError (the API server refused).
 */
export async function createKubernetesProvider(
  spec: unknown,
  ctx: ProviderContext,
): Promise<Provider> {
  const k = (spec ?? {}) as KubernetesProviderSpec;
  const label = `${storeLabel(ctx.store)} (kubernetes)`;
  const connection = await connect(k, ctx, label);
  return kubernetesProvider(connection, k.remoteNamespace || DEFAULT_NAMESPACE, label);
}

/** A Provider over one connection, reading Secrets of `namespace`. */
export function kubernetesProvider(
  connection: KubernetesConnection,
  namespace: string,
  label: string,
): Provider {
  const { reader } = connection;
  const ns = namespace;

  async function getSecret(ref: SecretRef, _signal: AbortSignal): Promise<SecretValue> {
    if (ref.version !== undefined) {
      throw new UnsupportedError(
        `${label}: Secret ${ns}/${ref.key}: Kubernetes Secrets have no versions (remoteRef.version ${ref.version})`,
      );
    }
    if (!DNS_SUBDOMAIN.test(ref.key) || ref.key.length > 253) {
      throw new ConfigError(`${label}: "${ref.key}" is not a valid Secret name (remoteRef.key)`);
    }
    let secret: Secret;
    try {
      secret = await reader.get<Secret>(`/api/v1/namespaces/${ns}/secrets/${ref.key}`);
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404)
        throw new NotFoundError(`${label}: Secret ${ns}/${ref.key} does not exist`);
      throw apiError(
        err,
        `${label}: cannot read Secret ${ns}/${ref.key}`,
        `get on secrets/${ref.key}`,
        ns,
      );
    }
    const value = dataJson(secret);
    const version = secret.metadata?.resourceVersion;
    return version ? { value, version } : { value };
  }

  async function getAllSecrets(
    find: FindRef,
    _signal: AbortSignal,
  ): Promise<Map<string, Buffer | string>> {
    if (find.path !== undefined) {
      throw new UnsupportedError(
        `${label}: find.path is not supported: Secrets have no path (use name.regexp or tags)`,
      );
    }
    const re =
      find.name?.regexp !== undefined
        ? compileGoRegexp(find.name.regexp, `${label}: find.name.regexp`)
        : undefined;
    const selector = labelSelector(find.tags ?? {}, label);
    const out = new Map<string, Buffer | string>();
    let token: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      let list: { items?: Secret[]; metadata?: { continue?: string } };
      try {
        list = await reader.get(`/api/v1/namespaces/${ns}/secrets`, {
          query: {
            limit: String(LIST_PAGE),
            ...(selector ? { labelSelector: selector } : {}),
            ...(token ? { continue: token } : {}),
          },
        });
      } catch (err) {
        throw apiError(
          err,
          `${label}: cannot list Secrets in namespace ${ns} (find)`,
          'list on secrets',
          ns,
        );
      }
      for (const secret of list.items ?? []) {
        const name = secret.metadata?.name;
        if (!name || (re && !matchesGo(re, name))) continue;
        out.set(name, dataJson(secret));
      }
      token = list.metadata?.continue;
      if (!token) break;
    }
    return out;
  }

  return {
    name: 'kubernetes',
    getSecret,
    getAllSecrets,
    ...(connection.close ? { close: connection.close } : {}),
  };
}

/** The data of a Secret as a JSON object of decoded text, keys sorted (as Go marshals a map). */
function dataJson(secret: Secret): string {
  const data = secret.data ?? {};
  const out: Record<string, string> = {};
  for (const key of Object.keys(data).sort())
    out[key] = Buffer.from(data[key] as string, 'base64').toString('utf8');
  return JSON.stringify(out);
}

function labelSelector(tags: Record<string, string>, label: string): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(tags)) {
    if (!LABEL_KEY.test(key) || !LABEL_VALUE.test(value)) {
      throw new ConfigError(
        `${label}: find.tags ${key}=${value} is not a valid label (find.tags is a label selector)`,
      );
    }
    parts.push(`${key}=${value}`);
  }
  return parts.join(',');
}

/**
 * A refusal or failure of the API server as a ProviderError: `context`, the API server's own
 * words (which name the user and the verb, never object data), and for 403 the permission the
 * identity lacks.
 */
function apiError(err: unknown, context: string, permission: string, ns: string): AgentError {
  if (err instanceof AgentError && !(err instanceof KubeApiError)) return err;
  const text = err instanceof Error ? err.message : String(err);
  // KubeClient's message starts with "GET <path>: "; the context says what was read.
  const reason = text.replace(/^[A-Z]+ \/\S*: /, '');
  if (err instanceof KubeApiError && err.status === 403) {
    return new ProviderError(
      `${context}: ${reason} (missing permission: ${permission} in namespace ${ns})`,
    );
  }
  return new ProviderError(`${context}: ${reason}`);
}

// ---------------------------------------------------------------------------------------------
// Connection

/**
 * The reader for a store, as the module comment describes: the agent's own client when the pod
 * reads its own cluster as itself, else a KubeClient of the store's server and credentials.
 */
export async function connect(
  k: KubernetesProviderSpec,
  ctx: ProviderContext,
  label: string,
): Promise<KubernetesConnection> {
  if (k.authRef)
    throw new UnsupportedError(`${label}: authRef (a kubeconfig in a Secret) is not supported yet`);
  const url = k.server?.url?.trim() ?? '';
  const own = url === '' || OWN_CLUSTER.test(url);
  // Checked before any credential is read or requested for it.
  const remoteServer = own ? undefined : serverUrl(url, label);
  const auth = k.auth ?? {};

  let identity: KubernetesIdentity;
  let credentials: { token?: string; certPem?: string; keyPem?: string } = {};
  if (auth.token) {
    if (!auth.token.bearerToken)
      throw new ConfigError(`${label}: auth.token.bearerToken is not set`);
    identity = 'token';
    credentials.token = await readStoreKey(
      ctx,
      'Secret',
      auth.token.bearerToken,
      `${label}: auth.token.bearerToken`,
    );
  } else if (auth.serviceAccount) {
    const sa = auth.serviceAccount;
    const field = `${label}: auth.serviceAccount`;
    checkOwnServiceAccount(ctx, sa, field);
    if (own && !sa.audiences?.length) {
      return { reader: ctx.kube, identity: 'pod', cluster: "the pod's cluster" };
    }
    identity = 'serviceAccountToken';
    credentials.token = await requestServiceAccountToken(ctx, sa, {
      audiences: sa.audiences ?? [],
      field,
      context: field,
    });
  } else if (auth.cert) {
    const { clientCert, clientKey } = auth.cert;
    if (!clientCert || !clientKey)
      throw new ConfigError(`${label}: auth.cert needs clientCert and clientKey`);
    identity = 'cert';
    credentials = {
      certPem: await readStoreKey(ctx, 'Secret', clientCert, `${label}: auth.cert.clientCert`, {
        trim: false,
      }),
      keyPem: await readStoreKey(ctx, 'Secret', clientKey, `${label}: auth.cert.clientKey`, {
        trim: false,
      }),
    };
  } else if (own) {
    return { reader: ctx.kube, identity: 'pod', cluster: "the pod's cluster" };
  } else {
    identity = 'anonymous';
  }

  const caPem = await storeCa(k, ctx, label);
  let server: string;
  let ownCaPem: string | undefined;
  if (remoteServer) {
    server = remoteServer;
  } else {
    const options = inClusterOptions({
      ...ctx.env,
      ESA_KUBE_CA_FILE: ctx.config.kubeCaFile,
      ESA_KUBE_TOKEN_FILE: ctx.config.kubeTokenFile,
    });
    server = options.server;
    ownCaPem = options.caPem;
  }
  const client = new KubeClient({
    server,
    ...((caPem ?? ownCaPem) ? { caPem: caPem ?? ownCaPem } : {}),
    ...credentials,
  });
  return { reader: client, identity, cluster: server, close: () => client.close() };
}

function serverUrl(url: string, label: string): string {
  const withScheme = /^[a-z]+:\/\//i.test(url) ? url : `https://${url}`;
  let parsed: URL;
  try {
    parsed = new URL(withScheme);
  } catch {
    throw new ConfigError(`${label}: server.url "${url}" is not a URL`);
  }
  if (parsed.protocol !== 'https:') {
    throw new ConfigError(
      `${label}: server.url must use https (got ${parsed.protocol.replace(':', '')}): credentials would travel in clear`,
    );
  }
  return `${parsed.origin}${parsed.pathname.replace(/\/+$/, '')}`;
}

/** The CA from server.caBundle or server.caProvider, or undefined when the store names none. */
async function storeCa(
  k: KubernetesProviderSpec,
  ctx: ProviderContext,
  label: string,
): Promise<string | undefined> {
  const server = k.server ?? {};
  if (server.caBundle) {
    const pem = Buffer.from(server.caBundle, 'base64').toString('utf8');
    if (!pem.includes('-----BEGIN CERTIFICATE-----'))
      throw new ConfigError(
        `${label}: server.caBundle is not a base64-encoded PEM certificate bundle`,
      );
    return pem;
  }
  if (server.caProvider) {
    const p = server.caProvider;
    if (p.type !== 'Secret' && p.type !== 'ConfigMap') {
      throw new ConfigError(
        `${label}: server.caProvider.type must be Secret or ConfigMap, got "${p.type}"`,
      );
    }
    return readStoreKey(
      ctx,
      p.type,
      { name: p.name, key: p.key ?? '', ...(p.namespace ? { namespace: p.namespace } : {}) },
      `${label}: server.caProvider`,
      { trim: false },
    );
  }
  return undefined;
}
