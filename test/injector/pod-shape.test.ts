import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_INJECTOR_SETTINGS, mutate, type InjectorSettings } from '../../injector/mutate.ts';
import type { Pod } from '../../injector/pod.ts';
import { applyPatch } from '../helpers/json-patch.ts';

const settings: InjectorSettings = { ...DEFAULT_INJECTOR_SETTINGS, agentImage: 'esa:test' };

function optedIn(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    metadata: {
      name: 'api',
      namespace: 'team-a',
      labels: { 'agent.external-secrets.io/inject': 'true' },
      annotations: { 'agent.external-secrets.io/external-secrets': 'db-creds' },
    },
    spec: { containers: [{ name: 'app', image: 'app:1' }] },
    ...extra,
  };
}

describe('mutate on pods of the wrong shape', () => {
  const cases = [
    {
      name: 'an annotation whose value is a number',
      pod: optedIn({ metadata: { name: 'api', labels: { 'agent.external-secrets.io/inject': 'true' },
        annotations: { 'agent.external-secrets.io/external-secrets': 5 } } }),
      field: 'metadata.annotations["agent.external-secrets.io/external-secrets"]',
    },
    {
      name: 'volumes that are a string',
      pod: optedIn({ spec: { containers: [{ name: 'app' }], volumes: 'x' } }),
      field: 'spec.volumes',
    },
    { name: 'no containers list', pod: optedIn({ spec: {} }), field: 'spec.containers' },
    {
      name: 'a container without a name',
      pod: optedIn({ spec: { containers: [{ image: 'app:1' }] } }),
      field: 'spec.containers[0].name',
    },
    { name: 'no spec at all', pod: optedIn({ spec: undefined }), field: 'spec' },
  ];
  for (const c of cases) {
    it(`refuses ${c.name}, naming ${c.field}`, () => {
      const result = mutate(c.pod as unknown as Pod, settings);
      assert.equal(result.ok, false);
      if (!result.ok) assert.ok(result.error.message.includes(c.field), result.error.message);
    });
  }
});

describe('mutate on a pod that claims to be injected', () => {
  it('injects an opted-in pod whose status annotation was set by hand, without our containers', () => {
    const pod = optedIn() as unknown as Pod;
    pod.metadata!.annotations!['agent.external-secrets.io/status'] = 'injected';
    const result = mutate(pod, settings);
    assert.ok(result.ok);
    const mutated = applyPatch(pod, result.ok ? result.patch : []);
    const names = (mutated.spec?.initContainers ?? []).map((c) => c.name);
    assert.ok(names.includes('inject-init'), `init containers: ${names.join(', ')}`);
    assert.equal(mutated.metadata!.annotations!['agent.external-secrets.io/status'], 'injected');
  });

  it('returns an empty patch for a pod injected for real', () => {
    const pod = optedIn() as unknown as Pod;
    const first = mutate(pod, settings);
    assert.ok(first.ok);
    const injected = applyPatch(pod, first.ok ? first.patch : []);
    const second = mutate(injected, settings);
    assert.deepEqual(second.ok ? second.patch : 'refused', []);
  });
});

describe('mutate on pods bound to Windows nodes by affinity', () => {
  const affinity = (terms: { key: string; operator: string; values?: string[] }[][]) => ({
    nodeAffinity: {
      requiredDuringSchedulingIgnoredDuringExecution: {
        nodeSelectorTerms: terms.map((matchExpressions) => ({ matchExpressions })),
      },
    },
  });
  const cases = [
    { name: 'os In [windows]', terms: [[{ key: 'kubernetes.io/os', operator: 'In', values: ['windows'] }]], refused: true },
    { name: 'os NotIn [linux]', terms: [[{ key: 'kubernetes.io/os', operator: 'NotIn', values: ['linux'] }]], refused: true },
    {
      name: 'windows in one term, linux allowed by another',
      terms: [
        [{ key: 'kubernetes.io/os', operator: 'In', values: ['windows'] }],
        [{ key: 'kubernetes.io/os', operator: 'In', values: ['linux'] }],
      ],
      refused: false,
    },
    { name: 'os In [linux, windows]', terms: [[{ key: 'kubernetes.io/os', operator: 'In', values: ['linux', 'windows'] }]], refused: false },
    { name: 'a zone only', terms: [[{ key: 'topology.kubernetes.io/zone', operator: 'In', values: ['a'] }]], refused: false },
  ];
  for (const c of cases) {
    it(`${c.refused ? 'refuses' : 'injects'} a pod whose required affinity says ${c.name}`, () => {
      const pod = optedIn({ spec: { containers: [{ name: 'app', image: 'app:1' }], affinity: affinity(c.terms) } });
      const result = mutate(pod as unknown as Pod, settings);
      assert.equal(result.ok, !c.refused);
      if (!result.ok) assert.match(result.error.message, /spec\.affinity\.nodeAffinity/);
    });
  }
});
