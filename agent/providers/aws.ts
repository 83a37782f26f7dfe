/**
 * AWS (`spec.provider.aws`): Secrets Manager here, Parameter Store in aws-parameter-store.ts
 * (`service: ParameterStore`, loaded with its SDK only when a store names it). Both sign in
 * through aws-auth.ts, which documents the credential and role fields.
 *
 * Store fields read for Secrets Manager: `service` (SecretsManager, the default), `region`,
 * `prefix` (put in front of every key and find path), and the auth and role fields of
 * aws-auth.ts (`auth.secretRef`, `auth.jwt`, `role`, `additionalRoles`, `externalID`,
 * `sessionTags`, `transitiveTagKeys`). `secretsManager` (delete settings) only matters for
 * writes, which the agent never makes.
 *
 * Reads: GetSecretValue of `<prefix><key>`; `remoteRef.version` "uuid/<id>" selects a version
 * id, any other version a staging label (AWSCURRENT when absent). SecretString comes back as
 * text, SecretBinary as bytes. ResourceNotFoundException is a NotFoundError.
 *
 * `dataFrom.find`: ListSecrets narrowed by the name prefix and tag filters, then GetSecretValue
 * of each match (findSecretsManagerSecrets below). One client serves both calls.
 *
 * Endpoints: the SDK itself honours AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_SECRETS_MANAGER (the
 * tests point them at moto), so nothing here sets an endpoint.
 */
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { NotFoundError, UnsupportedError } from '../errors.ts';
import { compileGoRegexp, matchesGo } from '../go-regexp.ts';
import {
  awsClientConfig,
  awsError,
  awsLabel,
  type AwsAuthOptions,
  type AwsProviderSpec,
} from './aws-auth.ts';
import type { FindRef, Provider, ProviderContext, SecretRef, SecretValue } from './provider.ts';

export {
  awsError,
  DEFAULT_AUDIENCE,
  resolveAwsCredentials,
  type AuthMode,
  type AwsCredentials,
  type AwsProviderSpec,
} from './aws-auth.ts';
import { moduleExports } from '../lazy-import.ts';

/** The one Secrets Manager read the provider makes, as a narrow type tests can fake. */
export interface SecretsManagerApi {
  getSecretValue(
    input: { SecretId: string; VersionId?: string; VersionStage?: string },
    options: { abortSignal: AbortSignal },
  ): Promise<{ SecretString?: string; SecretBinary?: Uint8Array; VersionId?: string }>;
  destroy?(): void;
}

/**
 * Builds the provider for one store: Secrets Manager, or Parameter Store when the store says
 * `service: ParameterStore`. Static credentials are read from their Secret here, once;
 * web-identity tokens and role sessions are fetched when a client first needs keys. Throws
 * ConfigError (region or auth incomplete), UnsupportedError (an unknown service, a foreign
 * service account), NotFoundError (credentials Secret or key missing) or ProviderError (the
 * API server refused).
 */
export async function createAwsProvider(
  spec: unknown,
  ctx: ProviderContext,
  options: AwsAuthOptions = {},
): Promise<Provider> {
  const aws = (spec ?? {}) as AwsProviderSpec;
  const label = awsLabel(ctx);
  if (aws.service === 'ParameterStore') {
    const { createParameterStoreProvider } = await import('./aws-parameter-store.ts');
    return createParameterStoreProvider(aws, ctx, options);
  }
  if (aws.service !== undefined && aws.service !== 'SecretsManager') {
    throw new UnsupportedError(
      `${label}: service ${aws.service} is not supported (SecretsManager or ParameterStore)`,
    );
  }
  const config = await awsClientConfig(aws, ctx, options);

  const sdk = moduleExports(await import('@aws-sdk/client-secrets-manager'));
  const client: SecretsManagerClient = new sdk.SecretsManagerClient(config);
  const api: SecretsManagerApi & SecretsManagerListApi = {
    getSecretValue: (input, o) => client.send(new sdk.GetSecretValueCommand(input), o),
    listSecrets: (input, o) => client.send(new sdk.ListSecretsCommand(input), o),
    destroy: () => client.destroy(),
  };
  return secretsManagerProvider(api, label, aws.prefix ?? '');
}

/**
 * The AWS provider with `getAllSecrets`; kept as a name for callers of the time when listing
 * had a client of its own. createAwsProvider now serves both with one client.
 */
export const createAwsProviderWithFind = createAwsProvider;

/**
 * A Provider over any SecretsManagerApi. `remoteRef.version` "uuid/<id>" selects a version id;
 * any other version is a staging label (AWSCURRENT when absent).
 */
export function secretsManagerProvider(
  api: SecretsManagerApi & Partial<SecretsManagerListApi>,
  label: string,
  prefix = '',
): Provider {
  const provider: Provider = {
    name: 'aws',
    async getSecret(ref: SecretRef, signal: AbortSignal): Promise<SecretValue> {
      const input: { SecretId: string; VersionId?: string; VersionStage?: string } = {
        SecretId: prefix + ref.key,
      };
      if (ref.version?.startsWith('uuid/')) input.VersionId = ref.version.slice('uuid/'.length);
      else if (ref.version) input.VersionStage = ref.version;

      let out: Awaited<ReturnType<SecretsManagerApi['getSecretValue']>>;
      try {
        out = await api.getSecretValue(input, { abortSignal: signal });
      } catch (err) {
        throw awsError(
          err,
          `${label}: cannot read secret ${input.SecretId}${ref.version ? ` version ${ref.version}` : ''}`,
        );
      }
      const value =
        out.SecretString ?? (out.SecretBinary ? Buffer.from(out.SecretBinary) : undefined);
      if (value === undefined)
        throw new NotFoundError(`${label}: secret ${input.SecretId} has no value`);
      return out.VersionId ? { value, version: out.VersionId } : { value };
    },
    close: () => api.destroy?.(),
  };
  const { listSecrets } = api;
  if (listSecrets) {
    const lister: SecretsManagerListApi = { listSecrets };
    provider.getAllSecrets = (find, signal) =>
      findSecretsManagerSecrets(lister, provider.getSecret, find, label, signal, prefix);
  }
  return provider;
}

/** The one listing call `find` makes, as a narrow type tests can fake. */
export interface SecretsManagerListApi {
  listSecrets(
    input: {
      Filters?: { Key: 'name' | 'tag-key' | 'tag-value'; Values: string[] }[];
      NextToken?: string;
      MaxResults?: number;
    },
    options: { abortSignal: AbortSignal },
  ): Promise<{
    SecretList?: { Name?: string; Tags?: { Key?: string; Value?: string }[] }[];
    NextToken?: string;
  }>;
}

/** A bound on ListSecrets pages, so a store with a runaway prefix cannot loop for ever. */
const MAX_LIST_PAGES = 100;

/**
 * `dataFrom.find` on Secrets Manager: every secret whose name matches `find.name.regexp` (Go
 * syntax, unanchored), starts with `find.path`, and carries each tag of `find.tags` with that
 * value, by its name (the store `prefix` included, as ESO returns it). ListSecrets is narrowed
 * server-side by the `name` (prefix) and tag filters; the regexp and the exact key=value pairs
 * are checked here, because AWS matches tag keys and tag values independently. Each match is
 * then read with `getSecret` (GetSecretValue).
 */
export async function findSecretsManagerSecrets(
  api: SecretsManagerListApi,
  getSecret: Provider['getSecret'],
  find: FindRef,
  label: string,
  signal: AbortSignal,
  prefix = '',
): Promise<Map<string, Buffer | string>> {
  const re =
    find.name?.regexp !== undefined
      ? compileGoRegexp(find.name.regexp, `${label}: find.name.regexp`)
      : undefined;
  const path = `${prefix}${find.path ?? ''}`;
  const tags = Object.entries(find.tags ?? {});
  const filters: { Key: 'name' | 'tag-key' | 'tag-value'; Values: string[] }[] = [];
  if (path) filters.push({ Key: 'name', Values: [path] });
  for (const [k, v] of tags)
    filters.push({ Key: 'tag-key', Values: [k] }, { Key: 'tag-value', Values: [v] });

  const names: string[] = [];
  let token: string | undefined;
  for (let page = 0; page < MAX_LIST_PAGES; page++) {
    let out: Awaited<ReturnType<SecretsManagerListApi['listSecrets']>>;
    try {
      out = await api.listSecrets(
        {
          ...(filters.length ? { Filters: filters } : {}),
          ...(token ? { NextToken: token } : {}),
          MaxResults: 100,
        },
        { abortSignal: signal },
      );
    } catch (err) {
      throw awsError(err, `${label}: cannot list secrets (find)`);
    }
    for (const s of out.SecretList ?? []) {
      const name = s.Name;
      if (!name || !name.startsWith(path)) continue;
      if (re && !matchesGo(re, name)) continue;
      const have = new Map((s.Tags ?? []).map((t) => [t.Key, t.Value]));
      if (!tags.every(([k, v]) => have.get(k) === v)) continue;
      names.push(name);
    }
    token = out.NextToken;
    if (!token) break;
  }

  const found = new Map<string, Buffer | string>();
  for (const name of names) {
    // the provider adds the prefix to every key it reads
    const key = prefix && name.startsWith(prefix) ? name.slice(prefix.length) : name;
    try {
      found.set(name, (await getSecret({ key }, signal)).value);
    } catch (err) {
      // listed a moment ago and deleted since: not an error for find
      if (err instanceof NotFoundError) continue;
      throw err;
    }
  }
  return found;
}
