import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  AGENT_COMMAND,
  DEFAULT_INJECTOR_SETTINGS,
  type InjectorSettings,
  mutate,
} from '../../injector/mutate.ts';
import type { Container, Pod, PodSecurityContext, SecurityContext } from '../../injector/pod.ts';
import { applyPatch } from '../helpers/json-patch.ts';

const settings: InjectorSettings = { ...DEFAULT_INJECTOR_SETTINGS, agentImage: 'esa:test' };
const legacy: InjectorSettings = { ...settings, hasNativeSidecars: false };
const key = (name: string) => `agent.external-secrets.io/${name}`;

/** A pod with one init container (`setup`) and two containers (`web`, `shipper`). */
function pod({
  podContext,
  setup,
  web,
  shipper,
  annotations = {},
}: {
  podContext?: PodSecurityContext;
  setup?: SecurityContext;
  web?: SecurityContext;
  shipper?: SecurityContext;
  annotations?: Record<string, string>;
}): Pod {
  const container = (name: string, sc: SecurityContext | undefined): Container =>
    sc ? { name, image: `${name}:1`, securityContext: sc } : { name, image: `${name}:1` };
  return {
    metadata: {
      name: 'p',
      namespace: 'team-a',
      labels: { [key('inject')]: 'true' },
      annotations: { [key('external-secrets')]: 'db-creds', ...annotations },
    },
    spec: {
      ...(podContext ? { securityContext: podContext } : {}),
      initContainers: [container('setup', setup)],
      containers: [container('web', web), container('shipper', shipper)],
    },
  };
}

function inject(input: Pod, s: InjectorSettings = settings) {
  const result = mutate(input, s);
  if (!result.ok) assert.fail(`expected a patch, got: ${result.error.message}`);
  const out = applyPatch(input, result.patch);
  const agents = [...(out.spec!.initContainers ?? []), ...out.spec!.containers].filter(
    (c) => c.command?.[0] === AGENT_COMMAND,
  );
  assert.ok(agents.length > 0);
  return { out, agents, warnings: result.warnings };
}

const fileMode = (c: Container) => c.env?.find((e) => e.name === 'ESA_FILE_MODE')?.value;
const modeWarning = (warnings: string[]) =>
  warnings.find((w) => w.startsWith('secret files are mode 0444'));

describe('mutate: who the agent runs as and the mode of its files', () => {
  const cases: {
    name: string;
    pod: Pod;
    uid: number;
    gid: number;
    mode: '0440' | '0444' | '0400' | '0640';
    /** Words the warning must contain; absent means no file-mode warning at all. */
    warns?: RegExp[];
  }[] = [
    // (a) one known non-root uid: the agent becomes it, files stay 0440.
    {
      name: 'runs as the pod-level runAsUser, with the same number as gid, and keeps 0440',
      pod: pod({ podContext: { runAsNonRoot: true, runAsUser: 10001 } }),
      uid: 10001,
      gid: 10001,
      mode: '0440',
    },
    {
      name: 'takes the pod-level runAsGroup as its gid',
      pod: pod({ podContext: { runAsUser: 1000, runAsGroup: 3000 } }),
      uid: 1000,
      gid: 3000,
      mode: '0440',
    },
    {
      name: 'lets a container-level runAsUser win over the pod-level one',
      pod: pod({
        podContext: { runAsUser: 1000, runAsGroup: 3000 },
        setup: { runAsUser: 2000 },
        web: { runAsUser: 2000 },
        shipper: { runAsUser: 2000, runAsGroup: 3000 },
      }),
      uid: 2000,
      gid: 3000,
      mode: '0440',
    },
    {
      name: 'uses the uid as gid when the containers share a uid but not a gid',
      pod: pod({
        podContext: { runAsUser: 1000 },
        web: { runAsGroup: 3000 },
        shipper: { runAsGroup: 4000 },
      }),
      uid: 1000,
      gid: 1000,
      mode: '0440',
    },
    {
      name: 'never takes gid 0 from the app',
      pod: pod({ podContext: { runAsUser: 1000, runAsGroup: 0 } }),
      uid: 1000,
      gid: 1000,
      mode: '0440',
    },
    {
      name: 'looks only at the containers that get the mount',
      pod: pod({
        podContext: { runAsUser: 1000 },
        shipper: { runAsUser: 1337 },
        annotations: { [key('containers')]: 'setup,web' },
      }),
      uid: 1000,
      gid: 1000,
      mode: '0440',
    },

    // (b) uids differ, are unknown, or are root: the agent keeps 65532, files become 0444.
    {
      name: 'keeps 65532 and writes 0444 when no container says its uid (the image USER decides)',
      pod: pod({}),
      uid: 65532,
      gid: 65532,
      mode: '0444',
      warns: [/setup \(uid unknown\), web \(uid unknown\), shipper \(uid unknown\)/],
    },
    {
      name: 'keeps 65532 and writes 0444 when one container of three does not say its uid',
      pod: pod({ setup: { runAsUser: 1000 }, web: { runAsUser: 1000 } }),
      uid: 65532,
      gid: 65532,
      mode: '0444',
      warns: [/shipper \(uid unknown\)/],
    },
    {
      name: 'keeps 65532 and writes 0444 when the containers run as different uids',
      pod: pod({ podContext: { runAsUser: 1000 }, shipper: { runAsUser: 1337 } }),
      uid: 65532,
      gid: 65532,
      mode: '0444',
      warns: [/web \(uid 1000\)/, /shipper \(uid 1337\)/],
    },
    {
      name: 'keeps 65532 and writes 0444 for a root app rather than running the agent as root',
      pod: pod({ podContext: { runAsUser: 0 } }),
      uid: 65532,
      gid: 65532,
      mode: '0444',
      warns: [/web \(uid 0\)/],
    },
    {
      name: 'treats a container-level runAsUser 0 under a non-root pod as root',
      pod: pod({ podContext: { runAsUser: 1000 }, web: { runAsUser: 0 } }),
      uid: 65532,
      gid: 65532,
      mode: '0444',
      warns: [/web \(uid 0\)/],
    },

    // (c) annotations.
    {
      name: 'file-mode overrides 0444 and silences the warning',
      pod: pod({ annotations: { [key('file-mode')]: '0400' } }),
      uid: 65532,
      gid: 65532,
      mode: '0400',
    },
    {
      name: 'file-mode overrides 0440 when the uid is known',
      pod: pod({ podContext: { runAsUser: 1000 }, annotations: { [key('file-mode')]: '640' } }),
      uid: 1000,
      gid: 1000,
      mode: '0640',
    },
    {
      name: 'run-as-user vouches for containers of unknown uid: 0440, no warning',
      pod: pod({ annotations: { [key('run-as-user')]: '1000' } }),
      uid: 1000,
      gid: 1000,
      mode: '0440',
    },
    {
      name: 'run-as-user and run-as-group set both ids',
      pod: pod({ annotations: { [key('run-as-user')]: '1000', [key('run-as-group')]: '2000' } }),
      uid: 1000,
      gid: 2000,
      mode: '0440',
    },
    {
      name: 'run-as-user equal to the app uid keeps the app gid',
      pod: pod({
        podContext: { runAsUser: 1000, runAsGroup: 3000 },
        annotations: { [key('run-as-user')]: '1000' },
      }),
      uid: 1000,
      gid: 3000,
      mode: '0440',
    },
    {
      name: 'run-as-user does not vouch for a container that says it runs as someone else',
      pod: pod({ web: { runAsUser: 2000 }, annotations: { [key('run-as-user')]: '1000' } }),
      uid: 1000,
      gid: 1000,
      mode: '0444',
      warns: [/web \(uid 2000\)/],
    },
    {
      name: 'run-as-group shared with every container gives 0440 to apps of different uids',
      pod: pod({
        podContext: { runAsGroup: 3000 },
        setup: { runAsUser: 1000 },
        web: { runAsUser: 1001 },
        shipper: { runAsUser: 1002 },
        annotations: { [key('run-as-group')]: '3000' },
      }),
      uid: 65532,
      gid: 3000,
      mode: '0440',
    },
  ];

  for (const c of cases) {
    it(c.name, () => {
      const before = structuredClone(c.pod.spec!.securityContext);
      for (const s of [settings, legacy]) {
        const { out, agents, warnings } = inject(c.pod, s);
        for (const a of agents) {
          const sc = a.securityContext ?? {};
          assert.deepEqual([sc.runAsUser, sc.runAsGroup], [c.uid, c.gid], `${a.name} uid/gid`);
          assert.equal(sc.runAsNonRoot, true, `${a.name} runAsNonRoot`);
          assert.equal(fileMode(a), c.mode, `${a.name} ESA_FILE_MODE`);
        }
        assert.deepEqual(out.spec!.securityContext, before, 'the pod security context is kept');

        const warning = modeWarning(warnings);
        if (!c.warns) {
          assert.equal(warning, undefined);
          continue;
        }
        assert.ok(warning, 'warns about 0444');
        assert.match(warning, /readable by every container that mounts them/);
        assert.match(warning, /runAsUser/);
        for (const words of c.warns) assert.match(warning, words);
      }
    });
  }

  it('never changes the pod fsGroup', () => {
    const input = pod({ podContext: { fsGroup: 2000 } });
    const { out, agents } = inject(input);
    assert.deepEqual(out.spec!.securityContext, { fsGroup: 2000 });
    assert.ok(agents.every((a) => fileMode(a) === '0444'));
  });

  it('keeps the warning within the 256 characters the API server passes on', () => {
    const many = pod({});
    many.spec!.containers.push(
      ...['a-very-long-container-name-1', 'a-very-long-container-name-2'].map((name) => ({ name })),
    );
    const warning = modeWarning(inject(many).warnings);
    assert.ok(warning && warning.length <= 256, `${warning?.length} characters: ${warning}`);
    assert.match(warning, /2 more/);
  });

  const refusals: { name: string; annotations: Record<string, string>; field: string }[] = [
    {
      name: 'a file mode that is not octal',
      annotations: { 'file-mode': '0o440' },
      field: 'file-mode',
    },
    { name: 'a file mode below 0400', annotations: { 'file-mode': '0200' }, field: 'file-mode' },
    { name: 'a file mode above 0777', annotations: { 'file-mode': '1777' }, field: 'file-mode' },
    { name: 'run-as-user 0', annotations: { 'run-as-user': '0' }, field: 'run-as-user' },
    { name: 'a negative run-as-user', annotations: { 'run-as-user': '-5' }, field: 'run-as-user' },
    {
      name: 'a run-as-user beyond 2147483647',
      annotations: { 'run-as-user': '2147483648' },
      field: 'run-as-user',
    },
    { name: 'run-as-group 0', annotations: { 'run-as-group': '0' }, field: 'run-as-group' },
    { name: 'a run-as-group name', annotations: { 'run-as-group': 'app' }, field: 'run-as-group' },
  ];
  for (const c of refusals) {
    it(`refuses ${c.name}, naming the annotation`, () => {
      const annotations = Object.fromEntries(
        Object.entries(c.annotations).map(([k, v]) => [key(k), v]),
      );
      const result = mutate(pod({ annotations }), settings);
      if (result.ok) assert.fail('expected the pod to be refused');
      assert.deepEqual(
        result.error.problems.map((p) => p.field),
        [key(c.field)],
      );
      assert.match(result.error.message, new RegExp(key(c.field)));
    });
  }
});
