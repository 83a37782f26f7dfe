/**
 * AWS Secrets Manager (`spec.provider.aws` with `service: SecretsManager`).
 *
 * Credentials, first match wins:
 * 1. `auth.secretRef`: static keys read from a Kubernetes Secret (the store's namespace for a
 *    SecretStore; the ref's namespace, else the pod's, for a ClusterSecretStore).
 * 2. `auth.jwt.serviceAccountRef`: web identity with a token the agent requests (TokenRequest,
 *    audience sts.amazonaws.com unless the ref lists audiences, bound to the pod) for that
 *    service account, which must be the pod's own. The role is the store's `role`, else the
 *    account's `eks.amazonaws.com/role-arn` annotation (reading it needs `get serviceaccounts`).
 * 3. The store's `role` with a projected token file (ESA_PROVIDER_TOKEN_FILE, else the
 *    AWS_WEB_IDENTITY_TOKEN_FILE that IRSA injects): web identity for that role. The injector's
 *    provider token has audience sts.amazonaws.com unless the pod's `token-audience`
 *    annotation names another, in which case STS refuses it.
 * 4. Otherwise the SDK's default chain: environment keys, IRSA (AWS_ROLE_ARN +
 *    AWS_WEB_IDENTITY_TOKEN_FILE), EKS Pod Identity, shared config, and instance metadata.
 *    With static keys (1) or the default chain (4), a store `role` is assumed on top (AssumeRole).
 *
 * Endpoints: the SDK itself honours AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_SECRETS_MANAGER and
 * AWS_ENDPOINT_URL_STS (the tests point them at moto), so nothing here sets an endpoint.
 *
 * NOTE: where ESO chains a web-identity session (role from the service-account annotation) into
 * a second AssumeRole of the store's `role`, this agent uses the store's `role` directly for web
 * identity. One role per store is what per-pod identity needs; say so if a chain is required.
 */
import {
  GetSecretValueCommand,
  SecretsManagerClient,
  type SecretsManagerClientConfig,
} from '@aws-sdk/client-secrets-manager';
import {
  fromTemporaryCredentials,
  fromTokenFile,
  fromWebToken,
} from '@aws-sdk/credential-providers';
import {
  AgentError,
  ConfigError,
  KubeApiError,
  NotFoundError,
  ProviderError,
  UnsupportedError,
} from '../errors.ts';
import type { KubeApi, Secret, SecretKeySelector } from '../types.ts';
import type { Provider, ProviderContext, SecretRef, SecretValue } from './provider.ts';
import { storeLabel } from './provider.ts';

type Credentials = NonNullable<SecretsManagerClientConfig['credentials']>;

/** The fields of `spec.provider.aws` this agent reads. */
export interface AwsProviderSpec {
  service?: string;
  region?: string;
  role?: string;
  externalID?: string;
  prefix?: string;
  auth?: {
    secretRef?: {
      accessKeyIDSecretRef?: SecretKeySelector;
      secretAccessKeySecretRef?: SecretKeySelector;
      sessionTokenSecretRef?: SecretKeySelector;
    };
    jwt?: { serviceAccountRef?: { name: string; namespace?: string; audiences?: string[] } };
  };
}

/** The one Secrets Manager call the provider makes, as a narrow type tests can fake. */
export interface SecretsManagerApi {
  getSecretValue(
    input: { SecretId: string; VersionId?: string; VersionStage?: string },
    options: { abortSignal: AbortSignal },
  ): Promise<{ SecretString?: string; SecretBinary?: Uint8Array; VersionId?: string }>;
  destroy?(): void;
}

/** How the credentials were chosen, for logs and tests; never holds a credential. */
export type AuthMode = 'secretRef' | 'jwt' | 'tokenFile' | 'default';

export interface AwsCredentials {
  mode: AuthMode;
  /** Undefined means the SDK's default chain. */
  credentials?: Credentials;
}

export const DEFAULT_AUDIENCE = 'sts.amazonaws.com';
const ROLE_ANNOTATION = 'eks.amazonaws.com/role-arn';

/**
 * Builds the provider for one store. Static credentials are read from their Secret here, once;
 * web-identity tokens are requested when the SDK first needs credentials. Throws ConfigError
 * (region or auth incomplete), UnsupportedError (another service, a foreign service account),
 * NotFoundError (credentials Secret or key missing) or ProviderError (API server refused).
 */
export async function createAwsProvider(spec: unknown, ctx: ProviderContext): Promise<Provider> {
  const aws = (spec ?? {}) as AwsProviderSpec;
  const label = `${storeLabel(ctx.store)} (aws)`;
  if (aws.service !== undefined && aws.service !== 'SecretsManager') {
    throw new UnsupportedError(
      `${label}: service ${aws.service} is not supported yet (only SecretsManager)`,
    );
  }
  const region = aws.region || ctx.env.AWS_REGION || ctx.env.AWS_DEFAULT_REGION;
  if (!region)
    throw new ConfigError(`${label}: spec.provider.aws.region is not set (nor AWS_REGION)`);

  const { credentials } = await resolveAwsCredentials(aws, region, ctx);
  const client = new SecretsManagerClient({ region, credentials, maxAttempts: 3 });
  const api: SecretsManagerApi = {
    getSecretValue: (input, options) => client.send(new GetSecretValueCommand(input), options),
    destroy: () => client.destroy(),
  };
  return secretsManagerProvider(api, label, aws.prefix ?? '');
}

/**
 * A Provider over any SecretsManagerApi. `remoteRef.version` "uuid/<id>" selects a version id;
 * any other version is a staging label (AWSCURRENT when absent).
 */
export function secretsManagerProvider(
  api: SecretsManagerApi,
  label: string,
  prefix = '',
): Provider {
  return {
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
}

/**
 * Turns an SDK error into a NotFoundError or ProviderError whose message is `context` plus the
 * error name and a cleaned message: no request ids, no access key ids, no signing details.
 */
export function awsError(err: unknown, context: string): AgentError {
  if (err instanceof AgentError) return err;
  const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const name = e.name ?? 'Error';
  const message = cleanAwsMessage(name, e.message ?? String(err), e.$metadata?.httpStatusCode);
  const text = `${context}: ${name === 'Error' ? '' : `${name}: `}${message}`;
  // NOTE: the cause is not attached: SDK errors carry the raw response ($response) and request
  // metadata, and any cause may end up in a log line.
  if (name === 'ResourceNotFoundException') return new NotFoundError(text);
  return new ProviderError(text);
}

function cleanAwsMessage(name: string, message: string, status: number | undefined): string {
  // An answer the SDK could not parse (moto's XML AccessDenied, a proxy's HTML page): its
  // message quotes the body.
  if (name === 'SyntaxError' || /Deserialization error/i.test(message)) {
    return `the answer could not be read${status ? ` (HTTP ${status})` : ''}`;
  }
  return message
    .replace(/The Canonical String for this request should have been[\s\S]*/i, '')
    .replace(/\b(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{12,}\b/g, '<access-key-id>')
    .replace(/Credential=[^\s,]+/gi, 'Credential=<redacted>')
    .replace(/\b(?:request ?id|x-amzn-requestid)[:=\s]+[\w-]+/gi, '')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 300);
}

/** Chooses and builds the credentials for a store, as the module comment describes. */
export async function resolveAwsCredentials(
  aws: AwsProviderSpec,
  region: string,
  ctx: ProviderContext,
): Promise<AwsCredentials> {
  const label = `${storeLabel(ctx.store)} (aws)`;
  const sessionName = roleSessionName(ctx);
  const assume = (master: Credentials | undefined): Credentials | undefined =>
    aws.role
      ? fromTemporaryCredentials({
          ...(master ? { masterCredentials: master } : {}),
          params: {
            RoleArn: aws.role,
            RoleSessionName: sessionName,
            ...(aws.externalID ? { ExternalId: aws.externalID } : {}),
          },
          clientConfig: { region },
        })
      : master;

  if (aws.auth?.secretRef) {
    return {
      mode: 'secretRef',
      credentials: assume(await staticCredentials(aws.auth.secretRef, label, ctx)),
    };
  }
  if (aws.auth?.jwt) {
    return { mode: 'jwt', credentials: await jwtCredentials(aws, region, sessionName, label, ctx) };
  }
  const tokenFile = ctx.config.providerTokenFile || ctx.env.AWS_WEB_IDENTITY_TOKEN_FILE;
  if (aws.role && tokenFile) {
    return {
      mode: 'tokenFile',
      credentials: fromTokenFile({
        roleArn: aws.role,
        webIdentityTokenFile: tokenFile,
        roleSessionName: sessionName,
        clientConfig: { region },
      }),
    };
  }
  return { mode: 'default', credentials: assume(undefined) };
}

/** "esa-<namespace>-<pod>", cut to STS's 64 characters and its allowed set. */
function roleSessionName(ctx: ProviderContext): string {
  return `esa-${ctx.config.podNamespace}-${ctx.config.podName}`
    .replace(/[^\w+=,.@-]/g, '-')
    .slice(0, 64);
}

async function staticCredentials(
  ref: NonNullable<NonNullable<AwsProviderSpec['auth']>['secretRef']>,
  label: string,
  ctx: ProviderContext,
): Promise<Credentials> {
  if (!ref.accessKeyIDSecretRef || !ref.secretAccessKeySecretRef) {
    throw new ConfigError(
      `${label}: auth.secretRef needs accessKeyIDSecretRef and secretAccessKeySecretRef`,
    );
  }
  const cache = new Map<string, Promise<Secret>>();
  const read = (field: string, sel: SecretKeySelector) =>
    readSecretKey(ctx, sel, `${label}: auth.secretRef.${field}`, cache);
  const accessKeyId = await read('accessKeyIDSecretRef', ref.accessKeyIDSecretRef);
  const secretAccessKey = await read('secretAccessKeySecretRef', ref.secretAccessKeySecretRef);
  const sessionToken = ref.sessionTokenSecretRef
    ? await read('sessionTokenSecretRef', ref.sessionTokenSecretRef)
    : undefined;
  return { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) };
}

/**
 * The trimmed text of one key of a Kubernetes Secret. A SecretStore reads its own namespace; a
 * ClusterSecretStore the selector's namespace, else the pod's.
 */
async function readSecretKey(
  ctx: ProviderContext,
  sel: SecretKeySelector,
  what: string,
  cache: Map<string, Promise<Secret>>,
): Promise<string> {
  const ns =
    ctx.store.kind === 'ClusterSecretStore'
      ? sel.namespace || ctx.namespace
      : (ctx.store.metadata.namespace ?? ctx.namespace);
  const path = `/api/v1/namespaces/${ns}/secrets/${sel.name}`;
  let pending = cache.get(path);
  if (!pending) {
    pending = ctx.kube.get<Secret>(path);
    cache.set(path, pending);
  }
  let secret: Secret;
  try {
    secret = await pending;
  } catch (err) {
    throw kubeReadError(err, `${what}: cannot read Secret ${ns}/${sel.name}`);
  }
  const raw = secret.data?.[sel.key];
  if (raw === undefined)
    throw new NotFoundError(`${what}: Secret ${ns}/${sel.name} has no key ${sel.key}`);
  return Buffer.from(raw, 'base64').toString('utf8').trim();
}

function kubeReadError(err: unknown, context: string): AgentError {
  if (err instanceof KubeApiError && err.status === 404)
    return new NotFoundError(`${context}: not found`);
  const message = err instanceof Error ? err.message : String(err);
  return new ProviderError(`${context}: ${message}`);
}

async function jwtCredentials(
  aws: AwsProviderSpec,
  region: string,
  sessionName: string,
  label: string,
  ctx: ProviderContext,
): Promise<Credentials> {
  const ref = aws.auth?.jwt?.serviceAccountRef;
  if (!ref?.name) throw new ConfigError(`${label}: auth.jwt.serviceAccountRef.name is not set`);
  const { podNamespace, serviceAccount } = ctx.config;
  const ns = ctx.store.kind === 'ClusterSecretStore' ? ref.namespace || podNamespace : podNamespace;
  if (ref.name !== serviceAccount || ns !== podNamespace) {
    throw new UnsupportedError(
      `${label}: auth.jwt.serviceAccountRef names service account ${ns}/${ref.name}, but this pod runs as ` +
        `${podNamespace}/${serviceAccount}; the agent authenticates only as the pod's own service account`,
    );
  }
  const roleArn = aws.role || (await roleFromAnnotation(ctx.kube, ns, ref.name, label));
  const audiences = ref.audiences?.length ? ref.audiences : [DEFAULT_AUDIENCE];

  // A fresh token for every STS call: the SDK calls this again when the session expires.
  return async () => {
    const webIdentityToken = await requestToken(ctx, ns, ref.name, audiences, label);
    return fromWebToken({
      roleArn,
      webIdentityToken,
      roleSessionName: sessionName,
      clientConfig: { region },
    })();
  };
}

async function roleFromAnnotation(
  kube: KubeApi,
  ns: string,
  name: string,
  label: string,
): Promise<string> {
  let sa: { metadata?: { annotations?: Record<string, string> } };
  try {
    sa = await kube.get(`/api/v1/namespaces/${ns}/serviceaccounts/${name}`);
  } catch (err) {
    throw kubeReadError(
      err,
      `${label}: no role in the store, and cannot read service account ${ns}/${name} for its ${ROLE_ANNOTATION} annotation`,
    );
  }
  const role = sa.metadata?.annotations?.[ROLE_ANNOTATION];
  if (!role)
    throw new ConfigError(
      `${label}: no role in the store, and service account ${ns}/${name} has no ${ROLE_ANNOTATION} annotation`,
    );
  return role;
}

/** TokenRequest for the pod's service account, bound to the pod when its uid is known. */
async function requestToken(
  ctx: ProviderContext,
  ns: string,
  name: string,
  audiences: string[],
  label: string,
): Promise<string> {
  const { podName, podUid } = ctx.config;
  const body = {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec: {
      audiences,
      expirationSeconds: 600,
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
    throw kubeReadError(
      err,
      `${label}: cannot request a token for service account ${ns}/${name} (audiences ${audiences.join(',')})`,
    );
  }
}

// --- dataFrom.find: ListSecrets ---
// NOTE: this part sits at the end of the file, with its imports inline, because another change
// to the top of this file was in flight when it was written. createAwsProviderWithFind can
// fold into createAwsProvider (one client for both calls) once that has landed.

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
  find: import('./provider.ts').FindRef,
  label: string,
  signal: AbortSignal,
  prefix = '',
): Promise<Map<string, Buffer | string>> {
  const { compileGoRegexp, matchesGo } = await import('../go-regexp.ts');
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

/**
 * The AWS provider with `getAllSecrets` (dataFrom.find). The listing client is made on the
 * first `find`, with the same region and credentials as the store's reads.
 */
export async function createAwsProviderWithFind(
  spec: unknown,
  ctx: ProviderContext,
): Promise<Provider> {
  const provider = await createAwsProvider(spec, ctx);
  const aws = (spec ?? {}) as AwsProviderSpec;
  const label = `${storeLabel(ctx.store)} (aws)`;
  let lister: Promise<{ api: SecretsManagerListApi; destroy: () => void }> | undefined;
  const listApi = () =>
    (lister ??= (async () => {
      const sdk = await import('@aws-sdk/client-secrets-manager');
      const region = (aws.region || ctx.env.AWS_REGION || ctx.env.AWS_DEFAULT_REGION) as string;
      const { credentials } = await resolveAwsCredentials(aws, region, ctx);
      const client = new sdk.SecretsManagerClient({ region, credentials, maxAttempts: 3 });
      const api: SecretsManagerListApi = {
        listSecrets: (input, options) => client.send(new sdk.ListSecretsCommand(input), options),
      };
      return { api, destroy: () => client.destroy() };
    })());
  return {
    name: provider.name,
    getSecret: (ref, signal) => provider.getSecret(ref, signal),
    async getAllSecrets(find, signal) {
      const { api } = await listApi();
      return findSecretsManagerSecrets(
        api,
        (ref, s) => provider.getSecret(ref, s),
        find,
        label,
        signal,
        aws.prefix ?? '',
      );
    },
    close: () => {
      provider.close?.();
      lister?.then(
        (l) => l.destroy(),
        () => {},
      );
    },
  };
}
