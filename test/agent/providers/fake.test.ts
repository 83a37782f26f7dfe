import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NotFoundError, UnsupportedError } from '../../../agent/errors.ts';
import { loadProvider } from '../../../agent/providers/provider.ts';
import { FakeKube } from '../fake-kube.ts';
import { NS, secretStore, testConfig } from '../helpers.ts';

const signal = new AbortController().signal;
const fakeStore = (data: unknown[]) => secretStore('fake', { fake: { data } });
const load = (data: unknown[]) =>
  loadProvider({
    store: fakeStore(data),
    namespace: NS,
    kube: new FakeKube(),
    config: testConfig(),
    env: {},
  });

describe('fake provider', () => {
  it('returns the value of the entry with the key', async () => {
    const p = await load([{ key: 'db', value: 'v1' }]);
    assert.equal(p.name, 'fake');
    assert.deepEqual(await p.getSecret({ key: 'db' }, signal), { value: 'v1' });
  });

  it('matches key and version together', async () => {
    const p = await load([
      { key: 'db', value: 'current' },
      { key: 'db', value: 'old', version: 'v1' },
    ]);
    assert.deepEqual(await p.getSecret({ key: 'db', version: 'v1' }, signal), {
      value: 'old',
      version: 'v1',
    });
    assert.deepEqual(await p.getSecret({ key: 'db' }, signal), { value: 'current' });
    await assert.rejects(p.getSecret({ key: 'db', version: 'v2' }, signal), NotFoundError);
  });

  it('serves valueMap as JSON text when there is no value', async () => {
    const p = await load([{ key: 'm', valueMap: { user: 'u', pw: 'p' } }]);
    assert.deepEqual(JSON.parse(String((await p.getSecret({ key: 'm' }, signal)).value)), {
      user: 'u',
      pw: 'p',
    });
  });

  it('throws NotFoundError naming the store and the key for an unknown key', async () => {
    const p = await load([]);
    await assert.rejects(p.getSecret({ key: 'nope' }, signal), {
      name: 'NotFoundError',
      message: `SecretStore ${NS}/fake (fake): secret nope does not exist`,
    });
  });

  it('refuses a store whose data is not a list', async () => {
    await assert.rejects(
      loadProvider({
        store: secretStore('fake', { fake: {} }),
        namespace: NS,
        kube: new FakeKube(),
        config: testConfig(),
        env: {},
      }),
      UnsupportedError,
    );
  });
});

describe('loadProvider', () => {
  it('names the store and the supported providers for an unknown provider', async () => {
    const store = secretStore('oracle', { oracle: { region: 'eu-frankfurt-1', vault: 'ocid1.vault.x' } });
    await assert.rejects(
      loadProvider({ store, namespace: NS, kube: new FakeKube(), config: testConfig(), env: {} }),
      {
        code: 'ERR_UNSUPPORTED',
        message: `SecretStore ${NS}/oracle: provider "oracle" is not supported by this agent (supported: fake, aws, vault, kubernetes)`,
      },
    );
  });
});
