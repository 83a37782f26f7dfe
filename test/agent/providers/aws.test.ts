/**
 * The AWS Secrets Manager provider against moto (a real AWS API server on 127.0.0.1). moto
 * accepts any credentials and any web-identity token, so the tests check *which* identity the
 * agent used with GetCallerIdentity, and what it sent to the API server with the fake kube.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  CreateSecretCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { NotFoundError, ProviderError, UnsupportedError } from '../../../agent/errors.ts';
import {
  awsError,
  createAwsProvider,
  resolveAwsCredentials,
  secretsManagerProvider,
  type AwsProviderSpec,
  type SecretsManagerApi,
} from '../../../agent/providers/aws.ts';
import type { Provider, ProviderContext } from '../../../agent/providers/provider.ts';
import { useMoto, type Moto } from '../../harness/moto.ts';
import { FakeKube } from '../fake-kube.ts';
import { NS, clusterSecretStore, paths, secretStore, testConfig, withEnv } from '../helpers.ts';

const REGION = 'us-east-1';
const ROLE = 'arn:aws:iam::123456789012:role/app-reader';
const run = `t${process.pid}`; // moto may be shared with other test files: names are unique to this run
const dummy = { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'dummy-secret-access-key' };
const signal = () => AbortSignal.timeout(20_000);

let moto: Moto;
let admin: SecretsManagerClient;

// The provider sets no endpoint: the SDK takes AWS_ENDPOINT_URL* from the environment, as in a
// cluster that points the agent at a VPC endpoint. These are in place for the whole file.
const baseEnv = () => ({
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_ENDPOINT_URL_SECRETS_MANAGER: moto.endpoint,
  AWS_ENDPOINT_URL_STS: moto.endpoint,
  AWS_ACCESS_KEY_ID: undefined,
  AWS_SECRET_ACCESS_KEY: undefined,
  AWS_SESSION_TOKEN: undefined,
  AWS_ROLE_ARN: undefined,
  AWS_WEB_IDENTITY_TOKEN_FILE: undefined,
  AWS_PROFILE: undefined,
  AWS_CONFIG_FILE: join(tmpdir(), 'esa-no-aws-config'),
  AWS_SHARED_CREDENTIALS_FILE: join(tmpdir(), 'esa-no-aws-credentials'),
});

function credentialsSecret(kube: FakeKube, ns = NS): void {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  kube.put(paths.secret('aws-credentials', ns), {
    metadata: { name: 'aws-credentials', namespace: ns },
    data: {
      'access-key-id': b64(`${dummy.accessKeyId}\n`),
      'secret-access-key': b64(dummy.secretAccessKey),
    },
  });
}

const secretRefAuth = {
  secretRef: {
    accessKeyIDSecretRef: { name: 'aws-credentials', key: 'access-key-id' },
    secretAccessKeySecretRef: { name: 'aws-credentials', key: 'secret-access-key' },
  },
};

function context(
  aws: AwsProviderSpec,
  kube = new FakeKube(),
  config = testConfig(),
): ProviderContext {
  return {
    store: secretStore('aws-secrets', { aws }),
    namespace: NS,
    kube,
    config,
    env: process.env,
  };
}

/** The ARN the credentials act as, according to moto's STS. */
async function callerArn(credentials: unknown): Promise<string> {
  const resolved = typeof credentials === 'function' ? await credentials() : credentials;
  const sts = new STSClient({ region: REGION, endpoint: moto.endpoint, credentials: resolved });
  try {
    return (await sts.send(new GetCallerIdentityCommand({}))).Arn ?? '';
  } finally {
    sts.destroy();
  }
}

before(async () => {
  moto = await useMoto();
  admin = new SecretsManagerClient({ region: REGION, endpoint: moto.endpoint, credentials: dummy });
  await admin.send(
    new CreateSecretCommand({
      Name: `${run}/database`,
      SecretString: '{"username":"app","password":"secret123"}',
    }),
  );
  await admin.send(
    new CreateSecretCommand({
      Name: `${run}/binary`,
      SecretBinary: new Uint8Array([0, 1, 2, 255]),
    }),
  );
  await admin.send(new CreateSecretCommand({ Name: `${run}/rotating`, SecretString: 'v1' }));
  await admin.send(new PutSecretValueCommand({ SecretId: `${run}/rotating`, SecretString: 'v2' }));
  await admin.send(
    new CreateSecretCommand({ Name: `prefix-${run}/plain`, SecretString: 'prefixed' }),
  );
});

after(async () => {
  admin?.destroy();
  await moto?.stop();
});

/** A FakeKube holding the static credentials Secret in `ns`. */
function kubeWithCredentials(ns = NS): FakeKube {
  const kube = new FakeKube();
  credentialsSecret(kube, ns);
  return kube;
}

/** Builds the provider (with the file's AWS environment), runs `use`, and closes it. */
function withProvider(
  spec: AwsProviderSpec,
  use: (provider: Provider) => Promise<void>,
  ctx: ProviderContext = context(spec, kubeWithCredentials()),
  env: Record<string, string | undefined> = {},
): Promise<void> {
  return withEnv({ ...baseEnv(), ...env }, async () => {
    const provider = await createAwsProvider(spec, ctx);
    try {
      await use(provider);
    } finally {
      provider.close?.();
    }
  });
}

const staticSpec: AwsProviderSpec = {
  service: 'SecretsManager',
  region: REGION,
  auth: secretRefAuth,
};

describe('aws provider (Secrets Manager on moto)', () => {
  it('reads a secret with static keys from a Kubernetes Secret, endpoint taken from the environment', async () => {
    const kube = kubeWithCredentials();
    await withProvider(
      staticSpec,
      async (provider) => {
        const got = await provider.getSecret({ key: `${run}/database` }, signal());
        assert.equal(got.value, '{"username":"app","password":"secret123"}');
        assert.match(got.version ?? '', /^[0-9a-f-]{36}$/);
        assert.deepEqual(kube.calls, [{ method: 'GET', path: paths.secret('aws-credentials') }]);
      },
      context(staticSpec, kube),
    );
  });

  it('uses the global AWS_ENDPOINT_URL when no service-specific one is set', () =>
    withProvider(
      { region: REGION },
      async (provider) =>
        assert.equal((await provider.getSecret({ key: `${run}/rotating` }, signal())).value, 'v2'),
      context({}),
      {
        AWS_ENDPOINT_URL_SECRETS_MANAGER: undefined,
        AWS_ENDPOINT_URL: moto.endpoint,
        AWS_ACCESS_KEY_ID: 'AKIAX',
        AWS_SECRET_ACCESS_KEY: 'x',
      },
    ));

  it('returns SecretBinary as bytes', () =>
    withProvider(staticSpec, async (provider) => {
      const got = await provider.getSecret({ key: `${run}/binary` }, signal());
      assert.deepEqual(got.value, Buffer.from([0, 1, 2, 255]));
    }));

  it('selects a staging label, or a version id with "uuid/"', () =>
    withProvider(staticSpec, async (provider) => {
      const key = `${run}/rotating`;
      const previous = await provider.getSecret({ key, version: 'AWSPREVIOUS' }, signal());
      assert.equal(previous.value, 'v1');
      const byId = await provider.getSecret({ key, version: `uuid/${previous.version}` }, signal());
      assert.equal(byId.value, 'v1');
    }));

  it('puts the store prefix in front of every key', () =>
    withProvider({ ...staticSpec, prefix: 'prefix-' }, async (provider) => {
      assert.equal((await provider.getSecret({ key: `${run}/plain` }, signal())).value, 'prefixed');
    }));

  it('turns ResourceNotFoundException into a NotFoundError naming the store and the key', () =>
    withProvider(staticSpec, async (provider) => {
      await assert.rejects(
        provider.getSecret({ key: `${run}/missing` }, signal()),
        (err: Error) => {
          assert.ok(err instanceof NotFoundError);
          const prefix = `SecretStore ${NS}/aws-secrets (aws): cannot read secret ${run}/missing: `;
          assert.ok(err.message.startsWith(`${prefix}ResourceNotFoundException: `), err.message);
          assert.doesNotMatch(err.message, /request ?id|AKIA|dummy-secret/i);
          return true;
        },
      );
    }));

  it('reads the credentials Secret from the ref namespace for a ClusterSecretStore', async () => {
    const kube = kubeWithCredentials('aws-system');
    const ref = (key: string) => ({ name: 'aws-credentials', key, namespace: 'aws-system' });
    const auth = {
      secretRef: {
        accessKeyIDSecretRef: ref('access-key-id'),
        secretAccessKeySecretRef: ref('secret-access-key'),
      },
    };
    const spec = { region: REGION, auth };
    const ctx = { ...context(spec, kube), store: clusterSecretStore('shared-aws', { aws: spec }) };
    await withProvider(
      spec,
      async (provider) => {
        assert.equal((await provider.getSecret({ key: `${run}/rotating` }, signal())).value, 'v2');
        assert.deepEqual(
          kube.calls.map((c) => c.path),
          [paths.secret('aws-credentials', 'aws-system')],
        );
      },
      ctx,
    );
  });

  it('names the Secret and key when a credential key is missing (a ProviderError, never "not found")', async () => {
    const kube = new FakeKube();
    kube.put(paths.secret('aws-credentials'), { metadata: { name: 'aws-credentials' }, data: {} });
    await assert.rejects(
      withProvider(staticSpec, async () => {}, context(staticSpec, kube)),
      {
        name: 'ProviderError',
        message: `SecretStore ${NS}/aws-secrets (aws): auth.secretRef.accessKeyIDSecretRef: Secret ${NS}/aws-credentials has no key access-key-id`,
      },
    );
  });

  it('refuses a service it does not know, naming it', async () => {
    await assert.rejects(
      createAwsProvider({ service: 'CertificateManager', region: REGION }, context({})),
      (err: Error) => {
        assert.ok(err instanceof UnsupportedError);
        assert.match(err.message, /service CertificateManager is not supported/);
        return true;
      },
    );
  });
});

describe('aws credentials', () => {
  it('uses web identity with a TokenRequest for the pod service account and the store role (auth.jwt)', () =>
    withEnv(baseEnv(), async () => {
      const kube = new FakeKube();
      const spec = {
        region: REGION,
        role: ROLE,
        auth: { jwt: { serviceAccountRef: { name: 'app' } } },
      };
      const creds = await resolveAwsCredentials(spec, REGION, context(spec, kube));
      assert.equal(creds.mode, 'jwt');
      assert.equal(
        await callerArn(creds.credentials),
        `arn:aws:sts::123456789012:assumed-role/app-reader/esa-${NS}-app-7d4b9c`,
      );

      const tokenRequest = kube.calls.find((c) => c.path.endsWith('/token'));
      assert.deepEqual(tokenRequest, {
        method: 'POST',
        path: `/api/v1/namespaces/${NS}/serviceaccounts/app/token`,
        body: {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenRequest',
          spec: {
            audiences: ['sts.amazonaws.com'],
            expirationSeconds: 600,
            boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: 'app-7d4b9c', uid: 'pod-uid-1' },
          },
        },
      });
    }));

  it("takes the role from the service account's eks.amazonaws.com/role-arn annotation when the store has none", () =>
    withEnv(baseEnv(), async () => {
      const kube = new FakeKube();
      kube.put(`/api/v1/namespaces/${NS}/serviceaccounts/app`, {
        metadata: {
          name: 'app',
          annotations: {
            'eks.amazonaws.com/role-arn': 'arn:aws:iam::123456789012:role/from-annotation',
          },
        },
      });
      const spec = {
        region: REGION,
        auth: { jwt: { serviceAccountRef: { name: 'app', audiences: ['custom-aud'] } } },
      };
      const creds = await resolveAwsCredentials(spec, REGION, context(spec, kube));
      assert.match(await callerArn(creds.credentials), /assumed-role\/from-annotation\//);
      assert.deepEqual(
        (
          kube.calls.find((c) => c.path.endsWith('/token'))?.body as {
            spec: { audiences: string[] };
          }
        ).spec.audiences,
        ['custom-aud'],
      );
    }));

  it("refuses a serviceAccountRef that is not the pod's own service account", async () => {
    const spec = {
      region: REGION,
      role: ROLE,
      auth: { jwt: { serviceAccountRef: { name: 'someone-else' } } },
    };
    await assert.rejects(resolveAwsCredentials(spec, REGION, context(spec)), (err: Error) => {
      assert.ok(err instanceof UnsupportedError);
      assert.match(
        err.message,
        /names service account app-ns\/someone-else, but this pod runs as app-ns\/app/,
      );
      return true;
    });
  });

  it('uses the projected provider token (ESA_PROVIDER_TOKEN_FILE) with the store role', () =>
    withEnv(baseEnv(), async () => {
      const dir = mkdtempSync(join(tmpdir(), 'esa-token-'));
      writeFileSync(join(dir, 'token'), 'projected-token-for-sts');
      const spec = { region: REGION, role: ROLE };
      const creds = await resolveAwsCredentials(
        spec,
        REGION,
        context(spec, new FakeKube(), testConfig({ ESA_PROVIDER_TOKEN_FILE: join(dir, 'token') })),
      );
      assert.equal(creds.mode, 'tokenFile');
      assert.match(
        await callerArn(creds.credentials),
        /assumed-role\/app-reader\/esa-app-ns-app-7d4b9c$/,
      );
    }));

  it('follows the IRSA environment (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE) through the default chain', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'esa-irsa-'));
    writeFileSync(join(dir, 'token'), 'irsa-token');
    await withEnv(
      {
        ...baseEnv(),
        AWS_ROLE_ARN: 'arn:aws:iam::123456789012:role/irsa-role',
        AWS_WEB_IDENTITY_TOKEN_FILE: join(dir, 'token'),
        AWS_ROLE_SESSION_NAME: 'irsa',
      },
      async () => {
        const spec = { region: REGION };
        const creds = await resolveAwsCredentials(spec, REGION, context(spec));
        assert.deepEqual(creds, { mode: 'default', roles: [] });
        const provider = await createAwsProvider(spec, context(spec));
        try {
          assert.equal(
            (await provider.getSecret({ key: `${run}/rotating` }, signal())).value,
            'v2',
          );
        } finally {
          provider.close?.();
        }
        const { fromNodeProviderChain } = await import('@aws-sdk/credential-providers');
        assert.match(await callerArn(fromNodeProviderChain()), /assumed-role\/irsa-role\/irsa$/);
      },
    );
  });

  it('assumes the store role on top of static keys', () =>
    withEnv(baseEnv(), async () => {
      const kube = new FakeKube();
      credentialsSecret(kube);
      const spec = { region: REGION, role: ROLE, auth: secretRefAuth };
      const creds = await resolveAwsCredentials(spec, REGION, context(spec, kube));
      assert.equal(creds.mode, 'secretRef');
      assert.match(await callerArn(creds.credentials), /assumed-role\/app-reader\//);
    }));
});

describe('awsError', () => {
  const cases = [
    {
      name: 'drops request ids and access key ids',
      err: Object.assign(
        new Error('User AKIAIOSFODNN7EXAMPLE is not authorized. Request ID: 1234-abcd-5678'),
        { name: 'AccessDeniedException' },
      ),
      want: 'ctx: AccessDeniedException: User <access-key-id> is not authorized.',
    },
    {
      name: 'drops signing details',
      err: Object.assign(
        new Error(
          'The request signature we calculated does not match. The Canonical String for this request should have been\nPOST / Credential=AKIA.../x',
        ),
        { name: 'InvalidSignatureException' },
      ),
      want: 'ctx: InvalidSignatureException: The request signature we calculated does not match.',
    },
    {
      name: 'does not quote an answer it could not parse',
      err: Object.assign(
        new SyntaxError(
          'Unexpected token \'<\', "<?xml vers"... is not valid JSON\n  Deserialization error: to see the raw response, inspect the hidden field {error}.$response on this object.',
        ),
        { $metadata: { httpStatusCode: 403 } },
      ),
      want: 'ctx: SyntaxError: the answer could not be read (HTTP 403)',
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const out = awsError(c.err, 'ctx');
      assert.ok(out instanceof ProviderError);
      assert.equal(out.message, c.want);
      assert.equal(out.cause, undefined);
    });
  }

  it('keeps the value of a secret out of errors from a failing call', async () => {
    const api: SecretsManagerApi = {
      getSecretValue: async () => {
        throw Object.assign(new Error('throttled'), {
          name: 'ThrottlingException',
          $response: { body: 'secret123' },
        });
      },
    };
    const provider = secretsManagerProvider(api, 'SecretStore app-ns/aws (aws)');
    await assert.rejects(provider.getSecret({ key: 'db' }, signal()), (err: Error) => {
      assert.equal(
        err.message,
        'SecretStore app-ns/aws (aws): cannot read secret db: ThrottlingException: throttled',
      );
      assert.doesNotMatch(
        JSON.stringify({ ...err, message: err.message, cause: err.cause }),
        /secret123/,
      );
      return true;
    });
  });
});
