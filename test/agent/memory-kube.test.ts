/**
 * The in-memory API server's Secret rules. Their wording is checked against a real
 * kube-apiserver in acceptance-live.test.ts; these run without one.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KubeApiError } from '../../agent/errors.ts';
import { MemoryKube } from '../../agent/memory-kube.ts';
import type { Secret } from '../../agent/types.ts';

const collection = '/api/v1/namespaces/ns/secrets';
const b64 = (s: string) => Buffer.from(s).toString('base64');
const secret = (more: Partial<Secret>): Secret => ({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name: 's', namespace: 'ns' },
  ...more,
});

describe('MemoryKube', () => {
  const refused: { name: string; secret: Partial<Secret>; message: string }[] = [
    {
      name: 'a tls Secret without its keys',
      secret: { type: 'kubernetes.io/tls', data: {} },
      message:
        'Secret "s" is invalid: [data[tls.crt]: Required value, data[tls.key]: Required value]',
    },
    {
      name: 'a dockerconfigjson that is not JSON',
      secret: {
        type: 'kubernetes.io/dockerconfigjson',
        data: { '.dockerconfigjson': b64('{"a":"x\ny"}') },
      },
      message: `Secret "s" is invalid: data[.dockerconfigjson]: Invalid value: "<secret contents redacted>": invalid character '\\n' in string literal`,
    },
    {
      name: 'a key starting with ..',
      secret: { data: { '..a': b64('1') } },
      message: `Secret "s" is invalid: data[..a]: Invalid value: "..a": must not start with '..'`,
    },
  ];
  for (const c of refused) {
    it(`refuses ${c.name} with the API server's 422 message`, async () => {
      await assert.rejects(new MemoryKube().create(collection, secret(c.secret)), (err: Error) => {
        assert.ok(err instanceof KubeApiError);
        assert.equal(err.status, 422);
        assert.equal(err.message, `POST ${collection}: 422 Invalid: ${c.message}`);
        return true;
      });
    });
  }

  it('refuses a type change and new data in an immutable Secret', async () => {
    const kube = new MemoryKube();
    await kube.create(collection, secret({ immutable: true, data: { k: b64('1') } }));
    const live = await kube.get<Secret>(`${collection}/s`);
    await assert.rejects(
      kube.replace(`${collection}/s`, {
        ...live,
        type: 'kubernetes.io/tls',
        data: { k: b64('2') },
      }),
      /type: Invalid value: "kubernetes\.io\/tls": field is immutable, data: Forbidden: field is immutable when `immutable` is set/,
    );
  });

  it('records calls, answers 404 and 409 as the API server does, and deletes', async () => {
    const kube = new MemoryKube();
    await assert.rejects(kube.get(`${collection}/s`), { status: 404 });
    await kube.create(collection, secret({ data: {} }));
    await assert.rejects(kube.create(collection, secret({ data: {} })), { status: 409 });
    const live = await kube.get<Secret>(`${collection}/s`);
    await kube.replace(`${collection}/s`, live);
    await assert.rejects(kube.replace(`${collection}/s`, live), { status: 409 });
    await kube.delete(`${collection}/s`);
    assert.equal(kube.object(`${collection}/s`), undefined);
    assert.deepEqual(
      kube.writes().map((c) => c.method),
      ['POST', 'POST', 'PUT', 'PUT', 'DELETE'],
    );
  });
});
