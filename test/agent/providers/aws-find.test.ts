/**
 * dataFrom.find on AWS Secrets Manager: ListSecrets against moto (a real AWS API server on
 * 127.0.0.1), and the paging and filtering logic against a fake of the narrow listing type.
 */
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { NotFoundError } from '../../../agent/errors.ts';
import { createLogger } from '../../../agent/log.ts';
import {
  createAwsProviderWithFind,
  findSecretsManagerSecrets,
  type AwsProviderSpec,
  type SecretsManagerListApi,
} from '../../../agent/providers/aws.ts';
import { syncExternalSecret } from '../../../agent/sync.ts';
import type { Secret } from '../../../agent/types.ts';
import { useMoto, type Moto } from '../../harness/moto.ts';
import { FakeKube } from '../fake-kube.ts';
import { NS, externalSecret, paths, secretStore, testConfig, withEnv } from '../helpers.ts';

const REGION = 'us-east-1';
const run = `f${process.pid}`; // unique names: moto may be shared with other test files
const dummy = { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'dummy-secret-access-key' };

let moto: Moto;

const env = () => ({
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_ENDPOINT_URL_SECRETS_MANAGER: moto.endpoint,
  AWS_ACCESS_KEY_ID: dummy.accessKeyId,
  AWS_SECRET_ACCESS_KEY: dummy.secretAccessKey,
  AWS_SESSION_TOKEN: undefined,
  AWS_ROLE_ARN: undefined,
  AWS_WEB_IDENTITY_TOKEN_FILE: undefined,
  AWS_PROFILE: undefined,
  AWS_CONFIG_FILE: join(tmpdir(), 'esa-no-aws-config'),
  AWS_SHARED_CREDENTIALS_FILE: join(tmpdir(), 'esa-no-aws-credentials'),
});

const spec: AwsProviderSpec = { service: 'SecretsManager', region: REGION };

function context() {
  return {
    store: secretStore('aws', { aws: spec }),
    namespace: NS,
    kube: new FakeKube(),
    config: testConfig(),
    env: process.env,
  };
}

async function find(
  f: Parameters<
    NonNullable<Awaited<ReturnType<typeof createAwsProviderWithFind>>['getAllSecrets']>
  >[0],
) {
  return withEnv(env(), async () => {
    const provider = await createAwsProviderWithFind(spec, context());
    try {
      const out = await provider.getAllSecrets?.(f, AbortSignal.timeout(20_000));
      return Object.fromEntries([...(out ?? new Map())].map(([k, v]) => [k, String(v)]));
    } finally {
      provider.close?.();
    }
  });
}

describe('aws find (ListSecrets on moto)', () => {
  before(async () => {
    moto = await useMoto();
    const admin = new SecretsManagerClient({
      region: REGION,
      endpoint: moto.endpoint,
      credentials: dummy,
    });
    const create = (Name: string, SecretString: string, tags: Record<string, string> = {}) =>
      admin.send(
        new CreateSecretCommand({
          Name,
          SecretString,
          Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })),
        }),
      );
    try {
      await create(`${run}/app/db_user`, 'u', { team: 'db', env: 'prod' });
      await create(`${run}/app/db_pass`, 'p', { team: 'db', env: 'dev' });
      await create(`${run}/app/api_key`, 'k', { team: 'prod', env: 'db' });
      await create(`${run}/other/x`, 'x');
    } finally {
      admin.destroy();
    }
  });

  after(async () => {
    await moto?.stop();
  });

  it('finds by name regexp, by the full secret name', async () => {
    assert.deepEqual(await find({ name: { regexp: `^${run}/app/db_` } }), {
      [`${run}/app/db_user`]: 'u',
      [`${run}/app/db_pass`]: 'p',
    });
  });

  it('finds by tags as exact key=value pairs (AWS alone matches keys and values apart)', async () => {
    assert.deepEqual(await find({ path: `${run}/`, tags: { team: 'db', env: 'prod' } }), {
      [`${run}/app/db_user`]: 'u',
    });
  });

  it('finds by path', async () => {
    assert.deepEqual(await find({ path: `${run}/other/` }), { [`${run}/other/x`]: 'x' });
  });

  it('feeds find, rewrite and the Secret through one pass of the agent', async () => {
    const kube = new FakeKube();
    kube.put(paths.secretStore('aws'), secretStore('aws', { aws: spec }));
    kube.put(
      paths.externalSecret('found'),
      externalSecret('found', {
        secretStoreRef: { name: 'aws', kind: 'SecretStore' },
        dataFrom: [
          {
            find: { path: `${run}/app/`, tags: { team: 'db' } },
            rewrite: [{ regexp: { source: `^${run}/app/`, target: '' } }],
          },
        ],
      }),
    );
    const out = await withEnv(env(), () =>
      syncExternalSecret(
        { kube, config: testConfig(), log: createLogger('error', {}, () => {}), env: process.env },
        'found',
      ),
    );
    assert.equal(out.ok, true, out.message);
    const data = kube.object<Secret>(paths.secret('found'))?.data ?? {};
    assert.deepEqual(
      Object.fromEntries(
        Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]),
      ),
      { db_user: 'u', db_pass: 'p' },
    );
  });
});

describe('findSecretsManagerSecrets', () => {
  const signal = new AbortController().signal;

  it('follows NextToken, sends the name and tag filters, and skips a secret deleted meanwhile', async () => {
    const inputs: unknown[] = [];
    const api: SecretsManagerListApi = {
      listSecrets: async (input) => {
        inputs.push(input);
        return input.NextToken
          ? {
              SecretList: [
                { Name: 'p/b', Tags: [{ Key: 't', Value: '1' }] },
                { Name: 'p/gone', Tags: [{ Key: 't', Value: '1' }] },
              ],
            }
          : {
              SecretList: [
                { Name: 'p/a', Tags: [{ Key: 't', Value: '1' }] },
                { Name: 'p/c', Tags: [{ Key: 't', Value: '2' }] },
              ],
              NextToken: 'n1',
            };
      },
    };
    const out = await findSecretsManagerSecrets(
      api,
      async (ref) => {
        if (ref.key === 'p/gone') throw new NotFoundError('gone');
        return { value: `v-${ref.key}` };
      },
      { path: 'p/', tags: { t: '1' } },
      'SecretStore app-ns/aws (aws)',
      signal,
    );
    assert.deepEqual(
      [...out],
      [
        ['p/a', 'v-p/a'],
        ['p/b', 'v-p/b'],
      ],
    );
    assert.deepEqual(inputs[0], {
      Filters: [
        { Key: 'name', Values: ['p/'] },
        { Key: 'tag-key', Values: ['t'] },
        { Key: 'tag-value', Values: ['1'] },
      ],
      MaxResults: 100,
    });
  });

  it('reads through the store prefix and keys the result by the full name', async () => {
    const api: SecretsManagerListApi = {
      listSecrets: async () => ({ SecretList: [{ Name: 'team/x' }] }),
    };
    const reads: string[] = [];
    const out = await findSecretsManagerSecrets(
      api,
      async (ref) => {
        reads.push(ref.key);
        return { value: 'v' };
      },
      { name: { regexp: 'x$' } },
      'l',
      signal,
      'team/',
    );
    assert.deepEqual(reads, ['x']);
    assert.deepEqual([...out.keys()], ['team/x']);
  });

  it('names the store and the call when listing fails, without AWS request details', async () => {
    const api: SecretsManagerListApi = {
      listSecrets: async () => {
        throw Object.assign(
          new Error('User is not authorized to perform ListSecrets RequestId: 1234-abcd'),
          { name: 'AccessDeniedException' },
        );
      },
    };
    await assert.rejects(
      findSecretsManagerSecrets(
        api,
        async () => ({ value: '' }),
        { path: 'p' },
        'SecretStore app-ns/aws (aws)',
        signal,
      ),
      (err: Error) => {
        assert.match(
          err.message,
          /^SecretStore app-ns\/aws \(aws\): cannot list secrets \(find\): AccessDeniedException: User is not authorized/,
        );
        assert.doesNotMatch(err.message, /1234-abcd/);
        return true;
      },
    );
  });
});
