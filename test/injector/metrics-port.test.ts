import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  EXTERNAL_SECRETS_ANNOTATION,
  INJECT_LABEL,
  METRICS_PORT_ANNOTATION,
  MODE_ANNOTATION,
  parseAnnotations,
} from '../../injector/annotations.ts';
import {
  DEFAULT_INJECTOR_SETTINGS,
  INIT_CONTAINER_NAME,
  type InjectorSettings,
  mutate,
  SIDECAR_CONTAINER_NAME,
} from '../../injector/mutate.ts';
import type { Container, Pod } from '../../injector/pod.ts';
import { applyPatch } from '../helpers/json-patch.ts';

const settings: InjectorSettings = { ...DEFAULT_INJECTOR_SETTINGS, agentImage: 'esa:test' };

function podWith(annotations: Record<string, string>): Pod {
  return {
    metadata: {
      name: 'web',
      namespace: 'prod',
      labels: { [INJECT_LABEL]: 'true' },
      annotations: { [EXTERNAL_SECRETS_ANNOTATION]: 'db-creds', ...annotations },
    },
    spec: { containers: [{ name: 'app', image: 'nginx' }] },
  };
}

describe('metrics-port annotation', () => {
  const accepted = [
    { name: 'the lowest unprivileged port', value: '1024', port: 1024 },
    { name: 'a usual metrics port', value: '9090', port: 9090 },
    { name: 'the highest port', value: '65535', port: 65535 },
  ];
  for (const c of accepted) {
    it(`accepts ${c.name}`, () => {
      const result = parseAnnotations(podWith({ [METRICS_PORT_ANNOTATION]: c.value }));
      if (!result.ok) assert.fail(JSON.stringify(result.problems));
      assert.equal(result.options.metricsPort, c.port);
    });
  }

  it('leaves metricsPort unset without the annotation', () => {
    const result = parseAnnotations(podWith({}));
    assert.ok(result.ok);
    assert.equal(result.options.metricsPort, undefined);
  });

  const refused = [
    { name: 'a privileged port', value: '80' },
    { name: 'a port above 65535', value: '65536' },
    { name: 'zero', value: '0' },
    { name: 'a negative number', value: '-9090' },
    { name: 'a named port', value: 'metrics' },
    { name: 'a host:port', value: '0.0.0.0:9090' },
    { name: 'a fraction', value: '9090.5' },
    { name: 'an empty value', value: '' },
  ];
  for (const c of refused) {
    it(`refuses ${c.name}, naming the annotation`, () => {
      const result = parseAnnotations(podWith({ [METRICS_PORT_ANNOTATION]: c.value }));
      assert.ok(!result.ok);
      assert.equal(result.problems.length, 1);
      assert.equal(result.problems[0]!.field, METRICS_PORT_ANNOTATION);
      assert.match(result.problems[0]!.message, /expected a port from 1024 to 65535/);
    });
  }

  it('refuses metrics-port with mode init-only, which has no sidecar to serve it', () => {
    const pod = podWith({ [METRICS_PORT_ANNOTATION]: '9090', [MODE_ANNOTATION]: 'init-only' });
    const result = parseAnnotations(pod);
    assert.ok(!result.ok);
    assert.equal(result.problems[0]!.field, METRICS_PORT_ANNOTATION);
    assert.match(result.problems[0]!.message, /init-only/);
  });
});

type WithPorts = Container & { ports?: { name: string; containerPort: number }[] };

function inject(pod: Pod, s: InjectorSettings = settings) {
  const result = mutate(pod, s);
  if (!result.ok) assert.fail(result.error.message);
  return { pod: applyPatch(pod, result.patch), warnings: result.warnings };
}

function agent(pod: Pod, name: string): WithPorts | undefined {
  return [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].find(
    (c) => c.name === name,
  );
}

const envValue = (c: Container | undefined, name: string) =>
  c?.env?.find((e) => e.name === name)?.value;

describe('mutate: metrics-port', () => {
  it('gives the sidecar ESA_METRICS_ADDRESS on all interfaces and a metrics container port', () => {
    const { pod } = inject(podWith({ [METRICS_PORT_ANNOTATION]: '9090' }));
    const sidecar = agent(pod, SIDECAR_CONTAINER_NAME);
    assert.equal(envValue(sidecar, 'ESA_METRICS_ADDRESS'), '0.0.0.0:9090');
    assert.deepEqual(sidecar?.ports, [{ name: 'metrics', containerPort: 9090, protocol: 'TCP' }]);
  });

  it('leaves the init container without the variable or a port', () => {
    const { pod } = inject(podWith({ [METRICS_PORT_ANNOTATION]: '9090' }));
    const init = agent(pod, INIT_CONTAINER_NAME);
    assert.equal(envValue(init, 'ESA_METRICS_ADDRESS'), undefined);
    assert.equal(init?.ports, undefined);
  });

  it('does the same for a plain sidecar container', () => {
    const legacy = { ...settings, hasNativeSidecars: false };
    const { pod } = inject(podWith({ [METRICS_PORT_ANNOTATION]: '9100' }), legacy);
    const sidecar = pod.spec!.containers.at(-1) as WithPorts;
    assert.equal(sidecar.name, SIDECAR_CONTAINER_NAME);
    assert.equal(envValue(sidecar, 'ESA_METRICS_ADDRESS'), '0.0.0.0:9100');
    assert.deepEqual(sidecar.ports, [{ name: 'metrics', containerPort: 9100, protocol: 'TCP' }]);
  });

  it('adds no port and no variable without the annotation', () => {
    const { pod } = inject(podWith({}));
    const sidecar = agent(pod, SIDECAR_CONTAINER_NAME);
    assert.equal(envValue(sidecar, 'ESA_METRICS_ADDRESS'), undefined);
    assert.equal(sidecar?.ports, undefined);
  });
});
