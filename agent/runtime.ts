/**
 * What `init` and `sidecar` share at start-up: the frozen Config, the logger bound to the pod,
 * and the agent's own small client for the API server (in-cluster address, CA and token file).
 */
import { loadConfig, type Config } from './config.ts';
import { KubeClient, inClusterOptions } from './kube-client.ts';
import { createLogger, type Logger } from './log.ts';
import type { Provider, ProviderContext } from './providers/provider.ts';
import type { SyncDeps } from './sync.ts';
import type { KubeApi } from './types.ts';

export interface RuntimeOptions {
  env?: NodeJS.ProcessEnv;
  /** Replaces the API client (tests). */
  kube?: KubeApi;
  /** Replaces the provider lookup (tests). */
  loadProvider?: (ctx: ProviderContext) => Promise<Provider>;
  /** Receives each log line (tests); stderr by default. */
  logLine?: (line: string) => void;
}

export interface Runtime {
  config: Config;
  log: Logger;
  deps: SyncDeps;
  /** Closes the API client's idle sockets so the process can exit. */
  close(): void;
}

/** Reads the settings and builds the clients. Throws ConfigError for a bad setting. */
export function createRuntime(options: RuntimeOptions = {}): Runtime {
  const env = options.env ?? process.env;
  const config = loadConfig(env);
  const log = createLogger(
    config.logLevel,
    { component: 'agent', pod: `${config.podNamespace}/${config.podName}` },
    options.logLine,
  );
  const client = options.kube
    ? undefined
    : new KubeClient(
        inClusterOptions({
          ...env,
          ESA_KUBE_TOKEN_FILE: config.kubeTokenFile,
          ESA_KUBE_CA_FILE: config.kubeCaFile,
        }),
      );
  const kube = options.kube ?? (client as KubeClient);
  const deps: SyncDeps = {
    kube,
    config,
    log,
    env,
    ...(options.loadProvider ? { loadProvider: options.loadProvider } : {}),
  };
  return { config, log, deps, close: () => client?.close() };
}
