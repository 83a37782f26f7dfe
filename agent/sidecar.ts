/**
 * `external-secrets-agent sidecar`: keeps every named ExternalSecret in sync while the pod runs,
 * one refresh loop each (refresh.ts), until SIGTERM or SIGINT.
 *
 * Readiness: the file ESA_READY_FILE (default `<ESA_OUTPUT_DIR>/..ready`) is created once every
 * ExternalSecret has had a good pass, and `external-secrets-agent ready` exits 0 exactly when it
 * exists, for a startupProbe. The default sits in the shared folder (the app can see it, as it
 * sees the kubelet's `..data`; it holds only a time); an injector that mounts a subfolder into
 * the app can point it elsewhere.
 * NOTE: a later failure does not remove the file. The app still has the last good Secret and
 * files, and taking every replica out of service because the provider is down would turn a
 * stale secret into an outage; failures are reported in status, Events and logs instead.
 *
 * With ESA_ON_CHANGE the app is told after a pass that changed files (notify.ts), once an earlier
 * pass for the same ExternalSecret has succeeded. The first good pass never notifies: it is the
 * initial write (sidecar-only) or a check of what the init container just wrote.
 * NOTE: so a sidecar restarted while the app runs does not notify for a change its first good
 * pass finds; the next change does. SyncOutcome.changed is also true when only the Secret
 * object was rewritten (for example re-created after a delete) with the same files: the app
 * then gets one notification it did not need, which is harmless for a reload.
 */
import { rmSync, statSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { describeSettings, loadConfig } from './config.ts';
import { closeMetrics, createAgentMetrics, serveMetrics } from './metrics.ts';
import { createNotifier } from './notify.ts';
import { refreshLoop } from './refresh.ts';
import { createRuntime, type RuntimeOptions } from './runtime.ts';
import { syncExternalSecret } from './sync.ts';

export interface SidecarOptions extends RuntimeOptions {
  /** Stops the sidecar; by default SIGTERM and SIGINT do. */
  signal?: AbortSignal;
  random?: () => number;
}

export async function runSidecar(args: string[], options: SidecarOptions = {}): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(
      `usage: external-secrets-agent sidecar\n\nkeep every ExternalSecret in sync until SIGTERM\n\nsettings:\n${describeSettings()}\n`,
    );
    return 0;
  }
  const runtime = createRuntime(options);
  const { config, log, deps } = runtime;
  const signal = options.signal ?? stopOnSignals(() => log.info('stopping'));
  rmSync(config.readyFile, { force: true }); // from an earlier run of this container

  const metrics = createAgentMetrics();
  let server: Server | undefined;
  try {
    if (config.metricsAddress) server = await serveMetrics(config.metricsAddress, metrics, log);
  } catch (err) {
    runtime.close();
    throw err;
  }

  const notifier = config.onChange && createNotifier(config.onChange, { log });
  const waiting = new Set(config.externalSecrets);
  const loops = config.externalSecrets.map((name) => {
    let hasSynced = false;
    return refreshLoop(
      (first, passSignal) =>
        syncExternalSecret(deps, name, { signal: passSignal, skipIfFresh: first }),
      signal,
      {
        backoff: { initialMs: config.retryInitialMs, maxMs: config.retryMaxMs },
        ...(options.random ? { random: options.random } : {}),
        onPass: (outcome, failures, delay) => {
          const delayMs = delay === 'never' ? undefined : delay;
          metrics.observePass(outcome);
          if (outcome.ok && outcome.changed && hasSynced) notifier?.changed();
          hasSynced ||= outcome.ok;
          if (!outcome.ok) {
            log.warn('sync failed, keeping the last good secret', {
              externalSecret: outcome.externalSecret,
              attempt: failures,
              delayMs,
              errCode: outcome.error?.code,
              err: outcome.message,
            });
            return;
          }
          log.debug('next refresh scheduled', { externalSecret: outcome.externalSecret, delayMs });
          if (waiting.delete(name) && waiting.size === 0) {
            writeFileSync(config.readyFile, `${new Date().toISOString()}\n`);
            log.info('ready', { file: config.readyFile });
          }
        },
      },
    );
  });
  log.info('sidecar started', { externalSecret: config.externalSecrets.join(',') });
  try {
    await Promise.all(loops);
    return 0;
  } finally {
    notifier?.close();
    if (server) closeMetrics(server);
    runtime.close();
  }
}

/** An AbortSignal that fires on the first SIGTERM or SIGINT. */
function stopOnSignals(onStop: () => void): AbortSignal {
  const controller = new AbortController();
  const stop = () => {
    onStop();
    controller.abort();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  return controller.signal;
}

/** `external-secrets-agent ready`: exit 0 when the sidecar's ready file exists. */
export async function runReadyProbe(
  _args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  try {
    statSync(loadConfig(env).readyFile);
    return 0;
  } catch {
    return 1;
  }
}
