import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LabelSelector } from '../../agent/types.ts';
import { getExternalSecret, getStore, groupVersion, selectorMatches } from '../../agent/store.ts';
import { FakeKube } from './fake-kube.ts';
import { NS, paths, secretStore } from './helpers.ts';

describe('selectorMatches', () => {
  const labels = { team: 'a', tier: 'prod' };
  const cases: { name: string; selector: LabelSelector; want: boolean }[] = [
    { name: 'an empty selector matches everything', selector: {}, want: true },
    {
      name: 'matchLabels that all hold',
      selector: { matchLabels: { team: 'a', tier: 'prod' } },
      want: true,
    },
    {
      name: 'matchLabels with one wrong value',
      selector: { matchLabels: { team: 'b' } },
      want: false,
    },
    {
      name: 'In',
      selector: { matchExpressions: [{ key: 'tier', operator: 'In', values: ['prod', 'stage'] }] },
      want: true,
    },
    {
      name: 'NotIn',
      selector: { matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['prod'] }] },
      want: false,
    },
    {
      name: 'NotIn on a missing label',
      selector: { matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['x'] }] },
      want: true,
    },
    {
      name: 'Exists',
      selector: { matchExpressions: [{ key: 'team', operator: 'Exists' }] },
      want: true,
    },
    {
      name: 'DoesNotExist',
      selector: { matchExpressions: [{ key: 'team', operator: 'DoesNotExist' }] },
      want: false,
    },
  ];
  for (const c of cases) {
    it(`${c.name}: ${c.want ? 'matches' : 'does not match'}`, () =>
      assert.equal(selectorMatches(c.selector, labels), c.want));
  }
});

describe('groupVersion', () => {
  it('asks the API server once and prefers v1', async () => {
    const kube = new FakeKube();
    assert.equal(await groupVersion(kube), 'v1');
    assert.equal(await groupVersion(kube), 'v1');
    assert.equal(kube.calls.filter((c) => c.path === '/apis/external-secrets.io').length, 1);
  });

  it('falls back to v1beta1 when v1 is not served', async () => {
    const kube = new FakeKube();
    kube.servedVersions = ['v1beta1'];
    assert.equal(await groupVersion(kube), 'v1beta1');
  });

  it('says the CRDs are missing when the group is not served', async () => {
    const kube = new FakeKube();
    kube.servedVersions = [];
    await assert.rejects(groupVersion(kube), /neither v1 nor v1beta1/);
  });
});

describe('getStore', () => {
  it('names a missing SecretStore and its namespace', async () => {
    await assert.rejects(getStore(new FakeKube(), NS, { name: 'nope' }), {
      name: 'NotFoundError',
      message: `SecretStore nope does not exist in namespace ${NS}`,
    });
  });

  it('defaults the kind to SecretStore', async () => {
    const kube = new FakeKube();
    kube.put(paths.secretStore('s'), secretStore('s', { fake: { data: [] } }));
    assert.equal((await getStore(kube, NS, { name: 's' })).kind, 'SecretStore');
  });
});

describe('getExternalSecret', () => {
  it('reads the ExternalSecret from the served version', async () => {
    const kube = new FakeKube();
    kube.servedVersions = ['v1beta1'];
    kube.put(paths.externalSecret('x', 'v1beta1'), { metadata: { name: 'x' } });
    assert.equal((await getExternalSecret(kube, NS, 'x')).metadata.name, 'x');
  });
});
