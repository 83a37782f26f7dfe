/**
 * Runs the product's injector as a process (`external-secrets-agent injector`, from cli.ts or
 * the esbuild bundle) with a serving certificate signed by the test control plane's CA, and
 * registers it with the API server through a MutatingWebhookConfiguration that calls
 * https://127.0.0.1:<port>/mutate. The API server then sends it every opted-in pod it admits.
 *
 * The webhook registered is the chart's own (charts/external-secrets-agent/templates/webhook.yaml,
 * rendered by helm), so the tests exercise the objectSelector, rules and failure policy that
 * users install.
 *
 * NOTE: the webhook is registered with clientConfig.url, not clientConfig.service: a service
 * would make the API server dial a ClusterIP, which is neither loopback nor reachable here. The
 * chart's service form is checked with `helm template` instead.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import * as yaml from 'js-yaml';
import type { ControlPlane } from './control-plane.ts';
import { issueCert } from './pki.ts';
import { helmPath } from './tools.ts';
import { freePort, logRoot, startProcess, waitFor, type Managed } from './processes.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export const INJECT_LABEL = 'agent.external-secrets.io/inject';

export interface RunningInjector {
  url: string;
  process: Managed;
  webhookName: string;
  /** Deletes the webhook configuration, then stops the process (in that order, so no pod
   * creation is left failing closed against a stopped injector). */
  stop(): Promise<void>;
}

export interface StartInjectorOptions {
  /** Namespaces whose pods the webhook sees; keeps test files from catching each other's pods. */
  namespaces: string[];
  /**
   * Namespaces the webhook never sees even when listed in `namespaces` (a NotIn expression, as
   * the chart excludes kube-system, kube-node-lease and the injector's own namespace).
   */
  excludeNamespaces?: string[];
  /**
   * The namespace the chart would be installed in (default external-secrets-agent): the chart's
   * webhook leaves pods there alone, as it does kube-system and kube-node-lease.
   */
  releaseNamespace?: string;
  /** Run the esbuild bundle at this path instead of cli.ts. */
  bundle?: string;
  /** Extra flags for `external-secrets-agent injector`. */
  args?: string[];
  logDir?: string;
}

/**
 * The first webhook of the chart's MutatingWebhookConfiguration, rendered by `helm template`
 * with default values into release namespace `releaseNamespace`.
 */
export function chartWebhook(releaseNamespace: string): k8s.V1MutatingWebhook {
  const home = mkdtempSync(path.join(tmpdir(), 'esa-helm-'));
  try {
    const r = spawnSync(helmPath(), ['template', 'esa', path.join(repoRoot, 'charts/external-secrets-agent'),
      '--namespace', releaseNamespace, '--show-only', 'templates/webhook.yaml'], {
      encoding: 'utf8',
      env: { ...process.env, HELM_CACHE_HOME: home, HELM_CONFIG_HOME: home, HELM_DATA_HOME: home },
    });
    if (r.status !== 0) throw new Error(`helm template of the chart's webhook failed: ${r.stderr}`);
    const docs = yaml.loadAll(r.stdout) as { kind?: string; webhooks?: k8s.V1MutatingWebhook[] }[];
    const webhook = docs.find((d) => d?.kind === 'MutatingWebhookConfiguration')?.webhooks?.[0];
    if (!webhook) throw new Error('the chart renders no MutatingWebhookConfiguration webhook');
    return webhook;
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

export async function startInjector(cp: ControlPlane, options: StartInjectorOptions): Promise<RunningInjector> {
  const dir = mkdtempSync(path.join(tmpdir(), 'esa-injector-'));
  const cert = issueCert(dir, cp.ca, 'injector', { commonName: 'esa-injector', hosts: ['127.0.0.1'] });
  const port = await freePort();
  const url = `https://127.0.0.1:${port}`;
  const entry = options.bundle ?? path.join(repoRoot, 'cli.ts');
  const proc = startProcess(`injector-${port}`, process.execPath, [
    entry, 'injector',
    '--host=127.0.0.1', `--port=${port}`,
    `--tls-cert-file=${cert.cert}`, `--tls-key-file=${cert.key}`,
    '--agent-image=external-secrets-agent:dev', '--log-level=debug',
    ...(options.args ?? []),
  ], { logDir: options.logDir ?? logRoot() });

  const agent = new https.Agent({ ca: cp.caPem });
  await waitFor('injector /healthz', () => new Promise((resolve, reject) => {
    https.get(`${url}/healthz`, { agent }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    }).on('error', reject);
  }), { proc, timeoutMs: 30_000 });
  agent.destroy();

  // The webhook as the Helm chart ships it (rules, objectSelector, failurePolicy, timeouts,
  // namespaces it leaves alone), with two test-only changes: the API server calls this process
  // at its loopback URL, and only pods in the test's own namespaces are sent to it.
  const chart = chartWebhook(options.releaseNamespace ?? 'external-secrets-agent');
  const admission = cp.kubeConfig.makeApiClient(k8s.AdmissionregistrationV1Api);
  const webhookName = `esa-injector-${port}`;
  await admission.createMutatingWebhookConfiguration({
    body: {
      metadata: { name: webhookName },
      webhooks: [{
        ...chart,
        clientConfig: { url: `${url}/mutate`, caBundle: Buffer.from(cp.caPem).toString('base64') },
        namespaceSelector: {
          ...chart.namespaceSelector,
          matchExpressions: [
            ...(chart.namespaceSelector?.matchExpressions ?? []),
            { key: 'kubernetes.io/metadata.name', operator: 'In', values: options.namespaces },
            ...(options.excludeNamespaces?.length
              ? [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: options.excludeNamespaces }]
              : []),
          ],
        },
      }],
    },
  });

  return {
    url,
    process: proc,
    webhookName,
    stop: async () => {
      await admission.deleteMutatingWebhookConfiguration({ name: webhookName }).catch(() => undefined);
      await proc.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
