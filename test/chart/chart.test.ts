/**
 * The Helm chart (charts/external-secrets-agent), with the helm binary from test/harness/tools.ts:
 * `helm lint --strict`, `helm template` snapshots, the values schema, the injector flags the
 * Deployment passes, the webhook configuration of acceptance case I09, the TLS material of
 * `tls.mode: helm`, and a server-side dry-run of every rendered object against the real API
 * server of test/harness.
 *
 * Snapshots live in test/chart/snapshots/; regenerate them with
 * `UPDATE_SNAPSHOTS=1 npx node --test test/chart/chart.test.ts` and review the diff.
 * `tls.mode: helm` generates a random CA and certificate at every render, so it is not
 * snapshotted: its structure is asserted instead.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as yaml from 'js-yaml';
import { parseInjectorConfig } from '../../injector/config.ts';
import { DEFAULT_AGENT_IMAGE } from '../../injector/inject-command.ts';
import { createNamespace, useControlPlane, type ControlPlane } from '../harness/control-plane.ts';
import { installCrds } from '../harness/quickstart.ts';
import { helmPath, kubectl, type ToolResult } from '../harness/tools.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const chartDir = path.join(repoRoot, 'charts/external-secrets-agent');
const snapshotDir = path.join(repoRoot, 'test/chart/snapshots');
const customValues = path.join(repoRoot, 'test/chart/values/custom.yaml');

const RELEASE = 'esa';
const NAMESPACE = 'chart-esa';
const FULLNAME = 'esa-external-secrets-agent';
/**
 * The RBAC checks apply objects for real; they use a release and namespace of their own, so
 * that the lookup checks (`helm template --dry-run=server`, which refuses to take over objects
 * Helm did not create) do not find them.
 */
const RBAC_RELEASE = 'esa-rbac';
const RBAC_NAMESPACE = 'chart-esa-rbac';
const RBAC_FULLNAME = 'esa-rbac-external-secrets-agent';
/** Pinned so that `agent.nativeSidecars: auto` renders the same everywhere. */
const KUBE_VERSION = '1.36.3';
/** A stand-in CA bundle for tls.mode secret: the API server stores it without parsing it. */
const CA_BUNDLE = Buffer.from('-----BEGIN CERTIFICATE-----\nTestOnly\n-----END CERTIFICATE-----\n')
  .toString('base64');

// Helm keeps caches and repository settings under these; a temporary folder keeps the
// machine's own Helm setup out of the tests and the tests out of it.
const helmHome = mkdtempSync(path.join(tmpdir(), 'esa-helm-'));
const helmEnv = {
  ...process.env,
  HELM_CACHE_HOME: path.join(helmHome, 'cache'),
  HELM_CONFIG_HOME: path.join(helmHome, 'config'),
  HELM_DATA_HOME: path.join(helmHome, 'data'),
};

function helm(args: string[]): ToolResult {
  const r = spawnSync(helmPath(), args, { encoding: 'utf8', env: helmEnv, timeout: 60_000 });
  return {
    status: r.status ?? -1,
    stdout: r.stdout ?? '',
    stderr: (r.stderr ?? '') + (r.error ? String(r.error) : ''),
  };
}

/** `helm template` of the chart as release esa in namespace chart-esa; fails the test on error. */
function render(args: string[] = [], release = RELEASE, namespace = NAMESPACE): string {
  const r = helm(['template', release, chartDir, '--namespace', namespace, '--kube-version', KUBE_VERSION, ...args]);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; annotations?: Record<string, string> };
  [field: string]: unknown;
}

/** The rendered objects, read as kubectl reads YAML (1.1: `0440` is octal). */
function objects(text: string): K8sObject[] {
  return yaml.loadAll(text, { schema: yaml.YAML11_SCHEMA }).filter((d) => d !== null) as K8sObject[];
}

function find<T = K8sObject>(list: K8sObject[], kind: string, name?: string): T {
  const found = list.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  assert.ok(found, `${kind} ${name ?? ''} is rendered`);
  return found as T;
}

interface Webhook {
  name: string;
  clientConfig: { service: Record<string, unknown>; caBundle?: string };
  rules: unknown[];
  objectSelector: unknown;
  namespaceSelector: { matchExpressions: { key: string; operator: string; values: string[] }[] };
  failurePolicy: string;
  sideEffects: string;
  timeoutSeconds: number;
  reinvocationPolicy: string;
  admissionReviewVersions: string[];
}
const webhookOf = (list: K8sObject[]) =>
  (find(list, 'MutatingWebhookConfiguration') as unknown as { webhooks: Webhook[] }).webhooks;

interface PodTemplate {
  metadata: { annotations?: Record<string, string> };
  spec: {
    containers: { name: string; args: string[]; [field: string]: unknown }[];
    volumes: { name: string; secret?: { secretName: string } }[];
    [field: string]: unknown;
  };
}
const podTemplateOf = (list: K8sObject[]) =>
  (find(list, 'Deployment') as unknown as { spec: { template: PodTemplate } }).spec.template;

/** Each TLS choice that renders the same every time, plus one with most values changed. */
const SNAPSHOT_CASES = [
  { name: 'tls-cert-manager', args: ['--set', 'tls.mode=certManager'] },
  {
    name: 'tls-cert-manager-cluster-issuer',
    args: [
      '--set', 'tls.mode=certManager',
      '--set', 'tls.certManager.issuerRef.name=corporate-ca',
      '--set', 'tls.certManager.issuerRef.kind=ClusterIssuer',
    ],
  },
  {
    name: 'tls-secret',
    args: ['--set', 'tls.mode=secret', '--set', 'tls.secret.name=injector-tls', '--set', `tls.secret.caBundle=${CA_BUNDLE}`],
  },
  { name: 'tls-self-managed', args: ['--set', 'tls.mode=selfManaged'] },
  { name: 'custom-values', args: ['--values', customValues] },
];

after(() => rmSync(helmHome, { recursive: true, force: true }));

describe('helm lint --strict', () => {
  const cases = [{ name: 'the default values (tls.mode helm)', args: [] as string[] }, ...SNAPSHOT_CASES];
  for (const c of cases) {
    it(`passes with ${c.name}`, () => {
      const r = helm(['lint', '--strict', chartDir, ...c.args]);
      assert.equal(r.status, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    });
  }
});

describe('helm template snapshots', () => {
  for (const c of SNAPSHOT_CASES) {
    it(`renders ${c.name} as in snapshots/${c.name}.yaml`, () => {
      const out = render(c.args);
      const file = path.join(snapshotDir, `${c.name}.yaml`);
      if (process.env.UPDATE_SNAPSHOTS === '1') writeFileSync(file, out);
      assert.ok(existsSync(file), `no snapshot ${file}: run with UPDATE_SNAPSHOTS=1 and review it`);
      assert.equal(out, readFileSync(file, 'utf8'), `${c.name} differs from its snapshot`);
    });
  }

  it('renders the same output twice (no randomness outside tls.mode helm)', () => {
    for (const c of SNAPSHOT_CASES) assert.equal(render(c.args), render(c.args), c.name);
  });
});

describe('values schema', () => {
  const cases = [
    { name: 'a misspelt top-level value', args: ['--set', 'replicaCont=3'], expected: /replicaCont/ },
    { name: 'a misspelt nested value', args: ['--set', 'injector.logLvel=debug'], expected: /logLvel/ },
    { name: 'timeoutSeconds 30', args: ['--set', 'webhook.timeoutSeconds=30'], expected: /timeoutSeconds.*maximum|maximum.*30/s },
    { name: 'an unknown tls.mode', args: ['--set', 'tls.mode=vault'], expected: /tls\/mode/ },
    { name: 'tls.mode secret without its Secret', args: ['--set', 'tls.mode=secret'], expected: /tls\/secret\/name/ },
    {
      name: 'a memory quantity with a space',
      args: ['--set', 'agent.resources.requests.memory=1 GB'],
      expected: /agent\/resources\/requests\/memory/,
    },
    { name: 'nativeSidecars yes', args: ['--set', 'agent.nativeSidecars=yes'], expected: /nativeSidecars/ },
    {
      name: 'a token lifetime under 600 s',
      args: ['--set', 'agent.tokenExpirationSeconds=60'],
      expected: /tokenExpirationSeconds/,
    },
  ];
  for (const c of cases) {
    it(`rejects ${c.name}, naming it`, () => {
      const r = helm(['template', RELEASE, chartDir, ...c.args]);
      assert.notEqual(r.status, 0, `accepted: ${c.args.join(' ')}`);
      assert.match(r.stderr, /values don't meet the specifications of the schema/);
      assert.match(r.stderr, c.expected);
    });
  }

  it('accepts the values file that changes most values', () => {
    render(['--values', customValues]);
  });
});

describe('values.yaml and the chart README', () => {
  const schema = JSON.parse(readFileSync(path.join(chartDir, 'values.schema.json'), 'utf8'));
  const schemaPaths = (node: { properties?: Record<string, unknown> }, prefix = ''): string[] =>
    Object.entries(node.properties ?? {}).flatMap(([key, child]) => [
      `${prefix}${key}`,
      ...schemaPaths(child as { properties?: Record<string, unknown> }, `${prefix}${key}.`),
    ]);
  const paths = schemaPaths(schema);

  it('has a comment above every value the schema declares', () => {
    const lines = readFileSync(path.join(chartDir, 'values.yaml'), 'utf8').split('\n');
    const commented = new Set<string>();
    const stack: { indent: number; key: string }[] = [];
    lines.forEach((line, i) => {
      const m = /^(\s*)([A-Za-z0-9_./-]+):/.exec(line);
      if (!m || line.trim().startsWith('#') || line.trim().startsWith('-')) return;
      const indent = m[1]!.length;
      while (stack.length > 0 && stack.at(-1)!.indent >= indent) stack.pop();
      stack.push({ indent, key: m[2]! });
      let j = i - 1;
      while (j >= 0 && lines[j]!.trim() === '') j--;
      if (j >= 0 && lines[j]!.trim().startsWith('#')) commented.add(stack.map((s) => s.key).join('.'));
    });
    assert.deepEqual(paths.filter((p) => !commented.has(p)), []);
  });

  it('lists every value in the chart README', () => {
    const readme = readFileSync(path.join(chartDir, 'README.md'), 'utf8');
    assert.deepEqual(paths.filter((p) => !readme.includes(`| \`${p}\` |`)), []);
  });

  it('has the image that `inject` uses by default', () => {
    const values = yaml.load(readFileSync(path.join(chartDir, 'values.yaml'), 'utf8')) as {
      image: { repository: string; tag: string };
    };
    const chart = yaml.load(readFileSync(path.join(chartDir, 'Chart.yaml'), 'utf8')) as { appVersion: string };
    assert.equal(`${values.image.repository}:${values.image.tag || chart.appVersion}`, DEFAULT_AGENT_IMAGE);
  });
});

describe('the injector Deployment', () => {
  const cases = [
    { name: 'default values', args: [] as string[], nativeSidecars: true },
    { name: 'custom values', args: ['--values', customValues], nativeSidecars: false },
  ];
  for (const c of cases) {
    it(`passes flags the injector accepts (${c.name})`, () => {
      const list = objects(render(c.args));
      const container = podTemplateOf(list).spec.containers[0]!;
      assert.equal(container.args[0], 'injector');
      // Throws a ConfigError naming the flag if the chart passes one the injector does not know.
      const config = parseInjectorConfig(container.args.slice(1), {});
      assert.equal(config.port, 8443);
      assert.equal(config.settings.agentImage, container['image']);
      assert.equal(config.settings.hasNativeSidecars, c.nativeSidecars);
    });
  }

  it('passes the agent values through unchanged', () => {
    const args = podTemplateOf(objects(render(['--values', customValues]))).spec.containers[0]!.args;
    const settings = parseInjectorConfig(args.slice(1), {}).settings;
    assert.deepEqual(settings.resources, {
      requests: { cpu: '5m', memory: '32Mi' },
      limits: { cpu: '200m', memory: '96Mi' },
    });
    assert.equal(settings.mountPath, '/var/run/app-secrets');
    assert.equal(settings.tokenAudience, 'vault');
    assert.equal(settings.tokenExpirationSeconds, 1800);
    assert.equal(settings.imagePullPolicy, 'Always');
  });

  it('turns native sidecars off for Kubernetes before 1.29 when set to auto', () => {
    const r = helm(['template', RELEASE, chartDir, '--kube-version', '1.28.9']);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(r.stdout.includes('--native-sidecars=false'));
  });

  it('runs 2 replicas spread over nodes, with a PodDisruptionBudget of minAvailable 1', () => {
    const list = objects(render());
    const deployment = find(list, 'Deployment') as unknown as { spec: { replicas: number } };
    assert.equal(deployment.spec.replicas, 2);
    const affinity = podTemplateOf(list).spec['affinity'] as {
      podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: { podAffinityTerm: { topologyKey: string } }[] };
    };
    const term = affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0]!;
    assert.equal(term.podAffinityTerm.topologyKey, 'kubernetes.io/hostname');
    const pdb = find(list, 'PodDisruptionBudget') as unknown as { spec: { minAvailable: number } };
    assert.equal(pdb.spec.minAvailable, 1);
  });

  it('keeps the selector labels on the pods when podLabels names one of them', () => {
    const list = objects(render(['--set', 'injector.podLabels.app\\.kubernetes\\.io/name=hijack', '--set', 'injector.podLabels.team=a']));
    const deployment = find(list, 'Deployment') as unknown as {
      spec: { selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> } } };
    };
    const labels = deployment.spec.template.metadata.labels;
    for (const [k, v] of Object.entries(deployment.spec.selector.matchLabels)) assert.equal(labels[k], v, k);
    assert.equal(labels['team'], 'a');
  });

  const fileModes = ['helm', 'certManager', 'secret'];
  for (const mode of fileModes) {
    it(`gives the injector no RBAC and no API token with tls.mode ${mode}`, () => {
      const args = ['--set', `tls.mode=${mode}`, '--set', 'tls.secret.name=x', '--set', `tls.secret.caBundle=${CA_BUNDLE}`];
      const list = objects(render(args));
      assert.deepEqual(list.filter((o) => ['Role', 'RoleBinding', 'ClusterRoleBinding'].includes(o.kind)), []);
      assert.equal(podTemplateOf(list).spec['automountServiceAccountToken'], false);
      const sa = find(list, 'ServiceAccount') as unknown as { automountServiceAccountToken: boolean };
      assert.equal(sa.automountServiceAccountToken, false);
    });
  }

  it('with tls.mode selfManaged: passes the names of its Secret, webhook and Service', () => {
    const list = objects(render(['--set', 'tls.mode=selfManaged']));
    const template = podTemplateOf(list);
    const tls = parseInjectorConfig(template.spec.containers[0]!.args.slice(1), {}).selfManagedTls;
    assert.deepEqual(tls, {
      webhookConfigName: find(list, 'MutatingWebhookConfiguration').metadata.name,
      secretName: `${FULLNAME}-tls`,
      secretNamespace: NAMESPACE,
      serviceName: find(list, 'Service').metadata.name,
      extraHosts: [],
    });
    assert.equal(template.spec['automountServiceAccountToken'], true);
    assert.equal(template.spec.volumes, undefined, 'no certificate files to mount');
    assert.equal(webhookOf(list)[0]!.clientConfig.caBundle, undefined, 'the injector adds its CA');
  });
});

describe('the webhook configuration (acceptance case I09)', () => {
  it('selects opted-in pods on CREATE and excludes the system and release namespaces', () => {
    const [webhook, ...others] = webhookOf(objects(render(['--values', customValues])));
    assert.equal(others.length, 0);
    assert.deepEqual(webhook!.objectSelector, { matchLabels: { 'agent.external-secrets.io/inject': 'true' } });
    assert.deepEqual(webhook!.namespaceSelector.matchExpressions, [
      {
        key: 'kubernetes.io/metadata.name',
        operator: 'NotIn',
        values: ['kube-system', 'kube-node-lease', NAMESPACE, 'monitoring'],
      },
    ]);
    assert.deepEqual(webhook!.rules, [
      { operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' },
    ]);
  });

  it('fails closed within 10 s, without side effects, and is reinvoked if needed', () => {
    const [webhook] = webhookOf(objects(render()));
    assert.equal(webhook!.failurePolicy, 'Fail');
    assert.ok(webhook!.timeoutSeconds <= 10);
    assert.equal(webhook!.sideEffects, 'None');
    assert.equal(webhook!.reinvocationPolicy, 'IfNeeded');
    assert.deepEqual(webhook!.admissionReviewVersions, ['v1']);
    assert.deepEqual(webhook!.clientConfig.service, { name: FULLNAME, namespace: NAMESPACE, path: '/mutate', port: 443 });
  });

  it('lets cert-manager inject the CA with tls.mode certManager', () => {
    const list = objects(render(['--set', 'tls.mode=certManager']));
    const mwc = find(list, 'MutatingWebhookConfiguration');
    assert.equal(mwc.metadata.annotations?.['cert-manager.io/inject-ca-from'], `${NAMESPACE}/${FULLNAME}-tls`);
    assert.equal(webhookOf(list)[0]!.clientConfig.caBundle, undefined);
    const cert = find(list, 'Certificate', `${FULLNAME}-tls`) as unknown as { spec: { secretName: string } };
    assert.equal(cert.spec.secretName, podTemplateOf(list).spec.volumes[0]!.secret!.secretName);
  });
});

describe('tls.mode helm', () => {
  const list = objects(render());
  const secret = find(list, 'Secret', `${FULLNAME}-tls`) as unknown as K8sObject & {
    type: string;
    data: Record<string, string>;
  };
  const pem = (key: string) => Buffer.from(secret.data[key]!, 'base64').toString('utf8');

  it('renders a kubernetes.io/tls Secret with the CA, certificate and key', () => {
    assert.equal(find(list, 'Secret').metadata.name, `${FULLNAME}-tls`);
    assert.equal(secret.type, 'kubernetes.io/tls');
    assert.deepEqual(Object.keys(secret.data).sort(), ['ca.crt', 'tls.crt', 'tls.key']);
    assert.match(pem('tls.key'), /^-----BEGIN (RSA )?PRIVATE KEY-----/);
  });

  it('signs the serving certificate with the CA in the webhook caBundle, for the Service names', () => {
    assert.equal(webhookOf(list)[0]!.clientConfig.caBundle, secret.data['ca.crt'], 'no old CA to keep');
    const ca = new X509Certificate(pem('ca.crt'));
    const cert = new X509Certificate(pem('tls.crt'));
    assert.ok(ca.ca, 'ca.crt is a CA');
    assert.ok(cert.verify(ca.publicKey), 'tls.crt is signed by ca.crt');
    assert.ok(cert.checkHost(`${FULLNAME}.${NAMESPACE}.svc`), cert.subjectAltName);
    const days = (Date.parse(cert.validTo) - Date.now()) / 86_400_000;
    assert.ok(days > 3640 && days <= 3651, `valid for about 3650 days, got ${days}`);
    const notAfter = Number(secret.metadata.annotations?.['agent.external-secrets.io/tls-not-after']);
    assert.ok(Math.abs(notAfter * 1000 - Date.parse(cert.validTo)) < 120_000, 'annotation matches the certificate');
  });

  it('rolls the injector pods when the certificate changes, and mounts it', () => {
    const template = podTemplateOf(list);
    const checksum = createHash('sha256').update(secret.data['tls.crt']!).digest('hex');
    assert.equal(template.metadata.annotations?.['checksum/tls'], checksum);
    assert.equal(template.spec.volumes[0]!.secret!.secretName, `${FULLNAME}-tls`);
  });
});

describe('the chart on a real API server', () => {
  let cp: ControlPlane;
  const run = (args: string[], input?: string) => kubectl(cp.kubeconfigFile, args, input);
  /** helm template with lookup against the test API server (read only). */
  const renderLive = () => {
    const r = helm(['template', RELEASE, chartDir, '--namespace', NAMESPACE, '--dry-run=server']
      .concat(['--kubeconfig', cp.kubeconfigFile]));
    assert.equal(r.status, 0, r.stderr);
    return objects(r.stdout);
  };
  const tlsSecret = (list: K8sObject[]) =>
    find(list, 'Secret', `${FULLNAME}-tls`) as unknown as K8sObject & { data: Record<string, string> };

  before(async () => {
    cp = await useControlPlane();
    installCrds(cp);
    // The release namespace enforces Pod Security "restricted", as a careful operator's would.
    await createNamespace(cp, NAMESPACE, {
      'pod-security.kubernetes.io/enforce': 'restricted',
      'pod-security.kubernetes.io/warn': 'restricted',
    });
    await createNamespace(cp, RBAC_NAMESPACE);
  });

  after(async () => {
    if (cp) {
      // The cluster-scoped objects of the RBAC checks; the namespace's go with the control plane.
      run(['delete', '--ignore-not-found', 'clusterrolebinding', `${RBAC_FULLNAME}-webhook-ca`]);
      run(['delete', '--ignore-not-found', 'clusterrole', `${RBAC_FULLNAME}-webhook-ca`, `${RBAC_FULLNAME}-workload`]);
    }
    await cp?.stop();
  });

  /** `kubectl auth can-i` as a service account of the RBAC checks' namespace. */
  const canI = (serviceAccount: string, args: string[]) =>
    run(['auth', 'can-i', ...args, '--as', `system:serviceaccount:${RBAC_NAMESPACE}:${serviceAccount}`]).stdout.trim();

  const dryRunCases = [{ name: 'tls.mode helm (default values)', args: [] as string[] }, ...SNAPSHOT_CASES];
  for (const c of dryRunCases) {
    it(`accepts every rendered object in a server-side dry-run: ${c.name}`, () => {
      // NOTE: cert-manager's CRDs are not installed on the test API server, so its Certificate
      // and Issuer objects are left out of the dry-run; snapshots and lint cover them.
      const list = objects(render(c.args)).filter((o) => o.apiVersion !== 'cert-manager.io/v1');
      assert.ok(list.length >= 5, `rendered ${list.map((o) => o.kind).join(', ')}`);
      const body = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: list });
      // --warnings-as-errors: a Pod Security "restricted" warning on the Deployment fails too.
      const r = run(['--warnings-as-errors', 'apply', '--dry-run=server', '-f', '-'], body);
      assert.equal(r.status, 0, r.stderr);
      for (const o of list) {
        assert.match(r.stdout, new RegExp(`${o.metadata.name} (created|configured|unchanged) \\(server dry run\\)`));
      }
    });
  }

  it('tls.mode helm: an upgrade reuses the certificate in the existing Secret (lookup)', () => {
    const first = tlsSecret(renderLive());
    // As `helm install` would have left it: Helm checks these before it takes an object over.
    const installed = structuredClone(first);
    installed.metadata.annotations = {
      ...installed.metadata.annotations,
      'meta.helm.sh/release-name': RELEASE,
      'meta.helm.sh/release-namespace': NAMESPACE,
    };
    const apply = run(['apply', '-f', '-'], JSON.stringify(installed));
    assert.equal(apply.status, 0, apply.stderr);

    const list = renderLive();
    assert.deepEqual(tlsSecret(list).data, first.data);
    assert.equal(webhookOf(list)[0]!.clientConfig.caBundle, first.data['ca.crt']);
  });

  // NOTE: continues from the previous case, which left the Secret in place.
  it('tls.mode helm: an upgrade near expiry generates a new CA and certificate', () => {
    const soon = Math.floor(Date.now() / 1000) + 10 * 86_400; // inside renewBeforeDays (30)
    const annotate = run(['annotate', 'secret', `${FULLNAME}-tls`, '-n', NAMESPACE, '--overwrite',
      `agent.external-secrets.io/tls-not-after=${soon}`]);
    assert.equal(annotate.status, 0, annotate.stderr);
    const live = JSON.parse(run(['get', 'secret', `${FULLNAME}-tls`, '-n', NAMESPACE, '-o', 'json']).stdout);

    const list = renderLive();
    const renewed = tlsSecret(list);
    assert.notEqual(renewed.data['ca.crt'], live.data['ca.crt']);
    // The webhook trusts the new CA and the old one, for pods still serving the old certificate.
    const bundle = Buffer.from(webhookOf(list)[0]!.clientConfig.caBundle!, 'base64').toString('utf8');
    const pemOf = (b64: string) => Buffer.from(b64, 'base64').toString('utf8');
    assert.equal(bundle, pemOf(renewed.data['ca.crt']!) + pemOf(live.data['ca.crt']));
    assert.ok(Number(renewed.metadata.annotations?.['agent.external-secrets.io/tls-not-after']) > soon);
  });

  it('tls.mode selfManaged: the injector may touch its own Secret and webhook configuration only', () => {
    const wanted = ['ServiceAccount', 'Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding'];
    const args = ['--set', 'tls.mode=selfManaged', '--set', 'workloadRbac.create=false'];
    const rbac = objects(render(args, RBAC_RELEASE, RBAC_NAMESPACE)).filter((o) => wanted.includes(o.kind));
    const apply = run(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: rbac }));
    assert.equal(apply.status, 0, apply.stderr);

    const cases = [
      { name: 'get its Secret', args: ['get', `secret/${RBAC_FULLNAME}-tls`, '-n', RBAC_NAMESPACE], expected: 'yes' },
      { name: 'update its Secret', args: ['update', `secret/${RBAC_FULLNAME}-tls`, '-n', RBAC_NAMESPACE], expected: 'yes' },
      { name: 'create a Secret here', args: ['create', 'secrets', '-n', RBAC_NAMESPACE], expected: 'yes' },
      { name: 'get another Secret', args: ['get', 'secret/other', '-n', RBAC_NAMESPACE], expected: 'no' },
      { name: 'list Secrets', args: ['list', 'secrets', '-n', RBAC_NAMESPACE], expected: 'no' },
      { name: 'create a Secret elsewhere', args: ['create', 'secrets', '-n', 'default'], expected: 'no' },
      { name: 'patch its webhook', args: ['patch', `mutatingwebhookconfigurations/${RBAC_FULLNAME}`], expected: 'yes' },
      { name: 'get its webhook', args: ['get', `mutatingwebhookconfigurations/${RBAC_FULLNAME}`], expected: 'yes' },
      { name: 'patch another webhook', args: ['patch', 'mutatingwebhookconfigurations/other'], expected: 'no' },
      { name: 'delete its webhook', args: ['delete', `mutatingwebhookconfigurations/${RBAC_FULLNAME}`], expected: 'no' },
    ];
    for (const c of cases) assert.equal(canI(RBAC_FULLNAME, c.args), c.expected, c.name);
  });

  it('the workload ClusterRole, bound with a RoleBinding, allows what the agent does in that namespace', () => {
    const role = find(objects(render([], RBAC_RELEASE, RBAC_NAMESPACE)), 'ClusterRole', `${RBAC_FULLNAME}-workload`);
    const apply = run(['apply', '-f', '-'], JSON.stringify(role));
    assert.equal(apply.status, 0, apply.stderr);
    for (const args of [
      ['create', 'serviceaccount', 'app', '-n', RBAC_NAMESPACE],
      ['create', 'rolebinding', 'app-external-secrets', '-n', RBAC_NAMESPACE]
        .concat([`--clusterrole=${RBAC_FULLNAME}-workload`, `--serviceaccount=${RBAC_NAMESPACE}:app`]),
    ]) {
      const r = run(args);
      assert.equal(r.status, 0, r.stderr);
    }

    const es = 'externalsecrets.external-secrets.io';
    const cases = [
      { name: 'get an ExternalSecret', args: ['get', es, '-n', RBAC_NAMESPACE], expected: 'yes' },
      { name: 'get a SecretStore', args: ['get', 'secretstores.external-secrets.io', '-n', RBAC_NAMESPACE], expected: 'yes' },
      { name: 'patch ExternalSecret status', args: ['patch', es, '--subresource=status', '-n', RBAC_NAMESPACE], expected: 'yes' },
      { name: 'update an ExternalSecret', args: ['update', es, '-n', RBAC_NAMESPACE], expected: 'no' },
      { name: 'create a Secret', args: ['create', 'secrets', '-n', RBAC_NAMESPACE], expected: 'yes' },
      { name: 'update a Secret', args: ['update', 'secrets', '-n', RBAC_NAMESPACE], expected: 'yes' },
      { name: 'delete a Secret (deletionPolicy Delete)', args: ['delete', 'secrets', '-n', RBAC_NAMESPACE], expected: 'yes' },
      { name: 'get a ConfigMap (templateFrom)', args: ['get', 'configmaps', '-n', RBAC_NAMESPACE], expected: 'yes' },
      { name: 'list Secrets', args: ['list', 'secrets', '-n', RBAC_NAMESPACE], expected: 'no' },
      { name: 'create an Event', args: ['create', 'events', '-n', RBAC_NAMESPACE], expected: 'yes' },
      { name: 'get a Secret in another namespace', args: ['get', 'secrets', '-n', 'default'], expected: 'no' },
      {
        name: 'get a ClusterSecretStore (needs a ClusterRoleBinding)',
        args: ['get', 'clustersecretstores.external-secrets.io'],
        expected: 'no',
      },
    ];
    for (const c of cases) assert.equal(canI('app', c.args), c.expected, c.name);
  });
});
