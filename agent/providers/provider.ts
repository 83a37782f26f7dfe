/**
 * The one small interface every provider implements, and the lookup that loads a provider's
 * module only when a store uses it (so a sidecar for an AWS store never loads another SDK).
 *
 * A provider only reads. It fetches one remote secret by key (and optional version) and returns
 * its bytes or text; property paths, decoding and templates are applied by the sync, the same
 * way for every provider. Providers throw NotFoundError when the secret does not exist and
 * ProviderError for anything else; they do not log.
 */
import type { Config } from '../config.ts';
import { UnsupportedError } from '../errors.ts';
import type { KubeApi, SecretStore } from '../types.ts';

export interface SecretRef {
  key: string;
  /** Provider-specific version selector (`remoteRef.version`); absent means the current one. */
  version?: string;
  /**
   * `remoteRef.metadataPolicy`: `Fetch` reads the secret's metadata (for example Vault KV v2
   * custom_metadata) instead of its value. Only providers with `supportsMetadata` get it.
   */
  metadataPolicy?: 'None' | 'Fetch';
}

export interface SecretValue {
  value: Buffer | string;
  /** The provider's version id of what was returned, when it has one. */
  version?: string;
}

/** `dataFrom[].find`: the criteria a remote secret must all meet. */
export interface FindRef {
  /** Regular expression (Go syntax, unanchored) the secret's name must match. */
  name?: { regexp?: string };
  /** Tags the secret must carry, each with exactly this value. */
  tags?: Record<string, string>;
  /** Only secrets whose name starts with this path. */
  path?: string;
}

export interface Provider {
  /** The provider key in the store spec, for example "aws". */
  readonly name: string;
  getSecret(ref: SecretRef, signal: AbortSignal): Promise<SecretValue>;
  /** True when getSecret serves `metadataPolicy: Fetch`; the sync refuses it otherwise. */
  readonly supportsMetadata?: boolean;
  /**
   * Every secret that matches `find`, by its name as the provider has it (`app/db_user`); the
   * sync renames and validates the keys. No match is an empty result, not an error. Providers
   * that cannot list leave this out and the sync reports `find` as unsupported for them.
   */
  getAllSecrets?(find: FindRef, signal: AbortSignal): Promise<Map<string, Buffer | string>>;
  /** Releases sockets and timers; the sync calls it when the pass is over. */
  close?(): void;
}

/** What a provider may use to build itself: the store, the pod's settings and API access. */
export interface ProviderContext {
  store: SecretStore;
  /** Namespace of the ExternalSecret being synced (the pod's namespace). */
  namespace: string;
  kube: KubeApi;
  config: Config;
  /** Environment of the agent process (AWS_* and the like); tests pass their own. */
  env: NodeJS.ProcessEnv;
}

type Factory = (spec: unknown, ctx: ProviderContext) => Promise<Provider>;

const factories: Record<string, () => Promise<Factory>> = {
  fake: async () => (await import('./fake.ts')).createFakeProvider,
  // Secrets Manager, or Parameter Store (its SDK loaded only then) per the store's `service`.
  aws: async () => (await import('./aws.ts')).createAwsProvider,
  vault: async () => (await import('./vault.ts')).createVaultProvider,
  kubernetes: async () => (await import('./kubernetes.ts')).createKubernetesProvider,
};

/** "SecretStore ns/name" or "ClusterSecretStore name", for messages. */
export function storeLabel(store: SecretStore): string {
  const ns = store.metadata.namespace;
  return `${store.kind} ${ns ? `${ns}/` : ''}${store.metadata.name}`;
}

/** The single provider key a store spec sets, for example "aws". */
function providerName(store: SecretStore): string {
  const keys = Object.keys(store.spec.provider ?? {});
  if (keys.length !== 1) {
    throw new UnsupportedError(
      `${storeLabel(store)}: spec.provider must set exactly one provider, found ${keys.length}`,
    );
  }
  return keys[0] as string;
}

/** Builds the provider a store asks for, importing its module on first use. */
export async function loadProvider(ctx: ProviderContext): Promise<Provider> {
  const name = providerName(ctx.store);
  const load = factories[name];
  if (!load) {
    throw new UnsupportedError(
      `${storeLabel(ctx.store)}: provider "${name}" is not supported by this agent (supported: ${Object.keys(factories).join(', ')})`,
    );
  }
  const create = await load();
  return create(ctx.store.spec.provider?.[name], ctx);
}
