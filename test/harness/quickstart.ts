/**
 * The External Secrets Operator quick-start as a scenario on local servers, shared by the
 * end-to-end tests and `npm run demo`: install the CRDs, seed AWS Secrets Manager (moto) with
 * the quick-start's data, and apply the manifests from samples/ (the quick-start, unchanged
 * but for the namespace when a test asks for its own, plus the workload's RBAC).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import {
  CreateSecretCommand,
  PutSecretValueCommand,
  ResourceExistsException,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import type { ControlPlane } from './control-plane.ts';
import { kubectl } from './tools.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const GROUP = 'external-secrets.io';

/** The provider side the quick-start's comments describe. */
export const QUICKSTART_AWS_DATA: Record<string, Record<string, string>> = {
  'prod/database': { host: 'db.example.com', username: 'app', password: 'secret123', port: '5432' },
  'prod/api-keys': { 'primary-key': 'pk-1', 'secondary-key': 'pk-2' },
};

/** The quick-start's ExternalSecrets, in the order the samples define them. */
export const QUICKSTART_EXTERNAL_SECRETS = ['app-credentials', 'database', 'db-connection-string'];

/** Applies the CRDs from the chart and waits until the API server serves them. */
export function installCrds(cp: ControlPlane): void {
  const crds = path.join(repoRoot, 'charts/external-secrets-agent/crds');
  const apply = kubectl(cp.kubeconfigFile, ['apply', '--server-side', '--force-conflicts', '-f', crds]);
  if (apply.status !== 0) throw new Error(`applying the CRDs failed: ${apply.stderr}`);
  const wait = kubectl(cp.kubeconfigFile, ['wait', '--for=condition=Established', '--timeout=60s',
    `crd/externalsecrets.${GROUP}`, `crd/secretstores.${GROUP}`, `crd/clustersecretstores.${GROUP}`]);
  if (wait.status !== 0) throw new Error(`the CRDs were not established: ${wait.stderr}`);
}

/** An AWS Secrets Manager client for moto (moto accepts any credentials). */
export function awsClient(endpoint: string): SecretsManagerClient {
  return new SecretsManagerClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'test-seed', secretAccessKey: 'test-seed' },
  });
}

/** Creates each secret as JSON text, or puts a new version when it exists already. */
export async function putAwsSecrets(endpoint: string, data: Record<string, Record<string, string>>): Promise<void> {
  const client = awsClient(endpoint);
  try {
    for (const [name, value] of Object.entries(data)) {
      const SecretString = JSON.stringify(value);
      try {
        await client.send(new CreateSecretCommand({ Name: name, SecretString }));
      } catch (err) {
        if (!(err instanceof ResourceExistsException)) throw err;
        await client.send(new PutSecretValueCommand({ SecretId: name, SecretString }));
      }
    }
  } finally {
    client.destroy();
  }
}

/** Every object in the given samples/ files, moved to `namespace` when one is given. */
export function sampleObjects(files: string[], namespace?: string): k8s.KubernetesObject[] {
  const objects = files.flatMap((f) =>
    (k8s.loadAllYaml(readFileSync(path.join(repoRoot, 'samples', f), 'utf8')) as k8s.KubernetesObject[]).filter(Boolean));
  if (!namespace) return objects;
  return objects
    .filter((o) => o.kind !== 'Namespace')
    .map((o) => {
      const copy = structuredClone(o) as k8s.KubernetesObject & { subjects?: { namespace?: string }[] };
      if (copy.metadata?.namespace) copy.metadata.namespace = namespace;
      for (const s of copy.subjects ?? []) if (s.namespace) s.namespace = namespace;
      return copy;
    });
}

/** The quick-start manifests, its AWS credentials Secret and the workload's RBAC. */
export function quickstartObjects(namespace?: string): k8s.KubernetesObject[] {
  return sampleObjects(
    ['quickstart/namespace.yaml', 'quickstart/aws-credentials-secret.yaml', 'quickstart/quickstart.yaml', 'rbac/workload-role.yaml'],
    namespace,
  );
}

/** Creates or updates each object (server-side apply), namespaces first. */
export async function applyObjects(cp: ControlPlane, objects: k8s.KubernetesObject[]): Promise<void> {
  const client = k8s.KubernetesObjectApi.makeApiClient(cp.kubeConfig);
  const ordered = [...objects.filter((o) => o.kind === 'Namespace'), ...objects.filter((o) => o.kind !== 'Namespace')];
  for (const o of ordered) {
    await client.patch(o, undefined, undefined, 'esa-harness', true, k8s.PatchStrategy.ServerSideApply);
  }
}

/** A pod that opts in to injection and consumes the named ExternalSecrets. */
export function optedInPod(
  name: string,
  externalSecrets: string[],
  { serviceAccountName = 'app', annotations = {}, labels = {} }:
    { serviceAccountName?: string; annotations?: Record<string, string>; labels?: Record<string, string> } = {},
): k8s.V1Pod {
  return {
    metadata: {
      name,
      labels: { 'agent.external-secrets.io/inject': 'true', ...labels },
      annotations: { 'agent.external-secrets.io/external-secrets': externalSecrets.join(','), ...annotations },
    },
    spec: {
      serviceAccountName,
      containers: [{
        name: 'app',
        image: 'registry.example/app:1',
        securityContext: { runAsUser: 10001, runAsNonRoot: true },
        envFrom: [{ secretRef: { name: externalSecrets[0] } }],
      }],
    },
  };
}
