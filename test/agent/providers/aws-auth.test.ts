/**
 * How an AWS store signs in (agent/providers/aws-auth.ts): the role chain, external id and
 * session tags, and token hygiene, against a fake of the narrow StsApi (moto validates no
 * token and records no session tags, and its IAM cannot refuse a role); then the same chain
 * against moto's STS, where GetCallerIdentity shows the identity the calls end up with.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { ConfigError, ProviderError, UnsupportedError } from '../../../agent/errors.ts';
import {
  resolveAwsCredentials,
  SESSION_SECONDS,
  type AssumeRoleInput,
  type AwsCredentialSource,
  type AwsKeys,
  type AwsProviderSpec,
  type StsApi,
  type WebIdentityInput,
} from '../../../agent/providers/aws-auth.ts';
import type { ProviderContext } from '../../../agent/providers/provider.ts';
import { useMoto, type Moto } from '../../harness/moto.ts';
import { FakeKube } from '../fake-kube.ts';
import { NS, paths, secretStore, testConfig, withEnv } from '../helpers.ts';

const REGION = 'us-east-1';
const arn = (name: string) => `arn:aws:iam::123456789012:role/${name}`;
const SESSION = `esa-${NS}-app-7d4b9c`;

interface StsCall {
  call: 'AssumeRole' | 'AssumeRoleWithWebIdentity';
  input: AssumeRoleInput | WebIdentityInput;
  /** Access key id of the keys that signed the call; "default chain" when none were given. */
  signedBy?: string;
}

/** A fake STS: each session's access key id names its role and a serial number. */
class FakeSts implements StsApi {
  readonly calls: StsCall[] = [];
  /** Role ARNs whose AssumeRole answers AccessDenied. */
  readonly deny = new Set<string>();
  #serial = 0;
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  #keys(input: { RoleArn: string }): AwsKeys {
    const role = input.RoleArn.split('/').at(-1);
    return {
      accessKeyId: `ASIA-${role}-${++this.#serial}`,
      secretAccessKey: `secret-of-${role}`,
      sessionToken: `session-of-${role}`,
      expiration: new Date(this.#now() + SESSION_SECONDS * 1000),
    };
  }

  async assumeRoleWithWebIdentity(input: WebIdentityInput): Promise<AwsKeys> {
    this.calls.push({ call: 'AssumeRoleWithWebIdentity', input });
    return this.#keys(input);
  }

  async assumeRole(
    input: AssumeRoleInput,
    signer: AwsCredentialSource | undefined,
  ): Promise<AwsKeys> {
    const signedBy = signer ? (await signer()).accessKeyId : 'default chain';
    this.calls.push({ call: 'AssumeRole', input, signedBy });
    if (this.deny.has(input.RoleArn)) {
      throw Object.assign(
        new Error(
          `User: arn:aws:sts::123456789012:assumed-role/x/ASIAIOSFODNN7EXAMPLE is not authorized to perform: sts:AssumeRole on resource: ${input.RoleArn} Request ID: 9f1c-77ab`,
        ),
        { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } },
      );
    }
    return this.#keys(input);
  }
}

const staticAuth = {
  secretRef: {
    accessKeyIDSecretRef: { name: 'aws-credentials', key: 'access-key-id' },
    secretAccessKeySecretRef: { name: 'aws-credentials', key: 'secret-access-key' },
  },
};

function kubeWithKeys(): FakeKube {
  const kube = new FakeKube();
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  kube.put(paths.secret('aws-credentials'), {
    metadata: { name: 'aws-credentials', namespace: NS },
    data: {
      'access-key-id': b64('AKIAIOSFODNN7EXAMPLE'),
      'secret-access-key': b64('dummy-secret'),
    },
  });
  return kube;
}

function context(
  aws: AwsProviderSpec,
  kube = kubeWithKeys(),
  config = testConfig(),
  env: NodeJS.ProcessEnv = {},
): ProviderContext {
  return { store: secretStore('aws', { aws }), namespace: NS, kube, config, env };
}

function tokenFile(content: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'esa-sts-token-')), 'provider-token');
  writeFileSync(file, content);
  return file;
}

describe('aws role chain', () => {
  it('assumes additionalRoles in order, then role with externalID and session tags, each signed by the step before', async () => {
    const sts = new FakeSts();
    const spec: AwsProviderSpec = {
      region: REGION,
      auth: staticAuth,
      additionalRoles: [arn('hop-1'), arn('hop-2')],
      role: arn('target'),
      externalID: 'ext-4411',
      sessionTags: [{ key: 'team', value: 'payments' }],
      transitiveTagKeys: ['team'],
    };
    const creds = await resolveAwsCredentials(spec, REGION, context(spec), { sts });
    assert.equal(creds.mode, 'secretRef');
    assert.deepEqual(creds.roles, [arn('hop-1'), arn('hop-2'), arn('target')]);

    const keys = await creds.credentials!();
    assert.match(keys.accessKeyId, /^ASIA-target-/);
    assert.deepEqual(sts.calls, [
      {
        call: 'AssumeRole',
        input: { RoleArn: arn('hop-1'), RoleSessionName: SESSION, DurationSeconds: 900 },
        signedBy: 'AKIAIOSFODNN7EXAMPLE',
      },
      {
        call: 'AssumeRole',
        input: { RoleArn: arn('hop-2'), RoleSessionName: SESSION, DurationSeconds: 900 },
        signedBy: 'ASIA-hop-1-1',
      },
      {
        call: 'AssumeRole',
        input: {
          RoleArn: arn('target'),
          ExternalId: 'ext-4411',
          Tags: [{ Key: 'team', Value: 'payments' }],
          TransitiveTagKeys: ['team'],
          RoleSessionName: SESSION,
          DurationSeconds: 900,
        },
        signedBy: 'ASIA-hop-2-2',
      },
    ]);
  });

  it('assumes the store role on top of the default chain when the store names no auth', async () => {
    const sts = new FakeSts();
    const spec: AwsProviderSpec = { region: REGION, role: arn('target') };
    const creds = await resolveAwsCredentials(spec, REGION, context(spec), { sts });
    assert.equal(creds.mode, 'default');
    await creds.credentials!();
    assert.deepEqual(
      sts.calls.map((c) => [c.call, c.input.RoleArn, c.signedBy]),
      [['AssumeRole', arn('target'), 'default chain']],
    );
  });

  it('leaves the default chain alone when there is no role to assume', async () => {
    const creds = await resolveAwsCredentials({ region: REGION }, REGION, context({}), {
      sts: new FakeSts(),
    });
    assert.deepEqual(creds, { mode: 'default', roles: [] });
  });

  it('signs in with web identity as the store role, then takes additionalRoles', async () => {
    const sts = new FakeSts();
    const file = tokenFile('projected-token-1');
    const spec: AwsProviderSpec = {
      region: REGION,
      role: arn('web-role'),
      additionalRoles: [arn('after-web')],
    };
    const creds = await resolveAwsCredentials(
      spec,
      REGION,
      context(spec, new FakeKube(), testConfig({ ESA_PROVIDER_TOKEN_FILE: file })),
      { sts },
    );
    assert.equal(creds.mode, 'tokenFile');
    assert.deepEqual(creds.roles, [arn('web-role'), arn('after-web')]);
    assert.match((await creds.credentials!()).accessKeyId, /^ASIA-after-web-/);
    assert.deepEqual(sts.calls, [
      {
        call: 'AssumeRoleWithWebIdentity',
        input: {
          RoleArn: arn('web-role'),
          RoleSessionName: SESSION,
          DurationSeconds: 900,
          WebIdentityToken: 'projected-token-1',
        },
      },
      {
        call: 'AssumeRole',
        input: { RoleArn: arn('after-web'), RoleSessionName: SESSION, DurationSeconds: 900 },
        signedBy: 'ASIA-web-role-1',
      },
    ]);
  });

  const refusedCases = [
    { name: 'externalID', extra: { externalID: 'x' } },
    { name: 'sessionTags', extra: { sessionTags: [{ key: 'a', value: 'b' }] } },
    { name: 'transitiveTagKeys', extra: { transitiveTagKeys: ['a'] } },
  ];
  for (const c of refusedCases) {
    it(`refuses ${c.name} with web identity, which cannot carry it`, async () => {
      const spec: AwsProviderSpec = { region: REGION, role: arn('web-role'), ...c.extra };
      const ctx = context(
        spec,
        new FakeKube(),
        testConfig({ ESA_PROVIDER_TOKEN_FILE: tokenFile('t-1') }),
      );
      await assert.rejects(
        resolveAwsCredentials(spec, REGION, ctx, { sts: new FakeSts() }),
        (err: Error) => {
          assert.ok(err instanceof UnsupportedError);
          assert.match(
            err.message,
            new RegExp(
              `^SecretStore ${NS}/aws \\(aws\\): ${c.name} cannot be used with web identity`,
            ),
          );
          return true;
        },
      );
    });
  }

  it('reports AccessDenied naming the store and the role, without ids or keys, and tries again next time', async () => {
    const sts = new FakeSts();
    sts.deny.add(arn('forbidden'));
    const spec: AwsProviderSpec = { region: REGION, auth: staticAuth, role: arn('forbidden') };
    const creds = await resolveAwsCredentials(spec, REGION, context(spec), { sts });
    await assert.rejects(creds.credentials!(), (err: Error) => {
      assert.ok(err instanceof ProviderError);
      assert.equal(
        err.message,
        `SecretStore ${NS}/aws (aws): cannot assume role ${arn('forbidden')}: AccessDenied: User: ` +
          `arn:aws:sts::123456789012:assumed-role/x/<access-key-id> is not authorized to perform: ` +
          `sts:AssumeRole on resource: ${arn('forbidden')}`,
      );
      assert.equal(err.cause, undefined);
      return true;
    });
    sts.deny.clear();
    assert.match((await creds.credentials!()).accessKeyId, /^ASIA-forbidden-/);
    assert.equal(sts.calls.length, 2, 'the failure was not kept');
  });
});

describe('aws token hygiene', () => {
  it('reads the projected token file again before each login, never in between', async () => {
    let now = Date.parse('2026-01-01T00:00:00Z');
    const sts = new FakeSts(() => now);
    const file = tokenFile('token-before-rotation');
    const spec: AwsProviderSpec = { region: REGION, role: arn('web-role') };
    const creds = await resolveAwsCredentials(
      spec,
      REGION,
      context(spec, new FakeKube(), testConfig({ ESA_PROVIDER_TOKEN_FILE: file })),
      { sts, now: () => now },
    );
    const tokens = () => sts.calls.map((c) => (c.input as WebIdentityInput).WebIdentityToken);

    await creds.credentials!();
    await Promise.all([creds.credentials!(), creds.credentials!()]);
    assert.deepEqual(tokens(), ['token-before-rotation'], 'one login while the session is fresh');

    // The kubelet rotates the file in place; the session nears its end (renewed 5 min early).
    writeFileSync(file, 'token-after-rotation\n');
    now += 9 * 60_000;
    await creds.credentials!();
    assert.deepEqual(tokens(), ['token-before-rotation'], 'still fresh at 9 of 15 minutes');
    now += 2 * 60_000;
    await creds.credentials!();
    assert.deepEqual(tokens(), ['token-before-rotation', 'token-after-rotation']);
  });

  it('keeps one session across passes and ExternalSecrets: a sign-in per session, not per build', async () => {
    let now = Date.parse('2026-01-01T00:00:00Z');
    const sts = new FakeSts(() => now);
    const file = tokenFile('token-1');
    const kube = new FakeKube();
    const spec: AwsProviderSpec = { region: REGION, role: arn('web-role'), additionalRoles: [arn('hop')] };
    // Each pass of each ExternalSecret builds its provider anew (agent/fetch.ts).
    const pass = async () =>
      (await resolveAwsCredentials(spec, REGION,
        context(spec, kube, testConfig({ ESA_PROVIDER_TOKEN_FILE: file })), { sts, now: () => now })).credentials!();

    const first = await pass();
    await pass();
    await pass();
    assert.deepEqual(sts.calls.map((c) => c.call), ['AssumeRoleWithWebIdentity', 'AssumeRole']);
    assert.equal((await pass()).accessKeyId, first.accessKeyId, 'the same session');

    writeFileSync(file, 'token-2\n');
    now += 11 * 60_000; // within 5 minutes of the 15-minute session's end
    await pass();
    const logins = sts.calls.filter((c) => c.call === 'AssumeRoleWithWebIdentity');
    assert.deepEqual(logins.map((c) => (c.input as WebIdentityInput).WebIdentityToken), ['token-1', 'token-2']);
  });

  it('starts another session when the static keys in the Secret change', async () => {
    const sts = new FakeSts();
    const kube = kubeWithKeys();
    const spec: AwsProviderSpec = { region: REGION, auth: staticAuth, role: arn('target') };
    const pass = async () =>
      (await resolveAwsCredentials(spec, REGION, context(spec, kube), { sts })).credentials!();
    await pass();
    await pass();
    assert.equal(sts.calls.length, 1);
    kube.put(paths.secret('aws-credentials'), {
      metadata: { name: 'aws-credentials', namespace: NS },
      data: { 'access-key-id': Buffer.from('AKIAROTATED').toString('base64'),
        'secret-access-key': Buffer.from('rotated-secret').toString('base64') },
    });
    await pass();
    assert.deepEqual(sts.calls.map((c) => c.signedBy), ['AKIAIOSFODNN7EXAMPLE', 'AKIAROTATED']);
  });

  it('requests a new 600 s token bound to the pod for each auth.jwt login', async () => {
    let now = Date.parse('2026-01-01T00:00:00Z');
    const sts = new FakeSts(() => now);
    const kube = new FakeKube();
    const spec: AwsProviderSpec = {
      region: REGION,
      role: arn('jwt-role'),
      auth: { jwt: { serviceAccountRef: { name: 'app' } } },
    };
    const creds = await resolveAwsCredentials(spec, REGION, context(spec, kube), {
      sts,
      now: () => now,
    });
    await creds.credentials!();
    now += 11 * 60_000;
    await creds.credentials!();
    const requests = kube.calls.filter((c) => c.path.endsWith('/token'));
    assert.equal(requests.length, 2, 'one TokenRequest per login');
    assert.deepEqual((requests[0]!.body as { spec: unknown }).spec, {
      audiences: ['sts.amazonaws.com'],
      expirationSeconds: 600,
      boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: 'app-7d4b9c', uid: 'pod-uid-1' },
    });
    assert.deepEqual(
      sts.calls.map((c) => (c.input as WebIdentityInput).WebIdentityToken),
      ['token-for-app', 'token-for-app'],
    );
  });

  it('names the token file, not its content, when it cannot be read', async () => {
    const spec: AwsProviderSpec = { region: REGION, role: arn('web-role') };
    const ctx = context(
      spec,
      new FakeKube(),
      testConfig({ ESA_PROVIDER_TOKEN_FILE: '/nonexistent/esa/provider-token' }),
    );
    const creds = await resolveAwsCredentials(spec, REGION, ctx, { sts: new FakeSts() });
    await assert.rejects(creds.credentials!(), (err: Error) => {
      assert.ok(err instanceof ConfigError);
      assert.match(
        err.message,
        /cannot read the pod's token file \/nonexistent\/esa\/provider-token: ENOENT/,
      );
      return true;
    });
  });
});

describe('aws role chain on moto STS', () => {
  let moto: Moto;
  before(async () => {
    moto = await useMoto();
  });
  after(async () => {
    await moto?.stop();
  });

  /** moto's record of the sessions it handed out, for one session name. */
  async function sessions(
    name: string,
  ): Promise<{ role_arn: string; external_id: string | null }[]> {
    const data = (await (await fetch(`${moto.endpoint}/moto-api/data.json`)).json()) as {
      sts?: {
        AssumedRole?: { session_name: string; role_arn: string; external_id: string | null }[];
      };
    };
    return (data.sts?.AssumedRole ?? []).filter((r) => r.session_name === name);
  }

  it('ends as the last role of the chain, by GetCallerIdentity, with the external id on the store role', () =>
    withEnv(
      {
        AWS_EC2_METADATA_DISABLED: 'true',
        AWS_ENDPOINT_URL_STS: moto.endpoint,
        AWS_CONFIG_FILE: join(tmpdir(), 'esa-no-aws-config'),
        AWS_SHARED_CREDENTIALS_FILE: join(tmpdir(), 'esa-no-aws-credentials'),
      },
      async () => {
        // A pod name unique to this run: moto may be shared with other test files.
        const pod = `chain-${process.pid}`;
        const spec: AwsProviderSpec = {
          region: REGION,
          auth: staticAuth,
          additionalRoles: [arn('moto-hop')],
          role: arn('moto-target'),
          externalID: 'moto-ext-1',
        };
        const ctx = context(spec, kubeWithKeys(), testConfig({ ESA_POD_NAME: pod }));
        const creds = await resolveAwsCredentials(spec, REGION, ctx);
        const sts = new STSClient({
          region: REGION,
          endpoint: moto.endpoint,
          credentials: creds.credentials!,
        });
        try {
          const who = await sts.send(new GetCallerIdentityCommand({}));
          assert.equal(
            who.Arn,
            `arn:aws:sts::123456789012:assumed-role/moto-target/esa-${NS}-${pod}`,
          );
        } finally {
          sts.destroy();
        }
        assert.deepEqual(
          (await sessions(`esa-${NS}-${pod}`)).map((s) => [s.role_arn, s.external_id]),
          [
            [arn('moto-hop'), null],
            [arn('moto-target'), 'moto-ext-1'],
          ],
        );
      },
    ));
});
