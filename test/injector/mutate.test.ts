import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  AGENT_COMMAND,
  AGENT_TOKEN_DIR,
  DEFAULT_INJECTOR_SETTINGS,
  type InjectorSettings,
  mutate,
  type MutateResult,
} from '../../injector/mutate.ts';
import type { Container, Pod, Volume } from '../../injector/pod.ts';
import { applyPatch } from '../helpers/json-patch.ts';

const settings: InjectorSettings = { ...DEFAULT_INJECTOR_SETTINGS, agentImage: 'esa:test' };
const legacy: InjectorSettings = { ...settings, hasNativeSidecars: false };

function fixture(name: string): Pod {
  const text = readFileSync(new URL(`../fixtures/pods/${name}.json`, import.meta.url), 'utf8');
  return deepFreeze(JSON.parse(text) as Pod);
}

/** Frozen input proves mutate never changes the pod it is given. */
function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

function withAnnotations(pod: Pod, annotations: Record<string, string>): Pod {
  const copy = structuredClone(pod);
  copy.metadata!.annotations = { ...copy.metadata!.annotations, ...annotations };
  return deepFreeze(copy);
}

function ok(result: MutateResult): { patch: Parameters<typeof applyPatch>[1]; warnings: string[] } {
  if (!result.ok) assert.fail(`expected a patch, got: ${result.error.message}`);
  return result;
}

/** Runs mutate and applies its patch; fails the test if the pod was refused. */
function inject(pod: Pod, s: InjectorSettings = settings): { pod: Pod; warnings: string[] } {
  const { patch, warnings } = ok(mutate(pod, s));
  return { pod: applyPatch(pod, patch), warnings };
}

function refusal(result: MutateResult): { fields: string[]; message: string } {
  if (result.ok) assert.fail('expected the pod to be refused');
  return { fields: result.error.problems.map((p) => p.field), message: result.error.message };
}

const names = (cs: Container[] | null | undefined) => (cs ?? []).map((c) => c.name);
const isAgent = (c: Container) => c.command?.[0] === AGENT_COMMAND;
const agents = (pod: Pod) =>
  [...(pod.spec!.initContainers ?? []), ...pod.spec!.containers].filter(isAgent);
const byName = (cs: Container[] | null | undefined, name: string) => {
  const c = (cs ?? []).find((x) => x.name === name);
  assert.ok(c, `container ${name} exists`);
  return c;
};
const volume = (pod: Pod, name: string): Volume => {
  const v = (pod.spec!.volumes ?? []).find((x) => x.name === name);
  assert.ok(v, `volume ${name} exists`);
  return v;
};
const env = (c: Container, name: string) => c.env?.find((e) => e.name === name);

/** Pod Security "restricted", container level (the pod level of our fixtures sets none of it). */
function assertRestricted(c: Container): void {
  const sc = c.securityContext ?? {};
  assert.equal(sc.runAsNonRoot, true, `${c.name} runAsNonRoot`);
  assert.ok((sc.runAsUser ?? 0) > 0, `${c.name} runs as a non-zero uid`);
  assert.equal(sc.allowPrivilegeEscalation, false, `${c.name} allowPrivilegeEscalation`);
  assert.deepEqual(sc.capabilities, { drop: ['ALL'] }, `${c.name} drops ALL`);
  assert.equal(sc.readOnlyRootFilesystem, true, `${c.name} readOnlyRootFilesystem`);
  assert.deepEqual(sc.seccompProfile, { type: 'RuntimeDefault' }, `${c.name} seccomp`);
}

const dns1123Label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

describe('mutate: acceptance cases', () => {
  const cases: {
    name: string;
    fixture: string;
    settings?: InjectorSettings;
    check(pod: Pod, warnings: string[]): void;
  }[] = [
    {
      name: 'I01: a Job pod keeps only its own container and gets a native sidecar',
      fixture: 'i01-job-pod',
      check(pod) {
        assert.deepEqual(names(pod.spec!.containers), ['migrate']);
        assert.deepEqual(names(pod.spec!.initContainers), ['inject-init', 'inject-sidecar']);
        const sidecar = byName(pod.spec!.initContainers, 'inject-sidecar');
        assert.equal(sidecar.restartPolicy, 'Always');
        assert.deepEqual(sidecar.startupProbe?.exec.command, [AGENT_COMMAND, 'ready']);
        assert.deepEqual(sidecar.args, ['sidecar']);
        const app = byName(pod.spec!.containers, 'migrate');
        assert.deepEqual(app.volumeMounts, [
          { name: 'inject-secrets', mountPath: '/run/secrets/inject', readOnly: true },
        ]);
      },
    },
    {
      name: 'I01 without native sidecars: degrades to init-only, never a plain long-running container',
      fixture: 'i01-job-pod',
      settings: legacy,
      check(pod, warnings) {
        assert.deepEqual(names(pod.spec!.containers), ['migrate']);
        assert.deepEqual(names(pod.spec!.initContainers), ['inject-init']);
        assert.match(warnings.join('\n'), /init-only/);
      },
    },
    {
      name: 'I02: init-first puts ours ahead, app init containers keep their order and get the mount',
      fixture: 'i02-init-first',
      check(pod) {
        const all = pod.spec!.initContainers ?? [];
        const runToCompletion = all.filter((c) => c.restartPolicy !== 'Always');
        assert.deepEqual(names(runToCompletion), ['inject-init', 'db-migrate', 'warm-cache']);
        assert.deepEqual(names(all), ['inject-init', 'inject-sidecar', 'db-migrate', 'warm-cache']);
        for (const name of ['db-migrate', 'warm-cache']) {
          assert.deepEqual(byName(all, name).volumeMounts, [
            { name: 'inject-secrets', mountPath: '/run/secrets/inject', readOnly: true },
          ]);
        }
      },
    },
    {
      name: 'I02 without native sidecars: init container names are exactly [inject-init, db-migrate, warm-cache]',
      fixture: 'i02-init-first',
      settings: legacy,
      check(pod) {
        assert.deepEqual(names(pod.spec!.initContainers), [
          'inject-init',
          'db-migrate',
          'warm-cache',
        ]);
        assert.deepEqual(names(pod.spec!.containers), ['api', 'inject-sidecar']);
      },
    },
    {
      name: 'I04: a generateName pod gets a patch whose names are all valid DNS-1123 labels',
      fixture: 'i04-generate-name',
      check(pod) {
        const spec = pod.spec!;
        const derived = [
          ...names(spec.initContainers),
          ...names(spec.containers),
          ...(spec.volumes ?? []).map((v) => v.name),
        ];
        assert.ok(derived.length > 0);
        for (const name of derived) {
          assert.match(name, dns1123Label);
          assert.ok(name.length <= 63);
        }
        assert.equal(pod.metadata!.name, undefined, 'the pod name is left to the API server');
        assert.equal(pod.metadata!.generateName, 'batch-worker-');
        const podName = env(agents(pod)[0]!, 'ESA_POD_NAME');
        assert.deepEqual(podName?.valueFrom?.fieldRef?.fieldPath, 'metadata.name');
      },
    },
    {
      name: 'I06: every injected container passes Pod Security restricted on its own',
      fixture: 'i06-restricted',
      check(pod) {
        assert.equal(agents(pod).length, 2);
        for (const c of agents(pod)) assertRestricted(c);
        assert.deepEqual(pod.spec!.securityContext, { runAsNonRoot: true, runAsUser: 10001 });
      },
    },
    {
      name: 'I08: automountServiceAccountToken false still gets the agent a token, and only the agent',
      fixture: 'i08-automount-false',
      check(pod) {
        assert.equal(pod.spec!.automountServiceAccountToken, false);
        const token = volume(pod, 'inject-token');
        const sources = token.projected?.sources ?? [];
        const tokens = sources.flatMap((s) =>
          s.serviceAccountToken ? [s.serviceAccountToken] : [],
        );
        assert.deepEqual(tokens, [
          { path: 'token', expirationSeconds: 3600 },
          { path: 'provider-token', audience: 'sts.amazonaws.com', expirationSeconds: 3600 },
        ]);
        for (const t of tokens) assert.ok((t.expirationSeconds ?? 0) <= 3600);
        assert.ok(sources.some((s) => s.configMap?.name === 'kube-root-ca.crt'));
        assert.ok(sources.some((s) => s.downwardAPI?.items[0]?.path === 'namespace'));

        for (const c of agents(pod)) {
          assert.ok(
            c.volumeMounts?.some(
              (m) => m.name === 'inject-token' && m.mountPath === AGENT_TOKEN_DIR,
            ),
          );
          assert.equal(env(c, 'ESA_KUBE_TOKEN_FILE')?.value, `${AGENT_TOKEN_DIR}/token`);
          assert.equal(env(c, 'ESA_KUBE_CA_FILE')?.value, `${AGENT_TOKEN_DIR}/ca.crt`);
          const providerToken = `${AGENT_TOKEN_DIR}/provider-token`;
          assert.equal(env(c, 'ESA_PROVIDER_TOKEN_FILE')?.value, providerToken);
          const tokenVars = (c.env ?? []).filter((e) => /TOKEN_FILE$/.test(e.name));
          assert.deepEqual(
            tokenVars.map((e) => e.name),
            ['ESA_KUBE_TOKEN_FILE', 'ESA_PROVIDER_TOKEN_FILE'],
            'one variable per token file',
          );
        }
        const app = byName(pod.spec!.containers, 'app');
        assert.ok(
          !app.volumeMounts?.some((m) => m.name === 'inject-token'),
          'app has no token mount',
        );
      },
    },
  ];

  for (const c of cases) {
    it(c.name, () => {
      const { pod, warnings } = inject(fixture(c.fixture), c.settings);
      c.check(pod, warnings);
    });
  }

  for (const c of cases) {
    it(`returns an empty patch on a second pass (${c.name.slice(0, 3)}${c.settings ? ', no native sidecars' : ''})`, () => {
      const once = inject(fixture(c.fixture), c.settings).pod;
      assert.deepEqual(mutate(deepFreeze(once), c.settings ?? settings), {
        ok: true,
        patch: [],
        warnings: [],
      });
    });
  }
});

describe('mutate: placement', () => {
  it('adds the init container and native sidecar after existing init containers', () => {
    const { pod } = inject(fixture('deployment-pod'));
    assert.deepEqual(names(pod.spec!.initContainers), ['setup', 'inject-init', 'inject-sidecar']);
    assert.deepEqual(names(pod.spec!.containers), ['web', 'log-shipper']);
  });

  it('keeps a mesh native sidecar ahead of ours', () => {
    const { pod } = inject(fixture('mesh-sidecar-pod'));
    assert.deepEqual(names(pod.spec!.initContainers), [
      'istio-init',
      'istio-proxy',
      'inject-init',
      'inject-sidecar',
    ]);
    assert.equal(byName(pod.spec!.initContainers, 'istio-proxy').restartPolicy, 'Always');
  });

  it('appends a plain sidecar container without native sidecars', () => {
    const { pod } = inject(fixture('deployment-pod'), legacy);
    assert.deepEqual(names(pod.spec!.initContainers), ['setup', 'inject-init']);
    assert.deepEqual(names(pod.spec!.containers), ['web', 'log-shipper', 'inject-sidecar']);
    const sidecar = byName(pod.spec!.containers, 'inject-sidecar');
    assert.equal(sidecar.restartPolicy, undefined);
    assert.equal(sidecar.startupProbe, undefined);
  });

  const modes: {
    name: string;
    mode: string;
    s: InjectorSettings;
    init: string[];
    containers: string[];
  }[] = [
    {
      name: 'init-only adds no sidecar',
      mode: 'init-only',
      s: settings,
      init: ['setup', 'inject-init'],
      containers: ['web', 'log-shipper'],
    },
    {
      name: 'sidecar-only adds the native sidecar where the init container would go',
      mode: 'sidecar-only',
      s: settings,
      init: ['setup', 'inject-sidecar'],
      containers: ['web', 'log-shipper'],
    },
    {
      name: 'sidecar-only without native sidecars adds a plain container',
      mode: 'sidecar-only',
      s: legacy,
      init: ['setup'],
      containers: ['web', 'log-shipper', 'inject-sidecar'],
    },
  ];
  for (const c of modes) {
    it(c.name, () => {
      const pod = withAnnotations(fixture('deployment-pod'), {
        'agent.external-secrets.io/mode': c.mode,
      });
      const { pod: out } = inject(pod, c.s);
      assert.deepEqual(names(out.spec!.initContainers), c.init);
      assert.deepEqual(names(out.spec!.containers), c.containers);
    });
  }

  it('warns that sidecar-only without native sidecars may start the app early', () => {
    const pod = withAnnotations(fixture('deployment-pod'), {
      'agent.external-secrets.io/mode': 'sidecar-only',
    });
    assert.match(inject(pod, legacy).warnings.join('\n'), /before its secrets exist/);
  });

  it('creates /spec/initContainers, /spec/volumes and volumeMounts when absent', () => {
    const pod = deepFreeze<Pod>({
      metadata: {
        name: 'bare',
        namespace: 'team-a',
        labels: { 'agent.external-secrets.io/inject': 'true' },
        annotations: { 'agent.external-secrets.io/external-secrets': 'a' },
      },
      spec: { containers: [{ name: 'app' }] },
    });
    const { patch } = ok(mutate(pod, settings));
    assert.ok(patch.every((op) => op.op === 'add'));
    const created = patch
      .filter((op) => Array.isArray((op as { value: unknown }).value))
      .map((op) => op.path);
    assert.deepEqual(created, [
      '/spec/volumes',
      '/spec/containers/0/volumeMounts',
      '/spec/initContainers',
    ]);
    // NOTE: /metadata/annotations always exists on an accepted pod: external-secrets is required.
    assert.deepEqual(patch[0], {
      op: 'add',
      path: '/metadata/annotations/agent.external-secrets.io~1status',
      value: 'injected',
    });
  });

  it('appends to arrays the pod already has instead of replacing them', () => {
    const { patch } = ok(mutate(fixture('deployment-pod'), settings));
    const paths = patch.map((op) => op.path);
    assert.ok(paths.includes('/spec/volumes/-'));
    assert.ok(paths.includes('/spec/initContainers/-'));
    assert.ok(paths.includes('/spec/containers/0/volumeMounts/-'));
    assert.ok(paths.includes('/spec/containers/1/volumeMounts'));
    assert.ok(!paths.includes('/spec/volumes') && !paths.includes('/spec/initContainers'));
  });

  it('escapes "/" and "~" in annotation keys (RFC 6901)', () => {
    const { patch } = ok(mutate(fixture('i06-restricted'), settings));
    const statusOp = patch.find((op) => op.path.startsWith('/metadata/annotations'));
    assert.equal(statusOp?.path, '/metadata/annotations/agent.external-secrets.io~1status');
    assert.ok(patch.every((op) => !op.path.includes('io/status')));
  });

  it('returns the same patch for the same input (no clock, no environment)', () => {
    const pod = fixture('deployment-pod');
    assert.deepEqual(mutate(pod, settings), mutate(pod, settings));
  });
});

describe('mutate: volumes and mounts', () => {
  it('mounts the secrets read-write in the agent and read-only in every app container', () => {
    const { pod } = inject(fixture('deployment-pod'));
    assert.deepEqual(volume(pod, 'inject-secrets').emptyDir, { medium: 'Memory' });
    for (const c of agents(pod)) {
      const m = c.volumeMounts?.find((x) => x.name === 'inject-secrets');
      assert.deepEqual(m, { name: 'inject-secrets', mountPath: '/run/secrets/inject' });
    }
    for (const name of ['setup', 'web', 'log-shipper']) {
      const c = [...(pod.spec!.initContainers ?? []), ...pod.spec!.containers].find(
        (x) => x.name === name,
      )!;
      assert.ok(
        c.volumeMounts?.some((m) => m.name === 'inject-secrets' && m.readOnly === true),
        name,
      );
    }
    const web = byName(pod.spec!.containers, 'web');
    assert.deepEqual(
      names(web.volumeMounts as Container[]),
      ['cache', 'inject-secrets'],
      'existing mounts kept',
    );
    assert.deepEqual(
      (pod.spec!.volumes ?? []).map((v) => v.name),
      ['cache', 'inject-secrets', 'inject-token'],
    );
  });

  it('mounts only into the containers the containers annotation names', () => {
    const pod = withAnnotations(fixture('deployment-pod'), {
      'agent.external-secrets.io/containers': 'web',
    });
    const { pod: out, warnings } = inject(pod);
    const mounted = [...(out.spec!.initContainers ?? []), ...out.spec!.containers]
      .filter((c) => !isAgent(c) && c.volumeMounts?.some((m) => m.name === 'inject-secrets'))
      .map((c) => c.name);
    assert.deepEqual(mounted, ['web']);
    // The only warning is about the file mode: web sets no runAsUser (see file-access.test.ts).
    assert.deepEqual(
      warnings.filter((w) => !w.startsWith('secret files are mode 0444')),
      [],
    );
  });

  it('warns when a named init container runs before ours', () => {
    const pod = withAnnotations(fixture('deployment-pod'), {
      'agent.external-secrets.io/containers': 'setup,web',
    });
    assert.match(inject(pod).warnings.join('\n'), /setup runs before the agent/);
  });

  it('uses the mount-path annotation everywhere, including ESA_OUTPUT_DIR', () => {
    const pod = withAnnotations(fixture('deployment-pod'), {
      'agent.external-secrets.io/mount-path': '/etc/secrets/',
    });
    const { pod: out } = inject(pod);
    for (const c of agents(out)) {
      assert.equal(env(c, 'ESA_OUTPUT_DIR')?.value, '/etc/secrets');
      assert.ok(c.volumeMounts?.some((m) => m.mountPath === '/etc/secrets'));
    }
    assert.ok(
      byName(out.spec!.containers, 'web').volumeMounts?.some((m) => m.mountPath === '/etc/secrets'),
    );
  });

  it('never overwrites volumes that use our names, and never reuses a name a mount refers to', () => {
    const { pod, warnings } = inject(fixture('name-clash-pod'));
    const volumes = (pod.spec!.volumes ?? []).map((v) => v.name);
    assert.deepEqual(volumes, [
      'inject-secrets',
      'inject-token',
      'inject-secrets-2',
      'inject-secrets-3',
      'inject-token-2',
    ]);
    assert.deepEqual(
      volume(pod, 'inject-secrets').emptyDir,
      {},
      'the pod’s own volume is untouched',
    );
    assert.ok(volume(pod, 'inject-token-2').projected);
    for (const c of agents(pod)) {
      assert.deepEqual(
        c.volumeMounts?.map((m) => m.name),
        ['inject-secrets-3', 'inject-token-2'],
      );
    }
    assert.match(warnings.join('\n'), /secrets volume is inject-secrets-3/);
  });

  it('adopts inject-secrets when a container refers to it ahead of time, and warns about subPath', () => {
    const { pod, warnings } = inject(fixture('mesh-sidecar-pod'));
    assert.deepEqual(volume(pod, 'inject-secrets').emptyDir, { medium: 'Memory' });
    const app = byName(pod.spec!.containers, 'app');
    assert.deepEqual(
      app.volumeMounts?.map((m) => m.mountPath),
      ['/etc/app/db.conf', '/run/secrets/inject'],
    );
    assert.match(warnings.join('\n'), /app mounts inject-secrets with subPath: no refreshes/);
  });
});

describe('mutate: agent containers', () => {
  it('runs the agent binary with init and sidecar subcommands from the configured image', () => {
    const { pod } = inject(fixture('deployment-pod'));
    const init = byName(pod.spec!.initContainers, 'inject-init');
    const sidecar = byName(pod.spec!.initContainers, 'inject-sidecar');
    assert.deepEqual([init.command, init.args], [['external-secrets-agent'], ['init']]);
    assert.deepEqual([sidecar.command, sidecar.args], [['external-secrets-agent'], ['sidecar']]);
    assert.equal(init.image, 'esa:test');
    assert.equal(init.imagePullPolicy, 'IfNotPresent');
    assert.equal(init.terminationMessagePolicy, 'FallbackToLogsOnError');
  });

  it('hands the agent its pod identity through the downward API and its settings as env', () => {
    const { pod } = inject(fixture('deployment-pod'));
    const init = byName(pod.spec!.initContainers, 'inject-init');
    const fieldRefs = Object.fromEntries(
      (init.env ?? [])
        .filter((e) => e.valueFrom)
        .map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath]),
    );
    assert.deepEqual(fieldRefs, {
      ESA_POD_NAME: 'metadata.name',
      ESA_POD_NAMESPACE: 'metadata.namespace',
      ESA_POD_UID: 'metadata.uid',
      ESA_SERVICE_ACCOUNT: 'spec.serviceAccountName',
    });
    assert.equal(env(init, 'ESA_EXTERNAL_SECRETS')?.value, 'db-creds,api-key');
    assert.equal(env(init, 'ESA_OUTPUT_DIR')?.value, '/run/secrets/inject');
    assert.equal(env(init, 'ESA_LOG_LEVEL')?.value, 'info');
    assert.equal(env(init, 'ESA_REFRESH_INTERVAL'), undefined);
  });

  it('sets ESA_REFRESH_INTERVAL and ESA_LOG_LEVEL from their annotations', () => {
    const pod = withAnnotations(fixture('deployment-pod'), {
      'agent.external-secrets.io/refresh-interval': '90s',
      'agent.external-secrets.io/log-level': 'debug',
    });
    for (const c of agents(inject(pod).pod)) {
      assert.equal(env(c, 'ESA_REFRESH_INTERVAL')?.value, '90s');
      assert.equal(env(c, 'ESA_LOG_LEVEL')?.value, 'debug');
    }
  });

  it('gives the provider token the annotated audience and expiry, under the same variable', () => {
    const pod = withAnnotations(fixture('i08-automount-false'), {
      'agent.external-secrets.io/token-audience': 'vault',
      'agent.external-secrets.io/token-expiration-seconds': '600',
    });
    const sources = volume(inject(pod).pod, 'inject-token').projected?.sources ?? [];
    assert.deepEqual(
      sources.flatMap((s) => (s.serviceAccountToken ? [s.serviceAccountToken] : [])),
      [
        { path: 'token', expirationSeconds: 600 },
        { path: 'provider-token', audience: 'vault', expirationSeconds: 600 },
      ],
    );
    for (const c of agents(inject(pod).pod)) {
      assert.equal(env(c, 'ESA_PROVIDER_TOKEN_FILE')?.value, `${AGENT_TOKEN_DIR}/provider-token`);
    }
  });

  it('adds no provider token when neither the annotation nor the settings name an audience', () => {
    const { tokenAudience: _, ...noAudience } = settings;
    const { pod } = inject(fixture('i08-automount-false'), noAudience);
    const sources = volume(pod, 'inject-token').projected?.sources ?? [];
    assert.equal(sources.filter((s) => s.serviceAccountToken).length, 1);
    for (const c of agents(pod)) {
      assert.equal(env(c, 'ESA_PROVIDER_TOKEN_FILE'), undefined);
    }
  });

  const resources: {
    name: string;
    annotations: Record<string, string>;
    expected: Container['resources'];
  }[] = [
    {
      name: 'uses small injector defaults without annotations, and no ephemeral-storage',
      annotations: {},
      expected: { requests: { cpu: '10m', memory: '48Mi' }, limits: { memory: '128Mi' } },
    },
    {
      name: 'uses exactly the annotated memory request and limit (I10)',
      annotations: {
        'agent.external-secrets.io/agent-memory-request': '24Mi',
        'agent.external-secrets.io/agent-memory-limit': '48Mi',
      },
      expected: { requests: { cpu: '10m', memory: '24Mi' }, limits: { memory: '48Mi' } },
    },
    {
      name: 'adds a CPU limit only when one is annotated',
      annotations: { 'agent.external-secrets.io/agent-cpu-limit': '200m' },
      expected: {
        requests: { cpu: '10m', memory: '48Mi' },
        limits: { cpu: '200m', memory: '128Mi' },
      },
    },
  ];
  for (const c of resources) {
    it(c.name, () => {
      const { pod } = inject(withAnnotations(fixture('deployment-pod'), c.annotations));
      for (const a of agents(pod)) assert.deepEqual(a.resources, c.expected, a.name);
    });
  }
});

describe('mutate: refusals', () => {
  const base = fixture('deployment-pod');
  const cases: {
    name: string;
    pod: Pod;
    s?: InjectorSettings;
    fields: string[];
    message: RegExp;
  }[] = [
    {
      name: 'refuses a pod without the external-secrets annotation',
      pod: withAnnotations(base, { 'agent.external-secrets.io/external-secrets': '' }),
      fields: ['agent.external-secrets.io/external-secrets'],
      message: /is required/,
    },
    {
      name: 'refuses a Windows nodeSelector',
      pod: deepFreeze({
        ...base,
        spec: { ...base.spec!, nodeSelector: { 'kubernetes.io/os': 'windows' } },
      }),
      fields: ['spec.nodeSelector["kubernetes.io/os"]'],
      message: /Linux/,
    },
    {
      name: 'refuses spec.os.name windows',
      pod: deepFreeze({ ...base, spec: { ...base.spec!, os: { name: 'windows' } } }),
      fields: ['spec.os.name'],
      message: /Linux/,
    },
    {
      name: 'refuses a container that already uses one of our names',
      pod: deepFreeze({
        ...base,
        spec: { ...base.spec!, containers: [{ name: 'inject-sidecar' }] },
      }),
      fields: ['spec.containers[0].name'],
      message: /reserved/,
    },
    {
      name: 'refuses a mount path a selected container already uses',
      pod: withAnnotations(base, { 'agent.external-secrets.io/mount-path': '/var/cache/web' }),
      fields: ['agent.external-secrets.io/mount-path'],
      message: /container web already mounts a volume at \/var\/cache\/web/,
    },
    {
      name: 'refuses a mount path inside the agent token folder',
      pod: withAnnotations(base, {
        'agent.external-secrets.io/mount-path': `${AGENT_TOKEN_DIR}/x`,
      }),
      fields: ['agent.external-secrets.io/mount-path'],
      message: /overlaps/,
    },
    {
      name: 'refuses a memory request above the limit, naming the annotation (I10)',
      pod: withAnnotations(base, {
        'agent.external-secrets.io/agent-memory-request': '24Mi',
        'agent.external-secrets.io/agent-memory-limit': '16Mi',
      }),
      fields: ['agent.external-secrets.io/agent-memory-request'],
      message: /24Mi is more than agent.external-secrets.io\/agent-memory-limit 16Mi/,
    },
    {
      name: 'refuses a memory request above the default limit',
      pod: withAnnotations(base, { 'agent.external-secrets.io/agent-memory-request': '1Gi' }),
      fields: ['agent.external-secrets.io/agent-memory-request'],
      message: /default memory limit 128Mi/,
    },
    {
      name: 'refuses a memory limit below the default request',
      pod: withAnnotations(base, { 'agent.external-secrets.io/agent-memory-limit': '32Mi' }),
      fields: ['agent.external-secrets.io/agent-memory-limit'],
      message: /default memory request 48Mi/,
    },
    {
      name: 'refuses sidecar-only for a pod that runs to completion without native sidecars',
      pod: withAnnotations(fixture('i01-job-pod'), {
        'agent.external-secrets.io/mode': 'sidecar-only',
      }),
      s: legacy,
      fields: ['agent.external-secrets.io/mode'],
      message: /needs native sidecars/,
    },
    {
      name: 'reports every bad annotation at once',
      pod: withAnnotations(base, {
        'agent.external-secrets.io/mode': 'both',
        'agent.external-secrets.io/init-first': 'yes',
      }),
      fields: ['agent.external-secrets.io/mode', 'agent.external-secrets.io/init-first'],
      message: /expected one of init\+sidecar, init-only, sidecar-only, got "both"/,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const result = refusal(mutate(c.pod, c.s ?? settings));
      assert.deepEqual(result.fields, c.fields);
      assert.match(result.message, c.message);
      assert.match(result.message, /^cannot inject pod team-a\//);
    });
  }

  it('returns the refusal as an AdmissionError with a stable code', () => {
    const result = mutate(
      withAnnotations(base, { 'agent.external-secrets.io/mode': 'x' }),
      settings,
    );
    assert.equal(result.ok, false);
    if (!result.ok) {
      assert.equal(result.error.code, 'ERR_ADMISSION');
      assert.equal(result.error.name, 'AdmissionError');
    }
  });

  it('leaves a pod without the opt-in label alone and says so', () => {
    const pod = deepFreeze<Pod>({
      ...base,
      metadata: { ...base.metadata, labels: { app: 'web' } },
    });
    const result = ok(mutate(pod, settings));
    assert.deepEqual(result.patch, []);
    assert.match(result.warnings[0] ?? '', /not labelled agent.external-secrets.io\/inject=true/);
  });
});

describe('mutate: purity', () => {
  it('imports nothing that does I/O and reads no clock, randomness or environment', () => {
    const seen = new Set<string>();
    const visit = (url: URL) => {
      if (seen.has(url.href)) return;
      seen.add(url.href);
      const source = readFileSync(url, 'utf8');
      const code = source.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
      for (const m of code.matchAll(/from '([^']+)'/g)) {
        const spec = m[1]!;
        assert.ok(spec.startsWith('.'), `${url.pathname} imports ${spec}`);
        visit(new URL(spec, url));
      }
      for (const banned of [
        'process.',
        'Date',
        'Math.random',
        'performance',
        'require(',
        'import(',
      ]) {
        assert.ok(!code.includes(banned), `${url.pathname} uses ${banned}`);
      }
    };
    visit(new URL('../../injector/mutate.ts', import.meta.url));
    assert.ok(seen.size >= 5);
  });
});
