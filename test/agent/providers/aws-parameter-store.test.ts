/**
 * AWS Parameter Store (agent/providers/aws-parameter-store.ts) against moto, a real AWS API
 * server on 127.0.0.1: every parameter type, versions, find by path and by tags, the Secrets
 * Manager passthrough, not-found; then paging, batching and error cleaning against a fake of
 * the narrow ParameterStoreApi.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { NotFoundError, ProviderError } from '../../../agent/errors.ts';
import { createAwsProvider } from '../../../agent/providers/aws.ts';
import type { AwsProviderSpec, StsApi } from '../../../agent/providers/aws-auth.ts';
import {
  parameterStoreProvider,
  type Parameter,
  type ParameterStoreApi,
} from '../../../agent/providers/aws-parameter-store.ts';
import type { FindRef, Provider, ProviderContext } from '../../../agent/providers/provider.ts';
import { syncExternalSecret } from '../../../agent/sync.ts';
import { createLogger } from '../../../agent/log.ts';
import type { Secret } from '../../../agent/types.ts';
import { useMoto, type Moto } from '../../harness/moto.ts';
import { FakeKube } from '../fake-kube.ts';
import { NS, externalSecret, paths, secretStore, testConfig, withEnv } from '../helpers.ts';

const REGION = 'us-east-1';
const run = `/ps${process.pid}`; // moto may be shared with other test files: names unique to this run
const dummy = { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'dummy-secret-access-key' };
const signal = () => AbortSignal.timeout(20_000);
const LABEL = `SecretStore ${NS}/params (aws)`;

let moto: Moto;

const env = () => ({
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_ENDPOINT_URL_SSM: moto.endpoint,
  AWS_ENDPOINT_URL_STS: moto.endpoint,
  AWS_ACCESS_KEY_ID: dummy.accessKeyId,
  AWS_SECRET_ACCESS_KEY: dummy.secretAccessKey,
  AWS_SESSION_TOKEN: undefined,
  AWS_ROLE_ARN: undefined,
  AWS_WEB_IDENTITY_TOKEN_FILE: undefined,
  AWS_PROFILE: undefined,
  AWS_CONFIG_FILE: join(tmpdir(), 'esa-no-aws-config'),
  AWS_SHARED_CREDENTIALS_FILE: join(tmpdir(), 'esa-no-aws-credentials'),
});

const spec: AwsProviderSpec = { service: 'ParameterStore', region: REGION };

function context(aws: AwsProviderSpec = spec): ProviderContext {
  return {
    store: secretStore('params', { aws }),
    namespace: NS,
    kube: new FakeKube(),
    config: testConfig(),
    env: process.env,
  };
}

async function withProvider<T>(
  use: (p: Provider) => Promise<T>,
  aws: AwsProviderSpec = spec,
  options: { sts?: StsApi } = {},
): Promise<T> {
  return withEnv(env(), async () => {
    const provider = await createAwsProvider(aws, context(aws), options);
    try {
      return await use(provider);
    } finally {
      provider.close?.();
    }
  });
}

const text = (m: Map<string, Buffer | string> | undefined) =>
  Object.fromEntries([...(m ?? new Map())].map(([k, v]) => [k, String(v)]));

describe('aws Parameter Store on moto', () => {
  before(async () => {
    moto = await useMoto();
    const ssm = new SSMClient({ region: REGION, endpoint: moto.endpoint, credentials: dummy });
    const sm = new SecretsManagerClient({
      region: REGION,
      endpoint: moto.endpoint,
      credentials: dummy,
    });
    const put = (
      Name: string,
      Value: string,
      Type: 'String' | 'SecureString' | 'StringList',
      tags: Record<string, string> = {},
      Overwrite = false,
    ) =>
      ssm.send(
        new PutParameterCommand({
          Name,
          Value,
          Type,
          Overwrite,
          ...(Overwrite
            ? {}
            : { Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) }),
        }),
      );
    try {
      await put(`${run}/app/plain`, 'hello', 'String', { team: 'app', env: 'prod' });
      await put(`${run}/app/db`, '{"user":"app","password":"ps-secret-1"}', 'SecureString', {
        team: 'app',
        env: 'dev',
      });
      await put(`${run}/app/hosts`, 'a.example,b.example', 'StringList', {
        team: 'ops',
        env: 'prod',
      });
      await put(`${run}/app/rotating`, 'v1', 'SecureString');
      await put(`${run}/app/rotating`, 'v2', 'SecureString', {}, true);
      await put(`${run}/other/deep/x`, 'x', 'String', { team: 'app', env: 'prod' });
      for (let i = 0; i < 12; i++)
        await put(`${run}/many/p${String(i).padStart(2, '0')}`, `m${i}`, 'String', { bulk: 'yes' });
      await sm.send(
        new CreateSecretCommand({
          Name: `ps-ref${process.pid}`,
          SecretString: '{"token":"sm-through-ps"}',
        }),
      );
    } finally {
      ssm.destroy();
      sm.destroy();
    }
  });

  after(async () => {
    await moto?.stop();
  });

  const reads = [
    { name: 'a String as itself', key: `${run}/app/plain`, want: 'hello', version: '1' },
    {
      name: 'a SecureString decrypted',
      key: `${run}/app/db`,
      want: '{"user":"app","password":"ps-secret-1"}',
      version: '1',
    },
    {
      name: 'a StringList as its comma-separated text',
      key: `${run}/app/hosts`,
      want: 'a.example,b.example',
      version: '1',
    },
    {
      name: 'the current version when none is asked for',
      key: `${run}/app/rotating`,
      want: 'v2',
      version: '2',
    },
  ];
  for (const c of reads) {
    it(`reads ${c.name}`, () =>
      withProvider(async (p) => {
        assert.deepEqual(await p.getSecret({ key: c.key }, signal()), {
          value: c.want,
          version: c.version,
        });
      }));
  }

  it('reads an older version as <name>:<version>', () =>
    withProvider(async (p) => {
      assert.deepEqual(await p.getSecret({ key: `${run}/app/rotating`, version: '1' }, signal()), {
        value: 'v1',
        version: '1',
      });
    }));

  it('puts the store prefix in front of the key', () =>
    withProvider(
      async (p) => assert.equal((await p.getSecret({ key: 'plain' }, signal())).value, 'hello'),
      { ...spec, prefix: `${run}/app/` },
    ));

  it('reads a Secrets Manager secret through /aws/reference/secretsmanager/', () =>
    withProvider(async (p) => {
      const got = await p.getSecret(
        { key: `/aws/reference/secretsmanager/ps-ref${process.pid}` },
        signal(),
      );
      assert.equal(got.value, '{"token":"sm-through-ps"}');
    }));

  const missing = [
    {
      name: 'a missing parameter',
      key: `${run}/app/nope`,
      version: undefined,
      want: /cannot read parameter \S+\/app\/nope: ParameterNotFound: /,
    },
    {
      name: 'a missing version',
      key: `${run}/app/rotating`,
      version: '9',
      want: /cannot read parameter \S+\/app\/rotating version 9: ParameterVersionNotFound: /,
    },
    {
      name: 'a missing passthrough secret',
      key: '/aws/reference/secretsmanager/nope',
      version: undefined,
      want: /ParameterNotFound: /,
    },
  ];
  for (const c of missing) {
    it(`reports ${c.name} as NotFoundError naming the store and the key`, () =>
      withProvider(async (p) => {
        await assert.rejects(
          p.getSecret({ key: c.key, ...(c.version ? { version: c.version } : {}) }, signal()),
          (err: Error) => {
            assert.ok(err instanceof NotFoundError, err.message);
            assert.ok(err.message.startsWith(`${LABEL}: `), err.message);
            assert.match(err.message, c.want);
            return true;
          },
        );
      }));
  }

  const finds: { name: string; find: FindRef; want: Record<string, string> }[] = [
    {
      name: 'by path, recursively',
      find: { path: `${run}/other` },
      want: { [`${run}/other/deep/x`]: 'x' },
    },
    {
      name: 'by path and name regexp',
      find: { path: `${run}/app`, name: { regexp: '/(plain|hosts)$' } },
      want: { [`${run}/app/plain`]: 'hello', [`${run}/app/hosts`]: 'a.example,b.example' },
    },
    {
      name: 'by name regexp alone, from the root',
      find: { name: { regexp: `^${run}/app/(db|plain)$` } },
      want: {
        [`${run}/app/plain`]: 'hello',
        [`${run}/app/db`]: '{"user":"app","password":"ps-secret-1"}',
      },
    },
    {
      name: 'by tags, every tag with its value, decrypted',
      find: { path: run, tags: { team: 'app', env: 'prod' } },
      want: { [`${run}/app/plain`]: 'hello', [`${run}/other/deep/x`]: 'x' },
    },
    {
      name: 'by tags within a path',
      find: { path: `${run}/app`, tags: { team: 'app' } },
      want: {
        [`${run}/app/plain`]: 'hello',
        [`${run}/app/db`]: '{"user":"app","password":"ps-secret-1"}',
      },
    },
    {
      name: 'by tags past a page of GetParameters (batches of 10)',
      find: { path: `${run}/many`, tags: { bulk: 'yes' } },
      want: Object.fromEntries(
        Array.from({ length: 12 }, (_, i) => [
          `${run}/many/p${String(i).padStart(2, '0')}`,
          `m${i}`,
        ]),
      ),
    },
    {
      name: 'by path past a page of GetParametersByPath',
      find: { path: `${run}/many`, name: { regexp: 'p1[01]$' } },
      want: { [`${run}/many/p10`]: 'm10', [`${run}/many/p11`]: 'm11' },
    },
    {
      name: 'nothing, without error, when nothing matches',
      find: { path: `${run}/none` },
      want: {},
    },
  ];
  for (const c of finds) {
    it(`finds ${c.name}`, () =>
      withProvider(async (p) => {
        assert.deepEqual(text(await p.getAllSecrets?.(c.find, signal())), c.want);
      }));
  }

  it('feeds property, extract and find with rewrite through one pass of the agent', () =>
    withEnv(env(), async () => {
      const kube = new FakeKube();
      kube.put(paths.secretStore('params'), secretStore('params', { aws: spec }));
      const es = externalSecret('app', {
        refreshInterval: '0',
        secretStoreRef: { name: 'params', kind: 'SecretStore' },
        target: { name: 'app' },
        data: [
          { secretKey: 'password', remoteRef: { key: `${run}/app/db`, property: 'password' } },
          { secretKey: 'hosts', remoteRef: { key: `${run}/app/hosts` } },
        ],
        dataFrom: [
          { extract: { key: `${run}/app/db` } },
          {
            find: { path: `${run}/other` },
            rewrite: [{ regexp: { source: '.*/(\\w+)$', target: 'other-$1' } }],
          },
        ],
      });
      kube.put(paths.externalSecret('app'), es);
      const outcome = await syncExternalSecret(
        { kube, config: testConfig(), log: createLogger('error', {}, () => {}), env: process.env },
        'app',
      );
      assert.equal(outcome.ok, true, outcome.message);
      const secret = kube.object<Secret>(paths.secret('app')) ?? { metadata: { name: 'app' } };
      const data = Object.fromEntries(
        Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]),
      );
      assert.deepEqual(data, {
        password: 'ps-secret-1',
        hosts: 'a.example,b.example',
        user: 'app',
        'other-x': 'x',
      });
    }));

  it('surfaces a refused role assumption as the provider error of the read', () =>
    withProvider(
      async (p) => {
        await assert.rejects(p.getSecret({ key: `${run}/app/plain` }, signal()), (err: Error) => {
          assert.ok(err instanceof ProviderError, `${err.name}: ${err.message}`);
          assert.match(
            err.message,
            new RegExp(
              `^${LABEL.replace(/[()]/g, '\\$&')}: cannot assume role arn:aws:iam::123456789012:role/denied: AccessDenied: not allowed$`,
            ),
          );
          return true;
        });
      },
      { ...spec, role: 'arn:aws:iam::123456789012:role/denied' },
      {
        sts: {
          assumeRoleWithWebIdentity: async () => {
            throw new Error('not used');
          },
          assumeRole: async () => {
            throw Object.assign(new Error('not allowed'), { name: 'AccessDenied' });
          },
        },
      },
    ));
});

/** A fake ParameterStoreApi over a fixed list, paging by `pageSize`. */
function fakeApi(params: Parameter[], pageSize = 2) {
  const calls: { op: string; input: unknown }[] = [];
  const page = <T>(items: T[], token?: string) => {
    const start = Number(token ?? 0);
    const next = start + pageSize < items.length ? String(start + pageSize) : undefined;
    return { items: items.slice(start, start + pageSize), next };
  };
  const api: ParameterStoreApi = {
    async getParameter(input) {
      calls.push({ op: 'GetParameter', input });
      const p = params.find((x) => x.Name === input.Name);
      if (!p)
        throw Object.assign(new Error(`Parameter ${input.Name} not found.`), {
          name: 'ParameterNotFound',
        });
      return { Parameter: p };
    },
    async getParameters(input) {
      calls.push({ op: 'GetParameters', input });
      assert.ok(input.Names.length <= 10, 'GetParameters takes at most 10 names');
      return {
        Parameters: params.filter((p) => input.Names.includes(p.Name ?? '')),
        InvalidParameters: input.Names.filter((n) => !params.some((p) => p.Name === n)),
      };
    },
    async getParametersByPath(input) {
      calls.push({ op: 'GetParametersByPath', input });
      const { items, next } = page(
        params.filter((p) => p.Name?.startsWith(input.Path)),
        input.NextToken,
      );
      return { Parameters: items, ...(next ? { NextToken: next } : {}) };
    },
    async describeParameters(input) {
      calls.push({ op: 'DescribeParameters', input });
      const { items, next } = page([...params, { Name: '/gone' }], input.NextToken);
      return {
        Parameters: items.map((p) => ({ Name: p.Name })),
        ...(next ? { NextToken: next } : {}),
      };
    },
  };
  return { api, calls };
}

describe('aws Parameter Store logic', () => {
  const params = Array.from({ length: 23 }, (_, i) => ({
    Name: `/t/p${i}`,
    Type: 'String',
    Value: `v${i}`,
    Version: 1,
  }));

  it('pages GetParametersByPath until there is no NextToken, recursive and decrypted', async () => {
    const { api, calls } = fakeApi(params, 5);
    const found = await parameterStoreProvider(api, 'L').getAllSecrets!({ path: '/t' }, signal());
    assert.equal(found.size, 23);
    const byPath = calls.filter((c) => c.op === 'GetParametersByPath');
    assert.equal(byPath.length, 5);
    assert.deepEqual(byPath[0]!.input, {
      Path: '/t',
      Recursive: true,
      WithDecryption: true,
      MaxResults: 10,
    });
  });

  it('sends one tag:<key> Equals filter per tag, and reads the matches 10 at a time, leaving out the deleted', async () => {
    const { api, calls } = fakeApi(params, 7);
    const found = await parameterStoreProvider(api, 'L').getAllSecrets!(
      { tags: { team: 'a', env: 'prod' }, path: '/t' },
      signal(),
    );
    assert.deepEqual(
      [...found.keys()],
      params.map((p) => p.Name),
    );
    assert.deepEqual((calls[0]!.input as { ParameterFilters: unknown }).ParameterFilters, [
      { Key: 'tag:team', Option: 'Equals', Values: ['a'] },
      { Key: 'tag:env', Option: 'Equals', Values: ['prod'] },
      { Key: 'Path', Option: 'Recursive', Values: ['/t'] },
    ]);
    const batches = calls
      .filter((c) => c.op === 'GetParameters')
      .map((c) => (c.input as { Names: string[] }).Names.length);
    assert.deepEqual(batches, [10, 10, 4]);
  });

  it('keeps a secret value out of a failing call’s error, and cleans ids from it', async () => {
    const api: ParameterStoreApi = {
      ...fakeApi([]).api,
      async getParameter() {
        throw Object.assign(
          new Error('Rate exceeded. Request ID: abc-123 for AKIAIOSFODNN7EXAMPLE'),
          {
            name: 'ThrottlingException',
            $response: { body: 'ps-secret-1' },
          },
        );
      },
    };
    await assert.rejects(
      parameterStoreProvider(api, 'L').getSecret({ key: '/x' }, signal()),
      (err: Error) => {
        assert.ok(err instanceof ProviderError);
        assert.equal(
          err.message,
          'L: cannot read parameter /x: ThrottlingException: Rate exceeded. for <access-key-id>',
        );
        assert.doesNotMatch(
          JSON.stringify({ ...err, m: err.message, c: err.cause }),
          /ps-secret-1/,
        );
        return true;
      },
    );
  });
});

describe('aws provider loading', () => {
  /** Which AWS service SDKs a fresh process resolves while building a store of `service`. */
  function sdksLoaded(service: string): { ssm: boolean; secretsManager: boolean } {
    const url = (p: string) => pathToFileURL(join(import.meta.dirname, '../../../agent', p)).href;
    const script = `
      import { registerHooks } from 'node:module';
      const seen = new Set();
      registerHooks({ resolve(s, c, next) { const r = next(s, c); seen.add(r.url); return r; } });
      const { loadProvider } = await import(${JSON.stringify(url('providers/provider.ts'))});
      const { loadConfig } = await import(${JSON.stringify(url('config.ts'))});
      const config = loadConfig({ ESA_POD_NAME: 'p', ESA_POD_NAMESPACE: 'n', ESA_EXTERNAL_SECRETS: 'e', ESA_OUTPUT_DIR: '/tmp/esa-unused' });
      const store = { apiVersion: 'external-secrets.io/v1', kind: 'SecretStore', metadata: { name: 's', namespace: 'n' },
        spec: { provider: { aws: { service: ${JSON.stringify(service)}, region: 'us-east-1' } } } };
      const provider = await loadProvider({ store, namespace: 'n', kube: {}, config, env: { AWS_EC2_METADATA_DISABLED: 'true' } });
      provider.close?.();
      const has = (name) => [...seen].some((u) => u.includes('/@aws-sdk/' + name + '/'));
      process.stdout.write(JSON.stringify({ ssm: has('client-ssm'), secretsManager: has('client-secrets-manager') }));
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as { ssm: boolean; secretsManager: boolean };
  }

  it('loads @aws-sdk/client-ssm only for a ParameterStore store, and the Secrets Manager SDK only for its own', () => {
    assert.deepEqual(sdksLoaded('SecretsManager'), { ssm: false, secretsManager: true });
    assert.deepEqual(sdksLoaded('ParameterStore'), { ssm: true, secretsManager: false });
  });
});
