/**
 * A store whose own configuration cannot be read (a missing credential Secret or key) is a
 * failure of the store, never "the remote secret is gone": deletionPolicy Delete must not delete
 * the target Secret over it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLogger } from '../../agent/log.ts';
import { syncExternalSecret } from '../../agent/sync.ts';
import { FakeKube } from './fake-kube.ts';
import { externalSecret, paths, secretStore, testConfig } from './helpers.ts';

const credentials = {
  accessKeyIDSecretRef: { name: 'aws-credentials', key: 'access-key-id' },
  secretAccessKeySecretRef: { name: 'aws-credentials', key: 'secret-access-key' },
};

// NOTE: nothing listens at 127.0.0.1:9; every case fails reading its credentials before any call.
const stores = {
  aws: { aws: { service: 'SecretsManager', region: 'us-east-1', auth: { secretRef: credentials } } },
  // Vault reads its credentials lazily, inside the first secret read: the path where a
  // NotFoundError would count as "remote secret gone".
  vault: { vault: { server: 'http://127.0.0.1:9', path: 'secret', version: 'v2',
    auth: { kubernetes: { mountPath: 'kubernetes', role: 'app', secretRef: { name: 'aws-credentials', key: 'access-key-id' } } } } },
};

const noKey = { metadata: { name: 'aws-credentials' }, data: {} };

const cases = [
  { name: 'the credential Secret is missing (aws)', store: stores.aws, secret: undefined, names: /aws-credentials/ },
  { name: 'the credential Secret lacks a key (aws)', store: stores.aws, secret: noKey, names: /aws-credentials/ },
  { name: 'the JWT Secret is missing (vault, read at login)', store: stores.vault, secret: undefined, names: /aws-credentials/ },
  { name: 'the JWT Secret lacks its key (vault, read at login)', store: stores.vault, secret: noKey, names: /aws-credentials/ },
];

describe('a store whose credentials cannot be read, with deletionPolicy Delete', () => {
  for (const c of cases) {
    it(`keeps the target Secret when ${c.name}`, async () => {
      const kube = new FakeKube();
      kube.put(paths.secretStore('aws'), secretStore('aws', c.store));
      if (c.secret) kube.put(paths.secret('aws-credentials'), c.secret);
      kube.put(paths.externalSecret('db'), externalSecret('db', {
        refreshInterval: '1h',
        secretStoreRef: { name: 'aws', kind: 'SecretStore' },
        target: { name: 'db', deletionPolicy: 'Delete' },
        data: [{ secretKey: 'password', remoteRef: { key: 'prod/db', property: 'password' } }],
      }));
      kube.put(paths.secret('db'), {
        metadata: { name: 'db', namespace: 'app-ns' },
        data: { password: Buffer.from('last-good').toString('base64') },
      });

      const out = await syncExternalSecret(
        { kube, config: testConfig(), log: createLogger('error', {}, () => {}), env: { AWS_EC2_METADATA_DISABLED: 'true' } },
        'db',
      );
      assert.equal(out.ok, false);
      assert.match(out.message ?? '', c.names);
      assert.ok(kube.object(paths.secret('db')), 'the target Secret is still there');
    });
  }
});
