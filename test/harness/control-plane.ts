/**
 * A real Kubernetes control plane on 127.0.0.1: etcd and kube-apiserver built from the Go
 * module proxy (test/harness/build-control-plane.sh, cached outside the checkout), with a fresh
 * CA, serving certificate, service-account signing keys and an admin client certificate per run.
 *
 * What runs: RBAC authorization, the default admission chain (ServiceAccount, PodSecurity,
 * MutatingAdmissionWebhook, ...), TokenRequest/TokenReview. What does not: controller-manager and
 * scheduler. So nothing creates a namespace's `default` ServiceAccount or its `kube-root-ca.crt`
 * ConfigMap, and pods stay Pending; `createNamespace` below does the first two by hand, and
 * test/harness/kubelet.ts plays the kubelet for the agent's containers.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import { createCa, createSigningKey, issueCert, type CertFiles } from './pki.ts';
import { freePort, logRoot, startProcess, waitFor, type Managed } from './processes.ts';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Audiences the API server accepts in tokens, besides its own issuer. */
export const EXTRA_AUDIENCES = ['sts.amazonaws.com', 'vault', 'api://AzureADTokenExchange', 'external-secrets-agent'];

/** Connection details, enough to reach a running control plane from another process. */
export interface ControlPlaneInfo {
  server: string;
  port: number;
  issuer: string;
  dir: string;
  logDir: string;
  caFile: string;
  caKeyFile: string;
  adminCertFile: string;
  adminKeyFile: string;
  kubeconfigFile: string;
  saPublicKeyFile: string;
  /** The API server's audit log (JSON lines, level Metadata): what each user did. */
  auditLogFile: string;
}

export interface ControlPlane extends ControlPlaneInfo {
  caPem: string;
  ca: CertFiles;
  kubeConfig: k8s.KubeConfig;
  /** Stops the processes this harness started (a no-op for a shared, borrowed one). */
  stop(): Promise<void>;
}

/**
 * Makes sure kube-apiserver and etcd are built and returns their folder. The first call on a
 * machine builds them (minutes; progress on stderr); later calls return at once.
 */
export function controlPlaneBinaries(): string {
  try {
    return execFileSync('bash', [path.join(here, 'build-control-plane.sh')], {
      stdio: ['ignore', 'pipe', 'inherit'],
      encoding: 'utf8',
    }).trim();
  } catch (err) {
    throw new Error(`could not build kube-apiserver/etcd (test/harness/build-control-plane.sh): ${(err as Error).message}`);
  }
}

export async function startControlPlane(options: { logDir?: string } = {}): Promise<ControlPlane> {
  const bin = controlPlaneBinaries();
  const dir = mkdtempSync(path.join(tmpdir(), 'esa-cp-'));
  const logDir = options.logDir ?? logRoot();
  mkdirSync(logDir, { recursive: true });

  // PKI: the CA signs the serving cert and the admin client cert; its key stays available so
  // tests can issue webhook serving certs the API server trusts through a caBundle.
  const ca = createCa(dir);
  issueCert(dir, ca, 'serving', { commonName: 'kube-apiserver', hosts: ['127.0.0.1', 'localhost'] });
  issueCert(dir, ca, 'admin', { commonName: 'admin', organizations: ['system:masters'], client: true });
  const sa = createSigningKey(dir);
  // Audit every request at Metadata level (never request or response bodies, which would hold
  // Secret data): tests read it to prove who wrote what, or that nothing was written.
  const auditPolicy = path.join(dir, 'audit-policy.yaml');
  writeFileSync(auditPolicy, 'apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n');
  const auditLogFile = path.join(logDir, `audit-${path.basename(dir)}.log`);

  const [etcdClient, etcdPeer, port] = [await freePort(), await freePort(), await freePort()];
  const server = `https://127.0.0.1:${port}`;
  const processes: Managed[] = [];
  const stopAll = async () => {
    for (const p of processes.reverse()) await p.stop();
  };

  try {
    const etcd = startProcess('etcd', path.join(bin, 'etcd'), [
      '--name=esa-test', `--data-dir=${path.join(dir, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${etcdClient}`, `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`, `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=esa-test=http://127.0.0.1:${etcdPeer}`,
      '--listen-metrics-urls=', '--unsafe-no-fsync', '--log-level=warn',
    ], { logDir });
    processes.push(etcd);
    await waitFor('etcd', async () => (await fetch(`http://127.0.0.1:${etcdClient}/health`)).ok, { proc: etcd, timeoutMs: 30_000 });

    const apiserver = startProcess('kube-apiserver', path.join(bin, 'kube-apiserver'), [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      '--bind-address=127.0.0.1', `--secure-port=${port}`,
      // Without these the API server advertises the host's own address and reconciles the
      // `kubernetes` Service endpoints to it; tests must stay on loopback.
      '--advertise-address=127.0.0.1', '--endpoint-reconciler-type=none',
      `--tls-cert-file=${path.join(dir, 'serving.crt')}`, `--tls-private-key-file=${path.join(dir, 'serving.key')}`,
      `--client-ca-file=${ca.cert}`,
      '--authorization-mode=RBAC',
      `--service-account-issuer=${server}`,
      `--service-account-key-file=${sa.pub}`, `--service-account-signing-key-file=${sa.key}`,
      `--api-audiences=${[server, ...EXTRA_AUDIENCES].join(',')}`,
      '--service-cluster-ip-range=10.0.0.0/24', '--allow-privileged=true',
      `--cert-dir=${path.join(dir, 'apiserver-certs')}`,
      `--audit-policy-file=${auditPolicy}`, `--audit-log-path=${auditLogFile}`,
      '--audit-log-mode=blocking', '--audit-log-format=json',
      '--profiling=false', '--v=1',
    ], { logDir });
    processes.push(apiserver);

    const info: ControlPlaneInfo = {
      server, port, issuer: server, dir, logDir,
      caFile: ca.cert, caKeyFile: ca.key,
      adminCertFile: path.join(dir, 'admin.crt'), adminKeyFile: path.join(dir, 'admin.key'),
      kubeconfigFile: path.join(dir, 'kubeconfig'),
      saPublicKeyFile: sa.pub,
      auditLogFile,
    };
    writeFileSync(info.kubeconfigFile, kubeconfigYaml(info));
    const agent = new https.Agent({
      ca: ca.certPem,
      cert: readFileSync(info.adminCertFile),
      key: readFileSync(info.adminKeyFile),
    });
    await waitFor('kube-apiserver /readyz', () => httpsOk(`${server}/readyz`, agent), { proc: apiserver, timeoutMs: 90_000, intervalMs: 300 });
    agent.destroy();

    const cp = connectControlPlane(info);
    return {
      ...cp,
      stop: async () => {
        await stopAll();
        if (process.env.ESA_KEEP_TEST_DIRS !== 'true') rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** A ControlPlane handle for one started elsewhere (for example by scripts/test.ts). */
export function connectControlPlane(info: ControlPlaneInfo): ControlPlane {
  const kubeConfig = new k8s.KubeConfig();
  kubeConfig.loadFromFile(info.kubeconfigFile);
  const caPem = readFileSync(info.caFile, 'utf8');
  return {
    ...info,
    caPem,
    ca: { cert: info.caFile, key: info.caKeyFile, certPem: caPem, keyPem: readFileSync(info.caKeyFile, 'utf8') },
    kubeConfig,
    stop: async () => {},
  };
}

function kubeconfigYaml(info: ControlPlaneInfo): string {
  return `apiVersion: v1
kind: Config
clusters:
- name: esa-test
  cluster:
    server: ${info.server}
    certificate-authority: ${info.caFile}
users:
- name: admin
  user:
    client-certificate: ${info.adminCertFile}
    client-key: ${info.adminKeyFile}
contexts:
- name: esa-test
  context: {cluster: esa-test, user: admin}
current-context: esa-test
`;
}

function httpsOk(url: string, agent: https.Agent): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { agent, timeout: 5_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/**
 * Creates a namespace with what a controller-manager would add to it: the `default`
 * ServiceAccount and the `kube-root-ca.crt` ConfigMap (the projected service-account volume
 * reads the CA from it). Labels are set on the namespace as given.
 */
export async function createNamespace(cp: ControlPlane, name: string, labels: Record<string, string> = {}): Promise<void> {
  const core = cp.kubeConfig.makeApiClient(k8s.CoreV1Api);
  await core.createNamespace({ body: { metadata: { name, labels } } });
  await core.createNamespacedServiceAccount({ namespace: name, body: { metadata: { name: 'default' } } });
  await core.createNamespacedConfigMap({
    namespace: name,
    body: { metadata: { name: 'kube-root-ca.crt' }, data: { 'ca.crt': cp.caPem } },
  });
}

export interface AuditEvent {
  verb: string;
  user: { username: string };
  objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string; apiGroup?: string };
  responseStatus?: { code?: number };
  requestReceivedTimestamp: string;
}

/** Audit events recorded so far, optionally only those of one user (e.g. a service account). */
export function auditEvents(cp: ControlPlaneInfo, username?: string): AuditEvent[] {
  let text = '';
  try {
    text = readFileSync(cp.auditLogFile, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as AuditEvent)
    .filter((e) => username === undefined || e.user.username === username);
}

/** The running shared control plane described by $ESA_TEST_ENV, if scripts/test.ts started one. */
export function sharedControlPlaneInfo(): ControlPlaneInfo | undefined {
  const file = process.env.ESA_TEST_ENV;
  if (!file) return undefined;
  const env = JSON.parse(readFileSync(file, 'utf8')) as { controlPlane?: ControlPlaneInfo };
  return env.controlPlane;
}

/**
 * The control plane for a test file: the shared one when the suite runs under `npm test`, or a
 * private one (stopped by the returned handle's `stop`) when a file runs on its own.
 */
export async function useControlPlane(): Promise<ControlPlane> {
  const shared = sharedControlPlaneInfo();
  return shared ? connectControlPlane(shared) : startControlPlane();
}
