/**
 * The offline `inject` command: every workload kind, documents that are not opted in, refusals,
 * flags, input and output formats, and the acceptance cases of
 * /work/shared/acceptance/injector-cases.md that concern the mutated pod. Fixtures are under
 * test/fixtures/inject/.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as yaml from 'js-yaml';
import {
  DEFAULT_AGENT_IMAGE,
  injectManifests,
  type InjectOutcome,
  runInject,
} from '../../injector/inject-command.ts';
import { DEFAULT_INJECTOR_SETTINGS, type InjectorSettings, mutate } from '../../injector/mutate.ts';
import type { Container, Pod } from '../../injector/pod.ts';
import { findPodTemplates, getPath, type PathSegments } from '../../injector/pod-templates.ts';
import { applyPatch } from '../helpers/json-patch.ts';

const settings: InjectorSettings = { ...DEFAULT_INJECTOR_SETTINGS, agentImage: 'esa:test' };
const fixtureDir = fileURLToPath(new URL('../fixtures/inject/', import.meta.url));
const cli = fileURLToPath(new URL('../../cli.ts', import.meta.url));

const fixturePath = (name: string) => `${fixtureDir}${name}`;
const fixtureText = (name: string) => readFileSync(fixturePath(name), 'utf8');
/** The fixture's documents as a YAML 1.1 reader (kubectl) sees them. */
const fixtureDocs = (name: string) =>
  yaml.loadAll(fixtureText(name), { schema: yaml.YAML11_SCHEMA }).filter((d) => d !== null);

function injectFixture(name: string, s: InjectorSettings = settings): InjectOutcome {
  return injectManifests([{ file: name, text: fixtureText(name) }], s);
}

function documents(outcome: InjectOutcome): Record<string, unknown>[] {
  assert.deepEqual(outcome.problems, [], 'no document is refused');
  return outcome.documents as Record<string, unknown>[];
}

/** Runs the command as cli.ts would, with stdin, stdout and stderr captured. */
async function run(args: string[], stdin = ''): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runInject(args, {
    stdin: Readable.from([stdin]),
    stdout: { write: (t: string) => (out += t) },
    stderr: { write: (t: string) => (err += t) },
  });
  return { code, out, err };
}

const names = (cs: Container[] | null | undefined) => (cs ?? []).map((c) => c.name);
const templateAt = (doc: unknown, path: PathSegments) => getPath(doc, path) as Pod;
const isInjected = (pod: Pod) =>
  pod.metadata?.annotations?.['agent.external-secrets.io/status'] === 'injected';
const agentContainers = (pod: Pod) =>
  [...(pod.spec!.initContainers ?? []), ...pod.spec!.containers].filter((c) =>
    c.name.startsWith('inject-'),
  );

describe('findPodTemplates', () => {
  const cases = [
    { name: 'a Pod is its own template', apiVersion: 'v1', kind: 'Pod', path: [] },
    { name: 'a Deployment', apiVersion: 'apps/v1', kind: 'Deployment', path: ['spec', 'template'] },
    { name: 'a StatefulSet', apiVersion: 'apps/v1', kind: 'StatefulSet', path: ['spec', 'template'] },
    { name: 'a DaemonSet', apiVersion: 'apps/v1', kind: 'DaemonSet', path: ['spec', 'template'] },
    { name: 'a ReplicaSet', apiVersion: 'apps/v1', kind: 'ReplicaSet', path: ['spec', 'template'] },
    { name: 'a Job', apiVersion: 'batch/v1', kind: 'Job', path: ['spec', 'template'] },
    {
      name: "a CronJob's job template",
      apiVersion: 'batch/v1',
      kind: 'CronJob',
      path: ['spec', 'jobTemplate', 'spec', 'template'],
    },
    {
      name: 'a ReplicationController',
      apiVersion: 'v1',
      kind: 'ReplicationController',
      path: ['spec', 'template'],
    },
    { name: 'no Service', apiVersion: 'v1', kind: 'Service', path: undefined },
    { name: 'no Deployment of another group', apiVersion: 'example.com/v1', kind: 'Deployment', path: undefined },
    { name: 'no Pod of another group', apiVersion: 'example.com/v1', kind: 'Pod', path: undefined },
  ];
  for (const c of cases) {
    it(`finds ${c.name}`, () => {
      const template = { metadata: {}, spec: { containers: [] } };
      const doc: Record<string, unknown> = { apiVersion: c.apiVersion, kind: c.kind, metadata: { name: 'x' } };
      if (c.path === undefined || c.path.length === 0) Object.assign(doc, template);
      else if (c.kind === 'CronJob') doc['spec'] = { jobTemplate: { spec: { template } } };
      else doc['spec'] = { template };
      const found = findPodTemplates(doc);
      assert.deepEqual(found.map((r) => r.path), c.path === undefined ? [] : [c.path]);
    });
  }

  it('searches the items of a v1 List in order', () => {
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [] } };
    const deployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'd', namespace: 'ns' },
      spec: { template: { spec: { containers: [] } } },
    };
    const found = findPodTemplates({ apiVersion: 'v1', kind: 'List', items: [deployment, {}, pod] });
    assert.deepEqual(
      found.map((r) => [r.path, r.owner.kind, r.owner.namespace, r.owner.name]),
      [
        [['items', 0, 'spec', 'template'], 'Deployment', 'ns', 'd'],
        [['items', 2], 'Pod', undefined, 'p'],
      ],
    );
  });

  it('finds nothing in a workload without a template, or in a value that is not an object', () => {
    assert.deepEqual(findPodTemplates({ apiVersion: 'apps/v1', kind: 'Deployment', spec: {} }), []);
    assert.deepEqual(findPodTemplates('text'), []);
    assert.deepEqual(findPodTemplates(null), []);
  });
});

describe('inject: every workload kind', () => {
  const input = fixtureDocs('workloads.yaml') as Record<string, unknown>[];
  const outcome = injectFixture('workloads.yaml');
  const output = documents(outcome);

  const cases = [
    { name: 'Pod', index: 0, path: [], injected: true },
    { name: 'Service', index: 1, path: undefined, injected: false },
    { name: 'Deployment', index: 2, path: ['spec', 'template'], injected: true },
    { name: 'StatefulSet', index: 3, path: ['spec', 'template'], injected: true },
    { name: 'DaemonSet', index: 4, path: ['spec', 'template'], injected: true },
    { name: 'ReplicaSet', index: 5, path: ['spec', 'template'], injected: true },
    { name: 'Pod not opted in', index: 6, path: [], injected: false },
    { name: 'Job', index: 7, path: ['spec', 'template'], injected: true },
    { name: 'CronJob', index: 8, path: ['spec', 'jobTemplate', 'spec', 'template'], injected: true },
    { name: 'ReplicationController', index: 9, path: ['spec', 'template'], injected: true },
  ];

  it('prints every document, in document order', () => {
    assert.deepEqual(
      output.map((d) => d['kind']),
      input.map((d) => d['kind']),
    );
    assert.equal(outcome.injected, cases.filter((c) => c.injected).length);
  });

  for (const c of cases) {
    if (!c.injected) {
      it(`leaves the ${c.name} unchanged`, () => {
        assert.deepEqual(output[c.index], input[c.index]);
      });
      continue;
    }
    it(`injects the ${c.name}: agent containers, volumes, status; the rest unchanged`, () => {
      const before = templateAt(input[c.index], c.path!);
      const after = templateAt(output[c.index], c.path!);
      assert.ok(isInjected(after), 'status annotation set');
      assert.deepEqual(names(after.spec!.containers), names(before.spec!.containers));
      assert.deepEqual(names(after.spec!.initContainers), ['inject-init', 'inject-sidecar']);
      assert.deepEqual(
        (after.spec!.volumes ?? []).map((v) => v.name).slice(-2),
        ['inject-secrets', 'inject-token'],
      );

      // Outside the template, the object is exactly as it was.
      const strip = (doc: unknown) => {
        const copy = structuredClone(doc) as Record<string, unknown>;
        if (c.path!.length === 0) return { ...copy, metadata: undefined, spec: undefined };
        const parent = getPath(copy, c.path!.slice(0, -1)) as Record<string, unknown>;
        delete parent[c.path!.at(-1) as string];
        return copy;
      };
      assert.deepEqual(strip(output[c.index]), strip(input[c.index]));
    });
  }

  it('gives a template what the webhook gives each pod created from it', () => {
    const deployment = output[2]!;
    const template = templateAt(input[2], ['spec', 'template']);
    // The pod a ReplicaSet controller would create: a generated name, the namespace, an owner.
    const pod: Pod = structuredClone(template);
    pod.metadata = {
      ...pod.metadata,
      name: 'web-5d8f9c7b6-x2x7q',
      generateName: 'web-5d8f9c7b6-',
      namespace: 'team-a',
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-5d8f9c7b6' }],
    };
    const result = mutate(pod, settings);
    assert.ok(result.ok);
    const webhookPod = applyPatch(pod, result.patch);
    const injected = templateAt(deployment, ['spec', 'template']);
    assert.deepEqual(injected.spec, webhookPod.spec);
    assert.deepEqual(injected.metadata?.annotations, webhookPod.metadata?.annotations);
  });

  it('puts nothing that depends on the workload or pod name into a template', () => {
    const renamed = fixtureText('workloads.yaml').replaceAll('name: web,', 'name: web-renamed,');
    const other = documents(injectManifests([{ file: 'x', text: renamed }], settings));
    const a = templateAt(output[2], ['spec', 'template']);
    const b = templateAt(other[2], ['spec', 'template']);
    assert.deepEqual(a, b);
    assert.equal(a.metadata?.name, undefined, 'the template is not given a name');
    assert.ok(!JSON.stringify(a).includes('<generated>') && !JSON.stringify(a).includes('<unnamed>'));
  });

  it('names the file, document and object in each warning', () => {
    assert.ok(outcome.warnings.length > 0);
    assert.match(
      outcome.warnings.find((w) => w.includes('Deployment'))!,
      /^workloads\.yaml \(document 3\): Deployment team-a\/web: /,
    );
  });

  it('is idempotent: injecting its own output changes nothing', async () => {
    const first = await run(['-f', fixturePath('workloads.yaml')]);
    assert.equal(first.code, 0, first.err);
    const second = await run(['-f', '-'], first.out);
    assert.equal(second.code, 0, second.err);
    assert.equal(second.out, first.out);
  });
});

describe('inject: documents that are not opted in', () => {
  it('prints them unchanged', () => {
    const outcome = injectFixture('not-opted-in.yaml');
    assert.deepEqual(documents(outcome), fixtureDocs('not-opted-in.yaml'));
    assert.equal(outcome.injected, 0);
  });

  it('warns when the opt-in label is on the workload instead of its pod template', () => {
    const outcome = injectFixture('not-opted-in.yaml');
    assert.equal(outcome.warnings.length, 1, outcome.warnings.join('\n'));
    assert.match(outcome.warnings[0]!, /Deployment team-a\/mislabelled: is labelled .* spec\.template is not/);
  });
});

describe('inject: refusals', () => {
  it('exits 1, names the file, document, object and annotation, and prints nothing', async () => {
    const file = fixturePath('refused.yaml');
    const r = await run(['-f', file]);
    assert.equal(r.code, 1);
    assert.equal(r.out, '', 'a refusal prints no document, not even the valid ones');
    assert.match(r.err, new RegExp(`^Error: ${file.replaceAll('.', '\\.')} \\(document 2\\): `));
    assert.match(r.err, /Deployment team-a\/fleet: cannot inject the pod template at spec\.template: /);
    assert.match(
      r.err,
      /agent\.external-secrets\.io\/agent-memory-request: 24Mi is more than agent\.external-secrets\.io\/agent-memory-limit 16Mi/,
    );
  });

  it('reports every refused document of every file, not just the first', async () => {
    const r = await run(['-f', fixturePath('refused.yaml'), '-f', '-'], fixtureText('refused.yaml'));
    assert.equal(r.code, 1);
    assert.equal(r.err.match(/^Error: /gm)?.length, 2, r.err);
    assert.match(r.err, /^Error: <stdin> \(document 2\): Deployment team-a\/fleet/m);
  });

  it('refuses a pod whose annotation is unknown, naming it', () => {
    const text = fixtureText('acceptance.yaml').replace(
      'agent.external-secrets.io/init-first: "true"',
      'agent.external-secrets.io/init-frist: "true"',
    );
    const outcome = injectManifests([{ file: 'a.yaml', text }], settings);
    assert.equal(outcome.problems.length, 1);
    assert.match(
      outcome.problems[0]!,
      /^a\.yaml \(document 2\): Pod api: cannot inject the pod: agent\.external-secrets\.io\/init-frist: unknown annotation/,
    );
  });
});

describe('inject: input and output', () => {
  it('reads YAML as kubectl does: 0644 is octal, 12:30 and quoted yes stay strings', () => {
    const output = documents(injectFixture('workloads.yaml'));
    const volume = templateAt(output[0], []).spec!.volumes![0]!;
    assert.deepEqual(volume['configMap'], { name: 'api', defaultMode: 0o644 });
    const env = templateAt(output[2], ['spec', 'template']).spec!.containers[0]!.env!;
    assert.deepEqual(env, [
      { name: 'LISTEN', value: '8080:80' },
      { name: 'START_AT', value: '12:30' },
      { name: 'VERBOSE', value: 'yes' },
    ]);
  });

  it('reads unquoted scalars as kubectl does: octal and yes converted, times and dates kept', () => {
    const text = 'apiVersion: example.com/v1\nkind: W\nspec: {mode: 0644, flag: yes, at: 12:30, date: 2024-01-01}\n';
    const [doc] = documents(injectManifests([{ file: 'w', text }], settings));
    assert.deepEqual(doc!['spec'], { mode: 420, flag: true, at: '12:30', date: '2024-01-01' });
  });

  it('writes YAML that quotes strings other YAML readers would take for numbers or booleans', async () => {
    const r = await run(['-f', fixturePath('workloads.yaml')]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /value: '12:30'/, 'a YAML 1.1 base-60 number');
    assert.match(r.out, /value: 'yes'/);
    assert.match(r.out, /agent\.external-secrets\.io\/inject: 'true'/);
    assert.equal(r.out.split(/^---$/m).length, 10, 'ten documents');
  });

  it('keeps the fields of kinds it does not know, whatever their names', async () => {
    const text = [
      'apiVersion: example.com/v1',
      'kind: Widget',
      'metadata: {name: w}',
      'spec: {snake_case: 1, $ref: "#/x", x-kubernetes-preserve-unknown-fields: true, futureField: a}',
    ].join('\n');
    const r = await run(['-f', '-', '-o', 'json'], text);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(JSON.parse(r.out).spec, {
      snake_case: 1,
      $ref: '#/x',
      'x-kubernetes-preserve-unknown-fields': true,
      futureField: 'a',
    });
  });

  // NOTE: @kubernetes/client-node's loadAllYaml maps known kinds onto its models, which drops
  // fields the models do not know; inject reads plain YAML so that nothing is lost.
  it('keeps fields of a workload that the client library models do not know', () => {
    const text = fixtureText('workloads.yaml').replace(
      '  serviceName: db\n',
      '  serviceName: db\n  futureField: {enabled: true}\n',
    );
    const output = documents(injectManifests([{ file: 'w', text }], settings));
    assert.deepEqual((output[3]!['spec'] as Record<string, unknown>)['futureField'], { enabled: true });
  });

  it('prints JSON: the object for one document, a v1 List for several', async () => {
    const one = await run(['-f', '-', '-o', 'json'], fixtureText('refused.yaml').split('---')[0]!);
    assert.equal(JSON.parse(one.out).kind, 'ConfigMap');
    const many = await run(['-f', fixturePath('workloads.yaml'), '-o', 'json']);
    const list = JSON.parse(many.out);
    assert.equal(list.kind, 'List');
    assert.equal(list.items.length, 10);
  });

  it('drops empty documents', async () => {
    const r = await run(['-f', '-'], '---\n# nothing\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n');
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n');
  });

  it('refuses invalid YAML with the file and line, without quoting the file', async () => {
    const text = 'apiVersion: v1\nkind: Secret\nstringData:\n  password: hunter2-value\n bad: [\n';
    const r = await run(['-f', '-'], text);
    assert.equal(r.code, 1);
    assert.match(r.err, /^Error: <stdin>: not valid YAML at line \d+, column \d+: /);
    assert.ok(!r.err.includes('hunter2-value'), 'the file content is not echoed');
  });

  it('exits 1 naming a file it cannot read', async () => {
    const r = await run(['-f', fixturePath('missing.yaml')]);
    assert.equal(r.code, 1);
    assert.match(r.err, /cannot read .*missing\.yaml \(ENOENT\)/);
  });

  const usageCases = [
    { name: 'no -f', args: [], expected: /expected at least one -f/ },
    { name: 'stdin twice', args: ['-f', '-', '-f', '-'], expected: /stdin \(-f -\) can be read only once/ },
    { name: 'an unknown output', args: ['-f', 'x', '-o', 'wide'], expected: /-o: expected yaml or json/ },
    { name: 'an unknown flag', args: ['-f', 'x', '--port=1'], expected: /Unknown option '--port'/ },
    {
      name: 'a bad injector setting',
      args: ['-f', 'x', '--native-sidecars=maybe'],
      expected: /--native-sidecars .*expected true or false/,
    },
  ];
  for (const c of usageCases) {
    it(`exits 2 with the usage for ${c.name}`, async () => {
      const r = await run(c.args);
      assert.equal(r.code, 2);
      assert.match(r.err, c.expected);
      assert.match(r.err, /usage: external-secrets-agent inject/);
    });
  }
});

describe('inject: flags', () => {
  it('uses the chart default image unless --agent-image is given', async () => {
    const plain = await run(['-f', fixturePath('acceptance.yaml'), '-o', 'json']);
    assert.ok(plain.out.includes(`"image": "${DEFAULT_AGENT_IMAGE}"`));
    const own = await run(['-f', fixturePath('acceptance.yaml'), '--agent-image', 'registry.example/esa:9']);
    assert.ok(own.out.includes('image: registry.example/esa:9'));
    assert.ok(!own.out.includes(DEFAULT_AGENT_IMAGE));
  });

  it('without native sidecars: a Job pod gets init-only, a Deployment a plain sidecar', async () => {
    const r = await run(['-f', fixturePath('workloads.yaml'), '--native-sidecars=false', '-o', 'json']);
    assert.equal(r.code, 0, r.err);
    const [job, deployment] = [7, 2].map((i) => templateAt(JSON.parse(r.out).items[i], ['spec', 'template']));
    assert.deepEqual(names(job!.spec!.initContainers), ['inject-init']);
    assert.deepEqual(names(job!.spec!.containers), ['migrate']);
    assert.deepEqual(names(deployment!.spec!.initContainers), ['inject-init']);
    assert.deepEqual(names(deployment!.spec!.containers), ['web', 'inject-sidecar']);
  });

  it('takes the pod settings of the injector, such as resources and the mount path', async () => {
    const r = await run([
      '-f', fixturePath('acceptance.yaml'),
      '--agent-memory-request=32Mi', '--agent-cpu-limit=200m', '--mount-path=/secrets',
      '-o', 'json',
    ]);
    assert.equal(r.code, 0, r.err);
    const fleet = templateAt(JSON.parse(r.out).items[6], ['spec', 'template']);
    for (const c of agentContainers(fleet)) {
      assert.deepEqual(c.resources, { requests: { cpu: '10m', memory: '32Mi' }, limits: { cpu: '200m', memory: '128Mi' } });
      assert.equal(c.volumeMounts![0]!.mountPath, '/secrets');
    }
  });

  it('runs from cli.ts, with warnings on stderr', () => {
    const r = spawnSync(process.execPath, [cli, 'inject', '-f', fixturePath('workloads.yaml')], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(yaml.loadAll(r.stdout).length, 10);
    assert.match(r.stderr, /^Warning: .*workloads\.yaml \(document 1\): Pod team-a\/api: /m);
  });
});

describe('inject: acceptance cases (injector-cases.md)', () => {
  const output = documents(injectFixture('acceptance.yaml'));
  const pod = (i: number) => {
    const doc = output[i] as { kind: string };
    return templateAt(doc, doc.kind === 'Pod' ? [] : ['spec', 'template']);
  };

  it('I01: a Job pod keeps exactly its containers; the refresher is a native sidecar with a startup probe', () => {
    const job = pod(0);
    assert.deepEqual(names(job.spec!.containers), ['migrate']);
    const sidecar = job.spec!.initContainers!.find((c) => c.name === 'inject-sidecar')!;
    assert.equal(sidecar.restartPolicy, 'Always');
    assert.deepEqual(sidecar.startupProbe?.exec.command, ['external-secrets-agent', 'ready']);
  });

  it('I01: without native sidecars a Job pod degrades to init-only, never a plain container', () => {
    const legacy = documents(injectFixture('acceptance.yaml', { ...settings, hasNativeSidecars: false }));
    const job = templateAt(legacy[0], ['spec', 'template']);
    assert.deepEqual(names(job.spec!.containers), ['migrate']);
    assert.deepEqual(names(job.spec!.initContainers), ['inject-init']);
  });

  it('I02: init-first puts ours ahead of the app init containers, which get the mount', () => {
    const api = pod(1);
    assert.deepEqual(names(api.spec!.initContainers), ['inject-init', 'inject-sidecar', 'db-migrate', 'warm-cache']);
    for (const c of api.spec!.initContainers!.slice(2)) {
      assert.ok(c.volumeMounts?.some((m) => m.name === 'inject-secrets' && m.readOnly));
    }
  });

  it('I04: a generateName pod is injected, and every name we add is DNS-1123', () => {
    const worker = pod(2);
    assert.ok(isInjected(worker));
    const added = [...agentContainers(worker).map((c) => c.name), ...worker.spec!.volumes!.map((v) => v.name)];
    for (const n of added) assert.match(n, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
  });

  it('I06: every injected container passes Pod Security restricted on its own', () => {
    for (const c of agentContainers(pod(3))) {
      const sc = c.securityContext!;
      assert.equal(sc.allowPrivilegeEscalation, false, c.name);
      assert.deepEqual(sc.capabilities?.drop, ['ALL']);
      assert.equal(sc.runAsNonRoot, true);
      assert.ok((sc.runAsUser ?? 0) > 0);
      assert.equal(sc.readOnlyRootFilesystem, true);
      assert.deepEqual(sc.seccompProfile, { type: 'RuntimeDefault' });
    }
  });

  it('I08: with automount off the agent gets its own token volume; the app gets none', () => {
    const quiet = pod(4);
    assert.equal(quiet.spec!.automountServiceAccountToken, false);
    const token = quiet.spec!.volumes!.find((v) => v.name === 'inject-token')!;
    for (const s of token.projected!.sources.filter((s) => s.serviceAccountToken)) {
      assert.ok(s.serviceAccountToken!.expirationSeconds! <= 3600);
    }
    assert.ok(!quiet.spec!.containers[0]!.volumeMounts?.some((m) => m.name === 'inject-token'));
  });

  it('I10: annotated resources are used exactly; without them, the small defaults', () => {
    for (const c of agentContainers(pod(5))) {
      assert.deepEqual(c.resources?.requests?.['memory'], '24Mi');
      assert.deepEqual(c.resources?.limits?.['memory'], '48Mi');
    }
    for (const c of agentContainers(pod(6))) {
      assert.deepEqual(c.resources, structuredClone(DEFAULT_INJECTOR_SETTINGS.resources));
      assert.ok(!JSON.stringify(c.resources).includes('ephemeral-storage'));
    }
  });

  it('I10: a request above the limit is refused naming the annotation', () => {
    const outcome = injectFixture('refused.yaml');
    assert.match(outcome.problems.join('\n'), /agent\.external-secrets\.io\/agent-memory-request: /);
  });
});
