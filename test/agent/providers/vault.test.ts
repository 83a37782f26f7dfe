/**
 * The Vault provider with a fake VaultHttp: path building, versions, errors, auth methods and
 * token renewal, each checked on the requests the provider sends. The same provider against a
 * real OpenBao and the real API server is test/e2e/vault.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import {
  ConfigError,
  NotFoundError,
  ProviderError,
  UnsupportedError,
} from '../../../agent/errors.ts';
import { loadProvider, type ProviderContext } from '../../../agent/providers/provider.ts';
import {
  VaultClient,
  VaultSession,
  cleanVaultMessage,
  createVaultProvider,
  kvDataPath,
  kvMetadataPath,
  resetVaultSessions,
  vaultProvider,
  type VaultHttp,
  type VaultHttpRequest,
  type VaultHttpResponse,
  type VaultProviderSpec,
  type VaultSecretRef,
} from '../../../agent/providers/vault.ts';
import { FakeKube } from '../fake-kube.ts';
import { NS, clusterSecretStore, paths, secretStore, testConfig } from '../helpers.ts';

const SERVER = 'https://vault.test:8200';
const signal = () => AbortSignal.timeout(5_000);
const b64 = (s: string) => Buffer.from(s).toString('base64');

type Handler = (req: VaultHttpRequest) => Partial<VaultHttpResponse> & { json?: unknown };

/** A VaultHttp that answers with `handler` and records every request. */
class FakeVault implements VaultHttp {
  readonly requests: VaultHttpRequest[] = [];
  handler: Handler;
  created = 0;
  constructor(handler: Handler) {
    this.handler = handler;
  }
  async send(req: VaultHttpRequest): Promise<VaultHttpResponse> {
    this.requests.push(
      structuredClone({ ...req, signal: undefined }) as unknown as VaultHttpRequest,
    );
    const out = this.handler(req);
    const text = out.text ?? (out.json === undefined ? '' : JSON.stringify(out.json));
    return { status: out.status ?? 200, headers: out.headers ?? {}, text };
  }
  paths(): string[] {
    return this.requests.map(
      (r) => `${r.method} ${r.path}${r.query ? `?${new URLSearchParams(r.query)}` : ''}`,
    );
  }
}

const loginAnswer = (token: string, ttlSeconds = 3600, renewable = true) => ({
  json: { auth: { client_token: token, lease_duration: ttlSeconds, renewable } },
});
const kv2Answer = (data: unknown, version = 3) => ({
  json: { data: { data, metadata: { version, deletion_time: '', destroyed: false } } },
});

/** A fake server with the Kubernetes auth login and KV v2 reads of `secrets`. */
function kvServer(secrets: Record<string, unknown>, token = 's.TOKENTOKENTOKENTOKEN1'): FakeVault {
  return new FakeVault((req) => {
    if (req.path.endsWith('/login')) return loginAnswer(token);
    const m = /^secret\/data\/(.+)$/.exec(req.path);
    if (m && m[1]! in secrets) return kv2Answer(secrets[m[1]!]);
    return { status: 404, json: { errors: [] } };
  });
}

function tokenFile(content = 'jwt-one'): string {
  const file = join(mkdtempSync(join(tmpdir(), 'esa-vault-')), 'provider-token');
  writeFileSync(file, content);
  return file;
}

function context(
  vault: VaultProviderSpec,
  kube = new FakeKube(),
  env: Record<string, string> = {},
): ProviderContext {
  return {
    store: secretStore('vault-backend', { vault }),
    namespace: NS,
    kube,
    config: testConfig({ ESA_PROVIDER_TOKEN_FILE: tokenFile(), ...env }),
    env: {},
  };
}

const k8sSpec: VaultProviderSpec = {
  server: SERVER,
  path: 'secret',
  version: 'v2',
  auth: { kubernetes: { role: 'app' } },
};

async function provide(
  spec: VaultProviderSpec,
  fake: FakeVault,
  ctx = context(spec),
  now?: () => number,
) {
  return createVaultProvider(spec, ctx, { createHttp: () => fake, ...(now ? { now } : {}) });
}

afterEach(() => resetVaultSessions());

describe('vault paths', () => {
  const dataCases = [
    {
      name: 'v2 puts data between mount and key',
      mount: 'secret',
      version: 'v2',
      key: 'app/db',
      want: 'secret/data/app/db',
    },
    {
      name: 'v2 keeps a key that names the mount',
      mount: 'secret',
      version: 'v2',
      key: 'secret/app/db',
      want: 'secret/data/app/db',
    },
    {
      name: 'v2 keeps a key that names mount and data',
      mount: 'secret',
      version: 'v2',
      key: 'secret/data/app',
      want: 'secret/data/app',
    },
    {
      name: 'v2 with a nested mount',
      mount: 'team/kv',
      version: 'v2',
      key: 'db',
      want: 'team/kv/data/db',
    },
    {
      name: 'v2 trims slashes',
      mount: 'secret/',
      version: 'v2',
      key: '/db',
      want: 'secret/data/db',
    },
    {
      name: 'v1 prefixes the mount only',
      mount: 'kv',
      version: 'v1',
      key: 'app/db',
      want: 'kv/app/db',
    },
    {
      name: 'v1 keeps a key that names the mount',
      mount: 'kv',
      version: 'v1',
      key: 'kv/app/db',
      want: 'kv/app/db',
    },
    {
      name: 'v2 without mount adds data after the first segment',
      mount: undefined,
      version: 'v2',
      key: 'secret/app/db',
      want: 'secret/data/app/db',
    },
    {
      name: 'v2 without mount keeps an explicit data segment',
      mount: undefined,
      version: 'v2',
      key: 'secret/app/data/db',
      want: 'secret/app/data/db',
    },
    {
      name: 'v1 without mount uses the key as written',
      mount: undefined,
      version: 'v1',
      key: 'kv/app/db',
      want: 'kv/app/db',
    },
  ] as const;
  for (const c of dataCases) {
    it(`builds the data path: ${c.name}`, () =>
      assert.equal(kvDataPath(c.mount, c.version, c.key), c.want));
  }

  const metadataCases = [
    { name: 'with a mount', mount: 'secret', key: 'app/db', want: 'secret/metadata/app/db' },
    {
      name: 'with a key that names mount and data',
      mount: 'secret',
      key: 'secret/data/app',
      want: 'secret/metadata/app',
    },
    {
      name: 'without mount, from an explicit data segment',
      mount: undefined,
      key: 'secret/data/app',
      want: 'secret/metadata/app',
    },
    {
      name: 'without mount, after the first segment',
      mount: undefined,
      key: 'secret/app',
      want: 'secret/metadata/app',
    },
  ] as const;
  for (const c of metadataCases) {
    it(`builds the metadata path: ${c.name}`, () =>
      assert.equal(kvMetadataPath(c.mount, c.key), c.want));
  }
});

describe('vault provider reads', () => {
  it('returns the data map of KV v2 as the server wrote it, with the version', async () => {
    const fake = new FakeVault((req) =>
      req.path.endsWith('/login')
        ? loginAnswer('s.TOKENTOKENTOKENTOKEN1')
        : { text: '{"data":{"data":{"price":1.50,"user":"app"},"metadata":{"version":7}}}' },
    );
    const provider = await provide(k8sSpec, fake);
    const got = await provider.getSecret({ key: 'app/db' }, signal());
    assert.deepEqual(got, { value: '{"price":1.50,"user":"app"}', version: '7' });
    assert.deepEqual(fake.paths(), ['POST auth/kubernetes/login', 'GET secret/data/app/db']);
    assert.equal(fake.requests[1]!.headers['x-vault-token'], 's.TOKENTOKENTOKENTOKEN1');
  });

  it('asks for remoteRef.version as ?version=N', async () => {
    const fake = kvServer({ 'app/db': { a: '1' } });
    const provider = await provide(k8sSpec, fake);
    await provider.getSecret({ key: 'app/db', version: '2' }, signal());
    assert.deepEqual(fake.paths().at(-1), 'GET secret/data/app/db?version=2');
  });

  it('escapes each path segment but keeps the slashes', async () => {
    const fake = kvServer({});
    const provider = await provide(k8sSpec, fake);
    await assert.rejects(provider.getSecret({ key: 'team a/db?x#1' }, signal()), NotFoundError);
    assert.equal(fake.requests.at(-1)!.path, 'secret/data/team%20a/db%3Fx%231');
  });

  it('reads KV v1 at <mount>/<key> and returns its data map', async () => {
    const fake = new FakeVault((req) =>
      req.path.endsWith('/login')
        ? loginAnswer('s.TOKENTOKENTOKENTOKEN1')
        : { json: { data: { password: 'p1' } } },
    );
    const provider = await provide({ ...k8sSpec, path: 'kv', version: 'v1' }, fake);
    assert.deepEqual(await provider.getSecret({ key: 'app' }, signal()), {
      value: '{"password":"p1"}',
    });
    assert.equal(fake.paths().at(-1), 'GET kv/app');
  });

  const refused = [
    {
      name: 'a version on KV v1',
      spec: { ...k8sSpec, version: 'v1' as const },
      ref: { key: 'a', version: '1' },
      error: UnsupportedError,
    },
    {
      name: 'a version that is not a number',
      spec: k8sSpec,
      ref: { key: 'a', version: 'latest' },
      error: ConfigError,
    },
    {
      name: 'metadataPolicy Fetch on KV v1',
      spec: { ...k8sSpec, version: 'v1' as const },
      ref: { key: 'a', metadataPolicy: 'Fetch' as const },
      error: UnsupportedError,
    },
  ];
  for (const c of refused) {
    it(`refuses ${c.name} before calling Vault`, async () => {
      const fake = kvServer({});
      const provider = await provide(c.spec, fake);
      await assert.rejects(provider.getSecret(c.ref, signal()), c.error);
      assert.deepEqual(fake.requests, []);
    });
  }

  const gone = [
    {
      name: 'a deleted version',
      meta: { version: 2, deletion_time: '2026-01-01T00:00:00Z', destroyed: false },
      want: /secret app\/db version 2 was deleted \(version 2, at 2026-01-01T00:00:00Z\)$/,
    },
    {
      name: 'a destroyed version',
      meta: { version: 2, deletion_time: '', destroyed: true },
      want: /secret app\/db version 2 was destroyed \(version 2\)$/,
    },
    { name: 'a missing secret', meta: undefined, want: /secret app\/db version 2 does not exist$/ },
  ];
  for (const c of gone) {
    it(`turns ${c.name} into a NotFoundError naming the store and the key`, async () => {
      const fake = new FakeVault((req) =>
        req.path.endsWith('/login')
          ? loginAnswer('s.TOKENTOKENTOKENTOKEN1')
          : {
              status: 404,
              json: c.meta ? { data: { data: null, metadata: c.meta } } : { errors: [] },
            },
      );
      const provider = await provide(k8sSpec, fake);
      await assert.rejects(
        provider.getSecret({ key: 'app/db', version: '2' }, signal()),
        (err: Error) => {
          assert.ok(err instanceof NotFoundError, err.message);
          assert.ok(
            err.message.startsWith(`SecretStore ${NS}/vault-backend (vault): `),
            err.message,
          );
          assert.match(err.message, c.want);
          return true;
        },
      );
    });
  }

  it('reports a denial with store, key, path and cause, never the token', async () => {
    const token = 's.SECRETTOKENVALUE12345';
    const fake = new FakeVault((req) =>
      req.path.endsWith('/login')
        ? loginAnswer(token)
        : { status: 403, json: { errors: ['permission denied'] } },
    );
    const provider = await provide(k8sSpec, fake);
    await assert.rejects(provider.getSecret({ key: 'other/db' }, signal()), (err: Error) => {
      assert.ok(err instanceof ProviderError);
      assert.equal(
        err.message,
        `SecretStore ${NS}/vault-backend (vault): cannot read secret other/db (path secret/data/other/db): permission denied (HTTP 403)`,
      );
      assert.ok(!err.message.includes(token));
      return true;
    });
    assert.equal(fake.requests.length, 2, 'a 403 with a token just obtained is not retried');
  });

  it('says Vault gave no answer when the connection fails', async () => {
    const fake = kvServer({});
    fake.send = async (req) => {
      if (req.path.endsWith('/login'))
        return {
          status: 200,
          headers: {},
          text: JSON.stringify(loginAnswer('s.TOKENTOKENTOKENTOKEN1').json),
        };
      throw new Error('https://vault.test:8200: connect ECONNREFUSED 127.0.0.1:8200');
    };
    const provider = await provide(k8sSpec, fake);
    await assert.rejects(provider.getSecret({ key: 'app/db' }, signal()), {
      name: 'ProviderError',
      message: `SecretStore ${NS}/vault-backend (vault): cannot read secret app/db (path secret/data/app/db): no answer from Vault: https://vault.test:8200: connect ECONNREFUSED 127.0.0.1:8200`,
    });
  });

  it('fetches KV v2 metadata: custom_metadata and the system keys', async () => {
    const fake = new FakeVault((req) =>
      req.path.endsWith('/login')
        ? loginAnswer('s.TOKENTOKENTOKENTOKEN1')
        : {
            json: {
              data: {
                created_time: '2026-01-01T00:00:00Z',
                current_version: 4,
                delete_version_after: '0s',
                max_versions: 0,
                custom_metadata: { owner: 'team-a', tier: 'gold' },
              },
            },
          },
    );
    const provider = await provide(k8sSpec, fake);
    const ref: VaultSecretRef = { key: 'app/db', metadataPolicy: 'Fetch' };
    const got = await provider.getSecret(ref, signal());
    assert.deepEqual(JSON.parse(got.value as string), {
      created_time: '2026-01-01T00:00:00Z',
      current_version: '4',
      delete_version_after: '0s',
      owner: 'team-a',
      tier: 'gold',
    });
    assert.equal(fake.paths().at(-1), 'GET secret/metadata/app/db');
  });
});

describe('vault provider find', () => {
  /** A KV v2 tree: folders list their children; secrets carry data and custom_metadata. */
  function treeServer(): FakeVault {
    const lists: Record<string, string[]> = {
      'secret/metadata/app': ['db', 'cache', 'nested/'],
      'secret/metadata/app/nested': ['deep'],
    };
    const tags: Record<string, Record<string, string>> = {
      'app/db': { team: 'a' },
      'app/nested/deep': { team: 'a' },
    };
    return new FakeVault((req) => {
      if (req.path.endsWith('/login')) return loginAnswer('s.TOKENTOKENTOKENTOKEN1');
      if (req.query?.list === 'true') {
        const keys = lists[req.path];
        return keys ? { json: { data: { keys } } } : { status: 404, json: { errors: [] } };
      }
      const meta = /^secret\/metadata\/(.+)$/.exec(req.path);
      if (meta) return { json: { data: { custom_metadata: tags[meta[1]!] ?? null } } };
      const data = /^secret\/data\/(.+)$/.exec(req.path);
      if (data?.[1] === 'app/cache')
        return {
          status: 404,
          json: { data: { data: null, metadata: { version: 1, deletion_time: 'x' } } },
        };
      return kv2Answer({ name: data?.[1] });
    });
  }

  it('lists recursively and keeps the names that match the regexp', async () => {
    const fake = treeServer();
    const provider = await provide(k8sSpec, fake);
    const found = await provider.getAllSecrets!({ path: 'app', name: { regexp: 'd' } }, signal());
    assert.deepEqual(
      [...found],
      [
        ['app/db', '{"name":"app/db"}'],
        ['app/nested/deep', '{"name":"app/nested/deep"}'],
      ],
    );
    assert.deepEqual(
      fake.paths().filter((p) => p.includes('list')),
      ['GET secret/metadata/app?list=true', 'GET secret/metadata/app/nested?list=true'],
    );
  });

  it('keeps the names whose custom_metadata carries every tag, leaving out deleted ones', async () => {
    const provider = await provide(k8sSpec, treeServer());
    const found = await provider.getAllSecrets!({ path: 'app', tags: { team: 'a' } }, signal());
    assert.deepEqual([...found.keys()], ['app/db', 'app/nested/deep']);
    const all = await provider.getAllSecrets!({ path: 'app', name: { regexp: '.' } }, signal());
    assert.deepEqual(
      [...all.keys()],
      ['app/db', 'app/nested/deep'],
      'app/cache is deleted: left out',
    );
  });

  it('returns nothing, not an error, for a path that holds nothing', async () => {
    const provider = await provide(k8sSpec, treeServer());
    assert.equal(
      (await provider.getAllSecrets!({ path: 'none', name: { regexp: '.' } }, signal())).size,
      0,
    );
  });

  it('refuses tags on KV v1', async () => {
    const provider = await provide({ ...k8sSpec, version: 'v1' }, treeServer());
    await assert.rejects(provider.getAllSecrets!({ tags: { a: 'b' } }, signal()), UnsupportedError);
  });
});

describe('vault provider headers', () => {
  it('sends the namespace, forwardInconsistent and extra headers on every request, login included', async () => {
    const fake = kvServer({ a: { x: '1' } });
    const spec = {
      ...k8sSpec,
      namespace: 'team-a',
      forwardInconsistent: true,
      headers: { 'X-Team': 'a' },
    };
    const provider = await provide(spec, fake);
    await provider.getSecret({ key: 'a' }, signal());
    for (const req of fake.requests) {
      assert.equal(req.headers['x-vault-namespace'], 'team-a');
      assert.equal(req.headers['x-vault-inconsistent'], 'forward-active-node');
      assert.equal(req.headers['X-Team'], 'a');
    }
  });

  it('sends back the last X-Vault-Index with readYourWrites', async () => {
    let n = 0;
    const fake = new FakeVault((req) =>
      req.path.endsWith('/login')
        ? { ...loginAnswer('s.TOKENTOKENTOKENTOKEN1'), headers: { 'x-vault-index': `idx-${++n}` } }
        : { ...kv2Answer({ x: '1' }), headers: { 'x-vault-index': `idx-${++n}` } },
    );
    const provider = await provide({ ...k8sSpec, readYourWrites: true }, fake);
    await provider.getSecret({ key: 'a' }, signal());
    await provider.getSecret({ key: 'b' }, signal());
    assert.deepEqual(
      fake.requests.map((r) => r.headers['x-vault-index']),
      [undefined, 'idx-1', 'idx-2'],
    );
  });
});

describe('vault auth methods', () => {
  it('logs in with the pod token file, read again before every login', async () => {
    const file = tokenFile('jwt-one');
    const ctx = context(k8sSpec, new FakeKube(), { ESA_PROVIDER_TOKEN_FILE: file });
    const fake = kvServer({ a: {} });
    const provider = await provide(k8sSpec, fake, ctx);
    await provider.getSecret({ key: 'a' }, signal());
    writeFileSync(file, 'jwt-two\n');
    // The server revokes the token: the next read gets 403, logs in again and retries.
    fake.handler = (req) =>
      req.path.endsWith('/login')
        ? loginAnswer('s.SECONDTOKENSECONDTOKEN')
        : req.headers['x-vault-token'] === 's.SECONDTOKENSECONDTOKEN'
          ? kv2Answer({})
          : { status: 403, json: { errors: ['permission denied'] } };
    await provider.getSecret({ key: 'a' }, signal());
    const logins = fake.requests.filter((r) => r.path === 'auth/kubernetes/login');
    assert.deepEqual(
      logins.map((r) => r.body),
      [
        { role: 'app', jwt: 'jwt-one' },
        { role: 'app', jwt: 'jwt-two' },
      ],
    );
  });

  it('falls back to the agent token file without a provider token', async () => {
    const kubeToken = tokenFile('kube-jwt');
    const ctx = context(k8sSpec, new FakeKube(), {
      ESA_PROVIDER_TOKEN_FILE: '',
      ESA_KUBE_TOKEN_FILE: kubeToken,
    });
    const fake = kvServer({ a: {} });
    await (await provide(k8sSpec, fake, ctx)).getSecret({ key: 'a' }, signal());
    assert.deepEqual(fake.requests[0]!.body, { role: 'app', jwt: 'kube-jwt' });
  });

  it('requests a token for the pod service account with audience vault, bound to the pod', async () => {
    const kube = new FakeKube();
    const spec = {
      ...k8sSpec,
      auth: {
        kubernetes: { mountPath: 'k8s-east', role: 'app', serviceAccountRef: { name: 'app' } },
      },
    };
    const fake = kvServer({ a: {} });
    await (await provide(spec, fake, context(spec, kube))).getSecret({ key: 'a' }, signal());
    assert.deepEqual(kube.calls, [
      {
        method: 'POST',
        path: `/api/v1/namespaces/${NS}/serviceaccounts/app/token`,
        body: {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenRequest',
          spec: {
            audiences: ['vault'],
            expirationSeconds: 600,
            boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: 'app-7d4b9c', uid: 'pod-uid-1' },
          },
        },
      },
    ]);
    assert.deepEqual(fake.requests[0]!.body, { role: 'app', jwt: 'token-for-app' });
    assert.equal(fake.requests[0]!.path, 'auth/k8s-east/login');
  });

  it('refuses a service account that is not the pod’s own', async () => {
    const spec = {
      ...k8sSpec,
      auth: { kubernetes: { role: 'app', serviceAccountRef: { name: 'admin' } } },
    };
    const provider = await provide(spec, kvServer({}));
    await assert.rejects(provider.getSecret({ key: 'a' }, signal()), (err: Error) => {
      assert.ok(err instanceof UnsupportedError);
      assert.match(err.message, /service account app-ns\/admin, but this pod runs as app-ns\/app/);
      return true;
    });
  });

  it('reads the JWT from secretRef, key "token" by default', async () => {
    const kube = new FakeKube();
    kube.put(paths.secret('vault-jwt'), {
      metadata: { name: 'vault-jwt' },
      data: { token: b64('jwt-from-secret\n') },
    });
    const spec = {
      ...k8sSpec,
      auth: { kubernetes: { role: 'app', secretRef: { name: 'vault-jwt', key: '' } } },
    };
    const fake = kvServer({ a: {} });
    await (await provide(spec, fake, context(spec, kube))).getSecret({ key: 'a' }, signal());
    assert.deepEqual(fake.requests[0]!.body, { role: 'app', jwt: 'jwt-from-secret' });
  });

  it('logs in by JWT with a requested token of the configured audiences and expiry', async () => {
    const kube = new FakeKube();
    const spec: VaultProviderSpec = {
      ...k8sSpec,
      auth: {
        jwt: {
          path: 'jwt-k8s',
          role: 'reader',
          kubernetesServiceAccountToken: {
            serviceAccountRef: { name: 'app' },
            audiences: ['vault-east'],
            expirationSeconds: 900,
          },
        },
      },
    };
    const fake = kvServer({ a: {} });
    await (await provide(spec, fake, context(spec, kube))).getSecret({ key: 'a' }, signal());
    const request = kube.calls[0]!.body as {
      spec: { audiences: string[]; expirationSeconds: number };
    };
    assert.deepEqual(request.spec.audiences, ['vault-east']);
    assert.equal(request.spec.expirationSeconds, 900);
    assert.equal(fake.requests[0]!.path, 'auth/jwt-k8s/login');
    assert.deepEqual(fake.requests[0]!.body, { role: 'reader', jwt: 'token-for-app' });
  });

  it('logs in by AppRole with the role id from roleRef and the secret id from secretRef', async () => {
    const kube = new FakeKube();
    kube.put(paths.secret('approle'), {
      metadata: { name: 'approle' },
      data: { id: b64('role-1'), secret: b64('sid-1') },
    });
    const spec: VaultProviderSpec = {
      ...k8sSpec,
      auth: {
        appRole: {
          roleRef: { name: 'approle', key: 'id' },
          secretRef: { name: 'approle', key: 'secret' },
        },
      },
    };
    const fake = kvServer({ a: {} });
    await (await provide(spec, fake, context(spec, kube))).getSecret({ key: 'a' }, signal());
    assert.equal(fake.requests[0]!.path, 'auth/approle/login');
    assert.deepEqual(fake.requests[0]!.body, { role_id: 'role-1', secret_id: 'sid-1' });
  });

  it('uses a token from tokenSecretRef without logging in, reading the Secret of the ref namespace for a cluster store', async () => {
    const kube = new FakeKube();
    kube.put(paths.secret('vault-token', 'vault-system'), {
      metadata: { name: 'vault-token' },
      data: { token: b64('s.STATICTOKENSTATICTOKEN') },
    });
    const spec: VaultProviderSpec = {
      ...k8sSpec,
      auth: { tokenSecretRef: { name: 'vault-token', key: 'token', namespace: 'vault-system' } },
    };
    const ctx = {
      ...context(spec, kube),
      store: clusterSecretStore('shared-vault', { vault: spec }),
    };
    const fake = kvServer({ a: {} });
    await (await provide(spec, fake, ctx)).getSecret({ key: 'a' }, signal());
    assert.deepEqual(fake.paths(), ['GET secret/data/a']);
    assert.equal(fake.requests[0]!.headers['x-vault-token'], 's.STATICTOKENSTATICTOKEN');
  });

  it('names the method, mount, role and Vault’s reason when a login fails, with tokens cut out', async () => {
    const fake = new FakeVault(() => ({
      status: 403,
      json: {
        errors: [
          'service account name not authorized; got eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln',
        ],
      },
    }));
    const provider = await provide(k8sSpec, fake);
    await assert.rejects(provider.getSecret({ key: 'a' }, signal()), {
      name: 'ProviderError',
      message: `SecretStore ${NS}/vault-backend (vault): Kubernetes auth login (mount kubernetes, role app): service account name not authorized; got <jwt> (HTTP 403)`,
    });
  });

  const badSpecs = [
    {
      name: 'no server',
      spec: { auth: k8sSpec.auth },
      error: ConfigError,
      message: /spec.provider.vault.server is not set/,
    },
    {
      name: 'a server that is not http(s)',
      spec: { ...k8sSpec, server: 'ftp://x' },
      error: ConfigError,
      message: /http:\/\/ or https:\/\//,
    },
    {
      name: 'an unknown KV version',
      spec: { ...k8sSpec, version: 'v3' },
      error: ConfigError,
      message: /version must be v1 or v2/,
    },
    {
      name: 'no auth method',
      spec: { ...k8sSpec, auth: {} },
      error: ConfigError,
      message: /auth names no method/,
    },
    {
      name: 'kubernetes auth without role',
      spec: { ...k8sSpec, auth: { kubernetes: {} } },
      error: ConfigError,
      message: /auth.kubernetes.role is not set/,
    },
    {
      name: 'an auth method not implemented',
      spec: { ...k8sSpec, auth: { ldap: { username: 'u' } } },
      error: UnsupportedError,
      message: /auth.ldap is not supported yet/,
    },
    {
      name: 'AppRole without secretRef',
      spec: { ...k8sSpec, auth: { appRole: { roleId: 'r' } } },
      error: ConfigError,
      message: /auth.appRole.secretRef is not set/,
    },
    {
      name: 'a caBundle that is not PEM',
      spec: { ...k8sSpec, caBundle: b64('hello') },
      error: ConfigError,
      message: /caBundle is not a base64-encoded PEM/,
    },
  ];
  for (const c of badSpecs) {
    it(`refuses a store with ${c.name}, naming the store`, async () => {
      await assert.rejects(provide(c.spec as VaultProviderSpec, kvServer({})), (err: Error) => {
        assert.ok(err instanceof c.error, err.message);
        assert.match(err.message, c.message);
        assert.ok(err.message.startsWith(`SecretStore ${NS}/vault-backend (vault): `), err.message);
        return true;
      });
    });
  }

  it('reads the CA from a ConfigMap named by caProvider and hands it to the HTTP layer', async () => {
    const kube = new FakeKube();
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    kube.put(`/api/v1/namespaces/${NS}/configmaps/vault-ca`, {
      metadata: { name: 'vault-ca' },
      data: { 'ca.crt': pem },
    });
    const spec: VaultProviderSpec = {
      ...k8sSpec,
      caProvider: { type: 'ConfigMap', name: 'vault-ca', key: 'ca.crt' },
    };
    let seen: unknown;
    await createVaultProvider(spec, context(spec, kube), {
      createHttp: (o) => {
        seen = o;
        return kvServer({});
      },
    });
    assert.deepEqual(seen, { server: SERVER, caPem: pem });
  });

  it('is what loadProvider builds for a store with provider vault', async () => {
    const provider = await loadProvider(context(k8sSpec));
    assert.equal(provider.name, 'vault');
  });
});

describe('vault token lifetime', () => {
  /** A server whose logins hand out s.LOGIN<n> and whose renewals grant `renewTtl` seconds. */
  function lifetimeServer(renewTtl: () => number | undefined): FakeVault {
    let logins = 0;
    return new FakeVault((req) => {
      if (req.path === 'auth/kubernetes/login')
        return loginAnswer(`s.LOGINLOGINLOGINLOGIN${++logins}`, 90);
      if (req.path === 'auth/token/renew-self') {
        const ttl = renewTtl();
        return ttl === undefined
          ? { status: 403, json: { errors: ['permission denied'] } }
          : loginAnswer(req.headers['x-vault-token']!, ttl);
      }
      return kv2Answer({});
    });
  }

  it('keeps one login across sync passes while the token is fresh', async () => {
    const fake = lifetimeServer(() => 90);
    let now = 1_000_000;
    for (let pass = 0; pass < 3; pass++) {
      const provider = await provide(k8sSpec, fake, context(k8sSpec), () => now);
      await provider.getSecret({ key: 'a' }, signal());
      now += 20_000;
    }
    assert.deepEqual(fake.paths(), [
      'POST auth/kubernetes/login',
      'GET secret/data/a',
      'GET secret/data/a',
      'GET secret/data/a',
    ]);
  });

  it('renews the token once two thirds of its TTL have passed', async () => {
    const fake = lifetimeServer(() => 90);
    let now = 0;
    const provider = await provide(k8sSpec, fake, context(k8sSpec), () => now);
    await provider.getSecret({ key: 'a' }, signal());
    now = 61_000;
    await provider.getSecret({ key: 'a' }, signal());
    assert.deepEqual(fake.paths(), [
      'POST auth/kubernetes/login',
      'GET secret/data/a',
      'POST auth/token/renew-self',
      'GET secret/data/a',
    ]);
    assert.equal(fake.requests[2]!.headers['x-vault-token'], 's.LOGINLOGINLOGINLOGIN1');
  });

  const reLogins = [
    { name: 'the renewal is refused', renewTtl: () => undefined },
    { name: 'the renewal grants less than a third of the TTL (max TTL near)', renewTtl: () => 20 },
  ];
  for (const c of reLogins) {
    it(`logs in again when ${c.name}`, async () => {
      const fake = lifetimeServer(c.renewTtl);
      let now = 0;
      const provider = await provide(k8sSpec, fake, context(k8sSpec), () => now);
      await provider.getSecret({ key: 'a' }, signal());
      now = 61_000;
      await provider.getSecret({ key: 'a' }, signal());
      assert.deepEqual(fake.paths().slice(2), [
        'POST auth/token/renew-self',
        'POST auth/kubernetes/login',
        'GET secret/data/a',
      ]);
      assert.equal(fake.requests.at(-1)!.headers['x-vault-token'], 's.LOGINLOGINLOGINLOGIN2');
    });
  }

  it('logs in again, without renewing, once the token has expired', async () => {
    const fake = lifetimeServer(() => 90);
    let now = 0;
    const provider = await provide(k8sSpec, fake, context(k8sSpec), () => now);
    await provider.getSecret({ key: 'a' }, signal());
    now = 95_000;
    await provider.getSecret({ key: 'a' }, signal());
    assert.deepEqual(fake.paths().slice(2), ['POST auth/kubernetes/login', 'GET secret/data/a']);
  });

  it('shares one login between concurrent reads', async () => {
    const fake = lifetimeServer(() => 90);
    const provider = await provide(k8sSpec, fake);
    await Promise.all(['a', 'b', 'c'].map((key) => provider.getSecret({ key }, signal())));
    assert.equal(fake.requests.filter((r) => r.path === 'auth/kubernetes/login').length, 1);
  });

  it('starts a new session when the store changes', async () => {
    const fake = lifetimeServer(() => 90);
    await (await provide(k8sSpec, fake)).getSecret({ key: 'a' }, signal());
    const changed = { ...k8sSpec, auth: { kubernetes: { role: 'other' } } };
    await (await provide(changed, fake)).getSecret({ key: 'a' }, signal());
    assert.equal(fake.requests.filter((r) => r.path === 'auth/kubernetes/login').length, 2);
  });

  it('never treats a token without TTL as due', async () => {
    const fake = new FakeVault((req) =>
      req.path.endsWith('/login') ? loginAnswer('s.ROOTLIKEROOTLIKEROOT', 0, false) : kv2Answer({}),
    );
    let now = 0;
    const session = new VaultSession(
      new VaultClient(fake),
      async (client, s) => {
        const res = await client.call('POST', 'auth/kubernetes/login', { body: {}, signal: s });
        return { token: JSON.parse(res.text).auth.client_token, ttlMs: 0, renewable: false };
      },
      'label',
      () => now,
    );
    const provider = vaultProvider(session, { mount: 'secret', version: 'v2' });
    await provider.getSecret({ key: 'a' }, signal());
    now = 10 ** 12;
    await provider.getSecret({ key: 'a' }, signal());
    assert.equal(fake.requests.filter((r) => r.path.endsWith('/login')).length, 1);
  });
});

describe('cleanVaultMessage', () => {
  const cases = [
    {
      name: 'cuts out a Vault service token',
      input: 'bad token hvs.CAESIJlWh3bVjAc7wbGJfdE4yyzbB',
      want: 'bad token <token>',
    },
    {
      name: 'cuts out an OpenBao token',
      input: 'token s.Ld4k2j3h4k5j6h7k8j9h0 is invalid',
      want: 'token <token> is invalid',
    },
    {
      name: 'cuts out a JWT',
      input: 'jwt eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl rejected',
      want: 'jwt <jwt> rejected',
    },
    {
      name: 'puts the text on one line',
      input: '  permission\n denied ',
      want: 'permission denied',
    },
    {
      name: 'reduces Go multierror wrapping to its item',
      input: '1 error occurred:\n\t* permission denied\n\n',
      want: 'permission denied',
    },
    {
      name: 'reduces Go multierror wrapping of two items to a list',
      input: '2 errors occurred:\n\t* a\n\t* b\n\n',
      want: 'a; b',
    },
  ];
  for (const c of cases) {
    it(c.name, () => assert.equal(cleanVaultMessage(c.input), c.want));
  }
});
