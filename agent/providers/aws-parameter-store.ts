/**
 * AWS Systems Manager Parameter Store (`spec.provider.aws` with `service: ParameterStore`).
 * aws.ts loads this module, and with it @aws-sdk/client-ssm, only for a store that names it.
 *
 * Store fields read: `service`, `region`, `prefix` (put in front of every key read, not of a
 * find path, as in ESO), and the auth and role fields documented in aws-auth.ts
 * (`auth.secretRef`, `auth.jwt`, `role`, `additionalRoles`, `externalID`, `sessionTags`,
 * `transitiveTagKeys`), which Secrets Manager stores use the same way.
 *
 * Reads: GetParameter of `<prefix><key>` with decryption, so a SecureString comes back as its
 * plain text, a String as itself and a StringList as its comma-separated text. A
 * `remoteRef.version` selects `<name>:<version>` (a version number, or a parameter label).
 * `remoteRef.property` and `dataFrom.extract` work on the value as JSON, through
 * agent/properties.ts like for every provider. A key under `/aws/reference/secretsmanager/`
 * reads that Secrets Manager secret through Parameter Store (AWS needs decryption for it, which
 * every read asks for). ParameterNotFound and ParameterVersionNotFound are NotFoundErrors.
 *
 * `dataFrom.find`:
 * - with `tags`: DescribeParameters with one `tag:<key>` Equals filter per tag (and a
 *   recursive Path filter for `path`), then GetParameters of the matches in batches of 10 (its
 *   limit). Needs ssm:DescribeParameters, which IAM grants only on Resource "*".
 * - otherwise: GetParametersByPath of `path` (default "/"), recursive, with decryption.
 * Both keep the names that match `name.regexp` (Go syntax, unanchored, on the full name). The
 * result maps each full parameter name (`/app/db/user`) to its value; key names with slashes
 * need a `rewrite` or the sync's key conversion.
 *
 * NOTE: ESO ignores `tags` when `name` is set, and falls back to DescribeParameters when
 * GetParametersByPath is denied. Here every criterion given must match, and a denial is
 * reported as it is: the fallback would need Resource "*" on DescribeParameters, wider than
 * the path the store's role was scoped to.
 *
 * Not implemented: `metadataPolicy: Fetch` (the parameter's tags), which agent/fetch.ts refuses
 * before asking any provider.
 */
import type { SSMClient } from '@aws-sdk/client-ssm';
import { NotFoundError } from '../errors.ts';
import { compileGoRegexp, matchesGo } from '../go-regexp.ts';
import {
  awsClientConfig,
  awsError,
  awsLabel,
  type AwsAuthOptions,
  type AwsProviderSpec,
} from './aws-auth.ts';
import type { FindRef, Provider, ProviderContext, SecretRef, SecretValue } from './provider.ts';
import { moduleExports } from '../lazy-import.ts';

/** A parameter as the read calls return it. */
export interface Parameter {
  Name?: string;
  Type?: string;
  Value?: string;
  Version?: number;
}

export interface ParameterFilter {
  Key: string;
  Option?: string;
  Values: string[];
}

type CallOptions = { abortSignal: AbortSignal };

/** The four Parameter Store reads the provider makes, as a narrow type tests can fake. */
export interface ParameterStoreApi {
  getParameter(
    input: { Name: string; WithDecryption: boolean },
    options: CallOptions,
  ): Promise<{ Parameter?: Parameter }>;
  getParameters(
    input: { Names: string[]; WithDecryption: boolean },
    options: CallOptions,
  ): Promise<{ Parameters?: Parameter[]; InvalidParameters?: string[] }>;
  getParametersByPath(
    input: {
      Path: string;
      Recursive: boolean;
      WithDecryption: boolean;
      MaxResults?: number;
      NextToken?: string;
    },
    options: CallOptions,
  ): Promise<{ Parameters?: Parameter[]; NextToken?: string }>;
  describeParameters(
    input: { ParameterFilters?: ParameterFilter[]; MaxResults?: number; NextToken?: string },
    options: CallOptions,
  ): Promise<{ Parameters?: { Name?: string }[]; NextToken?: string }>;
  destroy?(): void;
}

/** Error names that mean "nothing there". */
const NOT_FOUND = ['ParameterNotFound', 'ParameterVersionNotFound'];
/** GetParameters takes at most this many names. */
const GET_PARAMETERS_BATCH = 10;
/** A bound on listing pages, so a runaway path cannot loop for ever (10 000 parameters). */
const MAX_PAGES = 1000;

/**
 * Builds the Parameter Store provider for one store. Throws as createAwsProvider does.
 */
export async function createParameterStoreProvider(
  aws: AwsProviderSpec,
  ctx: ProviderContext,
  options: AwsAuthOptions = {},
): Promise<Provider> {
  const label = awsLabel(ctx);
  const config = await awsClientConfig(aws, ctx, options);

  const sdk = moduleExports(await import('@aws-sdk/client-ssm'));
  const client: SSMClient = new sdk.SSMClient(config);
  const api: ParameterStoreApi = {
    getParameter: (input, o) => client.send(new sdk.GetParameterCommand(input), o),
    getParameters: (input, o) => client.send(new sdk.GetParametersCommand(input), o),
    getParametersByPath: (input, o) => client.send(new sdk.GetParametersByPathCommand(input), o),
    describeParameters: (input, o) => client.send(new sdk.DescribeParametersCommand(input), o),
    destroy: () => client.destroy(),
  };
  return parameterStoreProvider(api, label, aws.prefix ?? '');
}

/** A Provider over any ParameterStoreApi; `label` starts every message ("SecretStore ns/x (aws)"). */
export function parameterStoreProvider(
  api: ParameterStoreApi,
  label: string,
  prefix = '',
): Provider {
  async function getSecret(ref: SecretRef, signal: AbortSignal): Promise<SecretValue> {
    const name = prefix + ref.key;
    const selector = ref.version ? `${name}:${ref.version}` : name;
    let out: Awaited<ReturnType<ParameterStoreApi['getParameter']>>;
    try {
      out = await api.getParameter(
        { Name: selector, WithDecryption: true },
        { abortSignal: signal },
      );
    } catch (err) {
      const version = ref.version ? ` version ${ref.version}` : '';
      throw awsError(err, `${label}: cannot read parameter ${name}${version}`, NOT_FOUND);
    }
    const p = out.Parameter;
    if (p?.Value === undefined) throw new NotFoundError(`${label}: parameter ${name} has no value`);
    return p.Version !== undefined
      ? { value: p.Value, version: String(p.Version) }
      : { value: p.Value };
  }

  async function getAllSecrets(
    find: FindRef,
    signal: AbortSignal,
  ): Promise<Map<string, Buffer | string>> {
    const re =
      find.name?.regexp !== undefined
        ? compileGoRegexp(find.name.regexp, `${label}: find.name.regexp`)
        : undefined;
    const keep = (name: string | undefined): name is string =>
      name !== undefined && (!re || matchesGo(re, name));
    const tags = Object.entries(find.tags ?? {});

    if (tags.length === 0) {
      const out = new Map<string, Buffer | string>();
      for (const p of await byPath(find.path || '/', signal)) {
        if (keep(p.Name) && p.Value !== undefined) out.set(p.Name, p.Value);
      }
      return out;
    }
    const filters: ParameterFilter[] = tags.map(([k, v]) => ({
      Key: `tag:${k}`,
      Option: 'Equals',
      Values: [v],
    }));
    if (find.path) filters.push({ Key: 'Path', Option: 'Recursive', Values: [find.path] });
    const names = (await describe(filters, signal)).filter(keep);
    return read(names, signal);
  }

  async function byPath(path: string, signal: AbortSignal): Promise<Parameter[]> {
    const found: Parameter[] = [];
    let token: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      let out: Awaited<ReturnType<ParameterStoreApi['getParametersByPath']>>;
      try {
        out = await api.getParametersByPath(
          {
            Path: path,
            Recursive: true,
            WithDecryption: true,
            MaxResults: 10,
            ...(token ? { NextToken: token } : {}),
          },
          { abortSignal: signal },
        );
      } catch (err) {
        throw awsError(err, `${label}: cannot list parameters under ${path} (find)`, []);
      }
      found.push(...(out.Parameters ?? []));
      token = out.NextToken;
      if (!token) break;
    }
    return found;
  }

  async function describe(filters: ParameterFilter[], signal: AbortSignal): Promise<string[]> {
    const names: string[] = [];
    let token: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      let out: Awaited<ReturnType<ParameterStoreApi['describeParameters']>>;
      try {
        out = await api.describeParameters(
          { ParameterFilters: filters, MaxResults: 50, ...(token ? { NextToken: token } : {}) },
          { abortSignal: signal },
        );
      } catch (err) {
        throw awsError(err, `${label}: cannot list parameters by tags (find)`, []);
      }
      for (const p of out.Parameters ?? []) if (p.Name) names.push(p.Name);
      token = out.NextToken;
      if (!token) break;
    }
    return names;
  }

  /** GetParameters in batches, in listing order; a name deleted since it was listed is left out. */
  async function read(names: string[], signal: AbortSignal): Promise<Map<string, Buffer | string>> {
    const values = new Map<string, string>();
    for (let i = 0; i < names.length; i += GET_PARAMETERS_BATCH) {
      const batch = names.slice(i, i + GET_PARAMETERS_BATCH);
      let got: Awaited<ReturnType<ParameterStoreApi['getParameters']>>;
      try {
        got = await api.getParameters(
          { Names: batch, WithDecryption: true },
          { abortSignal: signal },
        );
      } catch (err) {
        throw awsError(err, `${label}: cannot read ${batch.length} parameters (find)`, []);
      }
      for (const p of got.Parameters ?? []) {
        if (p.Name !== undefined && p.Value !== undefined) values.set(p.Name, p.Value);
      }
    }
    const out = new Map<string, Buffer | string>();
    for (const name of names) {
      const value = values.get(name);
      if (value !== undefined) out.set(name, value);
    }
    return out;
  }

  return { name: 'aws', getSecret, getAllSecrets, close: () => api.destroy?.() };
}
