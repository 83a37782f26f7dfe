/**
 * Parsers for the two value syntaxes our annotations borrow from elsewhere: Kubernetes resource
 * quantities (`10m`, `48Mi`) and Go durations (`1h30m`, the syntax of ESO's `refreshInterval`).
 * Both return `undefined` for anything they do not accept, so the caller can name the annotation
 * in its message.
 */

const quantityPattern =
  /^(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$/;

const quantitySuffixes: Record<string, number> = {
  '': 1,
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/**
 * Parses a non-negative Kubernetes quantity into base units (cores for CPU, bytes for memory).
 * The result is a float: exact enough to compare a request with a limit, not to re-serialise.
 * Signs are not accepted, since no resource value of ours may be negative.
 */
export function parseQuantity(text: string): number | undefined {
  const match = quantityPattern.exec(text);
  if (!match) return undefined;
  const [, digits = '', suffix = ''] = match;
  const scale = /^[eE]/.test(suffix) ? 10 ** Number(suffix.slice(1)) : quantitySuffixes[suffix];
  if (scale === undefined) return undefined;
  const value = Number(digits) * scale;
  return Number.isFinite(value) ? value : undefined;
}

const durationUnitsMs: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Parses a Go duration (`time.ParseDuration` syntax: `300ms`, `1.5h`, `2h45m`, a lone `0`) into
 * milliseconds. Signs are not accepted. Returns `undefined` for anything else, including a
 * number without a unit such as `60`.
 */
export function parseGoDurationMs(text: string): number | undefined {
  if (text === '0') return 0;
  if (text === '') return undefined;
  // Sticky: each part must start where the previous one ended, so junk between parts fails.
  const durationPart = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;
  let total = 0;
  while (durationPart.lastIndex < text.length) {
    const match = durationPart.exec(text);
    if (!match) return undefined;
    const [, digits = '', unit = ''] = match;
    const unitMs = durationUnitsMs[unit];
    if (unitMs === undefined) return undefined;
    total += Number(digits) * unitMs;
  }
  return Number.isFinite(total) ? total : undefined;
}
