/**
 * Go's duration syntax, as Kubernetes objects carry it (`metav1.Duration`): a sequence of
 * decimal numbers, each with a unit, such as "1h", "1h30m", "1.5s", "300ms". "0" alone is
 * allowed. Units: ns, us (or µs), ms, s, m, h. Negative durations are refused: no interval
 * the agent reads can be negative.
 */

const unitMs: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
};

const part = /^(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/;

/**
 * Parses a Go duration and returns whole milliseconds (fractions are rounded down, so "1500us"
 * is 1 ms). Throws a plain Error saying what was expected; the caller adds which field or
 * environment variable held the text.
 */
export function parseDuration(text: string): number {
  const s = text.trim();
  if (s === '0') return 0;
  if (s === '')
    throw new Error('expected a duration such as "1h", "30m" or "10s", got an empty string');
  if (s.startsWith('-')) throw new Error(`expected a non-negative duration, got "${s}"`);

  let rest = s.startsWith('+') ? s.slice(1) : s;
  let totalMs = 0;
  while (rest.length > 0) {
    const m = part.exec(rest);
    if (!m) {
      throw new Error(`expected a duration such as "1h", "30m", "1h30m" or "10s", got "${s}"`);
    }
    totalMs += Number(m[1]) * (unitMs[m[2] as string] as number);
    rest = rest.slice(m[0].length);
  }
  return Math.floor(totalMs);
}
