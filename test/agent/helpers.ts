/** Small builders shared by the agent's unit tests. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config } from '../../agent/config.ts';
import type { ExternalSecret, SecretStore } from '../../agent/types.ts';

export const NS = 'app-ns';

/** A Config as the injector would set it, with a fresh output folder. */
export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({
    ESA_POD_NAME: 'app-7d4b9c',
    ESA_POD_NAMESPACE: NS,
    ESA_POD_UID: 'pod-uid-1',
    ESA_SERVICE_ACCOUNT: 'app',
    ESA_EXTERNAL_SECRETS: 'es',
    ESA_OUTPUT_DIR: mkdtempSync(join(tmpdir(), 'esa-out-')),
    ...env,
  });
}

export function secretStore(
  name: string,
  provider: Record<string, unknown>,
  extra: Partial<SecretStore['spec']> = {},
): SecretStore {
  return {
    apiVersion: 'external-secrets.io/v1',
    kind: 'SecretStore',
    metadata: { name, namespace: NS },
    spec: { provider, ...extra },
  };
}

export function clusterSecretStore(
  name: string,
  provider: Record<string, unknown>,
  extra: Partial<SecretStore['spec']> = {},
): SecretStore {
  return {
    apiVersion: 'external-secrets.io/v1',
    kind: 'ClusterSecretStore',
    metadata: { name },
    spec: { provider, ...extra },
  };
}

export function externalSecret(name: string, spec: ExternalSecret['spec']): ExternalSecret {
  return {
    apiVersion: 'external-secrets.io/v1',
    kind: 'ExternalSecret',
    metadata: { name, namespace: NS, generation: 1 },
    spec,
  };
}

export const paths = {
  externalSecret: (name: string, version = 'v1') =>
    `/apis/external-secrets.io/${version}/namespaces/${NS}/externalsecrets/${name}`,
  secretStore: (name: string, version = 'v1') =>
    `/apis/external-secrets.io/${version}/namespaces/${NS}/secretstores/${name}`,
  clusterSecretStore: (name: string, version = 'v1') =>
    `/apis/external-secrets.io/${version}/clustersecretstores/${name}`,
  secret: (name: string, ns = NS) => `/api/v1/namespaces/${ns}/secrets/${name}`,
};

/** Sets environment variables for the duration of `run` and restores them after. */
export async function withEnv<T>(
  vars: Record<string, string | undefined>,
  run: () => Promise<T>,
): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const apply = (v: Record<string, string | undefined>) => {
    for (const [k, val] of Object.entries(v)) {
      if (val === undefined) delete process.env[k];
      else process.env[k] = val;
    }
  };
  apply(vars);
  try {
    return await run();
  } finally {
    apply(saved);
  }
}
