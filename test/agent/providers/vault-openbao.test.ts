/**
 * The Vault provider against a real OpenBao dev server (test/harness/openbao.ts), without pods:
 * what the fake in vault.test.ts assumes about Vault's answers, checked on the real thing
 * (deleted and destroyed versions, metadata, KV v1, LIST for find, denial text). The agent signs
 * in with a token from a Secret (tokenSecretRef) whose policy allows only the app/ paths.
 */
import { execFileSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NotFoundError, ProviderError } from '../../../agent/errors.ts';
import type { Provider } from '../../../agent/providers/provider.ts';
import {
  createVaultProvider,
  resetVaultSessions,
  type VaultProviderSpec,
} from '../../../agent/providers/vault.ts';
import {
  baoBinary,
  startOpenBao,
  type OpenBao,
} from '../../harness/openbao.ts';
import { FakeKube } from '../fake-kube.ts';
import { NS, paths, secretStore, testConfig } from '../helpers.ts';

const signal = () => AbortSignal.timeout(10_000);
let bao: OpenBao;
let kube: FakeKube;

before(async () => {
  bao = await startOpenBao();
  await bao.request('POST', 'sys/mounts/kv1', { type: 'kv', options: { version: '1' } });
  await bao.request('POST', 'sys/policies/acl/app', {
    policy: [
      'path "secret/data/app/*" { capabilities = ["read"] }',
      'path "secret/metadata/app/*" { capabilities = ["read", "list"] }',
      'path "kv1/app/*" { capabilities = ["read", "list"] }',
    ].join('\n'),
  });
  const token = await bao.request<{ auth: { client_token: string } }>('POST', 'auth/token/create', {
    policies: ['app'],
    ttl: '1h',
  });
  kube = new FakeKube();
  kube.put(paths.secret('vault-token'), {
    metadata: { name: 'vault-token' },
    data: { token: Buffer.from(token.auth.client_token).toString('base64') },
  });

  const put = (p: string, data: unknown) => bao.request('POST', `secret/data/${p}`, { data });
  await put('app/db', { user: 'app', password: 'pw-1' });
  await put('app/db', { user: 'app', password: 'pw-2' });
  await put('app/db', { user: 'app', password: 'pw-3' });
  await bao.request('POST', 'secret/delete/app/db', { versions: [1] });
  await bao.request('POST', 'secret/destroy/app/db', { versions: [2] });
  await put('app/gone', { a: '1' });
  await bao.request('DELETE', 'secret/data/app/gone');
  await put('app/nested/deep', { n: 1.5 });
  await bao.request('POST', 'secret/metadata/app/db', {
    custom_metadata: { team: 'a', tier: 'gold' },
  });
  await bao.request('POST', 'secret/metadata/app/nested/deep', { custom_metadata: { team: 'a' } });
  await put('other/x', { x: '1' });
  await bao.request('POST', 'kv1/app/one', { password: 'kv1-pw' });
});

after(async () => {
  resetVaultSessions();
  await bao?.stop();
});

async function provider(extra: Partial<VaultProviderSpec> = {}): Promise<Provider> {
  const spec: VaultProviderSpec = {
    server: bao.address,
    path: 'secret',
    auth: { tokenSecretRef: { name: 'vault-token', key: 'token' } },
    ...extra,
  };
  return createVaultProvider(spec, {
    store: secretStore('openbao', { vault: spec }),
    namespace: NS,
    kube,
    config: testConfig(),
    env: {},
  });
}

describe('vault provider on a real OpenBao', () => {
  it('reads the current version of a KV v2 secret, with its version number', async () => {
    const got = await (await provider()).getSecret({ key: 'app/db' }, signal());
    assert.deepEqual(JSON.parse(got.value as string), { user: 'app', password: 'pw-3' });
    assert.equal(got.version, '3');
  });

  const gone = [
    {
      name: 'a deleted version',
      ref: { key: 'app/db', version: '1' },
      want: /secret app\/db version 1 was deleted \(version 1, at /,
    },
    {
      name: 'a destroyed version',
      ref: { key: 'app/db', version: '2' },
      want: /secret app\/db version 2 was destroyed \(version 2\)$/,
    },
    {
      name: 'a soft-deleted current version',
      ref: { key: 'app/gone' },
      want: /secret app\/gone was deleted \(version 1, at /,
    },
    {
      name: 'a key that was never written',
      ref: { key: 'app/none' },
      want: /secret app\/none does not exist$/,
    },
  ];
  for (const c of gone) {
    it(`reports ${c.name} as NotFoundError`, async () => {
      await assert.rejects((await provider()).getSecret(c.ref, signal()), (err: Error) => {
        assert.ok(err instanceof NotFoundError, err.message);
        assert.match(err.message, c.want);
        return true;
      });
    });
  }

  it('fetches custom_metadata and the system keys with metadataPolicy Fetch', async () => {
    const ref = { key: 'app/db', metadataPolicy: 'Fetch' as const };
    const got = JSON.parse((await (await provider()).getSecret(ref, signal())).value as string);
    assert.equal(got.team, 'a');
    assert.equal(got.tier, 'gold');
    assert.equal(got.current_version, '3');
    assert.match(got.created_time, /^\d{4}-\d\d-\d\dT/);
  });

  it('reads KV v1', async () => {
    const got = await (
      await provider({ path: 'kv1', version: 'v1' })
    ).getSecret({ key: 'app/one' }, signal());
    assert.deepEqual(got, { value: '{"password":"kv1-pw"}' });
  });

  it('finds by name and by tags, listing folders recursively', async () => {
    const p = await provider();
    const byName = await p.getAllSecrets!({ path: 'app', name: { regexp: 'deep|db' } }, signal());
    assert.deepEqual([...byName.keys()].sort(), ['app/db', 'app/nested/deep']);
    const byTags = await p.getAllSecrets!(
      { path: 'app', tags: { team: 'a', tier: 'gold' } },
      signal(),
    );
    assert.deepEqual([...byTags.keys()], ['app/db']);
    const v1 = await (
      await provider({ path: 'kv1', version: 'v1' })
    ).getAllSecrets!({ path: 'app', name: { regexp: '.' } }, signal());
    assert.deepEqual([...v1.keys()], ['app/one']);
  });

  it('names store, key, path and "permission denied" for a path outside the policy', async () => {
    await assert.rejects(
      (await provider()).getSecret({ key: 'other/x' }, signal()),
      (err: Error) => {
        assert.ok(err instanceof ProviderError);
        assert.equal(
          err.message,
          `SecretStore ${NS}/openbao (vault): cannot read secret other/x (path secret/data/other/x): permission denied (HTTP 403)`,
        );
        return true;
      },
    );
  });

  it('says no answer came when nothing listens at the server address', async () => {
    const p = await provider({ server: 'http://127.0.0.1:9' });
    await assert.rejects(
      p.getSecret({ key: 'app/db' }, signal()),
      /no answer from Vault: http:\/\/127\.0\.0\.1:9: connect ECONNREFUSED/,
    );
  });
});

describe('openbao harness', () => {
  it("runs the bao binary pinned in the project's virtualenv", () => {
    const file = baoBinary();
    assert.match(file, /python-tools-moto[^/]*-openbao2\.7\.2\//);
    const version = execFileSync(file, ['version'], { encoding: 'utf8' });
    assert.match(version, /OpenBao v2\.7\.2/);
  });
});
