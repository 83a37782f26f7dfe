/**
 * What a store needs from the pod's own cluster before it can reach its provider, done one way
 * for every provider: a key of a Secret or ConfigMap the store references, a token for the
 * pod's own service account (TokenRequest), the pod's projected token file, and the errors of
 * those Kubernetes API calls.
 *
 * Namespace rules for references: a SecretStore reads its own namespace; a ClusterSecretStore
 * reads the ref's namespace, else the pod's. Service accounts are different: the agent only
 * ever authenticates as the pod's own, so a ref to any other is refused.
 *
 * None of these functions log, and no error they throw holds a key's value or a token.
 */
import { readFile } from 'node:fs/promises';
import {
  AgentError,
  ConfigError,
  KubeApiError,
  NotFoundError,
  ProviderError,
  UnsupportedError,
} from '../errors.ts';
import type { ServiceAccountSelector } from '../types.ts';
import type { ProviderContext } from './provider.ts';

/** TokenRequest's shortest token lifetime, in seconds; the default of every request here. */
export const TOKEN_REQUEST_MIN_SECONDS = 600;

/**
 * A failed Kubernetes API call as an AgentError whose message starts with `context` (which says
 * what was being read, for which store). A 404 is a NotFoundError "`context`: not found", unless
 * `notFound` is false; anything else, a 404 then included, is a ProviderError with the error's own
 * message (the API server's words, which name the user and the verb, never object data).
 */
export function kubeReadError(
  err: unknown,
  context: string,
  options: { notFound?: boolean } = {},
): AgentError {
  if ((options.notFound ?? true) && err instanceof KubeApiError && err.status === 404)
    return new NotFoundError(`${context}: not found`);
  const message = err instanceof Error ? err.message : String(err);
  return new ProviderError(`${context}: ${message}`);
}

/** The namespace a store's Secret or ConfigMap reference reads from (see the module comment). */
function refNamespace(ctx: ProviderContext, namespace: string | undefined): string {
  return ctx.store.kind === 'ClusterSecretStore'
    ? namespace || ctx.namespace
    : (ctx.store.metadata.namespace ?? ctx.namespace);
}

/** A Secret or ConfigMap as readStoreKey reads it: `data` only. */
type KeyHolder = { data?: Record<string, string> };

/** GETs of Secrets and ConfigMaps by API path, shared by reads (ReadStoreKeyOptions.cache). */
export type StoreKeyCache = Map<string, Promise<KeyHolder>>;

export interface ReadStoreKeyOptions {
  /** Trim white space around the text (a token, a password); false for PEM. Default true. */
  trim?: boolean;
  /**
   * Shares one GET per object among the reads that pass the same map, so keys kept side by side
   * in one Secret cost one request. Failed GETs stay in it too; use one map per store build.
   */
  cache?: StoreKeyCache;
}

/**
 * The text of one key of a Secret (decoded from base64 as UTF-8) or of a ConfigMap, in the pod's
 * own cluster, in the namespace the module comment gives. `what` names the store and the field
 * ("SecretStore ns/x (vault): auth.tokenSecretRef") and starts every message.
 *
 * Throws ConfigError when the selector lacks `name` or `key`, and ProviderError for any failure
 * of the read, a missing object or key included.
 *
 * NOTE: never a NotFoundError. What this reads is the store's own configuration (credentials,
 * CA bundles), not the remote secret; a NotFoundError would tell the sync that the remote secret
 * is gone, and deletionPolicy Delete would then delete the target Secret over a missing
 * credential.
 */
export async function readStoreKey(
  ctx: ProviderContext,
  kind: 'Secret' | 'ConfigMap',
  sel: { name?: string; key?: string; namespace?: string },
  what: string,
  options: ReadStoreKeyOptions = {},
): Promise<string> {
  if (!sel.name || !sel.key) throw new ConfigError(`${what}: name and key must both be set`);
  const ns = refNamespace(ctx, sel.namespace);
  const resource = kind === 'Secret' ? 'secrets' : 'configmaps';
  const path = `/api/v1/namespaces/${ns}/${resource}/${sel.name}`;

  let pending = options.cache?.get(path);
  if (!pending) {
    pending = ctx.kube.get<KeyHolder>(path);
    options.cache?.set(path, pending);
  }
  let obj: KeyHolder;
  try {
    obj = await pending;
  } catch (err) {
    throw kubeReadError(err, `${what}: cannot read ${kind} ${ns}/${sel.name}`, { notFound: false });
  }

  const raw = obj.data?.[sel.key];
  if (raw === undefined)
    throw new ProviderError(`${what}: ${kind} ${ns}/${sel.name} has no key ${sel.key}`);
  const text = kind === 'Secret' ? Buffer.from(raw, 'base64').toString('utf8') : raw;
  return (options.trim ?? true) ? text.trim() : text;
}

/**
 * Checks that `ref` names the pod's own service account and returns it as `{ namespace, name }`
 * (the namespace is then always the pod's).
 * For a ClusterSecretStore the ref's `namespace` counts, else the pod's; a SecretStore's ref is
 * always taken in the pod's namespace. `field` names the store and the field that holds the ref
 * ("SecretStore ns/x (aws): auth.jwt.serviceAccountRef") and starts every message.
 *
 * Throws ConfigError when the ref has no name, UnsupportedError when it names another account.
 */
export function checkOwnServiceAccount(
  ctx: ProviderContext,
  ref: { name?: string; namespace?: string } | undefined,
  field: string,
): { namespace: string; name: string } {
  if (!ref?.name) throw new ConfigError(`${field}.name is not set`);
  const { podNamespace, serviceAccount } = ctx.config;
  const ns = ctx.store.kind === 'ClusterSecretStore' ? ref.namespace || podNamespace : podNamespace;
  if (ref.name !== serviceAccount || ns !== podNamespace) {
    throw new UnsupportedError(
      `${field} names service account ${ns}/${ref.name}, but this pod runs as ` +
        `${podNamespace}/${serviceAccount}; ` +
        "the agent authenticates only as the pod's own service account",
    );
  }
  return { namespace: ns, name: ref.name };
}

export interface TokenRequestOptions {
  /** Audiences of the token; each provider has its default. */
  audiences: readonly string[];
  /** Lifetime in seconds; default (and TokenRequest's minimum) TOKEN_REQUEST_MIN_SECONDS. */
  expirationSeconds?: number;
  /** The store and the field that holds the ref, for refusals (see checkOwnServiceAccount). */
  field: string;
  /** The store and what the token is for, at the start of a failed request's message. */
  context: string;
  /**
   * true: a 404 is a NotFoundError. Default false, a ProviderError like any other failure: a
   * token is requested inside a read, and a read that fails with NotFoundError lets
   * deletionPolicy Delete remove the target Secret over a missing service account.
   */
  notFound?: boolean;
}

/**
 * A token from TokenRequest for the pod's own service account, which `ref` must name
 * (checkOwnServiceAccount; it throws as that does). The token is bound to the pod when its uid
 * is known, so it dies with the pod. Makes one request on every call; nothing is cached.
 *
 * Throws ProviderError when the API server refuses or answers without a token ("`context`:
 * cannot request a token for service account ns/name (audiences a,b): reason"), a 404 included
 * unless `notFound` is true.
 */
export async function requestServiceAccountToken(
  ctx: ProviderContext,
  ref: ServiceAccountSelector | undefined,
  options: TokenRequestOptions,
): Promise<string> {
  const { namespace: ns, name } = checkOwnServiceAccount(ctx, ref, options.field);
  const { podName, podUid } = ctx.config;
  const { audiences } = options;
  const body = {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec: {
      audiences,
      expirationSeconds: options.expirationSeconds ?? TOKEN_REQUEST_MIN_SECONDS,
      ...(podUid
        ? { boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: podName, uid: podUid } }
        : {}),
    },
  };

  try {
    const review = await ctx.kube.create<{ status?: { token?: string } }>(
      `/api/v1/namespaces/${ns}/serviceaccounts/${name}/token`,
      body,
    );
    if (!review.status?.token) throw new Error('the answer holds no token');
    return review.status.token;
  } catch (err) {
    const forWhom = audiences.length ? ` (audiences ${audiences.join(',')})` : '';
    throw kubeReadError(
      err,
      `${options.context}: cannot request a token for service account ${ns}/${name}${forWhom}`,
      { notFound: options.notFound ?? false },
    );
  }
}

/**
 * The pod's projected service-account token from `file`, trimmed. Read again on every call,
 * because the kubelet rotates the file in place. Callers choose the file: ESA_PROVIDER_TOKEN_FILE
 * (`ctx.config.providerTokenFile`) first, else their provider's fallback.
 *
 * Throws ConfigError "`what`: cannot read the pod's token file <file>: <code>" when the file
 * cannot be read or is empty; the message names the file, never its content.
 */
export async function readPodTokenFile(file: string, what: string): Promise<string> {
  try {
    const token = (await readFile(file, 'utf8')).trim();
    if (!token) throw Object.assign(new Error('empty'), { code: 'empty' });
    return token;
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new ConfigError(`${what}: cannot read the pod's token file ${file}: ${reason}`);
  }
}
