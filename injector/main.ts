/**
 * `external-secrets-agent injector`: reads its settings, starts the HTTPS admission webhook and
 * runs until SIGTERM or SIGINT, then drains open requests and exits 0.
 *
 * The certificate and key are read once at start-up.
 * NOTE: reloading them when cert-manager renews the files, and managing our own CA, are not
 * built yet (issue 5). Until then a renewed certificate is served only after a restart; the
 * server already exposes `updateCertificate` for the watcher to call.
 */
import { readFile } from 'node:fs/promises';
import { ConfigError } from '../agent/errors.ts';
import { createLogger } from '../agent/log.ts';
import { parseInjectorConfig, settingsHelp } from './config.ts';
import { startInjectorServer } from './server.ts';

export async function runInjector(args: string[], env = process.env): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`usage: external-secrets-agent injector [flags]\n\n${settingsHelp()}\n`);
    return 0;
  }
  const config = parseInjectorConfig(args, env);
  const log = createLogger(config.logLevel, { component: 'injector' });

  const [certPem, keyPem] = await Promise.all([
    readPem(config.tlsCertFile, '--tls-cert-file ($ESA_TLS_CERT_FILE)'),
    readPem(config.tlsKeyFile, '--tls-key-file ($ESA_TLS_KEY_FILE)'),
  ]);
  const server = await startInjectorServer({
    port: config.port,
    host: config.host,
    certPem,
    keyPem,
    settings: config.settings,
    log,
  });

  const signal = await new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  log.info('injector stopping', { signal });
  await server.close();
  log.info('injector stopped');
  return 0;
}

async function readPem(file: string, setting: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new ConfigError(`${setting}: cannot read ${file} (${code})`);
  }
}
