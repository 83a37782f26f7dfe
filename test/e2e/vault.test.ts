/**
 * The Vault provider end to end, through real servers: OpenBao dev servers (the Vault API) and
 * the real API server. Pods created through the API server are mutated by the injector (the
 * esbuild bundle); the kubelet stand-in runs their agent containers with their own projected
 * tokens; OpenBao's Kubernetes auth checks those tokens with the API server's TokenReview, its
 * JWT auth checks them against the API server's signing key.
 *
 * OpenBao set-up: test/fixtures/vault/openbao.yaml (policies, roles, secrets). Kubernetes
 * side: test/fixtures/vault/workloads.yaml. The quick-start's ClusterSecretStore comes from
 * samples/quickstart/quickstart.yaml with only `server` changed, and (so parallel test files
 * that apply the quick-start do not overwrite it on a shared API server) its name.
 *
 * Kubernetes auth reviews tokens with a dedicated `vault-reviewer` service account bound to
 * system:auth-delegator (token_reviewer_jwt), as a Vault outside the cluster would: the
 * workloads' own accounts then need no TokenReview permission.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { createNamespace, useControlPlane, type ControlPlane } from '../harness/control-plane.ts';
import { startInjector, type RunningInjector } from '../harness/injector.ts';
import { runPod, type PodRun } from '../harness/kubelet.ts';
import { startOpenBao, type OpenBao } from '../harness/openbao.ts';
import { sleep, waitFor } from '../harness/processes.ts';
import {
  applyObjects,
  GROUP,
  installCrds,
  optedInPod,
  sampleObjects,
} from '../harness/quickstart.ts';
import { tempBundle } from '../harness/tools.ts';

const NS = 'e2e-vault';
const REVIEWER_NS = 'e2e-vault-system';
const STORE = 'vault-store-e2e';
const fixtures = path.resolve(import.meta.dirname, '../fixtures/vault');

interface OpenBaoSetup {
  policies: Record<string, string>;
  kubernetesRoles: Record<string, Record<string, unknown>>;
  jwtRoles: Record<string, Record<string, unknown>>;
  approleRoles: Record<string, Record<string, unknown>>;
  secrets: Record<string, Record<string, string>>;
  metadata: Record<string, Record<string, string>>;
}
const setup = k8s.loadYaml(
  readFileSync(path.join(fixtures, 'openbao.yaml'), 'utf8'),
) as OpenBaoSetup;

/** The values the TLS server and the Vault namespace hold for gamma (set up below). */
const GAMMA_TLS = 'gamma-tls-a61';
const GAMMA_NS = 'gamma-ns-f03';

/** Values that must never appear in anything the agent or injector prints. */
const SECRET_VALUES = [
  ...Object.values(setup.secrets)
    .flatMap((s) => Object.values(s))
    .filter((v) => v.length > 4 && v !== 'db.example.com'),
  'vault-pass-2',
  'vault-pass-3',
  GAMMA_TLS,
  GAMMA_NS,
];

type Status = {
  conditions?: { type: string; status: string; reason?: string; message?: string }[];
};

const vaultAnnotations = { 'agent.external-secrets.io/token-audience': 'vault' };

describe('Vault provider on OpenBao, through the webhook and the pod agent', () => {
  let cp: ControlPlane;
  let bao: OpenBao;
  let tlsBao: OpenBao;
  let injector: RunningInjector;
  let bundle: string;
  let core: k8s.CoreV1Api;
  let custom: k8s.CustomObjectsApi;
  let web: PodRun | undefined;
  const runs: PodRun[] = [];

  const secretData = async (name: string) => {
    const s = await core.readNamespacedSecret({ namespace: NS, name });
    return Object.fromEntries(
      Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
    );
  };
  const esStatus = async (name: string): Promise<Status> =>
    (
      (await custom.getNamespacedCustomObject({
        group: GROUP,
        version: 'v1',
        namespace: NS,
        plural: 'externalsecrets',
        name,
      })) as { status?: Status }
    ).status ?? {};
  const ready = (s: Status) => s.conditions?.find((c) => c.type === 'Ready');
  const filesOf = (run: PodRun, target: string) => {
    const dir = path.join(run.volumeDir('inject-secrets'), target);
    return Object.fromEntries(
      readdirSync(dir)
        .filter((f) => !f.startsWith('.'))
        .map((f) => [f, readFileSync(path.join(dir, f), 'utf8')]),
    );
  };
  const start = async (name: string) => {
    const run = await runPod(cp, NS, name, { bundle });
    runs.push(run);
    return run;
  };
  const writeKv2 = (p: string, data: Record<string, string>) =>
    bao.request('POST', p.replace(/^secret\//, 'secret/data/'), { data });
  /** Accessors of the live tokens a Vault role handed out, each with whether it was renewed. */
  const roleTokens = async (role: string): Promise<Map<string, boolean>> => {
    const out = new Map<string, boolean>();
    const list = await bao.request<{ data: { keys: string[] } }>(
      'GET',
      'auth/token/accessors?list=true',
    );
    for (const accessor of list.data.keys) {
      const t = await bao
        .request<{ data: { meta?: { role?: string } | null; last_renewal_time?: number | null } }>(
          'POST',
          'auth/token/lookup-accessor',
          { accessor },
        )
        .catch(() => undefined); // expired between the list and the lookup
      if (t?.data.meta?.role === role) out.set(accessor, Boolean(t.data.last_renewal_time));
    }
    return out;
  };

  before(async () => {
    cp = await useControlPlane();
    core = cp.kubeConfig.makeApiClient(k8s.CoreV1Api);
    custom = cp.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    // Private servers: one case stops the main one to play an outage.
    bao = await startOpenBao();
    tlsBao = await startOpenBao({ tls: true });
    bundle = tempBundle();
    installCrds(cp);
    await createNamespace(cp, NS);
    await createNamespace(cp, REVIEWER_NS);
    await configureOpenBao();
    await configureVariants();

    const text = readFileSync(path.join(fixtures, 'workloads.yaml'), 'utf8')
      .replaceAll('${VAULT_ADDR}', bao.address)
      .replaceAll('${VAULT_TLS_ADDR}', tlsBao.address)
      .replaceAll('${VAULT_CA_BUNDLE}', Buffer.from(tlsBao.caPem!).toString('base64'));
    await applyObjects(cp, [
      ...(k8s.loadAllYaml(text) as k8s.KubernetesObject[]),
      quickstartVaultStore(),
    ]);
    injector = await startInjector(cp, { namespaces: [NS], bundle });
  });

  after(async () => {
    for (const r of runs) await r.stop();
    await injector?.stop();
    await bao?.stop();
    await tlsBao?.stop();
    const rbac = cp?.kubeConfig.makeApiClient(k8s.RbacAuthorizationV1Api);
    for (const name of ['e2e-vault-reviewer', 'e2e-vault-store-reader']) {
      await rbac?.deleteClusterRoleBinding({ name }).catch(() => undefined);
    }
    await k8s.KubernetesObjectApi.makeApiClient(cp.kubeConfig)
      .delete({ apiVersion: `${GROUP}/v1`, kind: 'ClusterSecretStore', metadata: { name: STORE } })
      .catch(() => undefined);
    await cp?.stop();
  });

  /** The quick-start's vault-store, unchanged but for its server (and name, see above). */
  function quickstartVaultStore(): k8s.KubernetesObject {
    const sample = sampleObjects(['quickstart/quickstart.yaml']).find(
      (o) => o.kind === 'ClusterSecretStore' && o.metadata?.name === 'vault-store',
    ) as k8s.KubernetesObject & { spec: { provider: { vault: { server: string } } } };
    assert.ok(sample, 'samples/quickstart/quickstart.yaml has ClusterSecretStore vault-store');
    const store = structuredClone(sample);
    store.metadata!.name = STORE;
    store.spec.provider.vault.server = bao.address;
    const { server: _a, ...rest } = store.spec.provider.vault;
    const { server: _b, ...sampleRest } = sample.spec.provider.vault;
    assert.deepEqual(rest, sampleRest);
    return store;
  }

  /** Auth methods, policies, roles and secrets from openbao.yaml. */
  async function configureOpenBao(): Promise<void> {
    // The reviewer: Vault sends every login's JWT to TokenReview with this account's token.
    await core.createNamespacedServiceAccount({
      namespace: REVIEWER_NS,
      body: { metadata: { name: 'vault-reviewer' } },
    });
    await cp.kubeConfig.makeApiClient(k8s.RbacAuthorizationV1Api).createClusterRoleBinding({
      body: {
        metadata: { name: 'e2e-vault-reviewer' },
        roleRef: {
          apiGroup: 'rbac.authorization.k8s.io',
          kind: 'ClusterRole',
          name: 'system:auth-delegator',
        },
        subjects: [{ kind: 'ServiceAccount', name: 'vault-reviewer', namespace: REVIEWER_NS }],
      },
    });
    const reviewer = await core.createNamespacedServiceAccountToken({
      namespace: REVIEWER_NS,
      name: 'vault-reviewer',
      body: { spec: { audiences: [], expirationSeconds: 7200 } },
    });

    await bao.request('POST', 'sys/auth/kubernetes', { type: 'kubernetes' });
    await bao.request('POST', 'auth/kubernetes/config', {
      kubernetes_host: cp.server,
      kubernetes_ca_cert: cp.caPem,
      token_reviewer_jwt: reviewer.status!.token,
      disable_local_ca_jwt: true,
    });
    await bao.request('POST', 'sys/auth/jwt', { type: 'jwt' });
    await bao.request('POST', 'auth/jwt/config', {
      jwt_validation_pubkeys: [readFileSync(cp.saPublicKeyFile, 'utf8')],
      bound_issuer: cp.issuer,
    });
    await bao.request('POST', 'sys/auth/approle', { type: 'approle' });
    await bao.request('POST', 'sys/mounts/kv1', { type: 'kv', options: { version: '1' } });

    for (const [name, policy] of Object.entries(setup.policies)) {
      await bao.request('POST', `sys/policies/acl/${name}`, { policy });
    }
    for (const [name, role] of Object.entries(setup.kubernetesRoles))
      await bao.request('POST', `auth/kubernetes/role/${name}`, role);
    for (const [name, role] of Object.entries(setup.jwtRoles))
      await bao.request('POST', `auth/jwt/role/${name}`, role);
    for (const [name, role] of Object.entries(setup.approleRoles))
      await bao.request('POST', `auth/approle/role/${name}`, role);
    for (const [p, data] of Object.entries(setup.secrets)) {
      if (p.startsWith('kv1/')) await bao.request('POST', p, data);
      else await writeKv2(p, data);
    }
    for (const [p, tags] of Object.entries(setup.metadata)) {
      await bao.request('POST', p.replace(/^secret\//, 'secret/metadata/'), {
        custom_metadata: tags,
      });
    }
  }

  /** gamma's stores: AppRole credentials, the TLS server's CA and token, a Vault namespace. */
  async function configureVariants(): Promise<void> {
    const roleId = (
      await bao.request<{ data: { role_id: string } }>('GET', 'auth/approle/role/gamma/role-id')
    ).data.role_id;
    const secretId = (
      await bao.request<{ data: { secret_id: string } }>(
        'POST',
        'auth/approle/role/gamma/secret-id',
        {},
      )
    ).data.secret_id;

    await tlsBao.request('POST', 'sys/policies/acl/variants', { policy: setup.policies.variants });
    await tlsBao.request('POST', 'secret/data/team/gamma', { data: { token: GAMMA_TLS } });
    const tlsToken = await tlsBao.request<{ auth: { client_token: string } }>(
      'POST',
      'auth/token/create',
      { policies: ['variants'], ttl: '2h' },
    );

    const ns = { namespace: 'team-ns' };
    await bao.request('POST', 'sys/namespaces/team-ns', {});
    await bao.request('POST', 'sys/mounts/secret', { type: 'kv', options: { version: '2' } }, ns);
    await bao.request('POST', 'sys/policies/acl/variants', { policy: setup.policies.variants }, ns);
    await waitFor(
      'KV v2 mount in namespace team-ns',
      async () => {
        await bao.request('POST', 'secret/data/team/gamma', { data: { token: GAMMA_NS } }, ns);
        return true;
      },
      { timeoutMs: 10_000, intervalMs: 200 },
    );
    const nsToken = await bao.request<{ auth: { client_token: string } }>(
      'POST',
      'auth/token/create',
      { policies: ['variants'], ttl: '2h' },
      ns,
    );

    await core.createNamespacedSecret({
      namespace: NS,
      body: {
        metadata: { name: 'gamma-approle' },
        stringData: { 'role-id': roleId, 'secret-id': secretId },
      },
    });
    await core.createNamespacedSecret({
      namespace: NS,
      body: {
        metadata: { name: 'vault-tokens' },
        stringData: { tls: tlsToken.auth.client_token, 'team-ns': nsToken.auth.client_token },
      },
    });
    await core.createNamespacedConfigMap({
      namespace: NS,
      body: { metadata: { name: 'vault-ca' }, data: { 'ca.crt': tlsBao.caPem! } },
    });
  }

  it('syncs through the quick-start ClusterSecretStore, unchanged but for server: Kubernetes auth, KV v2', async () => {
    await core.createNamespacedPod({
      namespace: NS,
      body: optedInPod('web', ['database', 'app-credentials', 'pinned'], {
        serviceAccountName: 'app',
        annotations: {
          ...vaultAnnotations,
          'agent.external-secrets.io/refresh-interval': '2s',
          'agent.external-secrets.io/log-level': 'debug',
        },
      }),
    });
    web = await start('web');
    assert.equal(web.phase, 'Running', web.failed?.terminationMessage() ?? web.output());

    assert.deepEqual(await secretData('database'), setup.secrets['secret/quickstart/database']);
    assert.deepEqual(await secretData('app-credentials'), {
      DATABASE_PASSWORD: 'vault-pass-1',
      API_KEY: 'vk-1',
    });
    assert.deepEqual(await secretData('pinned'), { token: 'pinned-v1' });
    for (const name of ['database', 'app-credentials', 'pinned']) {
      const condition = ready(await esStatus(name));
      assert.equal(condition?.status, 'True', `${name}: ${condition?.message}`);
      assert.equal(condition?.reason, 'SecretSynced');
      assert.deepEqual(
        filesOf(web, name),
        await secretData(name),
        `${name}: files equal the Secret's data`,
      );
    }
  });

  it('picks up a new version written to Vault within the refresh interval, in the Secret and the files', async () => {
    await writeKv2('secret/quickstart/database', {
      ...setup.secrets['secret/quickstart/database'],
      password: 'vault-pass-2',
    });
    await waitFor(
      'new password in the Secret',
      async () => (await secretData('database')).password === 'vault-pass-2',
      { timeoutMs: 20_000, intervalMs: 250 },
    );
    await waitFor(
      'new password in the files',
      async () => filesOf(web!, 'database').password === 'vault-pass-2',
      { timeoutMs: 5_000, intervalMs: 100 },
    );
    await waitFor(
      'property read follows',
      async () => (await secretData('app-credentials')).DATABASE_PASSWORD === 'vault-pass-2',
      { timeoutMs: 20_000, intervalMs: 250 },
    );
  });

  it('keeps its Vault token past TTL and max TTL: renews it, logs in again, never once per refresh', async () => {
    // Role external-secrets: token_ttl 6 s, token_max_ttl 14 s; the sidecar refreshes its 3
    // ExternalSecrets every 2 s. Every login makes a new token; watch which tokens of the role
    // exist over a window longer than the max TTL.
    const passes = () => (web!.output().match(/"msg":"sync pass done"/g) ?? []).length;
    const passesBefore = passes();
    const seen = new Map<string, boolean>();
    const until = Date.now() + 16_000;
    while (Date.now() < until) {
      for (const [accessor, renewed] of await roleTokens('external-secrets'))
        seen.set(accessor, seen.get(accessor) || renewed);
      await sleep(400);
    }
    const refreshes = passes() - passesBefore;
    assert.ok(refreshes >= 20, `the sidecar kept refreshing (${refreshes} passes)`);
    assert.ok(
      [...seen.values()].some(Boolean),
      'a token was renewed (renew-self) before its TTL ran out',
    );
    // The init container's token may still be alive at the start; then the sidecar's, and its
    // successor once the max TTL is reached. A login per pass would show about 24.
    assert.ok(seen.size >= 2, `the max TTL forced a new login (${seen.size} tokens)`);
    assert.ok(
      seen.size <= 4,
      `one login per token lifetime (${seen.size} tokens for ${refreshes} passes)`,
    );

    await writeKv2('secret/quickstart/database', {
      ...setup.secrets['secret/quickstart/database'],
      password: 'vault-pass-3',
    });
    await waitFor(
      'reads still allowed after the max TTL',
      async () => (await secretData('database')).password === 'vault-pass-3',
      { timeoutMs: 20_000, intervalMs: 250 },
    );
  });

  it('reports a deleted version as not found, keeping the last good Secret', async () => {
    const before = await secretData('pinned');
    await bao.request('POST', 'secret/delete/quickstart/pinned', { versions: [1] });
    await waitFor(
      'Ready False on pinned',
      async () => ready(await esStatus('pinned'))?.status === 'False',
      { timeoutMs: 20_000, intervalMs: 250 },
    );
    const condition = ready(await esStatus('pinned'))!;
    assert.equal(condition.reason, 'SecretSyncedError');
    assert.match(
      condition.message ?? '',
      /ClusterSecretStore vault-store-e2e \(vault\): secret quickstart\/pinned version 1 was deleted/,
    );
    assert.deepEqual(await secretData('pinned'), before);
    assert.equal(
      ready(await esStatus('database'))?.status,
      'True',
      'the other ExternalSecrets keep syncing',
    );
  });

  it('scopes each pod by its own service account: alpha reads its path, by Kubernetes and by JWT auth', async () => {
    await core.createNamespacedPod({
      namespace: NS,
      body: optedInPod('alpha', ['alpha-secret', 'alpha-jwt'], {
        serviceAccountName: 'alpha',
        annotations: vaultAnnotations,
      }),
    });
    const alpha = await start('alpha');
    assert.equal(alpha.phase, 'Running', alpha.failed?.terminationMessage() ?? alpha.output());
    assert.deepEqual(await secretData('alpha-secret'), { token: 'alpha-vault-7e1' });
    assert.deepEqual(await secretData('alpha-jwt'), { token: 'alpha-vault-7e1' });
  });

  it('refuses beta alpha’s path and alpha’s role, naming provider, store and key, never the value', async () => {
    await core.createNamespacedPod({
      namespace: NS,
      body: optedInPod('beta', ['beta-secret', 'beta-reads-alpha', 'beta-uses-alpha-role'], {
        serviceAccountName: 'beta',
        annotations: vaultAnnotations,
      }),
    });
    const beta = await start('beta');
    assert.equal(beta.phase, 'InitFailed');
    assert.deepEqual(
      await secretData('beta-secret'),
      { token: 'beta-vault-c40' },
      'beta still reads its own path',
    );

    const message = beta.failed!.terminationMessage();
    assert.match(
      message,
      /ExternalSecret e2e-vault\/beta-reads-alpha: .*SecretStore e2e-vault\/beta-vault \(vault\): cannot read secret team\/alpha \(path secret\/data\/team\/alpha\): permission denied \(HTTP 403\)/,
    );
    assert.match(
      message,
      /ExternalSecret e2e-vault\/beta-uses-alpha-role: .*SecretStore e2e-vault\/alpha-vault \(vault\): Kubernetes auth login \(mount kubernetes, role alpha\): service account name not authorized \(HTTP 403\)/,
    );
    assert.ok(!message.includes('alpha-vault-7e1'), 'the refused value is not in the message');
    assert.doesNotMatch(message, /\n/, 'the termination message is one line');
    await assert.rejects(
      core.readNamespacedSecret({ namespace: NS, name: 'beta-reads-alpha' }),
      'no Secret was written for the refused read',
    );
  });

  it('reads through AppRole, KV v1, TLS with caProvider and caBundle, and a Vault namespace', async () => {
    await core.createNamespacedPod({
      namespace: NS,
      body: optedInPod('gamma', ['gamma-variants'], { serviceAccountName: 'gamma' }),
    });
    const gamma = await start('gamma');
    assert.equal(gamma.phase, 'Running', gamma.failed?.terminationMessage() ?? gamma.output());
    assert.deepEqual(await secretData('gamma-variants'), {
      approle: 'gamma-vault-5d9',
      kv1: 'gamma-kv1-2b8',
      'tls-configmap': GAMMA_TLS,
      'tls-bundle': GAMMA_TLS,
      namespace: GAMMA_NS,
    });
  });

  it('finds secrets by name under a path and by custom_metadata tags, recursively', async () => {
    await core.createNamespacedPod({
      namespace: NS,
      body: optedInPod('finder', ['gamma-find'], { serviceAccountName: 'gamma' }),
    });
    const finder = await start('finder');
    assert.equal(finder.phase, 'Running', finder.failed?.terminationMessage() ?? finder.output());
    assert.deepEqual(await secretData('gamma-find'), {
      'name-one': '{"v":"found-one-81c"}',
      'tag-two': '{"v":"found-two-4ae"}',
      'tag-sub-three': '{"v":"found-three-0d7"}',
    });
  });

  it('keeps the last good Secret and files when Vault is down, and reports SecretSyncedError', async () => {
    const before = await secretData('database');
    const filesBefore = filesOf(web!, 'database');
    await bao.stop();
    await waitFor(
      'Ready False on database',
      async () => ready(await esStatus('database'))?.status === 'False',
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    const condition = ready(await esStatus('database'))!;
    assert.equal(condition.reason, 'SecretSyncedError');
    assert.match(
      condition.message ?? '',
      /ClusterSecretStore vault-store-e2e \(vault\): .*no answer from Vault/,
    );

    const events = await core.listNamespacedEvent({
      namespace: NS,
      fieldSelector: 'involvedObject.name=database',
    });
    assert.ok(
      events.items.some((e) => e.type === 'Warning'),
      'a Warning Event names the ExternalSecret',
    );
    assert.deepEqual(await secretData('database'), before);
    assert.deepEqual(filesOf(web!, 'database'), filesBefore);
  });

  it('prints no secret value and no token anywhere, and writes no token where the app reads', async () => {
    const names = [
      'database',
      'app-credentials',
      'pinned',
      'alpha-secret',
      'alpha-jwt',
      'beta-secret',
      'beta-reads-alpha',
      'beta-uses-alpha-role',
      'gamma-variants',
      'gamma-find',
    ];
    const statuses = await Promise.all(names.map(esStatus));
    const events = await core.listNamespacedEvent({ namespace: NS });
    const everything = [
      ...runs.map((r) => r.output()),
      ...runs.flatMap((r) => r.containers.map((c) => c.terminationMessage())),
      injector.process.output(),
      JSON.stringify(statuses),
      JSON.stringify(events.items.map((e) => e.message)),
    ].join('\n');
    for (const value of SECRET_VALUES)
      assert.ok(!everything.includes(value), `a secret value leaked: ${value.slice(0, 2)}…`);
    assert.doesNotMatch(everything, /\b(?:hv[sb]|[sb])\.[A-Za-z0-9_-]{20,}/, 'no Vault token');
    assert.doesNotMatch(everything, /eyJ[A-Za-z0-9_-]{10,}\.eyJ/, 'no JWT');
    assert.ok(!everything.includes(bao.rootToken));

    // The app's volume holds the synced keys and nothing else.
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const name of readdirSync(dir)) {
        const p = path.join(dir, name);
        if (statSync(p).isDirectory()) walk(p);
        else files.push(p);
      }
    };
    for (const run of runs.filter((r) => r.phase === 'Running'))
      walk(run.volumeDir('inject-secrets'));
    for (const file of files) {
      assert.doesNotMatch(
        readFileSync(file, 'utf8'),
        /\b(?:hv[sb]|[sb])\.[A-Za-z0-9_-]{20,}|eyJ[A-Za-z0-9_-]{10,}\./,
        `${file} holds a token`,
      );
    }
  });
});
