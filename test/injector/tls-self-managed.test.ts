/**
 * The self-managed certificate against a real kube-apiserver (test/harness): the Secret as the
 * source of truth, conditional writes between replicas, the caBundle, renewal and CA rotation,
 * and the injector process serving pods with a certificate it made, as a service account with
 * only the permissions the injector documents.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import { createLogger } from '../../agent/log.ts';
import {
  createSelfManagedTls,
  type SelfManagedTlsOptions,
  serviceHosts,
} from '../../injector/tls-self-managed.ts';
import type { KeyPair } from '../../injector/tls.ts';
import {
  auditEvents,
  type ControlPlane,
  createNamespace,
  useControlPlane,
} from '../harness/control-plane.ts';
import { INJECT_LABEL } from '../harness/injector.ts';
import { freePort, logRoot, type Managed, startProcess, waitFor } from '../harness/processes.ts';

const NS = 'tls-self-managed';
const PODS_NS = 'tls-self-managed-pods';
const DAY_MS = 24 * 60 * 60 * 1000;
const cli = fileURLToPath(new URL('../../cli.ts', import.meta.url));

describe('self-managed TLS against the API server', () => {
  let cp: ControlPlane;
  let core: k8s.CoreV1Api;
  let admission: k8s.AdmissionregistrationV1Api;
  let n = 0;

  before(async () => {
    cp = await useControlPlane();
    core = cp.kubeConfig.makeApiClient(k8s.CoreV1Api);
    admission = cp.kubeConfig.makeApiClient(k8s.AdmissionregistrationV1Api);
    await createNamespace(cp, NS);
    await createNamespace(cp, PODS_NS);
  });

  after(async () => {
    await cp?.stop();
  });

  /**
   * A webhook configuration with two webhooks and no caBundle, that never matches a pod (its
   * namespaceSelector names a namespace that does not exist) unless `namespace` is given.
   */
  async function createWebhookConfig(name: string, url: string, namespace = 'no-such-namespace') {
    const webhook = (hookName: string): k8s.V1MutatingWebhook => ({
      name: hookName,
      admissionReviewVersions: ['v1'],
      clientConfig: { url },
      rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }],
      objectSelector: { matchLabels: { [INJECT_LABEL]: 'true' } },
      namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: [namespace] }] },
      failurePolicy: 'Fail',
      sideEffects: 'None',
      timeoutSeconds: 10,
    });
    await admission.createMutatingWebhookConfiguration({
      body: { metadata: { name }, webhooks: [webhook('inject.agent.external-secrets.io'), webhook('second.agent.external-secrets.io')] },
    });
  }

  /** Fresh names for one test, a webhook configuration, and a manager factory with a clock. */
  async function scenario(extra: Partial<SelfManagedTlsOptions> = {}) {
    n++;
    const secretName = `esa-tls-${n}`;
    const webhookConfigName = `esa-tls-test-${n}`;
    await createWebhookConfig(webhookConfigName, 'https://127.0.0.1:9/mutate');
    const clock = { ms: Date.now() };
    const logs: string[] = [];
    const manager = (more: Partial<SelfManagedTlsOptions> = {}) =>
      createSelfManagedTls({
        kubeConfig: cp.kubeConfig,
        namespace: NS,
        secretName,
        webhookConfigName,
        hosts: serviceHosts('esa-injector', NS),
        log: createLogger('debug', { component: 'injector' }, (line) => logs.push(line)),
        caPropagationMs: 0,
        now: () => new Date(clock.ms),
        ...extra,
        ...more,
      });
    const secret = async () => core.readNamespacedSecret({ namespace: NS, name: secretName });
    const secretText = async (key: string) => Buffer.from((await secret()).data![key]!, 'base64').toString('utf8');
    const bundles = async () => {
      const config = await admission.readMutatingWebhookConfiguration({ name: webhookConfigName });
      return (config.webhooks ?? []).map((w) => pemCerts(Buffer.from(w.clientConfig.caBundle ?? '', 'base64').toString('utf8')));
    };
    const configVersion = async () =>
      (await admission.readMutatingWebhookConfiguration({ name: webhookConfigName })).metadata!.resourceVersion;
    return { secretName, webhookConfigName, clock, logs, manager, secret, secretText, bundles, configVersion };
  }

  it('creates the Secret and puts its CA in every caBundle on first start', async () => {
    const s = await scenario();
    const pair = await s.manager().sync();

    const secret = await s.secret();
    assert.equal(secret.type, 'kubernetes.io/tls');
    assert.deepEqual(Object.keys(secret.data ?? {}).sort(), ['ca.crt', 'ca.key', 'tls.crt', 'tls.key']);
    assert.equal(await s.secretText('tls.crt'), pair.certPem);

    const ca = new X509Certificate(await s.secretText('ca.crt'));
    const cert = new X509Certificate(pair.certPem);
    assert.equal(ca.ca, true);
    assert.ok(cert.verify(ca.publicKey), 'the serving certificate is signed by the CA');
    for (const host of serviceHosts('esa-injector', NS)) assert.equal(cert.checkHost(host), host);
    const lifetime = pair.notAfter.getTime() - Date.now();
    assert.ok(lifetime > 360 * DAY_MS && lifetime <= 365 * DAY_MS, 'one year by default');

    assert.deepEqual((await s.bundles()).map((b) => b.map(fingerprint)), [[ca.fingerprint256], [ca.fingerprint256]]);
  });

  it('lets replicas that start together agree on one certificate: one create wins, the rest re-read', async () => {
    const s = await scenario();
    const replicas = [s.manager(), s.manager(), s.manager(), s.manager()];
    const pairs = await Promise.all(replicas.map((r) => r.sync()));

    assert.equal(new Set(pairs.map((p) => p.fingerprint)).size, 1, 'every replica serves the same certificate');
    assert.equal(await s.secretText('tls.crt'), pairs[0]!.certPem);
    const creates = auditEvents(cp).filter((e) =>
      e.verb === 'create' && e.objectRef?.resource === 'secrets' && e.objectRef.namespace === NS &&
      e.objectRef.name === s.secretName);
    assert.equal(creates.filter((e) => e.responseStatus?.code === 201).length, 1, 'one create succeeded');
    const conflicts = creates.filter((e) => e.responseStatus?.code === 409).length;
    const rereads = s.logs.filter((l) => l.includes('another replica wrote the TLS secret first')).length;
    assert.ok(conflicts >= 1, 'the replicas raced (all four read before any wrote)');
    assert.equal(rereads, conflicts, 'each replica that lost the race used the winner\'s certificate');
    assert.equal((await s.bundles())[0]!.length, 1, 'one CA in the caBundle');
  });

  it('keeps a good Secret as it is: a restart writes nothing', async () => {
    const s = await scenario();
    const first = await s.manager().sync();
    const version = (await s.secret()).metadata!.resourceVersion;
    const configVersion = await s.configVersion();
    const again = await s.manager().sync();
    assert.equal(again.fingerprint, first.fingerprint);
    assert.equal((await s.secret()).metadata!.resourceVersion, version);
    assert.equal(await s.configVersion(), configVersion);
  });

  it('renews the serving certificate at 2/3 of its lifetime under the same CA, leaving the caBundle alone', async () => {
    const s = await scenario({ certLifetimeMs: 30 * DAY_MS });
    const first = await s.manager().sync();
    const caBefore = await s.secretText('ca.crt');
    const configVersion = await s.configVersion();

    s.clock.ms += 19 * DAY_MS; // before 2/3 of 30 days
    assert.equal((await s.manager().sync()).fingerprint, first.fingerprint);

    s.clock.ms += 2 * DAY_MS; // past 2/3
    const renewed = await s.manager().sync();
    assert.notEqual(renewed.fingerprint, first.fingerprint);
    assert.ok(renewed.notAfter > first.notAfter);
    assert.equal(await s.secretText('ca.crt'), caBefore, 'the CA is kept');
    assert.equal(await s.configVersion(), configVersion, 'the caBundle is not touched');
    assert.ok(s.logs.some((l) => l.includes('serving certificate renewed')));
  });

  it('rotates the CA at 2/3 of its lifetime, trusting old and new until the old one expires', async () => {
    const s = await scenario({ caLifetimeMs: 90 * DAY_MS, certLifetimeMs: 30 * DAY_MS });
    await s.manager().sync();
    const oldCa = new X509Certificate(await s.secretText('ca.crt'));

    s.clock.ms += 61 * DAY_MS;
    const pair = await s.manager().sync();
    const newCa = new X509Certificate(await s.secretText('ca.crt'));
    assert.notEqual(newCa.fingerprint256, oldCa.fingerprint256, 'a new CA');
    assert.ok(new X509Certificate(pair.certPem).verify(newCa.publicKey));
    for (const bundle of await s.bundles()) {
      assert.deepEqual(bundle.map(fingerprint), [oldCa.fingerprint256, newCa.fingerprint256]);
    }

    s.clock.ms += 30 * DAY_MS; // the old CA has expired
    await s.manager().sync();
    for (const bundle of await s.bundles()) assert.deepEqual(bundle.map(fingerprint), [newCa.fingerprint256]);
  });

  it('replaces a Secret whose certificate is broken or does not cover the hosts', async () => {
    const s = await scenario();
    const first = await s.manager().sync();
    const secret = await s.secret();
    secret.data!['tls.crt'] = Buffer.from('not a certificate').toString('base64');
    await core.replaceNamespacedSecret({ namespace: NS, name: s.secretName, body: secret });
    const repaired = await s.manager().sync();
    assert.notEqual(repaired.fingerprint, first.fingerprint);
    assert.equal(await s.secretText('tls.crt'), repaired.certPem);

    const wider = await s.manager({ hosts: [...serviceHosts('esa-injector', NS), '127.0.0.1'] }).sync();
    assert.equal(new X509Certificate(wider.certPem).checkIP('127.0.0.1'), '127.0.0.1');
  });

  it('fills a Secret created beforehand (by a chart), keeping its type, labels and annotations', async () => {
    const s = await scenario();
    const marks = {
      labels: { 'app.kubernetes.io/managed-by': 'Helm' },
      annotations: { 'meta.helm.sh/release-name': 'esa', 'meta.helm.sh/release-namespace': NS },
    };
    await core.createNamespacedSecret({
      namespace: NS,
      body: { metadata: { name: s.secretName, ...marks }, type: 'Opaque', data: {} },
    });
    const pair = await s.manager().sync();
    const secret = await s.secret();
    assert.equal(secret.type, 'Opaque');
    assert.deepEqual(secret.metadata!.labels, marks.labels);
    assert.deepEqual(secret.metadata!.annotations, marks.annotations);
    assert.equal(await s.secretText('tls.crt'), pair.certPem);
  });

  it('puts the CA back into a caBundle that was reset, and keeps certificates already there', async () => {
    const s = await scenario();
    await s.manager().sync();
    const ca = new X509Certificate(await s.secretText('ca.crt'));
    const foreign = new X509Certificate(cp.caPem);
    await admission.patchMutatingWebhookConfiguration({
      name: s.webhookConfigName,
      body: [{ op: 'replace', path: '/webhooks/0/clientConfig/caBundle', value: Buffer.from(cp.caPem).toString('base64') }],
    });
    await s.manager().sync();
    const [first, second] = await s.bundles();
    assert.deepEqual(first!.map(fingerprint), [foreign.fingerprint256, ca.fingerprint256]);
    assert.deepEqual(second!.map(fingerprint), [ca.fingerprint256]);
  });

  it('names the missing MutatingWebhookConfiguration when there is none', async () => {
    const s = await scenario();
    await assert.rejects(s.manager({ webhookConfigName: 'no-such-config' }).sync(),
      /reading MutatingWebhookConfiguration no-such-config: HTTP 404/);
  });

  it('renews on its own before expiry while running, every replica switching to the same certificate', async () => {
    // Six seconds of lifetime: renewed after about four.
    const s = await scenario({ certLifetimeMs: 6_000, now: () => new Date() });
    const replicas = [s.manager(), s.manager()];
    const firsts = await Promise.all(replicas.map((r) => r.sync()));
    const served: KeyPair[][] = [[], []];
    replicas.forEach((r, i) => r.start(firsts[i]!, (pair) => served[i]!.push(pair)));
    try {
      await waitFor('both replicas renewed', async () => served.every((list) => list.length >= 1), { timeoutMs: 15_000, intervalMs: 100 });
      const [a, b] = served.map((list) => list[0]!);
      assert.equal(a!.fingerprint, b!.fingerprint, 'the replicas agree on the renewed certificate');
      assert.notEqual(a!.fingerprint, firsts[0]!.fingerprint);
      assert.ok(a!.notBefore.getTime() < firsts[0]!.notAfter.getTime(), 'renewed before the old one expired');
    } finally {
      await Promise.all(replicas.map((r) => r.stop()));
    }
  });

  describe('the injector process with --tls-self-managed', () => {
    let proc: Managed | undefined;
    let dir: string;

    after(async () => {
      await proc?.stop();
      await admission.deleteMutatingWebhookConfiguration({ name: 'esa-self-managed' }).catch(() => undefined);
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('serves pods through the API server with a certificate it made, holding only its documented permissions', async () => {
      dir = mkdtempSync(path.join(tmpdir(), 'esa-self-managed-'));
      const kubeconfig = await leastPrivilegeKubeconfig(dir);
      const port = await freePort();
      await createWebhookConfig('esa-self-managed', `https://127.0.0.1:${port}/mutate`, PODS_NS);

      proc = startProcess(`injector-self-managed-${port}`, process.execPath, [
        cli, 'injector', '--host=127.0.0.1', `--port=${port}`, '--agent-image=external-secrets-agent:dev',
        '--tls-self-managed', '--webhook-config-name=esa-self-managed', '--tls-secret-name=esa-injector-tls',
        `--tls-secret-namespace=${NS}`, '--tls-service-name=esa-injector', '--tls-extra-hosts=127.0.0.1',
      ], { env: { PATH: process.env.PATH, KUBECONFIG: kubeconfig }, logDir: logRoot() });

      const caBundle = async () =>
        (await admission.readMutatingWebhookConfiguration({ name: 'esa-self-managed' })).webhooks![0]!.clientConfig.caBundle;
      await waitFor('the caBundle', async () => Boolean(await caBundle()), { proc, timeoutMs: 30_000 });
      const caPem = Buffer.from((await caBundle())!, 'base64').toString('utf8');
      await waitFor('/healthz with the new CA', () => healthz(port, caPem), { proc, timeoutMs: 30_000 });

      await core.createNamespacedPod({
        namespace: PODS_NS,
        body: {
          metadata: { name: 'through-self-managed', labels: { [INJECT_LABEL]: 'true' }, annotations: { 'agent.external-secrets.io/external-secrets': 'db-creds' } },
          spec: { containers: [{ name: 'app', image: 'app:1' }] },
        },
      });
      const pod = await core.readNamespacedPod({ namespace: PODS_NS, name: 'through-self-managed' });
      assert.deepEqual(pod.spec!.initContainers?.map((c) => c.name), ['inject-init', 'inject-sidecar']);
      assert.match(proc.output(), /"msg":"CA and serving certificate created"/);
      assert.doesNotMatch(proc.output(), /PRIVATE KEY/);
    });
  });

  /**
   * A kubeconfig for a service account bound to exactly the permissions tls-self-managed.ts
   * lists: get/create/update on Secrets in its namespace, get/patch on its webhook configuration.
   */
  async function leastPrivilegeKubeconfig(dir: string): Promise<string> {
    const rbac = cp.kubeConfig.makeApiClient(k8s.RbacAuthorizationV1Api);
    await core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name: 'esa-injector' } } });
    await rbac.createNamespacedRole({
      namespace: NS,
      body: {
        metadata: { name: 'esa-injector-tls' },
        rules: [
          { apiGroups: [''], resources: ['secrets'], resourceNames: ['esa-injector-tls'], verbs: ['get', 'update'] },
          { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
        ],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: NS,
      body: {
        metadata: { name: 'esa-injector-tls' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'esa-injector-tls' },
        subjects: [{ kind: 'ServiceAccount', name: 'esa-injector', namespace: NS }],
      },
    });
    await rbac.createClusterRole({
      body: {
        metadata: { name: 'esa-self-managed-webhook' },
        rules: [{ apiGroups: ['admissionregistration.k8s.io'], resources: ['mutatingwebhookconfigurations'], resourceNames: ['esa-self-managed'], verbs: ['get', 'patch'] }],
      },
    });
    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name: 'esa-self-managed-webhook' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'esa-self-managed-webhook' },
        subjects: [{ kind: 'ServiceAccount', name: 'esa-injector', namespace: NS }],
      },
    });
    const token = await core.createNamespacedServiceAccountToken({
      namespace: NS,
      name: 'esa-injector',
      body: { spec: { audiences: [], expirationSeconds: 3600 } },
    });
    const file = path.join(dir, 'kubeconfig');
    writeFileSync(file, `apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "${cp.server}", certificate-authority: "${cp.caFile}"}}]
users: [{name: esa-injector, user: {token: "${token.status!.token}"}}]
contexts: [{name: test, context: {cluster: test, user: esa-injector}}]
current-context: test
`, { mode: 0o600 });
    return file;
  }
});

function pemCerts(text: string): X509Certificate[] {
  return (text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []).map((p) => new X509Certificate(p));
}

function fingerprint(cert: X509Certificate): string {
  return cert.fingerprint256;
}

function healthz(port: number, ca: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    https.get({ host: '127.0.0.1', port, path: '/healthz', ca, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    }).on('error', reject);
  });
}
