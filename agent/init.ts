/**
 * `external-secrets-agent init`: syncs every named ExternalSecret once and exits. The injector
 * runs it as an init container, so the app starts only after its Secret and files exist.
 *
 * Exit 0 when every ExternalSecret synced. Otherwise exit 1 and write one line to the
 * termination-message file (ESA_TERMINATION_LOG, default /dev/termination-log), so
 * `kubectl describe pod` shows which ExternalSecret failed and why.
 */
import { writeFileSync } from 'node:fs';
import { describeSettings } from './config.ts';
import { AgentError } from './errors.ts';
import { createLogger } from './log.ts';
import { createRuntime, type RuntimeOptions } from './runtime.ts';
import { syncExternalSecret } from './sync.ts';

const DEFAULT_TERMINATION_LOG = '/dev/termination-log';
/** The kubelet keeps at most 4096 bytes of a termination message. */
const TERMINATION_LIMIT = 4096;

export async function runInit(args: string[], options: RuntimeOptions = {}): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(
      `usage: external-secrets-agent init\n\nsync every ExternalSecret once, then exit\n\nsettings:\n${describeSettings()}\n`,
    );
    return 0;
  }
  const env = options.env ?? process.env;
  const started = Date.now();

  let runtime;
  try {
    runtime = createRuntime(options);
  } catch (err) {
    const e = err as AgentError;
    createLogger(env.ESA_LOG_LEVEL, { component: 'agent' }, options.logLine).error(
      'bad configuration',
      { errCode: e.code, err: e.message },
    );
    writeTerminationMessage(env.ESA_TERMINATION_LOG || DEFAULT_TERMINATION_LOG, e.message);
    return 1;
  }

  const { config, log, deps } = runtime;
  try {
    const outcomes = await Promise.all(
      config.externalSecrets.map((name) => syncExternalSecret(deps, name)),
    );
    const failed = outcomes.filter((o) => !o.ok);
    for (const o of failed) {
      log.error('sync failed', {
        externalSecret: o.externalSecret,
        errCode: o.error?.code,
        err: o.message,
      });
    }
    if (failed.length) {
      writeTerminationMessage(config.terminationLog, failed.map((o) => o.message).join('; '));
      return 1;
    }
    log.info('init done', { durationMs: Date.now() - started });
    return 0;
  } finally {
    runtime.close();
  }
}

/** Writes one line, cut to the kubelet's limit; an unwritable file is ignored (logs have it). */
function writeTerminationMessage(path: string, message: string): void {
  let line = message.replace(/\s*\n\s*/g, ' ');
  while (Buffer.byteLength(line) > TERMINATION_LIMIT) line = line.slice(0, line.length - 64);
  try {
    writeFileSync(path, line);
  } catch {
    // not in a container, or a read-only path: the log line above says the same
  }
}
