import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DATA_HASH_ANNOTATION,
  MANAGED_LABEL,
  createdByValue,
  dataHash,
  deleteSecret,
  isSecretValid,
  writeSecret,
  type DesiredSecret,
} from '../../agent/secret-writer.ts';
import type { Secret } from '../../agent/types.ts';
import { FakeKube } from './fake-kube.ts';

const path = '/api/v1/namespaces/app-ns/secrets/target';
const owner = {
  apiVersion: 'external-secrets.io/v1',
  kind: 'ExternalSecret',
  name: 'es',
  uid: 'es-uid',
};
const desired = (
  data: Record<string, string>,
  more: Partial<DesiredSecret> = {},
): DesiredSecret => ({
  namespace: 'app-ns',
  name: 'target',
  data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v)])),
  owner,
  ...more,
});
const decoded = (s: Secret | undefined) =>
  Object.fromEntries(
    Object.entries(s?.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]),
  );

describe('writeSecret', () => {
  it('creates the Secret with the managed label, data hash and a controller owner reference', async () => {
    const kube = new FakeKube();
    const out = await writeSecret(kube, desired({ password: 'p' }));
    const s = kube.object<Secret>(path);
    assert.equal(out.action, 'created');
    assert.deepEqual(decoded(s), { password: 'p' });
    assert.equal(s?.type, 'Opaque');
    assert.equal(s?.metadata.labels?.[MANAGED_LABEL], 'true');
    assert.match(s?.metadata.annotations?.[DATA_HASH_ANNOTATION] ?? '', /^[0-9a-f]{56}$/);
    assert.deepEqual(s?.metadata.ownerReferences, [
      { ...owner, controller: true, blockOwnerDeletion: true },
    ]);
  });

  it('makes no write at all when the data has not changed', async () => {
    const kube = new FakeKube();
    await writeSecret(kube, desired({ password: 'p', user: 'u' }));
    const before = kube.writes().length;
    const out = await writeSecret(kube, desired({ user: 'u', password: 'p' }));
    assert.equal(out.action, 'unchanged');
    assert.equal(kube.writes().length, before);
    assert.deepEqual(kube.calls.at(-1), { method: 'GET', path });
  });

  it('updates the Secret when a value changed', async () => {
    const kube = new FakeKube();
    await writeSecret(kube, desired({ password: 'p1' }));
    const out = await writeSecret(kube, desired({ password: 'p2' }));
    assert.equal(out.action, 'updated');
    assert.deepEqual(decoded(kube.object(path)), { password: 'p2' });
  });

  it('repairs a hand-edited Secret', async () => {
    const kube = new FakeKube();
    await writeSecret(kube, desired({ db: 'v1' }));
    const live = kube.object<Secret>(path) as Secret;
    kube.put(path, { ...live, data: { db: Buffer.from('hacked').toString('base64') } });
    assert.equal((await writeSecret(kube, desired({ db: 'v1' }))).action, 'updated');
    assert.deepEqual(decoded(kube.object(path)), { db: 'v1' });
  });

  it('names a key added by hand to its own Secret without calling it an adoption', async () => {
    const kube = new FakeKube();
    await writeSecret(kube, desired({ db: 'v1' }));
    const live = kube.object<Secret>(path) as Secret;
    kube.put(path, { ...live, data: { ...live.data, extra: Buffer.from('x').toString('base64') } });
    const out = await writeSecret(kube, desired({ db: 'v1' }));
    assert.equal(out.action, 'updated');
    assert.deepEqual(out.removedKeys, ['extra']);
    assert.equal(out.adopted, false);
  });

  it('adopts an existing Secret for Owner, drops its other keys and names them (C17)', async () => {
    const kube = new FakeKube();
    kube.put(path, {
      metadata: { name: 'target', namespace: 'app-ns' },
      data: { other: Buffer.from('x').toString('base64') },
    });
    const out = await writeSecret(kube, desired({ password: 'p' }));
    assert.deepEqual(out, {
      action: 'updated',
      removedKeys: ['other'],
      data: { password: 'cA==' },
      adopted: true,
    });
    assert.deepEqual(decoded(kube.object(path)), { password: 'p' });
    assert.equal(kube.object<Secret>(path)?.metadata.ownerReferences?.[0]?.uid, 'es-uid');
  });

  it('keeps foreign keys and adds no owner for CreateOrMerge (C17 twin)', async () => {
    const kube = new FakeKube();
    kube.put(path, {
      metadata: { name: 'target', namespace: 'app-ns' },
      data: { other: Buffer.from('x').toString('base64') },
    });
    await writeSecret(kube, desired({ password: 'p' }, { creationPolicy: 'CreateOrMerge' }));
    assert.deepEqual(decoded(kube.object(path)), { other: 'x', password: 'p' });
    assert.equal(kube.object<Secret>(path)?.metadata.ownerReferences, undefined);
  });

  it('writes nothing for Merge when the Secret does not exist, and says so (SecretMissing)', async () => {
    const kube = new FakeKube();
    const out = await writeSecret(kube, desired({ a: 'b' }, { creationPolicy: 'Merge' }));
    assert.equal(out.action, 'missing');
    assert.equal(kube.writes().length, 0);
  });

  it('writes nothing for creationPolicy None', async () => {
    const kube = new FakeKube();
    assert.equal(
      (await writeSecret(kube, desired({ a: 'b' }, { creationPolicy: 'None' }))).action,
      'skipped',
    );
    assert.equal(kube.calls.length, 0);
  });

  it('creates without an owner reference for Orphan', async () => {
    const kube = new FakeKube();
    await writeSecret(kube, desired({ a: 'b' }, { creationPolicy: 'Orphan' }));
    assert.equal(kube.object<Secret>(path)?.metadata.ownerReferences, undefined);
  });

  it('leaves a Secret controlled by another owner alone', async () => {
    const kube = new FakeKube();
    const other = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      name: 'x',
      uid: 'other',
      controller: true,
    };
    kube.put(path, {
      metadata: { name: 'target', namespace: 'app-ns', ownerReferences: [other] },
      data: {},
    });
    await assert.rejects(writeSecret(kube, desired({ a: 'b' })), /controlled by Deployment x/);
  });

  it('keeps an immutable Secret as it is when the ExternalSecret asks for immutability (C19)', async () => {
    const kube = new FakeKube();
    await writeSecret(kube, desired({ k: 'v1' }, { immutable: true }));
    const writes = kube.writes().length;
    assert.equal(
      (await writeSecret(kube, desired({ k: 'v2' }, { immutable: true }))).action,
      'unchanged',
    );
    assert.equal(kube.writes().length, writes);
    assert.deepEqual(decoded(kube.object(path)), { k: 'v1' });
  });

  it('reports an error when an immutable Secret would change and immutability is not asked (C19)', async () => {
    const kube = new FakeKube();
    await writeSecret(kube, desired({ k: 'v1' }, { immutable: true }));
    await assert.rejects(writeSecret(kube, desired({ k: 'v3' })), {
      name: 'ImmutableTargetError',
      code: 'ERR_TARGET_IMMUTABLE',
    });
  });

  it('retries once when the Secret changed between read and write', async () => {
    const kube = new FakeKube();
    await writeSecret(kube, desired({ k: 'v1' }));
    const replace = kube.replace.bind(kube);
    let conflicts = 1;
    kube.replace = async <T>(p: string, body: unknown): Promise<T> => {
      if (conflicts-- > 0) {
        const live = kube.object<Secret>(p) as Secret;
        kube.put(p, live); // bumps resourceVersion: the PUT below now conflicts
      }
      return replace<T>(p, body);
    };
    assert.equal((await writeSecret(kube, desired({ k: 'v2' }))).action, 'updated');
    assert.deepEqual(decoded(kube.object(path)), { k: 'v2' });
  });
});

describe('dataHash', () => {
  it("equals ESO's data-hash for the same data (SHA3-224 of Go's %+v, computed with Go 1.26)", () => {
    const enc = (o: Record<string, string>) =>
      Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
    const data = enc({
      dotted: 'literal',
      index: 'b',
      object: '{"bar":"nested","baz":"z"}',
      path: 'z',
      empty: '',
    });
    assert.equal(dataHash(data), '8f6189670154b61b69bc23d9f76644ea9869aa0997d5b4464b0323be');
    assert.equal(dataHash({}), '74a974446e359fb3e6baff9bd0058950e6edd0f040888d9989b0a11b');
  });

  it("gives ESO's created-by label value for namespace/name", () => {
    assert.equal(
      createdByValue('app-ns', 'c01'),
      'aa90f3fb2b605219c53949ccea49d6325373721b0514a233ea4e4713',
    );
  });
});

describe('isSecretValid', () => {
  it('accepts a Secret this writer wrote and refuses it once hand-edited', async () => {
    const kube = new FakeKube();
    await writeSecret(kube, desired({ db: 'v1' }));
    const live = kube.object<Secret>(path) as Secret;
    assert.equal(isSecretValid(live), true);
    assert.equal(isSecretValid({ ...live, data: { db: 'aGFja2Vk' } }), false);
    assert.equal(isSecretValid(undefined), false);
    const { [MANAGED_LABEL]: _, ...labels } = live.metadata.labels ?? {};
    assert.equal(isSecretValid({ ...live, metadata: { ...live.metadata, labels } }), false);
  });
});

describe('writeSecret on immutable targets', () => {
  it('brings the metadata of a kept immutable Secret in line without touching its data', async () => {
    const kube = new FakeKube();
    kube.put(path, {
      metadata: { name: 'target', namespace: 'app-ns' },
      immutable: true,
      data: { k: Buffer.from('v1').toString('base64') },
    });
    const out = await writeSecret(kube, desired({ k: 'v2' }, { immutable: true }));
    assert.equal(out.action, 'updated');
    const s = kube.object<Secret>(path) as Secret;
    assert.deepEqual(decoded(s), { k: 'v1' });
    assert.equal(isSecretValid(s), true);
    assert.deepEqual(out.data, s.data);
  });
});

describe('deleteSecret', () => {
  it('deletes a Secret this ExternalSecret owns', async () => {
    const kube = new FakeKube();
    await writeSecret(kube, desired({ a: 'b' }));
    const live = kube.object<Secret>(path);
    assert.equal(await deleteSecret(kube, desired({}), live), true);
    assert.equal(kube.object(path), undefined);
  });

  it('refuses to delete a Secret it does not manage', async () => {
    const kube = new FakeKube();
    kube.put(path, { metadata: { name: 'target', namespace: 'app-ns' }, data: {} });
    await assert.rejects(
      deleteSecret(kube, desired({}), kube.object<Secret>(path)),
      /unable to delete Secret app-ns\/target: it is not managed by this ExternalSecret/,
    );
    assert.ok(kube.object(path));
  });

  it('refuses deletion for creationPolicy Merge', async () => {
    const kube = new FakeKube();
    await writeSecret(kube, desired({ a: 'b' }));
    await assert.rejects(
      deleteSecret(kube, desired({}, { creationPolicy: 'Merge' }), kube.object<Secret>(path)),
      /creationPolicy Merge is not Owner or Orphan/,
    );
  });

  it('does nothing when there is no Secret', async () => {
    assert.equal(await deleteSecret(new FakeKube(), desired({}), undefined), false);
  });
});
