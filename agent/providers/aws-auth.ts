/**
 * How an AWS store signs in, shared by Secrets Manager (aws.ts) and Parameter Store
 * (aws-parameter-store.ts), so both services take one path to their credentials.
 *
 * Store fields read here (`spec.provider.aws`): `region`, `auth.secretRef`, `auth.jwt`,
 * `role`, `additionalRoles`, `externalID`, `sessionTags`, `transitiveTagKeys`.
 *
 * The base identity, first match wins:
 * 1. `auth.secretRef`: static keys read from a Kubernetes Secret (the store's namespace for a
 *    SecretStore; the ref's namespace, else the pod's, for a ClusterSecretStore).
 * 2. `auth.jwt.serviceAccountRef`: web identity (AssumeRoleWithWebIdentity) with a token the
 *    agent requests through TokenRequest for that service account, which must be the pod's own
 *    (audience sts.amazonaws.com unless the ref lists audiences; 600 s; bound to the pod). The
 *    web-identity role is the store's `role`, else the account's `eks.amazonaws.com/role-arn`
 *    annotation (reading it needs `get` on that service account).
 * 3. The store's `role` with the pod's projected token file (ESA_PROVIDER_TOKEN_FILE, else the
 *    AWS_WEB_IDENTITY_TOKEN_FILE that IRSA injects): web identity for that role. The injector's
 *    provider token has audience sts.amazonaws.com unless the pod's `token-audience`
 *    annotation names another, in which case STS refuses it.
 * 4. Otherwise the SDK's default chain: environment keys, IRSA (AWS_ROLE_ARN +
 *    AWS_WEB_IDENTITY_TOKEN_FILE), EKS Pod Identity, shared config, and instance metadata.
 *
 * Then the role chain, each step an AssumeRole signed with the credentials of the step before:
 * - with static keys (1) or the default chain (4), as ESO does: every `additionalRoles` entry in
 *   order, then `role`, the only step that carries `externalID`, `sessionTags` and
 *   `transitiveTagKeys`;
 * - with web identity (2, 3) `role` is already the identity the token signed in as, so only the
 *   `additionalRoles` follow it, in order.
 * The identity the API calls use is the last role of the chain.
 *
 * NOTE: ESO signs in with web identity as the service account's annotated role and then assumes
 * the store's `role` on top. This agent uses the store's `role` itself for web identity: each
 * workload's store names the one role its pods may take, and the pod's token is what proves
 * the pod may take it. The annotation is read only when the store has no `role`. Because
 * AssumeRoleWithWebIdentity takes neither an external id nor session tags (a web-identity
 * session gets its tags from the token), a web-identity store that sets `externalID`,
 * `sessionTags` or `transitiveTagKeys` is refused with an UnsupportedError rather than having
 * them silently dropped.
 *
 * Token hygiene: the token file is read again before every web-identity login (the kubelet
 * rotates it in place), a TokenRequest asks for the 600 s minimum, and every session asks STS
 * for its 900 s minimum. Credentials live in this process's memory only; a login's result is
 * reused by every client of the store until 5 minutes before it expires.
 *
 * Endpoints: the SDK honours AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_STS (the tests point them at
 * moto), so nothing here sets an endpoint.
 */
import { createHash } from 'node:crypto';
import { fromTemporaryCredentials, fromWebToken } from '@aws-sdk/credential-providers';
import {
  AgentError,
  ConfigError,
  NotFoundError,
  ProviderError,
  UnsupportedError,
} from '../errors.ts';
import type { KubeApi, SecretKeySelector } from '../types.ts';
import type { ProviderContext } from './provider.ts';
import { storeLabel } from './provider.ts';
import {
  checkOwnServiceAccount,
  kubeReadError,
  readPodTokenFile,
  readStoreKey,
  requestServiceAccountToken,
  type StoreKeyCache,
} from './store-credentials.ts';

/** The fields of `spec.provider.aws` this agent reads. */
export interface AwsProviderSpec {
  service?: string;
  region?: string;
  role?: string;
  additionalRoles?: string[];
  externalID?: string;
  sessionTags?: { key: string; value: string }[];
  transitiveTagKeys?: string[];
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

/** Keys an AWS client signs with. `expiration` is absent for long-lived static keys. */
export interface AwsKeys {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
}

/** What an SDK client takes as `credentials`: called whenever the client needs keys. */
export type AwsCredentialSource = () => Promise<AwsKeys>;

export interface AssumeRoleInput {
  RoleArn: string;
  RoleSessionName: string;
  DurationSeconds: number;
  ExternalId?: string;
  Tags?: { Key: string; Value: string }[];
  TransitiveTagKeys?: string[];
}

export interface WebIdentityInput {
  RoleArn: string;
  RoleSessionName: string;
  DurationSeconds: number;
  WebIdentityToken: string;
}

/**
 * The two STS calls the agent makes, as a narrow type tests can fake. `assumeRole` signs with
 * `signer`, or with the SDK's default chain when it is undefined.
 */
export interface StsApi {
  assumeRoleWithWebIdentity(input: WebIdentityInput, region: string): Promise<AwsKeys>;
  assumeRole(
    input: AssumeRoleInput,
    signer: AwsCredentialSource | undefined,
    region: string,
  ): Promise<AwsKeys>;
}

/** The real StsApi, through @aws-sdk/credential-providers (STS endpoint from the environment). */
export const defaultSts: StsApi = {
  assumeRoleWithWebIdentity: (input, region) =>
    fromWebToken({
      roleArn: input.RoleArn,
      roleSessionName: input.RoleSessionName,
      webIdentityToken: input.WebIdentityToken,
      durationSeconds: input.DurationSeconds,
      clientConfig: { region },
    })(),
  assumeRole: (input, signer, region) =>
    fromTemporaryCredentials({
      ...(signer ? { masterCredentials: signer } : {}),
      params: input,
      clientConfig: { region },
    })(),
};

/** How the base credentials were chosen, for logs and tests; never holds a credential. */
export type AuthMode = 'secretRef' | 'jwt' | 'tokenFile' | 'default';

export interface AwsCredentials {
  mode: AuthMode;
  /** Undefined means the SDK's default chain, with no role to assume on top. */
  credentials?: AwsCredentialSource;
  /**
   * The roles in the order the chain takes them (a web-identity role first); the last is the
   * identity the API calls use. Role ARNs are not secret; keys never appear here.
   */
  roles: string[];
}

export const DEFAULT_AUDIENCE = 'sts.amazonaws.com';
const ROLE_ANNOTATION = 'eks.amazonaws.com/role-arn';
/** STS's shortest session; the SDK renews 5 minutes before the end, so a login per 10 min. */
export const SESSION_SECONDS = 900;
/** Renew this long before a session ends, as the SDK's own clients do. */
const RENEW_BEFORE_MS = 5 * 60_000;

/** "SecretStore ns/name (aws)", the prefix of every message about a store. */
export function awsLabel(ctx: ProviderContext): string {
  return `${storeLabel(ctx.store)} (aws)`;
}

/** The store's region, else AWS_REGION or AWS_DEFAULT_REGION; ConfigError when none. */
export function awsRegion(aws: AwsProviderSpec, ctx: ProviderContext): string {
  const region = aws.region || ctx.env.AWS_REGION || ctx.env.AWS_DEFAULT_REGION;
  if (!region)
    throw new ConfigError(`${awsLabel(ctx)}: spec.provider.aws.region is not set (nor AWS_REGION)`);
  return region;
}

/**
 * Turns an SDK error into a NotFoundError (for `notFound` error names) or a ProviderError
 * whose message is `context` plus the error name and a cleaned message: no request ids, no
 * access key ids, no signing details. An AgentError passes through unchanged.
 */
export function awsError(
  err: unknown,
  context: string,
  notFound: readonly string[] = ['ResourceNotFoundException'],
): AgentError {
  if (err instanceof AgentError) return err;
  const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const name = e.name ?? 'Error';
  const message = cleanAwsMessage(name, e.message ?? String(err), e.$metadata?.httpStatusCode);
  const text = `${context}: ${name === 'Error' ? '' : `${name}: `}${message}`;
  // NOTE: the cause is not attached: SDK errors carry the raw response ($response) and request
  // metadata, and any cause may end up in a log line.
  if (notFound.includes(name)) return new NotFoundError(text);
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
    .replace(/\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.?[A-Za-z0-9_-]*/g, '<jwt>')
    .replace(/\b(?:request ?id|x-amzn-requestid)[:=\s]+[\w-]+/gi, '')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 300);
}

/** Options the tests may override. */
export interface AwsAuthOptions {
  sts?: StsApi;
  now?: () => number;
}

/** What every AWS SDK client of a store is built with. */
export interface AwsClientConfig {
  region: string;
  /** Absent: the SDK's default chain. */
  credentials?: AwsCredentialSource;
  /** The first try included. */
  maxAttempts: number;
}

/**
 * The region and credentials of a store (awsRegion, resolveAwsCredentials) as SDK client
 * options, with 3 attempts per call. Throws as those two do.
 */
export async function awsClientConfig(
  aws: AwsProviderSpec,
  ctx: ProviderContext,
  options: AwsAuthOptions = {},
): Promise<AwsClientConfig> {
  const region = awsRegion(aws, ctx);
  const { credentials } = await resolveAwsCredentials(aws, region, ctx, options);
  return { region, ...(credentials ? { credentials } : {}), maxAttempts: 3 };
}

/**
 * Chooses the base credentials and the role chain for a store, as the module comment
 * describes. Static keys are read here, once; tokens and sessions are fetched when a client
 * first needs keys. Throws ConfigError (auth incomplete), UnsupportedError (a foreign service
 * account, externalID or session tags with web identity) or ProviderError (credentials Secret
 * or key missing: never NotFoundError, see store-credentials.ts).
 */
export async function resolveAwsCredentials(
  aws: AwsProviderSpec,
  region: string,
  ctx: ProviderContext,
  options: AwsAuthOptions = {},
): Promise<AwsCredentials> {
  const label = awsLabel(ctx);
  const sts = options.sts ?? defaultSts;
  const now = options.now ?? Date.now;
  const session = roleSessionName(ctx);
  const additional = (aws.additionalRoles ?? []).filter((r) => r !== '');

  const shared = sessionsFor(sts, ctx.kube);
  const chain = { sts, region, session, label, now, shared };

  // Static keys and the default chain: additionalRoles, then role (ESO's order).
  const chainAfter = (
    base: AwsCredentialSource | undefined,
    baseKey: string,
    mode: AuthMode,
  ): AwsCredentials => {
    const steps = [...additional.map((arn) => ({ RoleArn: arn })), ...roleStep(aws)];
    if (steps.length === 0) return { mode, ...(base ? { credentials: base } : {}), roles: [] };
    return {
      mode,
      credentials: assumeChain(base, `${region}|${session}|${baseKey}`, steps, chain),
      roles: steps.map((s) => s.RoleArn),
    };
  };

  if (aws.auth?.secretRef) {
    const keys = await staticKeys(aws.auth.secretRef, label, ctx);
    // Rotated keys in the Secret give another fingerprint, so another session.
    return chainAfter(async () => keys, `static:${fingerprint(keys)}`, 'secretRef');
  }

  const tokenFile = ctx.config.providerTokenFile || ctx.env.AWS_WEB_IDENTITY_TOKEN_FILE;
  let web: { mode: AuthMode; roleArn: string; token: () => Promise<string> } | undefined;
  if (aws.auth?.jwt) {
    const { roleArn, token } = await jwtSource(aws, label, ctx);
    web = { mode: 'jwt', roleArn, token };
  } else if (aws.role && tokenFile) {
    web = { mode: 'tokenFile', roleArn: aws.role, token: () => readPodTokenFile(tokenFile, label) };
  }
  if (!web) return chainAfter(undefined, 'default', 'default');

  // Web identity: the role is the identity the token signs in as; additionalRoles follow.
  refuseAssumeRoleOptions(aws, label);
  const { roleArn, token } = web;
  const webKey = `${region}|${session}|web:${web.mode}:${roleArn}:${web.mode === 'tokenFile' ? tokenFile : label}`;
  const login = shared(webKey, () => memoize(async () => {
    const WebIdentityToken = await token();
    try {
      return await sts.assumeRoleWithWebIdentity(
        {
          RoleArn: roleArn,
          RoleSessionName: session,
          DurationSeconds: SESSION_SECONDS,
          WebIdentityToken,
        },
        region,
      );
    } catch (err) {
      throw awsError(err, `${label}: cannot sign in as role ${roleArn} with web identity`);
    }
  }, now));
  const steps = additional.map((arn) => ({ RoleArn: arn }));
  return {
    mode: web.mode,
    credentials: steps.length ? assumeChain(login, webKey, steps, chain) : login,
    roles: [roleArn, ...additional],
  };
}

/** The AssumeRole of the store's `role`, with its external id and session tags. */
function roleStep(
  aws: AwsProviderSpec,
): Omit<AssumeRoleInput, 'RoleSessionName' | 'DurationSeconds'>[] {
  if (!aws.role) return [];
  const tags = aws.sessionTags ?? [];
  return [
    {
      RoleArn: aws.role,
      ...(aws.externalID ? { ExternalId: aws.externalID } : {}),
      ...(tags.length ? { Tags: tags.map((t) => ({ Key: t.key, Value: t.value })) } : {}),
      ...(tags.length && aws.transitiveTagKeys?.length
        ? { TransitiveTagKeys: aws.transitiveTagKeys }
        : {}),
    },
  ];
}

function refuseAssumeRoleOptions(aws: AwsProviderSpec, label: string): void {
  const set = [
    aws.externalID ? 'externalID' : '',
    aws.sessionTags?.length ? 'sessionTags' : '',
    aws.transitiveTagKeys?.length ? 'transitiveTagKeys' : '',
  ].filter(Boolean);
  if (set.length === 0) return;
  throw new UnsupportedError(
    `${label}: ${set.join(', ')} cannot be used with web identity: the store's role is assumed with ` +
      `the pod's token (AssumeRoleWithWebIdentity), which takes neither an external id nor session tags; ` +
      `use auth.secretRef or the default chain to assume a role that requires them`,
  );
}

/**
 * AssumeRole for each step in order, each signed with the keys of the one before (the first
 * with `base`, or the default chain). One login per session, shared by every caller.
 */
function assumeChain(
  base: AwsCredentialSource | undefined,
  baseKey: string,
  steps: Omit<AssumeRoleInput, 'RoleSessionName' | 'DurationSeconds'>[],
  c: { sts: StsApi; region: string; session: string; label: string; now: () => number; shared: SharedSessions },
): AwsCredentialSource {
  let signer = base;
  let key = baseKey;
  for (const step of steps) {
    const previous = signer;
    key = `${key}>${JSON.stringify(step)}`;
    signer = c.shared(key, () => memoize(async () => {
      try {
        return await c.sts.assumeRole(
          { ...step, RoleSessionName: c.session, DurationSeconds: SESSION_SECONDS },
          previous,
          c.region,
        );
      } catch (err) {
        throw awsError(err, `${c.label}: cannot assume role ${step.RoleArn}`);
      }
    }, c.now));
  }
  return signer as AwsCredentialSource;
}

type SharedSessions = (key: string, make: () => AwsCredentialSource) => AwsCredentialSource;

/**
 * Signed-in sessions kept for the life of the process. Providers are rebuilt on every sync pass
 * (agent/fetch.ts), so without this a sidecar would call STS once per ExternalSecret per
 * refresh; with it, once per session, renewed RENEW_BEFORE_MS before it expires (and the token
 * file is still read again at each sign-in). The key holds everything that decides the
 * identity: region, session name, the base (static keys by fingerprint, the web-identity role
 * and token source, or the default chain) and every role step. Sessions are kept apart per
 * StsApi and per API client, so tests with their own fakes never share one.
 */
const sessionCache = new WeakMap<StsApi, WeakMap<object, Map<string, AwsCredentialSource>>>();

function sessionsFor(sts: StsApi, kube: object): SharedSessions {
  let byKube = sessionCache.get(sts);
  if (!byKube) sessionCache.set(sts, (byKube = new WeakMap()));
  let sessions = byKube.get(kube);
  if (!sessions) byKube.set(kube, (sessions = new Map()));
  const map = sessions;
  return (key, make) => {
    let source = map.get(key);
    if (!source) map.set(key, (source = make()));
    return source;
  };
}

/** A one-way digest of static keys, so a cache key never holds a credential. */
function fingerprint(keys: AwsKeys): string {
  return createHash('sha256')
    .update(`${keys.accessKeyId}\0${keys.secretAccessKey}\0${keys.sessionToken ?? ''}`)
    .digest('hex');
}

/**
 * Reuses `fetch`'s keys until RENEW_BEFORE_MS before they expire; concurrent callers share one
 * call; a failure is not kept, so the next caller tries again.
 */
function memoize(fetch: () => Promise<AwsKeys>, now: () => number): AwsCredentialSource {
  let held: AwsKeys | undefined;
  let pending: Promise<AwsKeys> | undefined;
  return () => {
    if (held && (!held.expiration || held.expiration.getTime() - RENEW_BEFORE_MS > now()))
      return Promise.resolve(held);
    pending ??= fetch()
      .then((keys) => (held = keys))
      .finally(() => (pending = undefined));
    return pending;
  };
}

/** "esa-<namespace>-<pod>", cut to STS's 64 characters and its allowed set. */
function roleSessionName(ctx: ProviderContext): string {
  return `esa-${ctx.config.podNamespace}-${ctx.config.podName}`
    .replace(/[^\w+=,.@-]/g, '-')
    .slice(0, 64);
}

async function staticKeys(
  ref: NonNullable<NonNullable<AwsProviderSpec['auth']>['secretRef']>,
  label: string,
  ctx: ProviderContext,
): Promise<AwsKeys> {
  if (!ref.accessKeyIDSecretRef || !ref.secretAccessKeySecretRef) {
    throw new ConfigError(
      `${label}: auth.secretRef needs accessKeyIDSecretRef and secretAccessKeySecretRef`,
    );
  }
  const cache: StoreKeyCache = new Map();
  const read = (field: string, sel: SecretKeySelector) =>
    readStoreKey(ctx, 'Secret', sel, `${label}: auth.secretRef.${field}`, { cache });
  const accessKeyId = await read('accessKeyIDSecretRef', ref.accessKeyIDSecretRef);
  const secretAccessKey = await read('secretAccessKeySecretRef', ref.secretAccessKeySecretRef);
  const sessionToken = ref.sessionTokenSecretRef
    ? await read('sessionTokenSecretRef', ref.sessionTokenSecretRef)
    : undefined;
  return { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) };
}

/** auth.jwt: the web-identity role and a token source (one TokenRequest per login). */
async function jwtSource(
  aws: AwsProviderSpec,
  label: string,
  ctx: ProviderContext,
): Promise<{ roleArn: string; token: () => Promise<string> }> {
  const ref = aws.auth?.jwt?.serviceAccountRef;
  const field = `${label}: auth.jwt.serviceAccountRef`;
  const { namespace, name } = checkOwnServiceAccount(ctx, ref, field);
  const roleArn = aws.role || (await roleFromAnnotation(ctx.kube, namespace, name, label));
  const audiences = ref?.audiences?.length ? ref.audiences : [DEFAULT_AUDIENCE];
  // NOTE: notFound false: the token is requested inside a read, and a read that fails with
  // "not found" lets deletionPolicy Delete remove the target Secret.
  const token = () =>
    requestServiceAccountToken(ctx, ref, { audiences, field, context: label, notFound: false });
  return { roleArn, token };
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
