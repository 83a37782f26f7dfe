/**
 * `remoteRef.metadataPolicy: Fetch` reaches the providers that serve metadata (Vault KV v2) and
 * is refused, naming the provider, by the others.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLogger } from '../../agent/log.ts';
import { loadProvider, type Provider, type SecretRef } from '../../agent/providers/provider.ts';
import { syncExternalSecret, type SyncDeps } from '../../agent/sync.ts';
import { FakeKube } from './fake-kube.ts';
import { externalSecret, paths, secretStore, testConfig } from './helpers.ts';

const es = externalSecret('tls-meta', {
  refreshInterval: '1h',
  secretStoreRef: { name: 'fake', kind: 'SecretStore' },
  target: { name: 'tls-meta' },
  data: [{ secretKey: 'owner', remoteRef: { key: 'prod/tls', property: 'owner', metadataPolicy: 'Fetch' } }],
});

function deps(provider: (real: Provider) => Provider): { deps: SyncDeps; kube: FakeKube } {
  const kube = new FakeKube();
  kube.put(paths.secretStore('fake'), secretStore('fake', { fake: { data: [{ key: 'prod/tls', value: '{"owner":"value-not-metadata"}' }] } }));
  kube.put(paths.externalSecret('tls-meta'), es);
  return {
    kube,
    deps: {
      kube,
      config: testConfig(),
      log: createLogger('error', { component: 'agent' }, () => {}),
      env: {},
      loadProvider: async (ctx) => provider(await loadProvider(ctx)),
    },
  };
}

describe('metadataPolicy Fetch', () => {
  it('passes the policy to a provider that serves metadata and syncs what it returns', async () => {
    const seen: SecretRef[] = [];
    const w = deps(() => ({
      name: 'stub',
      supportsMetadata: true,
      getSecret: async (ref) => {
        seen.push(ref);
        return { value: ref.metadataPolicy === 'Fetch' ? '{"owner":"team-a"}' : '{"owner":"wrong"}' };
      },
    }));
    const out = await syncExternalSecret(w.deps, 'tls-meta');
    assert.equal(out.ok, true, out.message);
    assert.deepEqual(seen, [{ key: 'prod/tls', metadataPolicy: 'Fetch' }]);
    const secret = w.kube.object<{ data: Record<string, string> }>(paths.secret('tls-meta'));
    assert.equal(Buffer.from(secret!.data.owner!, 'base64').toString(), 'team-a');
  });

  it('is refused, naming the store and the provider, by a provider without metadata', async () => {
    const w = deps((real) => real);
    const out = await syncExternalSecret(w.deps, 'tls-meta');
    assert.equal(out.ok, false);
    assert.match(out.message ?? '', /metadataPolicy Fetch is not supported by provider fake/);
    assert.match(out.message ?? '', /SecretStore app-ns\/fake/);
  });
});
