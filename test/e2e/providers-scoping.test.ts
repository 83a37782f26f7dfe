/**
 * AWS Parameter Store and the Kubernetes provider end to end, each workload scoped by its own
 * identity, through real servers: pods created through the real API server are mutated by the
 * injector (the esbuild bundle); the kubelet stand-in runs their agent containers with their
 * own projected tokens; Parameter Store and STS are moto, the Kubernetes provider reads the
 * API server itself (its RBAC decides), and "another cluster" is the same API server reached
 * through a TCP relay this file starts on 127.0.0.1 and stops to play an outage.
 *
 * Fixtures: test/fixtures/providers-scoping/ (parameters, and each provider's workloads).
 *
 * NOTE on AWS scoping: moto accepts any role and enforces no resource-level IAM (see
 * TESTINFRA.md), so it cannot refuse alpha's parameter to beta's role. What is shown here is
 * the part the agent owns: each pod signs in as the role its own store names (moto's record of
 * the sessions, by session name esa-<namespace>-<pod>), and a pod cannot reach another
 * workload's store. The refusal of a role by AWS is tested with a fake STS in
 * test/agent/providers/aws-auth.test.ts.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import {
  DeleteParameterCommand,
  PutParameterCommand,
  SSMClient,
  type ParameterType,
} from '@aws-sdk/client-ssm';
import { createNamespace, useControlPlane, type ControlPlane } from '../harness/control-plane.ts';
import { startInjector, type RunningInjector } from '../harness/injector.ts';
import { runPod, type PodRun } from '../harness/kubelet.ts';
import { startMoto, type Moto } from '../harness/moto.ts';
import { freePort, sleep, waitFor } from '../harness/processes.ts';
import { applyObjects, GROUP, installCrds, optedInPod } from '../harness/quickstart.ts';
import { tempBundle } from '../harness/tools.ts';

const PS = 'e2e-ps';
const K8S = 'e2e-k8s';
const REMOTE = 'e2e-k8s-remote';
const fixtures = path.resolve(import.meta.dirname, '../fixtures/providers-scoping');
const parameters = k8s.loadYaml(
  readFileSync(path.join(fixtures, 'ssm-parameters.yaml'), 'utf8'),
) as Record<string, { type: ParameterType; value: string }>;

/** Values that must never appear in anything the agents or the injector print. */
const SECRET_VALUES = [
  'ps-alpha-pw-1',
  'ps-alpha-pw-2',
  'ps-beta-pw-1',
  'ps-alpha-retain-7c1',
  'ps-alpha-delete-5e2',
  'k8s-alpha-pw-1',
  'k8s-alpha-pw-2',
  'k8s-beta-pw-1',
  'k8s-alpha-retain-3d0',
  'k8s-alpha-delete-9b4',
];

type Status = {
  conditions?: { type: string; status: string; reason?: string; message?: string }[];
};

/** A TCP relay from a loopback port to the API server: "another cluster" that can go down. */
async function startRelay(targetPort: number): Promise<{ port: number; stop(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => s.destroy());
    }
    client.pipe(upstream).pipe(client);
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('Parameter Store and Kubernetes providers, each pod as itself, through the webhook and the pod agent', () => {
  let cp: ControlPlane;
  let moto: Moto;
  let relay: Awaited<ReturnType<typeof startRelay>>;
  let injector: RunningInjector;
  let bundle: string;
  let core: k8s.CoreV1Api;
  let custom: k8s.CustomObjectsApi;
  let ssm: SSMClient;
  const runs: PodRun[] = [];
  const pods: Record<string, PodRun> = {};

  const secretData = async (namespace: string, name: string) => {
    const s = await core.readNamespacedSecret({ namespace, name });
    return Object.fromEntries(
      Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
    );
  };
  const secretExists = (namespace: string, name: string) =>
    core.readNamespacedSecret({ namespace, name }).then(
      () => true,
      () => false,
    );
  const ready = async (namespace: string, name: string) =>
    (
      (
        (await custom.getNamespacedCustomObject({
          group: GROUP,
          version: 'v1',
          namespace,
          plural: 'externalsecrets',
          name,
        })) as {
          status?: Status;
        }
      ).status?.conditions ?? []
    ).find((c) => c.type === 'Ready');
  const filesOf = (run: PodRun, target: string) => {
    const dir = path.join(run.volumeDir('inject-secrets'), target);
    return Object.fromEntries(
      readdirSync(dir)
        .filter((f) => !f.startsWith('.'))
        .map((f) => [f, readFileSync(path.join(dir, f), 'utf8')]),
    );
  };
  const start = async (
    namespace: string,
    name: string,
    serviceAccountName: string,
    externalSecrets: string[],
  ) => {
    await core.createNamespacedPod({
      namespace,
      body: optedInPod(name, externalSecrets, {
        serviceAccountName,
        annotations: { 'agent.external-secrets.io/refresh-interval': '2s' },
      }),
    });
    const run = await runPod(cp, namespace, name, {
      bundle,
      env: { AWS_ENDPOINT_URL: moto.endpoint },
    });
    runs.push(run);
    pods[name] = run;
    return run;
  };
  const putParameter = (Name: string, Type: ParameterType, Value: string) =>
    ssm.send(new PutParameterCommand({ Name, Type, Value, Overwrite: true }));
  /** moto's record of the sessions it handed out: role ARN by session name. */
  const sessions = async () => {
    const data = (await (await fetch(`${moto.endpoint}/moto-api/data.json`)).json()) as {
      sts?: { AssumedRole?: { session_name: string; role_arn: string }[] };
    };
    return data.sts?.AssumedRole ?? [];
  };

  before(async () => {
    cp = await useControlPlane();
    core = cp.kubeConfig.makeApiClient(k8s.CoreV1Api);
    custom = cp.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    // A private moto: one case stops it to play an outage.
    moto = await startMoto();
    ssm = new SSMClient({
      region: 'us-east-1',
      endpoint: moto.endpoint,
      credentials: { accessKeyId: 'seed', secretAccessKey: 'seed' },
    });
    for (const [name, p] of Object.entries(parameters)) await putParameter(name, p.type, p.value);
    relay = await startRelay(cp.port);
    bundle = tempBundle();
    installCrds(cp);
    for (const ns of [PS, K8S, REMOTE]) await createNamespace(cp, ns);

    const k8sText = readFileSync(path.join(fixtures, 'kubernetes.yaml'), 'utf8')
      .replaceAll('${REMOTE_URL}', `https://127.0.0.1:${relay.port}`)
      .replaceAll('${REMOTE_CA_BUNDLE}', Buffer.from(cp.caPem).toString('base64'));
    await applyObjects(cp, [
      ...(k8s.loadAllYaml(
        readFileSync(path.join(fixtures, 'parameter-store.yaml'), 'utf8'),
      ) as k8s.KubernetesObject[]),
      ...(k8s.loadAllYaml(k8sText) as k8s.KubernetesObject[]),
    ]);
    // The "other cluster's" credential: a token of its remote-reader account, kept in a Secret.
    const token = await core.createNamespacedServiceAccountToken({
      namespace: REMOTE,
      name: 'remote-reader',
      body: { spec: { audiences: [], expirationSeconds: 7200 } },
    });
    await core.createNamespacedSecret({
      namespace: K8S,
      body: { metadata: { name: 'remote-token' }, stringData: { token: token.status!.token! } },
    });
    injector = await startInjector(cp, { namespaces: [PS, K8S], bundle });
  });

  after(async () => {
    for (const r of runs) await r.stop();
    await injector?.stop();
    ssm?.destroy();
    await relay?.stop();
    await moto?.stop();
    await cp?.stop();
  });

  describe('AWS Parameter Store', () => {
    it('syncs every parameter type, a property and a find by path, as the pod’s own AWS role', async () => {
      const alpha = await start(PS, 'ps-alpha', 'ps-alpha', [
        'alpha-params',
        'alpha-retain',
        'alpha-delete',
      ]);
      assert.equal(alpha.phase, 'Running', alpha.failed?.terminationMessage() ?? alpha.output());
      assert.deepEqual(await secretData(PS, 'alpha-params'), {
        password: 'ps-alpha-pw-1',
        hosts: 'db-1.alpha.example,db-2.alpha.example',
        'config-region': 'eu-west-1',
        'config-pool': '12',
      });
      assert.deepEqual(filesOf(alpha, 'alpha-params'), await secretData(PS, 'alpha-params'));
      assert.deepEqual(await secretData(PS, 'alpha-retain'), { token: 'ps-alpha-retain-7c1' });
      assert.deepEqual(await secretData(PS, 'alpha-delete'), { token: 'ps-alpha-delete-5e2' });

      const beta = await start(PS, 'ps-beta', 'ps-beta', ['beta-params']);
      assert.equal(beta.phase, 'Running', beta.failed?.terminationMessage() ?? beta.output());
      assert.deepEqual(await secretData(PS, 'beta-params'), { password: 'ps-beta-pw-1' });
    });

    it('signs each pod in as the role its own store names (moto records it; it enforces no IAM)', async () => {
      const all = await sessions();
      const rolesOf = (pod: string) =>
        new Set(all.filter((s) => s.session_name === `esa-${PS}-${pod}`).map((s) => s.role_arn));
      // NOTE: this shows which role each agent asked STS for, with its own token. moto does not
      // check the token or apply resource-level IAM, so it would also have let beta's role read
      // alpha's parameters; in AWS, each role's trust policy (the token's sub) and its policy
      // (the workload's path) make that refusal.
      assert.deepEqual([...rolesOf('ps-alpha')], ['arn:aws:iam::123456789012:role/e2e-ps-alpha']);
      assert.deepEqual([...rolesOf('ps-beta')], ['arn:aws:iam::123456789012:role/e2e-ps-beta']);
    });

    it('refuses beta alpha’s store, and so alpha’s role, naming the store', async () => {
      const thief = await start(PS, 'ps-thief', 'ps-beta', ['beta-uses-alpha-store']);
      assert.equal(thief.phase, 'InitFailed');
      const message = thief.failed!.terminationMessage();
      assert.match(message, /beta-uses-alpha-store/);
      assert.match(
        message,
        /secretstores\.external-secrets\.io "ps-alpha" is forbidden: User "system:serviceaccount:e2e-ps:ps-beta" cannot get resource "secretstores"/,
      );
      assert.ok(
        !(await sessions()).some((s) => s.session_name === `esa-${PS}-ps-thief`),
        'the thief never reached STS',
      );
      assert.equal(await secretExists(PS, 'beta-uses-alpha-store'), false);
    });

    it('picks up a new parameter version within the refresh interval, in the Secret and the files', async () => {
      await putParameter(
        '/e2e-ps/alpha/db',
        'SecureString',
        '{"username":"alpha","password":"ps-alpha-pw-2"}',
      );
      await waitFor(
        'new password in the Secret',
        async () => (await secretData(PS, 'alpha-params')).password === 'ps-alpha-pw-2',
        { timeoutMs: 20_000, intervalMs: 250 },
      );
      await waitFor(
        'new password in the files',
        async () => filesOf(pods['ps-alpha']!, 'alpha-params').password === 'ps-alpha-pw-2',
        { timeoutMs: 5_000, intervalMs: 100 },
      );
    });

    it('keeps syncing across a token rotation on one STS session, not a sign-in per pass; no token reaches the app', async () => {
      const alpha = pods['ps-alpha']!;
      const tokenFile = path.join(alpha.volumeDir('inject-token'), 'provider-token');
      const before = readFileSync(tokenFile, 'utf8');
      const logins = async () =>
        (await sessions()).filter((s) => s.session_name === `esa-${PS}-ps-alpha`).length;
      const loginsBefore = await logins();
      assert.ok(loginsBefore >= 1, 'the pod signed in as its role');
      await alpha.rotateTokens();
      const rotated = readFileSync(tokenFile, 'utf8');
      assert.notEqual(rotated, before, 'the kubelet stand-in wrote a new token');

      // Several passes (2 s interval) after the rotation: the session from before stays in use
      // until 5 minutes before it expires, and the next sign-in then reads the file as it is.
      // NOTE: that next sign-in is 10 minutes away here; test/agent/providers/aws-auth.test.ts
      // shows it sends the rotated token, with a fake clock.
      await putParameter('/e2e-ps/alpha/hosts', 'StringList', 'db-3.alpha.example');
      await waitFor(
        'a sync after the rotation',
        async () => (await secretData(PS, 'alpha-params')).hosts === 'db-3.alpha.example',
        { timeoutMs: 20_000, intervalMs: 250 },
      );
      await sleep(4_500);
      assert.equal(await logins(), loginsBefore, 'no sign-in per pass while the session is fresh');

      for (const file of walk(alpha.volumeDir('inject-secrets'))) {
        const text = readFileSync(file, 'utf8');
        assert.ok(
          !text.includes(rotated) && !text.includes(before),
          `${file} holds the provider token`,
        );
        assert.doesNotMatch(text, /eyJ[A-Za-z0-9_-]{10,}\./, `${file} holds a JWT`);
      }
    });

    it('keeps the Secret under deletionPolicy Retain and deletes it under Delete when the parameter is gone', async () => {
      await ssm.send(new DeleteParameterCommand({ Name: '/e2e-ps/alpha/retain' }));
      await ssm.send(new DeleteParameterCommand({ Name: '/e2e-ps/alpha/delete' }));
      await waitFor('alpha-delete deleted', async () => !(await secretExists(PS, 'alpha-delete')), {
        timeoutMs: 20_000,
        intervalMs: 250,
      });
      await waitFor(
        'alpha-retain Ready False',
        async () => (await ready(PS, 'alpha-retain'))?.status === 'False',
        { timeoutMs: 20_000, intervalMs: 250 },
      );
      const condition = (await ready(PS, 'alpha-retain'))!;
      assert.match(
        condition.message ?? '',
        /SecretStore e2e-ps\/ps-alpha \(aws\): cannot read parameter \/e2e-ps\/alpha\/retain: ParameterNotFound/,
      );
      assert.deepEqual(await secretData(PS, 'alpha-retain'), { token: 'ps-alpha-retain-7c1' });
    });

    it('keeps the last good Secret and files when AWS is down, and reports SecretSyncedError', async () => {
      const before = await secretData(PS, 'alpha-params');
      const filesBefore = filesOf(pods['ps-alpha']!, 'alpha-params');
      await moto.stop();
      await waitFor(
        'Ready False on alpha-params',
        async () => (await ready(PS, 'alpha-params'))?.status === 'False',
        { timeoutMs: 30_000, intervalMs: 500 },
      );
      const condition = (await ready(PS, 'alpha-params'))!;
      assert.equal(condition.reason, 'SecretSyncedError');
      assert.match(condition.message ?? '', /SecretStore e2e-ps\/ps-alpha \(aws\)/);
      assert.deepEqual(await secretData(PS, 'alpha-params'), before);
      assert.deepEqual(filesOf(pods['ps-alpha']!, 'alpha-params'), filesBefore);
    });
  });

  describe('Kubernetes provider', () => {
    it('syncs another namespace’s Secret as the pod itself, and another cluster’s with a token Secret', async () => {
      const alpha = await start(K8S, 'k-alpha', 'k-alpha', [
        'k-alpha-db',
        'k-alpha-retain',
        'k-alpha-delete',
        'k-alpha-remote',
      ]);
      assert.equal(alpha.phase, 'Running', alpha.failed?.terminationMessage() ?? alpha.output());
      assert.deepEqual(await secretData(K8S, 'k-alpha-db'), {
        DB_PASSWORD: 'k8s-alpha-pw-1',
        username: 'alpha',
        password: 'k8s-alpha-pw-1',
      });
      assert.deepEqual(filesOf(alpha, 'k-alpha-db'), await secretData(K8S, 'k-alpha-db'));
      assert.deepEqual(await secretData(K8S, 'k-alpha-remote'), {
        endpoint: 'https://api.shared.example',
        flag: 'on',
      });
    });

    it('refuses beta alpha’s Secret through beta’s own store, naming provider, store, key and permission', async () => {
      const beta = await start(K8S, 'k-beta', 'k-beta', ['k-beta-db', 'k-beta-reads-alpha']);
      assert.equal(beta.phase, 'InitFailed');
      assert.deepEqual(
        await secretData(K8S, 'k-beta-db'),
        { DB_PASSWORD: 'k8s-beta-pw-1' },
        'beta reads its own Secret',
      );
      const message = beta.failed!.terminationMessage();
      assert.match(
        message,
        /ExternalSecret e2e-k8s\/k-beta-reads-alpha: .*SecretStore e2e-k8s\/k8s-beta \(kubernetes\): cannot read Secret e2e-k8s-remote\/alpha-db: 403 Forbidden: .*User "system:serviceaccount:e2e-k8s:k-beta" cannot get resource "secrets" .*\(missing permission: get on secrets\/alpha-db in namespace e2e-k8s-remote\)/,
      );
      assert.ok(!message.includes('k8s-alpha-pw-1'), 'the refused value is not in the message');
      assert.doesNotMatch(message, /\n/, 'the termination message is one line');
      assert.equal(await secretExists(K8S, 'k-beta-reads-alpha'), false);
    });

    it('picks up a change of the remote Secret within the refresh interval', async () => {
      const remote = await core.readNamespacedSecret({ namespace: REMOTE, name: 'alpha-db' });
      remote.data = { ...remote.data, password: Buffer.from('k8s-alpha-pw-2').toString('base64') };
      await core.replaceNamespacedSecret({ namespace: REMOTE, name: 'alpha-db', body: remote });
      await waitFor(
        'new password in the Secret',
        async () => (await secretData(K8S, 'k-alpha-db')).DB_PASSWORD === 'k8s-alpha-pw-2',
        { timeoutMs: 20_000, intervalMs: 250 },
      );
      await waitFor(
        'new password in the files',
        async () => filesOf(pods['k-alpha']!, 'k-alpha-db').password === 'k8s-alpha-pw-2',
        { timeoutMs: 5_000, intervalMs: 100 },
      );
    });

    it('keeps the Secret under deletionPolicy Retain and deletes it under Delete when the remote Secret is gone', async () => {
      await core.deleteNamespacedSecret({ namespace: REMOTE, name: 'alpha-retain' });
      await core.deleteNamespacedSecret({ namespace: REMOTE, name: 'alpha-delete' });
      await waitFor(
        'k-alpha-delete deleted',
        async () => !(await secretExists(K8S, 'k-alpha-delete')),
        { timeoutMs: 20_000, intervalMs: 250 },
      );
      await waitFor(
        'k-alpha-retain Ready False',
        async () => (await ready(K8S, 'k-alpha-retain'))?.status === 'False',
        { timeoutMs: 20_000, intervalMs: 250 },
      );
      assert.match(
        (await ready(K8S, 'k-alpha-retain'))!.message ?? '',
        /SecretStore e2e-k8s\/k8s-alpha \(kubernetes\): Secret e2e-k8s-remote\/alpha-retain does not exist/,
      );
      assert.deepEqual(await secretData(K8S, 'k-alpha-retain'), { token: 'k8s-alpha-retain-3d0' });
    });

    it('keeps the last good Secret and files when the other cluster is down', async () => {
      const before = await secretData(K8S, 'k-alpha-remote');
      const filesBefore = filesOf(pods['k-alpha']!, 'k-alpha-remote');
      await relay.stop();
      await waitFor(
        'Ready False on k-alpha-remote',
        async () => (await ready(K8S, 'k-alpha-remote'))?.status === 'False',
        { timeoutMs: 30_000, intervalMs: 500 },
      );
      const condition = (await ready(K8S, 'k-alpha-remote'))!;
      assert.equal(condition.reason, 'SecretSyncedError');
      assert.match(
        condition.message ?? '',
        new RegExp(
          `SecretStore e2e-k8s/k8s-remote \\(kubernetes\\): cannot read Secret e2e-k8s-remote/shared-config: API server https://127\\.0\\.0\\.1:${relay.port} unreachable`,
        ),
      );
      assert.deepEqual(await secretData(K8S, 'k-alpha-remote'), before);
      assert.deepEqual(filesOf(pods['k-alpha']!, 'k-alpha-remote'), filesBefore);
      assert.equal(
        (await ready(K8S, 'k-alpha-db'))?.status,
        'True',
        'the pod’s own cluster keeps syncing',
      );
    });
  });

  it('prints no secret value and no token anywhere, and writes no token where the app reads', async () => {
    const events = [
      ...(await core.listNamespacedEvent({ namespace: PS })).items,
      ...(await core.listNamespacedEvent({ namespace: K8S })).items,
    ];
    const statuses = await Promise.all(
      [
        [PS, 'alpha-params'],
        [PS, 'alpha-retain'],
        [PS, 'alpha-delete'],
        [PS, 'beta-params'],
        [K8S, 'k-alpha-db'],
        [K8S, 'k-alpha-retain'],
        [K8S, 'k-alpha-delete'],
        [K8S, 'k-alpha-remote'],
        [K8S, 'k-beta-db'],
        [K8S, 'k-beta-reads-alpha'],
      ].map(([ns, name]) => ready(ns!, name!)),
    );
    const everything = [
      ...runs.map((r) => r.output()),
      ...runs.flatMap((r) => r.containers.map((c) => c.terminationMessage())),
      injector.process.output(),
      JSON.stringify(statuses),
      JSON.stringify(events.map((e) => e.message)),
    ].join('\n');
    for (const value of SECRET_VALUES)
      assert.ok(!everything.includes(value), `a secret value leaked: ${value.slice(0, 4)}…`);
    assert.doesNotMatch(everything, /eyJ[A-Za-z0-9_-]{10,}\.eyJ/, 'no JWT');
    assert.doesNotMatch(everything, /\b(?:ASIA|AKIA)[A-Z0-9]{12,}/, 'no AWS access key id');

    for (const run of runs.filter((r) => r.phase === 'Running')) {
      const tokens = readdirSync(run.volumeDir('inject-token'))
        .filter((f) => f.endsWith('token'))
        .map((f) => readFileSync(path.join(run.volumeDir('inject-token'), f), 'utf8'));
      for (const file of walk(run.volumeDir('inject-secrets'))) {
        const text = readFileSync(file, 'utf8');
        for (const token of tokens)
          assert.ok(!text.includes(token), `${file} holds one of the pod's tokens`);
      }
    }
  });
});

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else out.push(p);
  }
  return out;
}
