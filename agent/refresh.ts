/**
 * The sidecar's schedule for one ExternalSecret: refresh at its interval with ±10% jitter (so
 * the replicas of a Deployment, started together, do not all read the provider in the same
 * second), and after a failure retry with exponential backoff, capped, while the last good
 * files and Secret stay in place. Interval 0 means "never refresh": after the first good pass
 * the loop only waits for the stop signal.
 */
import type { SyncOutcome } from './sync.ts';

export const JITTER = 0.1;

export interface Backoff {
  initialMs: number;
  maxMs: number;
}

/** `ms` moved by up to ±JITTER of itself; `random` returns [0, 1). */
export function jittered(ms: number, random: () => number = Math.random): number {
  return Math.round(ms * (1 + JITTER * (2 * random() - 1)));
}

/** The wait before retry number `failures` (1 for the first failure): doubling, capped, jittered. */
export function backoffDelay(
  failures: number,
  backoff: Backoff,
  random: () => number = Math.random,
): number {
  const base = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.max(0, failures - 1));
  return Math.min(backoff.maxMs, jittered(base, random));
}

/**
 * What to do after a pass: wait `delayMs` and run again, or stop refreshing (interval 0).
 * `failures` counts consecutive failed passes including this one.
 */
export function nextDelay(
  outcome: SyncOutcome,
  failures: number,
  backoff: Backoff,
  random: () => number = Math.random,
): number | 'never' {
  if (!outcome.ok) return backoffDelay(failures, backoff, random);
  if (outcome.refreshIntervalMs === 0) return 'never';
  return jittered(outcome.nextInMs ?? outcome.refreshIntervalMs ?? 0, random);
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

export interface LoopOptions {
  backoff: Backoff;
  /** Called after every pass, for logging and readiness. */
  onPass?: (outcome: SyncOutcome, failures: number, delay: number | 'never') => void;
  random?: () => number;
}

/**
 * Runs `pass` until `signal` aborts. The first call gets `first: true` (the sidecar uses it to
 * skip a pass the init container just made).
 */
export async function refreshLoop(
  pass: (first: boolean, signal: AbortSignal) => Promise<SyncOutcome>,
  signal: AbortSignal,
  options: LoopOptions,
): Promise<void> {
  let failures = 0;
  for (let first = true; !signal.aborted; first = false) {
    const outcome = await pass(first, signal);
    if (signal.aborted) return;
    failures = outcome.ok ? 0 : failures + 1;
    const delay = nextDelay(outcome, failures, options.backoff, options.random);
    options.onPass?.(outcome, failures, delay);
    if (delay === 'never') {
      await new Promise<void>((resolve) =>
        signal.addEventListener('abort', () => resolve(), { once: true }),
      );
      return;
    }
    await sleep(delay, signal);
  }
}
