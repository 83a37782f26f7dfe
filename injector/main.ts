/**
 * `external-secrets-agent injector`: reads its settings, gets its serving certificate, starts the
 * HTTPS admission webhook and runs until SIGTERM or SIGINT, then drains open requests and
 * exits 0.
 *
 * The serving certificate comes from one of two places:
 * - files (`--tls-cert-file`, `--tls-key-file`), for example a cert-manager Secret mounted as a
 *   volume: checked at start (a bad pair stops the injector with a message naming the file),
 *   then watched and reloaded without a restart when they change (tls.ts);
 * - with `--tls-self-managed`, a CA and certificate the injector keeps in a Secret and writes
 *   into its MutatingWebhookConfiguration's caBundle (tls-self-managed.ts).
 */
import { readFile } from 'node:fs/promises';
import * as k8s from '@kubernetes/client-node';
import { ConfigError } from '../agent/errors.ts';
import { createLogger, type Logger } from '../agent/log.ts';
import { type InjectorConfig, parseInjectorConfig, settingsHelp } from './config.ts';
import { startInjectorServer } from './server.ts';
import { createSelfManagedTls, serviceHosts } from './tls-self-managed.ts';
import { type KeyPair, KeyPairError, readKeyPair, watchKeyPair } from './tls.ts';

/** Where a pod finds its own namespace (the service-account volume). */
const NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

/** How the serving certificate is kept current once the server runs. */
interface CertificateSource {
  first: KeyPair;
  /** Starts keeping it current; `update` serves a new pair. */
  follow(update: (pair: KeyPair) => void): void;
  stop(): Promise<void>;
}

export async function runInjector(args: string[], env = process.env): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`usage: external-secrets-agent injector [flags]\n\n${settingsHelp()}\n`);
    return 0;
  }
  const config = parseInjectorConfig(args, env);
  const log = createLogger(config.logLevel, { component: 'injector' });

  const certificates = config.selfManagedTls
    ? await selfManagedSource(config, log)
    : await fileSource(config, log);
  const server = await startInjectorServer({
    port: config.port,
    host: config.host,
    certPem: certificates.first.certPem,
    keyPem: certificates.first.keyPem,
    settings: config.settings,
    log,
  });
  certificates.follow((pair) => server.updateCertificate(pair.certPem, pair.keyPem));

  const signal = await new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  log.info('injector stopping', { signal });
  await certificates.stop();
  await server.close();
  log.info('injector stopped');
  return 0;
}

async function fileSource(config: InjectorConfig, log: Logger): Promise<CertificateSource> {
  let first: KeyPair;
  try {
    first = await readKeyPair(config.tlsCertFile, config.tlsKeyFile);
  } catch (err) {
    if (!(err instanceof KeyPairError)) throw err;
    throw new ConfigError(
      `--tls-cert-file ($ESA_TLS_CERT_FILE) ${config.tlsCertFile} and --tls-key-file ` +
        `($ESA_TLS_KEY_FILE) ${config.tlsKeyFile}: ${err.message}`,
    );
  }
  let watch: ReturnType<typeof watchKeyPair> | undefined;
  return {
    first,
    follow(update) {
      watch = watchKeyPair({
        certFile: config.tlsCertFile,
        keyFile: config.tlsKeyFile,
        current: first,
        onChange: update,
        log,
      });
    },
    stop: async () => watch?.close(),
  };
}

async function selfManagedSource(config: InjectorConfig, log: Logger): Promise<CertificateSource> {
  const tls = config.selfManagedTls!;
  const namespace = tls.secretNamespace ?? (await ownNamespace());
  const kubeConfig = new k8s.KubeConfig();
  // In a pod: the service account; elsewhere: $KUBECONFIG or ~/.kube/config.
  kubeConfig.loadFromDefault();
  const manager = createSelfManagedTls({
    kubeConfig,
    namespace,
    secretName: tls.secretName,
    webhookConfigName: tls.webhookConfigName,
    hosts: [...serviceHosts(tls.serviceName, namespace), ...tls.extraHosts],
    log,
  });
  const first = await manager.sync();
  return {
    first,
    follow: (update) => manager.start(first, update),
    stop: () => manager.stop(),
  };
}

async function ownNamespace(): Promise<string> {
  try {
    return (await readFile(NAMESPACE_FILE, 'utf8')).trim();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new ConfigError(
      `--tls-secret-namespace ($ESA_TLS_SECRET_NAMESPACE) is empty and ${NAMESPACE_FILE} ` +
        `cannot be read (${code}): set it when the injector does not run in a pod`,
    );
  }
}
