import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TargetConflictError } from '../../agent/errors.ts';
import {
  DATA_HASH_ANNOTATION,
  MANAGED_LABEL,
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
    assert.match(s?.metadata.annotations?.[DATA_HASH_ANNOTATION] ?? '', /^[0-9a-f]{32}$/);
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

  it('adopts an existing Secret for Owner, drops its other keys and names them (C17)', async () => {
    const kube = new FakeKube();
    kube.put(path, {
      metadata: { name: 'target', namespace: 'app-ns' },
      data: { other: Buffer.from('x').toString('base64') },
    });
    const out = await writeSecret(kube, desired({ password: 'p' }));
    assert.deepEqual(out, { action: 'updated', removedKeys: ['other'] });
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

  it('refuses Merge into a Secret that does not exist', async () => {
    await assert.rejects(
      writeSecret(new FakeKube(), desired({ a: 'b' }, { creationPolicy: 'Merge' })),
      TargetConflictError,
    );
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
    await assert.rejects(
      writeSecret(kube, desired({ k: 'v3' })),
      /could not update secret, target is immutable/,
    );
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
