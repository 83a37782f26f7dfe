/**
 * Telling the app that its secret files changed, as the `on-change` annotation asks (handed to
 * the sidecar as ESA_ON_CHANGE; the grammar is in on-change.ts):
 *
 * - `http:<port><path>`, such as `http:8080/-/reload`: POST to `http://127.0.0.1:<port><path>`.
 *   Always loopback, the pod's own network namespace; the grammar has no room for a host.
 * - `signal:<SIGNAL>:<process-name>`, such as `signal:SIGHUP:nginx`: send SIGNAL to every
 *   process whose `/proc/<pid>/comm` is `process-name`, except the agent itself. The injector
 *   turns on `shareProcessNamespace` so the agent can see the app's processes.
 *
 * The sidecar calls {@link ChangeNotifier.changed} after every pass that changed files (never
 * after its first good pass, which is the initial write or a check of the init container's).
 * Changes that arrive close together, from several ExternalSecrets in the same tick, are folded
 * into one notification after a short quiet period.
 *
 * Failures are logged at warn and then dropped: the files are in place whatever happens, and a
 * notification retried for ever would pile up behind an app that is down.
 * NOTE: the kernel lets a process without CAP_KILL signal only processes of its own uid. The
 * agent runs as the app's uid only when the injector knows it (the containers' `runAsUser`, or
 * the `run-as-user` annotation); otherwise the signal fails with EPERM and the log says so.
 */
import { request } from 'node:http';
import { readdir, readFile } from 'node:fs/promises';
import type { Logger } from './log.ts';
import type { OnChange, OnChangeSignal } from './on-change.ts';
import { sleep } from './refresh.ts';

export const HTTP_TIMEOUT_MS = 5_000;
export const HTTP_ATTEMPTS = 3;
/** Wait before the second attempt; doubled before the third. */
export const HTTP_RETRY_DELAY_MS = 500;
/** Quiet period that folds the changes of several ExternalSecrets into one notification. */
export const DEBOUNCE_MS = 1_000;

export interface NotifyOptions {
  log: Logger;
  debounceMs?: number;
  /** HTTP: per attempt. */
  timeoutMs?: number;
  attempts?: number;
  retryDelayMs?: number;
  /** Signal: where processes are listed (tests); `/proc` by default. */
  procDir?: string;
  /** Signal: sends a signal (tests); `process.kill` by default. */
  kill?: (pid: number, signal: OnChangeSignal) => void;
  /** Signal: the pid never signalled; this process by default. */
  selfPid?: number;
}

export interface ChangeNotifier {
  /** Files changed: notify the app once the quiet period has passed. Never throws. */
  changed(): void;
  /** Drops a pending notification and stops one in flight. */
  close(): void;
  /** Resolves once nothing is pending or in flight (tests). */
  idle(): Promise<void>;
}

/**
 * Folds calls to `changed()` that come within `debounceMs` of the first into one notification.
 * A change that arrives while a notification is in flight schedules one more after it.
 */
export function createNotifier(onChange: OnChange, options: NotifyOptions): ChangeNotifier {
  const debounceMs = options.debounceMs ?? DEBOUNCE_MS;
  const stop = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> | undefined;
  let again = false;

  const fire = () => {
    timer = undefined;
    inFlight = notify(onChange, options, stop.signal).finally(() => {
      inFlight = undefined;
      if (again && !stop.signal.aborted) {
        again = false;
        timer = setTimeout(fire, debounceMs);
      }
    });
  };

  return {
    changed() {
      if (stop.signal.aborted) return;
      if (inFlight) again = true;
      else timer ??= setTimeout(fire, debounceMs);
    },
    close() {
      clearTimeout(timer);
      timer = undefined;
      stop.abort();
    },
    async idle() {
      while (timer !== undefined || inFlight !== undefined) {
        await (inFlight ?? new Promise((r) => setTimeout(r, 10)));
      }
    },
  };
}

/** Sends one notification. Logs the outcome; never throws. */
export async function notify(
  onChange: OnChange,
  options: NotifyOptions,
  signal?: AbortSignal,
): Promise<void> {
  if (onChange.kind === 'http') await postChange(onChange, options, signal);
  else await signalProcesses(onChange, options);
}

/**
 * POSTs an empty body to `http://127.0.0.1:<port><path>`, up to `attempts` times (3) with a
 * doubling wait between them, each attempt cut at `timeoutMs` (5 s). A 2xx answer is success;
 * anything else, or no answer, is retried. Returns whether the app accepted it. The response
 * body is never read into memory or logged: the app could echo anything.
 */
export async function postChange(
  target: Extract<OnChange, { kind: 'http' }>,
  options: NotifyOptions,
  signal?: AbortSignal,
): Promise<boolean> {
  const attempts = options.attempts ?? HTTP_ATTEMPTS;
  const address = `127.0.0.1:${target.port}`;
  let delayMs = options.retryDelayMs ?? HTTP_RETRY_DELAY_MS;

  for (let attempt = 1; attempt <= attempts; attempt++) {
    const started = Date.now();
    const failure = await postOnce(target, options.timeoutMs ?? HTTP_TIMEOUT_MS, signal);
    if (signal?.aborted) return false;
    if (failure === undefined) {
      options.log.info('app notified of changed files', {
        address,
        attempt,
        durationMs: Date.now() - started,
      });
      return true;
    }
    const err = `POST ${target.path}: ${failure}`;
    if (attempt === attempts) {
      options.log.warn('could not notify the app, giving up until the next change', {
        address,
        attempt,
        err,
      });
      break;
    }
    options.log.warn('could not notify the app, retrying', { address, attempt, err, delayMs });
    await sleep(delayMs, signal ?? new AbortController().signal);
    delayMs *= 2;
  }
  return false;
}

/** One POST; the reason it failed, or undefined for a 2xx answer. */
function postOnce(
  target: Extract<OnChange, { kind: 'http' }>,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<string | undefined> {
  return new Promise((resolve) => {
    // NOTE: host is fixed to loopback and the path goes in as the request target only, so no
    // value of the annotation can send the request to another host.
    const req = request(
      {
        host: '127.0.0.1',
        port: target.port,
        path: target.path,
        method: 'POST',
        headers: { 'content-length': '0', 'user-agent': 'external-secrets-agent' },
        timeout: timeoutMs,
        ...(signal ? { signal } : {}),
      },
      (res) => {
        res.resume(); // drain and discard the body
        const status = res.statusCode ?? 0;
        resolve(status >= 200 && status < 300 ? undefined : `HTTP ${status}`);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    req.end();
  });
}

/**
 * Sends the signal to every process named `processName` except the agent. Returns how many
 * were signalled. Processes that exit meanwhile are skipped; EPERM is logged with what to set.
 */
export async function signalProcesses(
  target: Extract<OnChange, { kind: 'signal' }>,
  options: NotifyOptions,
): Promise<number> {
  const { log } = options;
  const kill = options.kill ?? ((pid, sig) => process.kill(pid, sig));
  const selfPid = options.selfPid ?? process.pid;
  const pids = (await findProcesses(target.processName, options.procDir ?? '/proc')).filter(
    (pid) => pid !== selfPid,
  );
  const wanted = `process "${target.processName}"`;
  if (pids.length === 0) {
    log.warn('could not notify the app, no matching process', {
      signal: target.signal,
      err: `no ${wanted} other than the agent is visible; the pod needs shareProcessNamespace`,
    });
    return 0;
  }

  let sent = 0;
  for (const pid of pids) {
    try {
      kill(pid, target.signal);
      sent++;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ESRCH') continue; // exited since it was listed
      const hint =
        code === 'EPERM'
          ? `: ${wanted} runs as another uid than the agent; set runAsUser on the app ` +
            'container or the annotation agent.external-secrets.io/run-as-user to its uid ' +
            '(needed by agent.external-secrets.io/on-change signals)'
          : '';
      log.warn('could not notify the app', {
        signal: target.signal,
        errCode: code,
        err: `kill ${pid} (${wanted}) failed${hint}`,
      });
    }
  }
  if (sent > 0) log.info('app notified of changed files', { signal: target.signal, attempt: 1 });
  return sent;
}

/** Pids whose `comm` is `name`. Entries that vanish while being read are skipped. */
async function findProcesses(name: string, procDir: string): Promise<number[]> {
  const entries = await readdir(procDir).catch(() => [] as string[]);
  const pids: number[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const comm = await readFile(`${procDir}/${entry}/comm`, 'utf8').catch(() => undefined);
    if (comm?.replace(/\n$/, '') === name) pids.push(Number(entry));
  }
  return pids;
}
