import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  EXTERNAL_SECRETS_ANNOTATION,
  INJECT_LABEL,
  ON_CHANGE_ANNOTATION,
  parseAnnotations,
  RUN_AS_USER_ANNOTATION,
} from '../../injector/annotations.ts';
import {
  DEFAULT_INJECTOR_SETTINGS,
  INIT_CONTAINER_NAME,
  type InjectorSettings,
  mutate,
  SIDECAR_CONTAINER_NAME,
} from '../../injector/mutate.ts';
import type { Container, Pod, PodSpec } from '../../injector/pod.ts';
import { applyPatch } from '../helpers/json-patch.ts';

const settings: InjectorSettings = { ...DEFAULT_INJECTOR_SETTINGS, agentImage: 'esa:test' };

function podWith(annotations: Record<string, string>, spec: Partial<PodSpec> = {}): Pod {
  return {
    metadata: {
      name: 'web',
      namespace: 'prod',
      labels: { [INJECT_LABEL]: 'true' },
      annotations: { [EXTERNAL_SECRETS_ANNOTATION]: 'db-creds', ...annotations },
    },
    spec: { containers: [{ name: 'app', image: 'nginx' }], ...spec },
  };
}

describe('on-change annotation: accepted values', () => {
  const cases = [
    {
      name: 'an HTTP call to a port and path',
      value: 'http:8080/-/reload',
      expected: { kind: 'http', port: 8080, path: '/-/reload' },
    },
    {
      name: 'an HTTP call with a query string',
      value: 'http:9090/reload?force=1',
      expected: { kind: 'http', port: 9090, path: '/reload?force=1' },
    },
    { name: 'the lowest port', value: 'http:1/', expected: { kind: 'http', port: 1, path: '/' } },
    {
      name: 'the highest port',
      value: 'http:65535/x',
      expected: { kind: 'http', port: 65535, path: '/x' },
    },
    {
      name: 'SIGHUP to nginx',
      value: 'signal:SIGHUP:nginx',
      expected: { kind: 'signal', signal: 'SIGHUP', processName: 'nginx' },
    },
    {
      name: 'SIGWINCH to a 15-character name',
      value: 'signal:SIGWINCH:abcdefghijklmno',
      expected: { kind: 'signal', signal: 'SIGWINCH', processName: 'abcdefghijklmno' },
    },
  ];
  for (const c of cases) {
    it(`accepts ${c.name}`, () => {
      const result = parseAnnotations(podWith({ [ON_CHANGE_ANNOTATION]: c.value }));
      if (!result.ok) assert.fail(JSON.stringify(result.problems));
      assert.deepEqual(result.options.onChange, c.expected);
    });
  }

  it('leaves onChange unset without the annotation', () => {
    const result = parseAnnotations(podWith({}));
    assert.ok(result.ok);
    assert.equal(result.options.onChange, undefined);
  });
});

describe('on-change annotation: refused values', () => {
  const cases = [
    { name: 'an empty value', value: '', expect: /expected http:<port><path> or signal/ },
    { name: 'an unknown kind', value: 'exec:/bin/reload', expect: /expected http:<port><path>/ },
    { name: 'a URL with a host', value: 'http://10.0.0.1:8080/reload', expect: /port from 1/ },
    { name: 'a host before the port', value: 'http:evil.example:80/x', expect: /port from 1/ },
    { name: 'port 0', value: 'http:0/reload', expect: /port from 1 to 65535/ },
    { name: 'a port above 65535', value: 'http:65536/reload', expect: /port from 1 to 65535/ },
    { name: 'no path', value: 'http:8080', expect: /start with \// },
    { name: 'a path without a slash', value: 'http:8080reload', expect: /port from 1|start with/ },
    { name: 'a path with a space', value: 'http:8080/re load', expect: /without whitespace/ },
    { name: 'SIGKILL', value: 'signal:SIGKILL:nginx', expect: /SIGHUP, SIGUSR1/ },
    { name: 'a lower-case signal', value: 'signal:sighup:nginx', expect: /SIGHUP, SIGUSR1/ },
    { name: 'a signal number', value: 'signal:1:nginx', expect: /SIGHUP, SIGUSR1/ },
    { name: 'no process name', value: 'signal:SIGHUP:', expect: /process name/ },
    { name: 'no process part', value: 'signal:SIGHUP', expect: /process name/ },
    {
      name: 'a process name the kernel would cut',
      value: 'signal:SIGHUP:a-very-long-process',
      expect: /15/,
    },
    { name: 'a path as process name', value: 'signal:SIGHUP:/usr/sbin/nginx', expect: /process/ },
  ];
  for (const c of cases) {
    it(`refuses ${c.name}, naming the annotation`, () => {
      const result = parseAnnotations(podWith({ [ON_CHANGE_ANNOTATION]: c.value }));
      if (result.ok) assert.fail(`expected ${JSON.stringify(c.value)} to be refused`);
      assert.equal(result.problems.length, 1);
      assert.equal(result.problems[0]!.field, ON_CHANGE_ANNOTATION);
      assert.match(result.problems[0]!.message, c.expect);
    });
  }

  it('refuses on-change with mode init-only, which has no sidecar to notify', () => {
    const result = parseAnnotations(
      podWith({
        [ON_CHANGE_ANNOTATION]: 'http:8080/reload',
        'agent.external-secrets.io/mode': 'init-only',
      }),
    );
    assert.ok(!result.ok);
    assert.equal(result.problems[0]!.field, ON_CHANGE_ANNOTATION);
    assert.match(result.problems[0]!.message, /init-only/);
  });
});

function inject(pod: Pod, s: InjectorSettings = settings) {
  const result = mutate(pod, s);
  if (!result.ok) assert.fail(result.error.message);
  return { pod: applyPatch(pod, result.patch), patch: result.patch, warnings: result.warnings };
}

function agent(pod: Pod, name: string): Container | undefined {
  return [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].find(
    (c) => c.name === name,
  );
}

const sharesProcesses = (pod: Pod) =>
  (pod.spec as { shareProcessNamespace?: boolean }).shareProcessNamespace;

const envValue = (c: Container | undefined, name: string) =>
  c?.env?.find((e) => e.name === name)?.value;

describe('mutate: on-change', () => {
  it('hands an HTTP on-change to the sidecar only, without sharing the process namespace', () => {
    const { pod, warnings } = inject(podWith({ [ON_CHANGE_ANNOTATION]: 'http:8080/-/reload' }));
    const sidecar = agent(pod, SIDECAR_CONTAINER_NAME);
    assert.equal(envValue(sidecar, 'ESA_ON_CHANGE'), 'http:8080/-/reload');
    assert.equal(envValue(agent(pod, INIT_CONTAINER_NAME), 'ESA_ON_CHANGE'), undefined);
    assert.equal(sharesProcesses(pod), undefined);
    assert.ok(!warnings.some((w) => w.includes(ON_CHANGE_ANNOTATION)), warnings.join('\n'));
  });

  it('hands it to a plain sidecar container too', () => {
    const legacy = { ...settings, hasNativeSidecars: false };
    const { pod } = inject(podWith({ [ON_CHANGE_ANNOTATION]: 'http:8080/-/reload' }), legacy);
    assert.equal(envValue(pod.spec!.containers.at(-1), 'ESA_ON_CHANGE'), 'http:8080/-/reload');
  });

  it('turns on shareProcessNamespace for a signal, with a warning', () => {
    const app = { runAsUser: 1000 };
    const { pod, patch, warnings } = inject(
      podWith({ [ON_CHANGE_ANNOTATION]: 'signal:SIGHUP:nginx' }, { securityContext: app }),
    );
    assert.deepEqual(
      patch.find((op) => op.path === '/spec/shareProcessNamespace'),
      { op: 'add', path: '/spec/shareProcessNamespace', value: true },
    );
    assert.equal(sharesProcesses(pod), true);
    const sidecar = agent(pod, SIDECAR_CONTAINER_NAME);
    assert.equal(envValue(sidecar, 'ESA_ON_CHANGE'), 'signal:SIGHUP:nginx');
    assert.equal(envValue(agent(pod, INIT_CONTAINER_NAME), 'ESA_ON_CHANGE'), undefined);
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0]!, /shareProcessNamespace.*each other's processes/);
  });

  it('warns that a signal will fail when the app uid is unknown', () => {
    const { warnings } = inject(podWith({ [ON_CHANGE_ANNOTATION]: 'signal:SIGHUP:nginx' }));
    const warning = warnings.find((w) => w.includes('can signal only'));
    assert.ok(warning, warnings.join('\n'));
    assert.ok(warning.includes(RUN_AS_USER_ANNOTATION) && warning.includes('uid 65532'));
  });

  it('does not warn about the uid when run-as-user is set', () => {
    const { warnings } = inject(
      podWith({ [ON_CHANGE_ANNOTATION]: 'signal:SIGHUP:nginx', [RUN_AS_USER_ANNOTATION]: '101' }),
    );
    assert.ok(!warnings.some((w) => w.includes('can signal only')), warnings.join('\n'));
  });

  it('keeps a pod that already shares its process namespace as it is', () => {
    const { patch, warnings } = inject(
      podWith(
        { [ON_CHANGE_ANNOTATION]: 'signal:SIGUSR1:app', [RUN_AS_USER_ANNOTATION]: '101' },
        { shareProcessNamespace: true } as Partial<PodSpec>,
      ),
    );
    assert.ok(!patch.some((op) => op.path === '/spec/shareProcessNamespace'));
    assert.deepEqual(warnings, []);
  });

  it('refuses a signal when the pod sets shareProcessNamespace to false', () => {
    const result = mutate(
      podWith({ [ON_CHANGE_ANNOTATION]: 'signal:SIGHUP:nginx' }, {
        shareProcessNamespace: false,
      } as Partial<PodSpec>),
      settings,
    );
    assert.ok(!result.ok);
    const expected = new RegExp(`${ON_CHANGE_ANNOTATION}.*shareProcessNamespace`);
    assert.match(result.error.message, expected);
  });

  it('warns that on-change does nothing when a Job falls back to init-only', () => {
    const legacy = { ...settings, hasNativeSidecars: false };
    const { patch, warnings } = inject(
      podWith({ [ON_CHANGE_ANNOTATION]: 'signal:SIGHUP:worker' }, { restartPolicy: 'Never' }),
      legacy,
    );
    assert.ok(warnings.some((w) => w.includes(`${ON_CHANGE_ANNOTATION} has no effect`)));
    assert.ok(!patch.some((op) => op.path === '/spec/shareProcessNamespace'));
  });

  it('warns that a host-network pod posts to the node loopback', () => {
    const { warnings } = inject(
      podWith({ [ON_CHANGE_ANNOTATION]: 'http:8080/reload' }, { hostNetwork: true }),
    );
    assert.ok(warnings.some((w) => w.includes("node's loopback")), warnings.join('\n'));
  });
});
