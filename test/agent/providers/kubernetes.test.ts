/**
 * The Kubernetes provider (agent/providers/kubernetes.ts): the read and find logic against a
 * fake of the narrow SecretReader, then every way of connecting against the real test API
 * server, whose RBAC decides what each identity may read: the pod's own identity, a token
 * from a Secret, a client certificate, a TokenRequest token, with the CA from caBundle or
 * caProvider. The credentials Secrets themselves sit in the in-memory kube (the pod's side).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import {
  ConfigError,
  KubeApiError,
  NotFoundError,
  ProviderError,
  UnsupportedError,
} from '../../../agent/errors.ts';
import { KubeClient } from '../../../agent/kube-client.ts';
import { createLogger } from '../../../agent/log.ts';
import {
  connect,
  createKubernetesProvider,
  kubernetesProvider,
  type KubernetesProviderSpec,
  type SecretReader,
} from '../../../agent/providers/kubernetes.ts';
import type { FindRef, Provider, ProviderContext } from '../../../agent/providers/provider.ts';
import { syncExternalSecret } from '../../../agent/sync.ts';
import type { KubeApi, Secret } from '../../../agent/types.ts';
import {
  createNamespace,
  useControlPlane,
  type ControlPlane,
} from '../../harness/control-plane.ts';
import { issueCert } from '../../harness/pki.ts';
import { freePort } from '../../harness/processes.ts';
import { FakeKube } from '../fake-kube.ts';
import {
  NS,
  clusterSecretStore,
  externalSecret,
  paths,
  secretStore,
  testConfig,
} from '../helpers.ts';

const signal = () => AbortSignal.timeout(20_000);
const b64 = (s: string) => Buffer.from(s).toString('base64');
const LABEL = `SecretStore ${NS}/remote (kubernetes)`;

function secret(
  name: string,
  data: Record<string, string>,
  labels: Record<string, string> = {},
): Secret {
  return {
    metadata: { name, namespace: 'remote-ns', resourceVersion: '41', labels },
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
  };
}

/** A SecretReader over fixed Secrets of one namespace, paging lists by `pageSize`. */
function fakeReader(secrets: Secret[], pageSize = 2) {
  const calls: { path: string; query?: Record<string, string> }[] = [];
  const reader: SecretReader = {
    async get<T>(p: string, options?: { query?: Record<string, string> }): Promise<T> {
      calls.push({ path: p, ...(options?.query ? { query: options.query } : {}) });
      if (p === '/api/v1/namespaces/remote-ns/secrets') {
        const q = options?.query ?? {};
        const wanted = (q.labelSelector ?? '')
          .split(',')
          .filter(Boolean)
          .map((kv) => kv.split('='));
        const items = secrets.filter((s) =>
          wanted.every(([k, v]) => s.metadata.labels?.[k!] === v),
        );
        const start = Number(q.continue ?? 0);
        const next = start + pageSize < items.length ? String(start + pageSize) : undefined;
        return {
          items: items.slice(start, start + pageSize),
          metadata: next ? { continue: next } : {},
        } as T;
      }
      const name = p.split('/').at(-1);
      if (name === 'forbidden') {
        throw new KubeApiError(
          403,
          'Forbidden',
          `GET ${p}: 403 Forbidden: secrets "forbidden" is forbidden: User "system:serviceaccount:app-ns:app" cannot get resource "secrets" in API group "" in the namespace "remote-ns"`,
        );
      }
      const s = secrets.find((x) => x.metadata.name === name);
      if (!s)
        throw new KubeApiError(
          404,
          'NotFound',
          `GET ${p}: 404 NotFound: secrets "${name}" not found`,
        );
      return structuredClone(s) as T;
    },
  };
  return { reader, calls };
}

const fixed = [
  secret(
    'db',
    { username: 'app', password: 'k8s-secret-1', 'config.json': '{"a":1}' },
    { team: 'a' },
  ),
  secret('api', { key: 'k-1' }, { team: 'a', env: 'prod' }),
  secret('other', { x: 'y' }, { team: 'b' }),
];
const provider = (secrets = fixed, pageSize = 2) => {
  const fake = fakeReader(secrets, pageSize);
  return {
    ...fake,
    provider: kubernetesProvider(
      { reader: fake.reader, identity: 'pod', cluster: 'c' },
      'remote-ns',
      LABEL,
    ),
  };
};

describe('kubernetes provider reads', () => {
  it('returns a Secret as the JSON object of its decoded data, keys sorted, with its resourceVersion', async () => {
    const got = await provider().provider.getSecret({ key: 'db' }, signal());
    assert.deepEqual(got, {
      value: '{"config.json":"{\\"a\\":1}","password":"k8s-secret-1","username":"app"}',
      version: '41',
    });
  });

  it('reports a missing Secret as NotFoundError naming the store and namespace/name', async () => {
    await assert.rejects(provider().provider.getSecret({ key: 'nope' }, signal()), {
      name: 'NotFoundError',
      message: `${LABEL}: Secret remote-ns/nope does not exist`,
    });
  });

  it('names the store, the Secret and the missing permission when RBAC refuses', async () => {
    await assert.rejects(
      provider().provider.getSecret({ key: 'forbidden' }, signal()),
      (err: Error) => {
        assert.ok(err instanceof ProviderError);
        assert.equal(
          err.message,
          `${LABEL}: cannot read Secret remote-ns/forbidden: 403 Forbidden: secrets "forbidden" is forbidden: ` +
            `User "system:serviceaccount:app-ns:app" cannot get resource "secrets" in API group "" in the namespace "remote-ns" ` +
            `(missing permission: get on secrets/forbidden in namespace remote-ns)`,
        );
        return true;
      },
    );
  });

  const refused = [
    {
      name: 'a version, which Secrets do not have',
      ref: { key: 'db', version: '2' },
      error: UnsupportedError,
    },
    { name: 'a key that cannot be a Secret name', ref: { key: '../db' }, error: ConfigError },
  ];
  for (const c of refused) {
    it(`refuses ${c.name}`, async () => {
      await assert.rejects(provider().provider.getSecret(c.ref, signal()), c.error);
    });
  }

  const finds: { name: string; find: FindRef; want: string[]; selector: string | undefined }[] = [
    {
      name: 'by labels (tags), across pages',
      find: { tags: { team: 'a' } },
      want: ['db', 'api'],
      selector: 'team=a',
    },
    {
      name: 'by every label given',
      find: { tags: { team: 'a', env: 'prod' } },
      want: ['api'],
      selector: 'team=a,env=prod',
    },
    {
      name: 'by name regexp',
      find: { name: { regexp: '^(db|other)$' } },
      want: ['db', 'other'],
      selector: undefined,
    },
    {
      name: 'by name regexp and labels',
      find: { name: { regexp: 'i' }, tags: { team: 'a' } },
      want: ['api'],
      selector: 'team=a',
    },
  ];
  for (const c of finds) {
    it(`finds ${c.name}`, async () => {
      const { provider: p, calls } = provider(fixed, 1);
      const found = await p.getAllSecrets!(c.find, signal());
      assert.deepEqual([...found.keys()], c.want);
      assert.equal(calls[0]!.query?.labelSelector, c.selector);
      assert.equal(calls[0]!.query?.limit, '500');
    });
  }

  it('refuses find.path and a tag that is not a label', async () => {
    const { provider: p } = provider();
    await assert.rejects(p.getAllSecrets!({ path: 'x' }, signal()), UnsupportedError);
    await assert.rejects(p.getAllSecrets!({ tags: { 'a,b': 'c' } }, signal()), ConfigError);
  });

  it('feeds property and extract through one pass of the agent (pod identity, own cluster)', async () => {
    const kube = new FakeKube();
    for (const s of fixed) kube.put(paths.secret(s.metadata.name, 'remote-ns'), s);
    kube.put(
      paths.secretStore('remote'),
      secretStore('remote', { kubernetes: { remoteNamespace: 'remote-ns' } }),
    );
    kube.put(
      paths.externalSecret('copy'),
      externalSecret('copy', {
        refreshInterval: '0',
        secretStoreRef: { name: 'remote', kind: 'SecretStore' },
        target: { name: 'copy' },
        data: [{ secretKey: 'pw', remoteRef: { key: 'db', property: 'password' } }],
        dataFrom: [{ extract: { key: 'api' } }],
      }),
    );
    const out = await syncExternalSecret(
      { kube, config: testConfig(), log: createLogger('error', {}, () => {}), env: {} },
      'copy',
    );
    assert.equal(out.ok, true, out.message);
    const data = kube.object<Secret>(paths.secret('copy'))?.data ?? {};
    assert.deepEqual(
      Object.fromEntries(
        Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]),
      ),
      { pw: 'k8s-secret-1', key: 'k-1' },
    );
  });
});

describe('kubernetes provider connections', () => {
  const ctx = (
    spec: KubernetesProviderSpec,
    kube: KubeApi = new FakeKube(),
    env: NodeJS.ProcessEnv = {},
  ): ProviderContext => ({
    store: secretStore('remote', { kubernetes: spec }),
    namespace: NS,
    kube,
    config: testConfig(),
    env,
  });
  const cases = [
    { name: 'no server and no auth: the pod itself, through the agent’s own client', spec: {} },
    {
      name: 'server kubernetes.default (the CRD default): the pod itself',
      spec: { server: { url: 'kubernetes.default' } },
    },
    {
      name: 'auth.serviceAccount naming the pod’s own account, no audiences: the pod itself',
      spec: { auth: { serviceAccount: { name: 'app' } } },
    },
  ];
  for (const c of cases) {
    it(`uses ${c.name}`, async () => {
      const kube = new FakeKube();
      const conn = await connect(c.spec, ctx(c.spec, kube), LABEL);
      assert.equal(conn.identity, 'pod');
      assert.equal(conn.reader, kube);
      assert.deepEqual(kube.calls, [], 'no token requested');
    });
  }

  it('refuses a service account that is not the pod’s own', async () => {
    const spec = { auth: { serviceAccount: { name: 'admin' } } };
    await assert.rejects(connect(spec, ctx(spec), LABEL), (err: Error) => {
      assert.ok(err instanceof UnsupportedError);
      assert.match(
        err.message,
        /names service account app-ns\/admin, but this pod runs as app-ns\/app/,
      );
      return true;
    });
  });

  const bad = [
    {
      name: 'authRef',
      spec: { authRef: { name: 'kubeconfig', key: 'config' } },
      error: UnsupportedError,
      message: /authRef/,
    },
    {
      name: 'a plain http server',
      spec: { server: { url: 'http://10.0.0.1:6443' } },
      error: ConfigError,
      message: /must use https/,
    },
    {
      name: 'a caBundle that is not PEM',
      spec: { server: { url: 'https://10.0.0.1', caBundle: b64('nope') } },
      error: ConfigError,
      message: /caBundle/,
    },
    {
      name: 'a cert without its key',
      spec: {
        server: { url: 'https://10.0.0.1' },
        auth: { cert: { clientCert: { name: 'c', key: 'k' } } },
      },
      error: ConfigError,
      message: /clientCert and clientKey/,
    },
  ];
  for (const c of bad) {
    it(`refuses ${c.name}`, async () => {
      await assert.rejects(
        connect(c.spec as KubernetesProviderSpec, ctx(c.spec as KubernetesProviderSpec), LABEL),
        (err: Error) => {
          assert.ok(err instanceof c.error, err.message);
          assert.match(err.message, c.message);
          return true;
        },
      );
    });
  }

  it('reads a ClusterSecretStore’s token Secret from the ref namespace', async () => {
    const kube = new FakeKube();
    kube.put(paths.secret('remote-token', 'ops'), {
      metadata: { name: 'remote-token' },
      data: { token: b64('t-1\n') },
    });
    const spec = {
      server: { url: 'https://10.0.0.1:6443' },
      auth: { token: { bearerToken: { name: 'remote-token', key: 'token', namespace: 'ops' } } },
    };
    const conn = await connect(
      spec,
      { ...ctx(spec, kube), store: clusterSecretStore('shared', { kubernetes: spec }) },
      LABEL,
    );
    conn.close?.();
    assert.equal(conn.identity, 'token');
    assert.equal(conn.cluster, 'https://10.0.0.1:6443');
    assert.deepEqual(
      kube.calls.map((c) => c.path),
      [paths.secret('remote-token', 'ops')],
    );
  });
});

describe('kubernetes provider on the real API server', () => {
  let cp: ControlPlane;
  let core: k8s.CoreV1Api;
  let rbac: k8s.RbacAuthorizationV1Api;
  const id = `kp${process.pid}`;
  const app = `${id}-app`;
  const remote = `${id}-remote`;
  const certUser = `esa-${id}-cert`;
  let dir: string;
  let caFile: string;
  let readerTokenFile: string;
  let cert: { certPem: string; keyPem: string };
  const clients: KubeClient[] = [];

  /** The agent's own client, as the pod's service account `reader`. */
  const podKube = () => {
    const c = new KubeClient({ server: cp.server, caPem: cp.caPem, tokenFile: readerTokenFile });
    clients.push(c);
    return c;
  };
  const ctxFor = (
    spec: KubernetesProviderSpec,
    kube: KubeApi,
    extraEnv: NodeJS.ProcessEnv = {},
  ): ProviderContext => ({
    store: {
      apiVersion: 'external-secrets.io/v1',
      kind: 'SecretStore',
      metadata: { name: 'remote', namespace: app },
      spec: { provider: { kubernetes: spec } },
    },
    namespace: app,
    kube,
    config: testConfig({
      ESA_POD_NAMESPACE: app,
      ESA_SERVICE_ACCOUNT: 'reader',
      ESA_POD_UID: '',
      ESA_KUBE_CA_FILE: caFile,
    }),
    env: {
      KUBERNETES_SERVICE_HOST: '127.0.0.1',
      KUBERNETES_SERVICE_PORT: String(cp.port),
      ...extraEnv,
    },
  });
  const read = async (spec: KubernetesProviderSpec, kube: KubeApi, key = 'db'): Promise<string> => {
    const p: Provider = await createKubernetesProvider(spec, ctxFor(spec, kube));
    try {
      return String((await p.getSecret({ key }, signal())).value);
    } finally {
      p.close?.();
    }
  };
  /** The in-memory pod side holding the credentials Secrets and the CA ConfigMap. */
  const credentials = () => {
    const kube = new FakeKube();
    kube.put(paths.secret('remote-cert', app), {
      metadata: { name: 'remote-cert' },
      data: { 'tls.crt': b64(cert.certPem), 'tls.key': b64(cert.keyPem) },
    });
    kube.put(`/api/v1/namespaces/${app}/configmaps/remote-ca`, {
      metadata: { name: 'remote-ca' },
      data: { 'ca.crt': cp.caPem },
    });
    return kube;
  };

  before(async () => {
    cp = await useControlPlane();
    core = cp.kubeConfig.makeApiClient(k8s.CoreV1Api);
    rbac = cp.kubeConfig.makeApiClient(k8s.RbacAuthorizationV1Api);
    dir = mkdtempSync(path.join(tmpdir(), 'esa-kp-'));
    caFile = path.join(dir, 'ca.crt');
    writeFileSync(caFile, cp.caPem);
    cert = issueCert(dir, cp.ca, 'remote-cert', { commonName: certUser, client: true });

    await createNamespace(cp, app);
    await createNamespace(cp, remote);
    await core.createNamespacedServiceAccount({
      namespace: app,
      body: { metadata: { name: 'reader' } },
    });
    for (const [name, data, labels] of [
      ['db', { username: 'app', password: 'kp-secret-1' }, { team: 'a' }],
      ['api', { key: 'kp-key-1' }, { team: 'a' }],
      ['not-yours', { x: 'kp-hidden-1' }, { team: 'b' }],
    ] as const) {
      await core.createNamespacedSecret({
        namespace: remote,
        body: { metadata: { name, labels: { ...labels } }, stringData: { ...data } },
      });
    }
    // reader may get db, api and gone (which does not exist) and list Secrets in the remote
    // namespace; the certificate user may get db only; reader may request its own tokens.
    await rbac.createNamespacedRole({
      namespace: remote,
      body: {
        metadata: { name: 'readers' },
        rules: [
          {
            apiGroups: [''],
            resources: ['secrets'],
            resourceNames: ['db', 'api', 'gone'],
            verbs: ['get'],
          },
        ],
      },
    });
    await rbac.createNamespacedRole({
      namespace: remote,
      body: {
        metadata: { name: 'cert-reader' },
        rules: [{ apiGroups: [''], resources: ['secrets'], resourceNames: ['db'], verbs: ['get'] }],
      },
    });
    await rbac.createNamespacedRole({
      namespace: remote,
      body: {
        metadata: { name: 'lister' },
        rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['list'] }],
      },
    });
    await rbac.createNamespacedRole({
      namespace: app,
      body: {
        metadata: { name: 'own-token' },
        rules: [
          {
            apiGroups: [''],
            resources: ['serviceaccounts/token'],
            resourceNames: ['reader'],
            verbs: ['create'],
          },
        ],
      },
    });
    const bind = (ns: string, name: string, role: string, subject: k8s.RbacV1Subject) =>
      rbac.createNamespacedRoleBinding({
        namespace: ns,
        body: {
          metadata: { name },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role },
          subjects: [subject],
        },
      });
    const readerSa = { kind: 'ServiceAccount', name: 'reader', namespace: app };
    await bind(remote, 'reader', 'readers', readerSa);
    await bind(remote, 'reader-list', 'lister', readerSa);
    await bind(app, 'reader-token', 'own-token', readerSa);
    await bind(remote, 'cert-user', 'cert-reader', {
      kind: 'User',
      name: certUser,
      apiGroup: 'rbac.authorization.k8s.io',
    });

    const token = await core.createNamespacedServiceAccountToken({
      namespace: app,
      name: 'reader',
      body: { spec: { audiences: [], expirationSeconds: 3600 } },
    });
    readerTokenFile = path.join(dir, 'reader-token');
    writeFileSync(readerTokenFile, token.status!.token!);
  });

  after(async () => {
    for (const c of clients) c.close();
    for (const ns of [app, remote])
      await core?.deleteNamespace({ name: ns }).catch(() => undefined);
    await cp?.stop();
  });

  it('reads another namespace as the pod itself (no auth), and lists by labels', async () => {
    const spec = { remoteNamespace: remote };
    assert.equal(await read(spec, podKube()), '{"password":"kp-secret-1","username":"app"}');
    const p = await createKubernetesProvider(spec, ctxFor(spec, podKube()));
    assert.deepEqual(
      [...(await p.getAllSecrets!({ tags: { team: 'a' } }, signal())).keys()].sort(),
      ['api', 'db'],
    );
  });

  it('is refused a Secret its Role does not name, with the API server’s words and the missing permission', async () => {
    await assert.rejects(
      read({ remoteNamespace: remote }, podKube(), 'not-yours'),
      (err: Error) => {
        assert.ok(err instanceof ProviderError);
        assert.equal(
          err.message,
          `SecretStore ${app}/remote (kubernetes): cannot read Secret ${remote}/not-yours: 403 Forbidden: ` +
            `secrets "not-yours" is forbidden: User "system:serviceaccount:${app}:reader" cannot get resource "secrets" ` +
            `in API group "" in the namespace "${remote}" (missing permission: get on secrets/not-yours in namespace ${remote})`,
        );
        assert.doesNotMatch(err.message, /kp-hidden-1/);
        return true;
      },
    );
  });

  it('reports a Secret its Role names but that does not exist as NotFoundError', async () => {
    await assert.rejects(read({ remoteNamespace: remote }, podKube(), 'gone'), NotFoundError);
  });

  it('reads through server.url with caBundle and a token kept in a Secret', async () => {
    const kube = credentials();
    kube.put(paths.secret('remote-token', app), {
      metadata: { name: 'remote-token' },
      data: { token: b64(`${readFileSync(readerTokenFile, 'utf8')}\n`) },
    });
    const spec = {
      remoteNamespace: remote,
      server: { url: cp.server, caBundle: b64(cp.caPem) },
      auth: { token: { bearerToken: { name: 'remote-token', key: 'token' } } },
    };
    assert.match(await read(spec, kube), /kp-secret-1/);
  });

  it('reads through server.url with caProvider and a client certificate', async () => {
    const spec = {
      remoteNamespace: remote,
      server: {
        url: cp.server,
        caProvider: { type: 'ConfigMap' as const, name: 'remote-ca', key: 'ca.crt' },
      },
      auth: {
        cert: {
          clientCert: { name: 'remote-cert', key: 'tls.crt' },
          clientKey: { name: 'remote-cert', key: 'tls.key' },
        },
      },
    };
    assert.match(await read(spec, credentials()), /kp-secret-1/);
    await assert.rejects(
      read(spec, credentials(), 'api'),
      new RegExp(`User "${certUser}" cannot get resource "secrets"`),
    );
  });

  it('requests a token for the pod’s own service account when the store names audiences', async () => {
    const kube = podKube();
    const spec = {
      remoteNamespace: remote,
      auth: { serviceAccount: { name: 'reader', audiences: [cp.server] } },
    };
    const conn = await connect(spec, ctxFor(spec, kube), 'L');
    conn.close?.();
    assert.equal(conn.identity, 'serviceAccountToken');
    assert.match(await read(spec, kube), /kp-secret-1/);
  });

  it('does not trust a server whose CA it was not given', async () => {
    const spec = {
      remoteNamespace: remote,
      server: { url: cp.server },
      auth: {
        cert: {
          clientCert: { name: 'remote-cert', key: 'tls.crt' },
          clientKey: { name: 'remote-cert', key: 'tls.key' },
        },
      },
    };
    await assert.rejects(read(spec, credentials()), (err: Error) => {
      assert.ok(err instanceof ProviderError);
      assert.match(err.message, /unreachable: .*(self-signed|unable to verify|certificate)/i);
      return true;
    });
  });

  it('reports a remote API server that does not answer, naming it', async () => {
    const url = `https://127.0.0.1:${await freePort()}`;
    const spec = {
      remoteNamespace: remote,
      server: { url, caBundle: b64(cp.caPem) },
      auth: {
        cert: {
          clientCert: { name: 'remote-cert', key: 'tls.crt' },
          clientKey: { name: 'remote-cert', key: 'tls.key' },
        },
      },
    };
    await assert.rejects(read(spec, credentials()), (err: Error) => {
      assert.ok(err instanceof ProviderError);
      assert.match(
        err.message,
        new RegExp(
          `cannot read Secret ${remote}/db: API server ${url.replace(/\./g, '\\.')} unreachable: .*ECONNREFUSED`,
        ),
      );
      return true;
    });
  });
});
