/**
 * Every case of the injector acceptance file (injector-cases.md in the shared acceptance folder;
 * test/e2e/injector-cases.md maps each case to the tests below), twice:
 *
 * - through the live webhook: the case's manifest (test/fixtures/injector-cases/) is created
 *   through a real kube-apiserver, which calls the injector (cli.ts, registered by the harness
 *   as a MutatingWebhookConfiguration); the property is checked on the pod as the API server
 *   stored it. A workload is created as it is, and its pod the way its controller would make it
 *   (no controller-manager runs here): from the stored template, with the controller's labels,
 *   generateName and ownerReferences (Deployment → ReplicaSet → Pod).
 * - through `external-secrets-agent inject -f`, the offline command, with the same property
 *   checked on its output.
 *
 * Then the webhook in operation: Pod Security "restricted" for every mutated pod, certificate
 * rotation under load, and /metrics.
 *
 * Namespaces are the cases' own with a `cases-` prefix (team-a → cases-team-a, no namespace →
 * cases-default, locked → cases-locked), so this file can share a control plane with others.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import * as yaml from 'js-yaml';
import { runInject } from '../../injector/inject-command.ts';
import { DEFAULT_INJECTOR_SETTINGS } from '../../injector/mutate.ts';
import type { Container, Pod } from '../../injector/pod.ts';
import {
  auditEvents,
  type ControlPlane,
  createNamespace,
  useControlPlane,
} from '../harness/control-plane.ts';
import { INJECT_LABEL, type RunningInjector, startInjector } from '../harness/injector.ts';
import { runPod, type PodRun } from '../harness/kubelet.ts';
import { issueCert } from '../harness/pki.ts';
import { waitFor } from '../harness/processes.ts';
import { SecretVolume } from '../injector/secret-volume.ts';

const FIXTURES = path.resolve(import.meta.dirname, '../fixtures/injector-cases');
const CLI = fileURLToPath(new URL('../../cli.ts', import.meta.url));
/** The image the harness gives the injector; `inject` gets the same. */
const AGENT_IMAGE = 'external-secrets-agent:dev';
const AGENT_COMMAND = 'external-secrets-agent';
const WEBHOOK = 'inject.agent.external-secrets.io';
const STATUS = 'agent.external-secrets.io/status';

const NS = {
  teamA: 'cases-team-a',
  default: 'cases-default',
  locked: 'cases-locked',
  legacy: 'cases-legacy',
  down: 'cases-down',
  injector: 'esa-system',
  rotation: 'cases-rotation',
};

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** The documents of a fixture file. */
function fixture(file: string): Obj[] {
  return (yaml.loadAll(readFileSync(path.join(FIXTURES, file), 'utf8')) as Obj[]).filter(Boolean);
}

/** The API server's Status message from a client-node error, unescaped. */
function apiMessage(err: unknown): string {
  const body = (err as { body?: unknown }).body;
  try {
    const status = (typeof body === 'string' ? JSON.parse(body) : body) as { message?: string };
    if (typeof status?.message === 'string') return status.message;
  } catch {
    // Not a Status object: fall back to the error's own message.
  }
  return (err as Error).message;
}

/** A JSON copy: client-node models become the plain objects the API server sent. */
function plain<T>(value: unknown): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

// Properties shared by both paths, checked on a plain Pod (stored pod or `inject` output).

const names = (list: Container[] | null | undefined) => (list ?? []).map((c) => c.name);
const isAgent = (c: Container) => c.command?.[0] === AGENT_COMMAND;
const agentContainers = (pod: Pod) =>
  [...(pod.spec!.initContainers ?? []), ...pod.spec!.containers].filter(isAgent);
const isInjected = (pod: Pod) => pod.metadata?.annotations?.[STATUS] === 'injected';
const dns1123Label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function assertI01Native(pod: Pod): void {
  assert.deepEqual(names(pod.spec!.containers), ['migrate'], 'spec.containers is exactly [migrate]');
  assert.deepEqual(names(pod.spec!.initContainers), ['inject-init', 'inject-sidecar']);
  const sidecar = pod.spec!.initContainers!.find((c) => c.name === 'inject-sidecar')!;
  assert.equal(sidecar.restartPolicy, 'Always', 'the refresher is a native sidecar');
  assert.deepEqual(sidecar.startupProbe?.exec.command, [AGENT_COMMAND, 'ready']);
}

function assertI01Legacy(pod: Pod): void {
  assert.deepEqual(names(pod.spec!.containers), ['migrate'], 'no plain long-running container');
  assert.deepEqual(names(pod.spec!.initContainers), ['inject-init'], 'init-only');
  assert.ok(!(pod.spec!.initContainers ?? []).some((c) => c.restartPolicy === 'Always'));
}

function assertI02InitFirst(pod: Pod): void {
  const inits = pod.spec!.initContainers ?? [];
  const runToCompletion = inits.filter((c) => c.restartPolicy !== 'Always');
  assert.deepEqual(names(runToCompletion), ['inject-init', 'db-migrate', 'warm-cache']);
  assert.deepEqual(names(inits), ['inject-init', 'inject-sidecar', 'db-migrate', 'warm-cache']);
  for (const c of inits.filter((i) => !isAgent(i))) {
    const mount = c.volumeMounts?.find((m) => m.mountPath === '/run/secrets/inject');
    assert.equal(mount?.name, 'inject-secrets', `${c.name} mounts the secrets`);
    assert.equal(mount?.readOnly, true);
  }
}

function assertI02DefaultOrder(pod: Pod): void {
  const inits = names(pod.spec!.initContainers);
  assert.deepEqual(inits, ['db-migrate', 'warm-cache', 'inject-init', 'inject-sidecar'], 'ours last');
}

function assertI04(pod: Pod): void {
  assert.ok(isInjected(pod), 'a patch was applied');
  assert.equal(pod.metadata!.generateName, 'batch-worker-');
  const added = [
    ...agentContainers(pod).map((c) => c.name),
    ...(pod.spec!.volumes ?? []).map((v) => v.name).filter((n) => n.startsWith('inject-')),
  ];
  assert.ok(added.length >= 4);
  for (const n of added) {
    assert.match(n, dns1123Label, `${n} is a DNS-1123 label`);
    assert.ok(!n.startsWith('-') && n.length <= 63);
  }
  for (const c of agentContainers(pod)) {
    const podName = c.env?.find((e) => e.name === 'ESA_POD_NAME');
    assert.equal(podName?.valueFrom?.fieldRef?.fieldPath, 'metadata.name', 'the name is read at run time');
  }
}

function assertI06(pod: Pod): void {
  assert.equal(agentContainers(pod).length, 2);
  for (const c of agentContainers(pod)) {
    const sc = c.securityContext ?? {};
    assert.equal(sc.allowPrivilegeEscalation, false, `${c.name} allowPrivilegeEscalation`);
    assert.deepEqual(sc.capabilities?.drop, ['ALL'], `${c.name} drops ALL`);
    assert.equal(sc.runAsNonRoot, true, `${c.name} runAsNonRoot`);
    assert.ok((sc.runAsUser ?? 0) > 0, `${c.name} runs as a non-zero uid`);
    assert.equal(sc.readOnlyRootFilesystem, true, `${c.name} readOnlyRootFilesystem`);
    assert.deepEqual(sc.seccompProfile, { type: 'RuntimeDefault' }, `${c.name} has its own seccomp`);
  }
  assert.equal(pod.spec!.securityContext?.seccompProfile, undefined, 'the pod level has none');
}

function assertI08(pod: Pod): void {
  assert.ok(isInjected(pod));
  assert.equal(pod.spec!.automountServiceAccountToken, false, 'automount stays off');
  const token = (pod.spec!.volumes ?? []).find((v) => v.name === 'inject-token');
  const sources = token?.projected?.sources ?? [];
  const tokens = sources.flatMap((s) => (s.serviceAccountToken ? [s.serviceAccountToken] : []));
  assert.ok(tokens.some((t) => t.audience === 'sts.amazonaws.com'), 'a token with the provider audience');
  for (const t of tokens) assert.ok((t.expirationSeconds ?? 0) > 0 && t.expirationSeconds! <= 3600);
  for (const c of agentContainers(pod)) {
    assert.ok(c.volumeMounts?.some((m) => m.name === 'inject-token'), `${c.name} mounts the token`);
  }
  const app = pod.spec!.containers.find((c) => c.name === 'app')!;
  assert.ok(!app.volumeMounts?.some((m) => m.name === 'inject-token'), 'app does not mount our token');
  assert.ok(
    !app.volumeMounts?.some((m) => m.mountPath.startsWith('/var/run/secrets/kubernetes.io')),
    'app has no service-account token mount',
  );
}

function assertI10Sized(pod: Pod): void {
  assert.equal(agentContainers(pod).length, 2);
  for (const c of agentContainers(pod)) {
    assert.equal(c.resources?.requests?.['memory'], '24Mi', c.name);
    assert.equal(c.resources?.limits?.['memory'], '48Mi', c.name);
  }
}

function assertI10Defaults(pod: Pod): void {
  assert.equal(agentContainers(pod).length, 2);
  for (const c of agentContainers(pod)) {
    assert.deepEqual(c.resources, plain(DEFAULT_INJECTOR_SETTINGS.resources), c.name);
    assert.equal(c.resources?.requests?.['cpu'], '10m', 'tens of millicores, not 250m');
    assert.ok(!JSON.stringify(c.resources).includes('ephemeral-storage'));
  }
}

/** Makes the app's own containers restricted-compliant; the agent's stay as injected. */
function restrictAppContainers(pod: Obj): Obj {
  const copy = structuredClone(pod);
  for (const c of [...(copy.spec.initContainers ?? []), ...copy.spec.containers] as Container[]) {
    if (isAgent(c)) continue;
    c.securityContext = {
      ...c.securityContext,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      runAsNonRoot: true,
      seccompProfile: { type: 'RuntimeDefault' },
    };
  }
  return copy;
}

/** `inject -f <fixture> -o json`, run in-process through the command's own entry point. */
async function inject(file: string, extraArgs: string[] = []) {
  let out = '';
  let err = '';
  const args = ['-f', path.join(FIXTURES, file), '-o', 'json', `--agent-image=${AGENT_IMAGE}`];
  const code = await runInject([...args, ...extraArgs], {
    stdin: (async function* () {})(),
    stdout: { write: (t: string) => (out += t) },
    stderr: { write: (t: string) => (err += t) },
  });
  const parsed = out ? (JSON.parse(out) as Obj) : undefined;
  const docs: Obj[] = parsed === undefined ? [] : parsed.kind === 'List' ? parsed.items : [parsed];
  /** The pod, or the pod template, of the document named `name`. */
  const pod = (name: string): Pod => {
    const doc = docs.find((d) => (d.kind === 'Pod' || d.spec?.template) &&
      (d.metadata?.name === name || d.metadata?.generateName === name));
    assert.ok(doc, `inject printed ${name}`);
    return (doc.kind === 'Pod' ? doc : doc.spec.template) as Pod;
  };
  return { code, err, docs, pod };
}

describe('injector acceptance cases', () => {
  let cp: ControlPlane;
  let core: k8s.CoreV1Api;
  let objects: k8s.KubernetesObjectApi;
  let admission: k8s.AdmissionregistrationV1Api;
  let injector: RunningInjector;
  let legacyInjector: RunningInjector;
  const runs: PodRun[] = [];

  before(async () => {
    cp = await useControlPlane();
    core = cp.kubeConfig.makeApiClient(k8s.CoreV1Api);
    objects = k8s.KubernetesObjectApi.makeApiClient(cp.kubeConfig);
    admission = cp.kubeConfig.makeApiClient(k8s.AdmissionregistrationV1Api);
    const { installCrds } = await import('../harness/quickstart.ts');
    installCrds(cp);

    const lockedLabels = fixture('i06-restricted.yaml').find((d) => d.kind === 'Namespace')!.metadata.labels;
    await createNamespace(cp, NS.locked, lockedLabels);
    for (const ns of [NS.teamA, NS.default, NS.legacy, NS.down, NS.injector, NS.rotation]) {
      await createNamespace(cp, ns);
    }
    for (const ns of [NS.teamA, NS.default]) await createAll(fixture('support.yaml'), ns);
    // The I08 pod names ServiceAccount quiet; the restricted dry-runs re-create it in `locked`.
    for (const ns of [NS.default, NS.locked]) {
      await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'quiet' } } });
    }

    injector = await startInjector(cp, { namespaces: [NS.teamA, NS.default, NS.locked] });
    legacyInjector = await startInjector(cp, { namespaces: [NS.legacy], args: ['--native-sidecars=false'] });
  });

  after(async () => {
    for (const r of runs) await r.stop();
    await injector?.stop();
    await legacyInjector?.stop();
    await cp?.stop();
  });

  /** Creates each object in `namespace` (RoleBinding subjects included); returns them as stored. */
  async function createAll(docs: Obj[], namespace: string): Promise<Obj[]> {
    const created: Obj[] = [];
    for (const doc of docs) {
      const copy = structuredClone(doc);
      copy.metadata.namespace = namespace;
      for (const s of copy.subjects ?? []) s.namespace = namespace;
      created.push(plain(await objects.create(copy)));
    }
    return created;
  }

  /** Creates a pod from a plain object and returns it as stored. */
  async function createPod(body: Obj, namespace: string, dryRun?: 'All'): Promise<Pod> {
    const pod = { ...body, metadata: { ...body.metadata, namespace } } as k8s.V1Pod;
    return plain(await core.createNamespacedPod({ namespace, body: pod, ...(dryRun ? { dryRun } : {}) }));
  }

  /** The pod a Job controller would create for `job` (as stored, with its generated selector labels). */
  function podForJob(job: Obj): Obj {
    const template = job.spec.template;
    return {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        generateName: `${job.metadata.name}-`,
        labels: template.metadata.labels,
        annotations: template.metadata.annotations,
        ownerReferences: [ownerRef(job, 'batch/v1', 'Job')],
      },
      spec: template.spec,
    };
  }

  /** A ReplicaSet as the Deployment controller would create it, then its pod as the RS would. */
  async function podForDeployment(deployment: Obj): Promise<Obj> {
    const template = structuredClone(deployment.spec.template);
    const hash = createHash('sha256').update(JSON.stringify(template)).digest('hex').slice(0, 10);
    template.metadata.labels['pod-template-hash'] = hash;
    const [rs] = await createAll([{
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: {
        name: `${deployment.metadata.name}-${hash}`,
        labels: template.metadata.labels,
        ownerReferences: [ownerRef(deployment, 'apps/v1', 'Deployment')],
      },
      spec: {
        replicas: 1,
        selector: { matchLabels: { ...deployment.spec.selector.matchLabels, 'pod-template-hash': hash } },
        template,
      },
    }], deployment.metadata.namespace);
    return {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        generateName: `${rs!.metadata.name}-`,
        labels: template.metadata.labels,
        annotations: template.metadata.annotations,
        ownerReferences: [ownerRef(rs!, 'apps/v1', 'ReplicaSet')],
      },
      spec: template.spec,
    };
  }

  function ownerRef(owner: Obj, apiVersion: string, kind: string) {
    return { apiVersion, kind, name: owner.metadata.name, uid: owner.metadata.uid, controller: true, blockOwnerDeletion: true };
  }

  /** Runs `external-secrets-agent ready`, the sidecar's startup probe, with the sidecar's env. */
  function probe(pod: Pod, outputDir: string): number | null {
    const sidecar = pod.spec!.initContainers!.find((c) => c.name === 'inject-sidecar')!;
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
    for (const e of sidecar.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
    env.ESA_POD_NAME = pod.metadata!.name;
    env.ESA_POD_NAMESPACE = pod.metadata!.namespace;
    env.ESA_OUTPUT_DIR = outputDir;
    return spawnSync(process.execPath, [CLI, ...sidecar.startupProbe!.exec.command.slice(1)], { env }).status;
  }

  describe('through the live webhook', () => {
    it('I01: a Job pod keeps exactly [migrate]; the refresher is a native sidecar whose startup probe passes only after the first write', async () => {
      const [job] = await createAll(fixture('i01-job.yaml'), NS.teamA);
      const pod = await createPod(podForJob(job!), NS.teamA);
      assert.equal(pod.metadata!.ownerReferences?.[0]?.kind, 'Job');
      assertI01Native(pod);

      // The probe, as the kubelet would run it, before anything was written: it fails.
      const empty = mkdtempSync(path.join(tmpdir(), 'esa-i01-'));
      try {
        assert.notEqual(probe(pod, empty), 0, 'the startup probe fails before the first write');
      } finally {
        rmSync(empty, { recursive: true, force: true });
      }

      // The kubelet stand-in runs inject-init, then the sidecar, and waits for its startup probe
      // (runPod fails if it never passes) before it would start `migrate`.
      const run = await runPod(cp, NS.teamA, pod.metadata!.name!);
      runs.push(run);
      assert.equal(run.phase, 'Running', run.failed?.terminationMessage() ?? run.output());
      const secrets = run.volumeDir('inject-secrets');
      assert.equal(probe(pod, secrets), 0, 'the startup probe passes after the first write');
      assert.ok(statSync(path.join(secrets, 'db-creds', 'password')).size > 0,
        'what `migrate` checks (test -s /run/secrets/inject/db-creds/password) holds');
      assert.deepEqual(run.skipped, ['migrate'], 'the app container is the only other one');
      // NOT SHOWN: the Job reaching Complete. No Job controller or container runtime runs here,
      // so `migrate` (busybox) is never started and nothing records the Job's completion; what
      // makes it complete is shown above: exactly one app container, and the refresher is a
      // native sidecar, which the kubelet stops once `migrate` has exited.
      await run.stop();
    });

    it('I01: without native sidecars a Job pod gets init-only, never a plain long-running container', async () => {
      const [job] = await createAll(fixture('i01-job.yaml'), NS.legacy);
      const pod = await createPod(podForJob(job!), NS.legacy);
      assertI01Legacy(pod);
    });

    it('I02: init-first puts our init container ahead of the app\'s, which keep their order and get the mount; without it ours is last', async () => {
      const [first, defaultOrder] = fixture('i02-init-first.yaml');
      assertI02InitFirst(await createPod(first!, NS.default));
      assertI02DefaultOrder(await createPod(defaultOrder!, NS.default));
    });

    it('I04: a dry-run create with generateName is injected, every derived name DNS-1123, and nothing is written', async () => {
      const since = Date.now();
      const [body] = fixture('i04-generate-name.yaml');
      const pod = await createPod(body!, NS.teamA, 'All');
      assertI04(pod);
      assert.match(pod.metadata!.name!, /^batch-worker-[a-z0-9]{5}$/, 'the API server named it');

      // The review carried no name: the injector logged the pod by its generateName.
      const logged = `${NS.teamA}/batch-worker-<generated>`;
      await waitFor('the injector log line', async () => injector.process.output().includes(logged), { timeoutMs: 5_000 });
      await assert.rejects(core.readNamespacedPod({ namespace: NS.teamA, name: pod.metadata!.name! }), /404|not found/i);
      const writes = auditEvents(cp).filter((e) =>
        Date.parse(e.requestReceivedTimestamp) >= since && e.objectRef?.namespace === NS.teamA &&
        (['secrets', 'configmaps'].includes(e.objectRef.resource ?? '') || e.objectRef.subresource === 'token') &&
        !['get', 'list', 'watch'].includes(e.verb));
      assert.deepEqual(writes, [], 'no Secret, ConfigMap or TokenRequest was written');
      const config = await admission.readMutatingWebhookConfiguration({ name: injector.webhookName });
      assert.ok(['None', 'NoneOnDryRun'].includes(config.webhooks![0]!.sideEffects), 'the webhook declares no side effects');
    });

    it('I06: the pod is admitted in a namespace enforcing restricted, each injected container restricted on its own', async () => {
      const [, body] = fixture('i06-restricted.yaml');
      const pod = await createPod(body!, NS.locked);
      assertI06(pod);
    });

    it('I08: with automount off the agent gets its own projected token, the app none, and the agent re-reads it before each pass', async () => {
      const [, body] = fixture('i08-automount-false.yaml');
      const pod = await createPod(body!, NS.default);
      assertI08(pod);

      // Run the agent (api-key refreshes every second), spoil its token file, then let the
      // kubelet stand-in write a fresh one: the sidecar fails while the file is bad and recovers
      // after, so it reads the file on every pass rather than once at start.
      const env = { ESA_LOG_LEVEL: 'debug', ESA_RETRY_INITIAL: '500ms', ESA_RETRY_MAX: '1s' };
      const run = await runPod(cp, NS.default, 'quiet', { env });
      runs.push(run);
      assert.equal(run.phase, 'Running', run.failed?.terminationMessage() ?? run.output());
      const sidecar = run.containers.find((c) => c.name === 'inject-sidecar')!.process;
      const passes = () => (sidecar.output().match(/"msg":"sync pass done"/g) ?? []).length;
      const failures = () => (sidecar.output().match(/"msg":"sync failed, keeping the last good secret"/g) ?? []).length;
      await waitFor('a refresh pass', async () => passes() >= 2, { timeoutMs: 10_000 });

      writeFileSync(path.join(run.volumeDir('inject-token'), 'token'), 'not-a-token');
      await waitFor('a pass failing on the spoiled token', async () => failures() >= 1, { timeoutMs: 10_000 });
      assert.match(sidecar.output(), /401|Unauthorized/i);

      await run.rotateTokens();
      const after = passes();
      await waitFor('a pass with the fresh token', async () => passes() > after, { timeoutMs: 10_000 });
      await run.stop();
      // NOT SHOWN here: the provider login. The same file-per-request reading is what the AWS
      // web-identity and Vault logins do with ESA_PROVIDER_TOKEN_FILE (agent/providers).
    });

    describe('I09: the injector down', () => {
      let downInjector: RunningInjector;

      before(async () => {
        downInjector = await startInjector(cp, {
          namespaces: [NS.down, NS.injector],
          // NOTE: esa-system is listed in `namespaces` only so the chart's own NotIn (kube-system,
          // kube-node-lease and the release namespace) is what keeps it out.
          releaseNamespace: NS.injector,
        });
      });

      after(async () => {
        await downInjector?.stop();
      });

      it('I09: the webhook selects opted-in pods, excludes kube-system, kube-node-lease and its own namespace, and fails closed within 10 s', async () => {
        const config = await admission.readMutatingWebhookConfiguration({ name: downInjector.webhookName });
        const webhook = config.webhooks![0]!;
        assert.deepEqual(webhook.objectSelector?.matchLabels, { [INJECT_LABEL]: 'true' });
        const notIn = webhook.namespaceSelector?.matchExpressions?.find((e) => e.operator === 'NotIn');
        assert.deepEqual(notIn?.values, ['kube-system', 'kube-node-lease', NS.injector]);
        assert.ok((webhook.timeoutSeconds ?? 10) <= 10);
        assert.equal(webhook.failurePolicy, 'Fail');
        assert.equal(webhook.sideEffects, 'None');
        assert.equal(webhook.reinvocationPolicy, 'IfNeeded');
      });

      it('I09: with the injector stopped, an opted-in pod is refused naming the webhook; an unlabelled pod and the injector\'s own pod are admitted', async () => {
        await downInjector.process.stop(); // the webhook configuration stays: no endpoint behind it
        const [needsSecrets, plainPod] = fixture('i09-webhook-down.yaml');

        await assert.rejects(createPod(needsSecrets!, NS.down), (err: unknown) => {
          const message = apiMessage(err);
          assert.ok(message.includes(`failed calling webhook "${WEBHOOK}"`), message);
          assert.match(message, /connection refused/);
          return true;
        });
        await assert.rejects(core.readNamespacedPod({ namespace: NS.down, name: 'needs-secrets' }), /404|not found/i);

        const stored = await createPod(plainPod!, NS.down);
        assert.equal(stored.spec!.initContainers, undefined, 'plain is admitted, untouched');

        const [own] = fixture('i09-injector-pod.yaml');
        const injectorPod = await createPod(own!, NS.injector);
        assert.equal(isInjected(injectorPod), false, 'the injector\'s pod is admitted, untouched');
      });
    });

    it('I10: a memory request above the limit is refused with a message naming the annotation', async () => {
      const [fleet] = await createAll(fixture('i10-refused.yaml'), NS.teamA);
      await assert.rejects(createPod(await podForDeployment(fleet!), NS.teamA), (err: unknown) => {
        const message = apiMessage(err);
        assert.ok(message.includes(`admission webhook "${WEBHOOK}" denied the request`), message);
        assert.match(message, /agent\.external-secrets\.io\/agent-memory-(request|limit)/);
        return true;
      });
    });

    it('I10: 24Mi/48Mi are used exactly; without annotations the small injector defaults, no ephemeral-storage', async () => {
      const [sized, defaults] = await createAll(fixture('i10-resources.yaml'), NS.teamA);
      const sizedPod = await createPod(await podForDeployment(sized!), NS.teamA);
      assert.equal(sizedPod.metadata!.ownerReferences?.[0]?.kind, 'ReplicaSet');
      assertI10Sized(sizedPod);
      assertI10Defaults(await createPod(await podForDeployment(defaults!), NS.teamA));
    });
  });

  describe('through inject -f', () => {
    it('I01 (inject): the Job template keeps exactly [migrate] with a native sidecar and its startup probe', async () => {
      assertI01Native((await inject('i01-job.yaml')).pod('migrate'));
    });

    it('I01 (inject): without native sidecars the Job template gets init-only', async () => {
      assertI01Legacy((await inject('i01-job.yaml', ['--native-sidecars=false'])).pod('migrate'));
    });

    it('I02 (inject): init-first puts ours ahead of the app init containers; without it ours is last', async () => {
      const out = await inject('i02-init-first.yaml');
      assertI02InitFirst(out.pod('api'));
      assertI02DefaultOrder(out.pod('api-default-order'));
    });

    it('I04 (inject): a generateName pod is injected and every derived name is DNS-1123 (offline: no API at all)', async () => {
      assertI04((await inject('i04-generate-name.yaml')).pod('batch-worker-'));
    });

    it('I06 (inject): every injected container is restricted on its own', async () => {
      assertI06((await inject('i06-restricted.yaml')).pod('strict'));
    });

    it('I08 (inject): automount off, the agent gets its own projected token and the app none', async () => {
      assertI08((await inject('i08-automount-false.yaml')).pod('quiet'));
    });

    it('I09 (inject): the opted-in pod is injected and the unlabelled one printed unchanged', async () => {
      const out = await inject('i09-webhook-down.yaml');
      assert.ok(isInjected(out.pod('needs-secrets')));
      assert.deepEqual(out.pod('plain'), fixture('i09-webhook-down.yaml')[1]);
    });

    it('I10 (inject): a request above the limit is refused naming the annotation', async () => {
      const out = await inject('i10-refused.yaml');
      assert.equal(out.code, 1);
      assert.deepEqual(out.docs, [], 'nothing is printed');
      assert.match(out.err, /fleet.*agent\.external-secrets\.io\/agent-memory-(request|limit)/);
    });

    it('I10 (inject): 24Mi/48Mi are used exactly; without annotations the small defaults', async () => {
      const out = await inject('i10-resources.yaml');
      assert.equal(out.code, 0, out.err);
      assertI10Sized(out.pod('fleet-sized'));
      assertI10Defaults(out.pod('fleet-defaults'));
    });
  });

  describe('Pod Security restricted for every mutated acceptance pod (I06)', () => {
    it('I06: a server-side dry-run create of each mutated pod, webhook and inject alike, is admitted in the restricted namespace', async () => {
      // The mutated pods: those the webhook stored above, the I04 dry-run's, and inject's output.
      const stored: Pod[] = [];
      for (const ns of [NS.teamA, NS.default, NS.locked, NS.legacy]) {
        const list = await core.listNamespacedPod({ namespace: ns });
        stored.push(...plain<Pod[]>(list.items).filter(isInjected));
      }
      stored.push(await createPod(fixture('i04-generate-name.yaml')[0]!, NS.teamA, 'All'));
      const offline: Pod[] = [];
      const files = ['i01-job.yaml', 'i02-init-first.yaml', 'i04-generate-name.yaml', 'i06-restricted.yaml',
        'i08-automount-false.yaml', 'i09-webhook-down.yaml', 'i10-resources.yaml'];
      for (const file of files) {
        const out = await inject(file);
        for (const doc of out.docs) {
          const pod = (doc.kind === 'Pod' ? doc : doc.spec?.template) as Pod | undefined;
          if (pod && isInjected(pod)) offline.push(pod);
        }
      }
      assert.ok(stored.length >= 9, `the webhook's pods (${stored.length})`);
      assert.ok(offline.length >= 9, `inject's pods (${offline.length})`);

      let i = 0;
      let refusedForTheApp = 0;
      for (const pod of [...stored, ...offline]) {
        const source = pod.metadata?.name ?? pod.metadata?.generateName ?? 'template';
        const copy: Obj = {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: `restricted-${i++}`, labels: pod.metadata?.labels, annotations: pod.metadata?.annotations },
          spec: structuredClone(pod.spec),
        };
        delete copy.spec.nodeName;
        delete copy.spec.priority;

        // As mutated: Pod Security may object to the app's own containers, never to ours.
        try {
          await createPod(copy, NS.locked, 'All');
        } catch (err) {
          const message = apiMessage(err);
          assert.match(message, /violates PodSecurity "restricted/, `${source}: ${message}`);
          assert.doesNotMatch(message, /"inject-(init|sidecar)"|inject-token|inject-secrets/, `${source}: ${message}`);
          refusedForTheApp++;
        }
        // With the app's containers made restricted (what any pod there must do): admitted.
        const admitted = await createPod(restrictAppContainers(copy), NS.locked, 'All');
        assert.equal(agentContainers(admitted).length, agentContainers(pod).length, `${source}: unchanged by the webhook`);
      }
      // Most acceptance pods' own containers set nothing: the namespace does enforce restricted.
      assert.ok(refusedForTheApp > 0, 'Pod Security refused some app containers as written');
    });
  });

  describe('the webhook in operation', () => {
    it('serves through a certificate rotation under load: files replaced (one broken pair among them), no review fails', async (t) => {
      const dir = mkdtempSync(path.join(tmpdir(), 'esa-rotation-'));
      const pair = (n: string) => {
        const c = issueCert(dir, cp.ca, n, { commonName: `esa-injector-${n}`, hosts: ['127.0.0.1'] });
        return { cert: c.certPem, key: c.keyPem, fingerprint: new X509Certificate(c.certPem).fingerprint256 };
      };
      const [first, second, third, stray] = [pair('first'), pair('second'), pair('third'), pair('stray')];
      const volume = new SecretVolume(dir, first);
      const rotating = await startInjector(cp, {
        namespaces: [NS.rotation],
        args: [`--tls-cert-file=${volume.certFile}`, `--tls-key-file=${volume.keyFile}`],
      });
      const apiPod = fixture('i02-init-first.yaml')[1]!;
      const body = JSON.stringify(reviewOf(apiPod, NS.rotation));
      const results: ReviewRow[] = [];
      const limits = { reviews: 1_500, deadline: Date.now() + 30_000 };
      const started = Date.now();
      let isDone = false;

      // Four clients, each review on a fresh TLS connection, until done or a limit is reached.
      const client = async () => {
        while (!isDone && results.length < limits.reviews && Date.now() < limits.deadline) {
          results.push(await sendReview(rotating.url, cp.caPem, body));
        }
      };
      const served = (p: { fingerprint: string }) => results.some((r) => r.fingerprint === p.fingerprint);
      const untilServed = (p: { fingerprint: string }) =>
        waitFor('the new certificate served', async () => served(p), { timeoutMs: 10_000, intervalMs: 50 });
      const untilMoreReviews = async (what: string) => {
        const count = results.length;
        await waitFor(what, async () => results.length >= count + 20, { timeoutMs: 10_000, intervalMs: 20 });
      };
      const createThroughApiServer = (name: string) =>
        createPod({ ...apiPod, metadata: { ...apiPod.metadata, name } }, NS.rotation);

      const clients = Promise.all([client(), client(), client(), client()]);
      const podsCreated: Pod[] = [];
      try {
        await untilMoreReviews('reviews under way');
        volume.write(second);
        await untilServed(second);
        podsCreated.push(await createThroughApiServer('during-rotation-1'));

        volume.write({ cert: stray.cert, key: first.key }); // a broken pair: never served
        await waitFor('the broken pair refused', async () =>
          rotating.process.output().includes('new serving certificate rejected'), { timeoutMs: 10_000 });
        await untilMoreReviews('more reviews with the broken files in place');

        volume.write(third);
        await untilServed(third);
        podsCreated.push(await createThroughApiServer('during-rotation-2'));
        await untilMoreReviews('more reviews on the third certificate');
      } finally {
        isDone = true;
        await clients;
        await rotating.stop();
        rmSync(dir, { recursive: true, force: true });
      }

      t.diagnostic(`${results.length} reviews in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      const failed = results.filter((r) => r.status !== 200 || !r.allowed);
      assert.deepEqual(failed, [], `${failed.length} of ${results.length} reviews failed`);
      assert.ok(results.length <= limits.reviews);
      assert.ok(served(first) && served(second) && served(third), 'all three certificates were served');
      assert.ok(!served(stray), 'the certificate of the broken pair was never served');
      for (const pod of podsCreated) assert.ok(isInjected(pod), `${pod.metadata!.name} injected via the API server`);
    });

    it('reports the reviews of these cases on /metrics by result and injections by namespace, naming no pod', async () => {
      const text = await new Promise<string>((resolve, reject) => {
        https.get(`${injector.url}/metrics`, { ca: cp.caPem, agent: false }, (res) => {
          let out = '';
          res.on('data', (d: Buffer) => (out += d));
          res.on('end', () => resolve(out));
        }).on('error', reject);
      });
      const samples = new Map(text.split('\n').filter((l) => l && !l.startsWith('#'))
        .map((l) => [l.slice(0, l.lastIndexOf(' ')), Number(l.slice(l.lastIndexOf(' ') + 1))]));
      const value = (key: string) => samples.get(key) ?? NaN;
      assert.ok(value('esa_injector_admission_reviews_total{result="injected"}') >= 8);
      assert.ok(value('esa_injector_admission_reviews_total{result="refused"}') >= 1, 'I10 was refused');
      assert.ok(value(`esa_injector_injections_total{namespace="${NS.teamA}"}`) >= 3);
      assert.ok(value(`esa_injector_injections_total{namespace="${NS.locked}"}`) >= 1);
      assert.ok(value('esa_injector_admission_review_duration_seconds_count') >= 10);
      const pods = (await core.listNamespacedPod({ namespace: NS.teamA })).items.map((p) => p.metadata!.name!);
      for (const name of [...pods, 'strict', 'quiet', 'api-default-order']) {
        assert.ok(!text.includes(name), `no pod name (${name}) in /metrics`);
      }
    });
  });
});

interface ReviewRow {
  status: number;
  allowed: boolean;
  /** SHA-256 fingerprint of the certificate the server presented. */
  fingerprint: string;
  error?: string;
}

/** POSTs one review on a new TLS connection (so it sees the certificate served right now). */
function sendReview(base: string, ca: string, body: string): Promise<ReviewRow> {
  const url = new URL('/mutate', base);
  const options = { method: 'POST', ca, agent: false, headers: { 'content-type': 'application/json' } };
  return new Promise((resolve) => {
    const req = https.request(url, options, (res) => {
      const peer = (res.socket as tls.TLSSocket).getPeerX509Certificate();
      let text = '';
      res.on('data', (d: Buffer) => (text += d));
      res.on('end', () => {
        let allowed = false;
        try {
          allowed = res.statusCode === 200 && (JSON.parse(text) as Obj).response?.allowed === true;
        } catch {
          // Not JSON: counted as a failed review below.
        }
        resolve({ status: res.statusCode ?? 0, allowed, fingerprint: peer?.fingerprint256 ?? '' });
      });
    });
    req.on('error', (err) => resolve({ status: 0, allowed: false, fingerprint: '', error: err.message }));
    req.end(body);
  });
}

/** An AdmissionReview for `pod` as the API server would send it on CREATE. */
function reviewOf(pod: Obj, namespace: string): Obj {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: '7b8d1f8e-0000-4000-8000-000000000001',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace,
      operation: 'CREATE',
      userInfo: { username: 'rotation-client' },
      object: pod,
      dryRun: false,
    },
  };
}
